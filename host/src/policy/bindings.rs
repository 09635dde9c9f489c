//! Generated bindings for each supported contract version, and conversions
//! between them and the JSON form in [`crate::contract`].
//!
//! Each version of the WIT package gets its own module. A component declares
//! its version in its export name (`lethe:policy/policy@0.1.0`), so several
//! versions can be linked side by side: adding `@0.2.0` means a `v0_2`
//! module generated from `wit/v0.2/`, its own conversions to the contract
//! types, and one more arm in [`super::ContractVersion`].

use crate::contract as c;

pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "deletion-policy",
    });
}

use v0_1::exports::lethe::policy::policy as w;

/// The export name that identifies a `@0.1.x` component.
pub const V0_1_EXPORT: &str = "lethe:policy/policy@0.1.0";
/// The import name of the `@0.1.x` host interface.
pub const V0_1_HOST_IMPORT: &str = "lethe:policy/host@0.1.0";

pub fn request_to_wit(r: &c::Request) -> w::Request {
    w::Request {
        action: action_to_wit(r.action),
        subject: w::Subject {
            id: r.subject.id.clone(),
            state: state_to_wit(r.subject.state),
            roles: r.subject.roles.clone(),
            permissions: r.subject.permissions.clone(),
            domain: r.subject.domain.clone(),
            created_at: r.subject.created_at,
            last_login_at: r.subject.last_login_at,
            deleted_at: r.subject.deleted_at,
            attributes: attributes_to_wit(&r.subject.attributes),
        },
        actor: w::Actor {
            kind: match r.actor.kind {
                c::ActorKind::TenantUser => w::ActorKind::TenantUser,
                c::ActorKind::Support => w::ActorKind::Support,
                c::ActorKind::System => w::ActorKind::System,
            },
            id: r.actor.id.clone(),
            roles: r.actor.roles.clone(),
            permissions: r.actor.permissions.clone(),
            domain: r.actor.domain.clone(),
            attributes: attributes_to_wit(&r.actor.attributes),
        },
        holdings: r
            .holdings
            .iter()
            .map(|h| w::Holding {
                category: h.category.clone(),
                total: h.total,
                open: h.open,
            })
            .collect(),
        transfer_to: r.transfer_to.clone(),
        reason: r.reason.clone(),
        bulk: r.bulk,
        now: r.now,
    }
}

fn attributes_to_wit(a: &c::Attributes) -> Vec<w::Attribute> {
    a.iter()
        .map(|(key, value)| w::Attribute {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

fn action_to_wit(a: c::Action) -> w::Action {
    match a {
        c::Action::Lock => w::Action::Lock,
        c::Action::Unlock => w::Action::Unlock,
        c::Action::Deactivate => w::Action::Deactivate,
        c::Action::Reactivate => w::Action::Reactivate,
        c::Action::Delete => w::Action::Delete,
        c::Action::Restore => w::Action::Restore,
        c::Action::Erase => w::Action::Erase,
    }
}

fn action_from_wit(a: w::Action) -> c::Action {
    match a {
        w::Action::Lock => c::Action::Lock,
        w::Action::Unlock => c::Action::Unlock,
        w::Action::Deactivate => c::Action::Deactivate,
        w::Action::Reactivate => c::Action::Reactivate,
        w::Action::Delete => c::Action::Delete,
        w::Action::Restore => c::Action::Restore,
        w::Action::Erase => c::Action::Erase,
    }
}

fn state_to_wit(s: c::LifecycleState) -> w::LifecycleState {
    match s {
        c::LifecycleState::Active => w::LifecycleState::Active,
        c::LifecycleState::Locked => w::LifecycleState::Locked,
        c::LifecycleState::Deactivated => w::LifecycleState::Deactivated,
        c::LifecycleState::Deleted => w::LifecycleState::Deleted,
        c::LifecycleState::Erased => w::LifecycleState::Erased,
    }
}

/// The decision without its evidence (fuel, time), as the guest returned it.
pub fn decision_from_wit(d: w::Decision) -> (c::Outcome, Vec<String>) {
    let outcome = match d.outcome {
        w::Outcome::Allow(p) => c::Outcome::Allow {
            plan: c::Plan {
                categories: p
                    .categories
                    .into_iter()
                    .map(|cp| c::CategoryPlan {
                        category: cp.category,
                        disposition: match cp.disposition {
                            w::Disposition::Keep => c::Disposition::Keep,
                            w::Disposition::Cascade => c::Disposition::Cascade,
                            w::Disposition::Anonymise => c::Disposition::Anonymise,
                            w::Disposition::Transfer => c::Disposition::Transfer,
                        },
                        only_open: cp.only_open,
                    })
                    .collect(),
                transfer_target: p.transfer_target.map(|t| match t {
                    w::TransferTarget::User(u) => c::TransferTarget::User(u),
                    w::TransferTarget::Actor => c::TransferTarget::Actor,
                    w::TransferTarget::Role(r) => c::TransferTarget::Role(r),
                }),
                profile: match p.profile {
                    w::ProfilePlan::Keep => c::ProfilePlan::Keep,
                    w::ProfilePlan::Scrub(name) => c::ProfilePlan::Scrub(name),
                },
                restore_window_days: p.restore_window_days,
                references: match p.references {
                    w::References::Keep => c::References::Keep,
                    w::References::Pseudonymise => c::References::Pseudonymise,
                },
                notify: p.notify,
            },
        },
        w::Outcome::Escalate(e) => c::Outcome::Escalate {
            queue: e.queue,
            reason: e.reason,
        },
        w::Outcome::Deny(d) => c::Outcome::Deny {
            code: d.code,
            message: d.message,
        },
    };
    (outcome, d.rules)
}

pub fn info_from_wit(i: w::PolicyInfo) -> c::PolicyInfo {
    c::PolicyInfo {
        name: i.name,
        version: i.version,
        description: i.description,
        actions: i.actions.into_iter().map(action_from_wit).collect(),
    }
}
