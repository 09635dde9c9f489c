//! Seed policy 001, "two-stage-erase": delete is soft and restorable, erase
//! is the separate, final step reserved to the subject's domain contacts.
//!
//! The seed article describes erasure as irreversible, possible only for
//! users already deleted, and only for a primary contact of the user's
//! domain holding the "Erase deleted users" permission; references in the
//! administrator activity log are anonymised and billing statistics keep the
//! user. Deletion before it keeps everything so it can be undone. See
//! README.md for the rules.

use lethe_policy::{
    export_policy, log, Action, ActorKind, Decision, LifecycleState, Plan, Policy, PolicyInfo,
    Request,
};

/// Days a soft delete stays restorable.
const RESTORE_WINDOW_DAYS: u32 = 30;
const SECONDS_PER_DAY: i64 = 86_400;
/// The permission the seed calls "Erase deleted users".
const ERASE_PERMISSION: &str = "erase_deleted_users";
/// Actor attribute marking a primary contact of the actor's domain.
const DOMAIN_CONTACT: &str = "is_domain_contact";
/// Display name left on an erased profile.
const ERASED_NAME: &str = "(erased user)";

struct TwoStageErase;

impl Policy for TwoStageErase {
    fn decide(req: &Request) -> Decision {
        // Erase has its own authority (domain contacts), independent of the
        // admin role, so it is decided before the admin check.
        if req.action == Action::Erase {
            return erase(req);
        }
        match req.actor.kind {
            ActorKind::System => Decision::deny(
                "not-permitted",
                format!(
                    "the system actor only erases users whose restore window is over, it may not {}",
                    req.action.name()
                ),
            )
            .rule("system.erase-only"),
            ActorKind::TenantUser if !req.actor.has_role("admin") => Decision::deny(
                "not-admin",
                format!("only tenant admins may {} users", req.action.name()),
            )
            .rule("actor.not-admin"),
            ActorKind::TenantUser | ActorKind::Support => admin_action(req),
        }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo::new(
            "two-stage-erase",
            env!("CARGO_PKG_VERSION"),
            "Delete is soft and restorable for 30 days with profile and data kept; erase, \
             only of deleted users and only by a primary domain contact of the user's domain \
             with the erase_deleted_users permission, scrubs the profile and pseudonymises \
             activity-log references; billing data is kept.",
            &[
                Action::Lock,
                Action::Unlock,
                Action::Deactivate,
                Action::Reactivate,
                Action::Delete,
                Action::Restore,
                Action::Erase,
            ],
        )
    }
}

/// Everything but erase, asked by a tenant admin or support.
fn admin_action(req: &Request) -> Decision {
    match req.action {
        Action::Lock | Action::Unlock | Action::Deactivate | Action::Reactivate => {
            Decision::allow(Plan::keep_all()).rule("access.admin")
        }
        Action::Delete => {
            Decision::allow(Plan::keep_all().restore_window_days(RESTORE_WINDOW_DAYS))
                .rule("delete.soft")
        }
        Action::Restore => restore(req),
        // Routed to `erase` by `decide`; kept total for the compiler.
        Action::Erase => erase(req),
    }
}

fn restore(req: &Request) -> Decision {
    if req.subject.state != LifecycleState::Deleted {
        return Decision::deny(
            "not-deleted",
            format!(
                "user {} is {}, only deleted users can be restored",
                req.subject.id,
                req.subject.state.name()
            ),
        )
        .rule("restore.not-deleted");
    }
    match window_ends_at(req) {
        Some(ends) if req.now >= ends => Decision::deny(
            "window-over",
            format!(
                "the restore window of user {} ended at {ends} (unix seconds)",
                req.subject.id
            ),
        )
        .rule("restore.window-over"),
        _ => Decision::allow(Plan::keep_all()).rule("restore.while-deleted"),
    }
}

fn erase(req: &Request) -> Decision {
    if req.subject.state != LifecycleState::Deleted {
        return Decision::deny(
            "not-deleted",
            format!(
                "user {} is {}; only deleted users can be erased, delete them first",
                req.subject.id,
                req.subject.state.name()
            ),
        )
        .rule("erase.only-deleted");
    }
    if req.actor.kind == ActorKind::System {
        return match window_ends_at(req) {
            Some(ends) if req.now < ends => Decision::deny(
                "window-open",
                format!(
                    "user {} stays restorable until {ends} (unix seconds)",
                    req.subject.id
                ),
            )
            .rule("erase.window-open"),
            _ => Decision::allow(erase_plan()).rule("erase.window-expired"),
        };
    }
    let is_contact = req.actor.kind == ActorKind::TenantUser
        && req.actor.attr_is(DOMAIN_CONTACT, "true")
        && req.same_domain();
    if !is_contact {
        return Decision::deny(
            "not-domain-contact",
            format!(
                "only a primary domain contact of {} may erase its users",
                display_domain(&req.subject.domain)
            ),
        )
        .rule("erase.domain-contact-only");
    }
    if !req.actor.has_permission(ERASE_PERMISSION) {
        return Decision::deny(
            "missing-permission",
            format!("erasing users needs the {ERASE_PERMISSION} permission"),
        )
        .rule("erase.permission-required");
    }
    log::info(&format!(
        "domain contact {} erases {} of {}",
        req.actor.id, req.subject.id, req.subject.domain
    ));
    Decision::allow(erase_plan()).rule("erase.by-domain-contact")
}

/// Erase scrubs the profile and pseudonymises activity-log references.
/// Owned rows are kept: they are the tenant's business records and name the
/// user only by an id whose profile no longer says who it was. Billing rows
/// are never named here; the operator's guard keeps them.
fn erase_plan() -> Plan {
    Plan::keep_all()
        .scrub_profile(ERASED_NAME)
        .pseudonymise_references()
}

/// When the subject's restore window ends, if the request says when it was
/// deleted. Without a deletion time there is no window to hold on to.
fn window_ends_at(req: &Request) -> Option<i64> {
    req.subject
        .deleted_at
        .map(|at| at.saturating_add(i64::from(RESTORE_WINDOW_DAYS) * SECONDS_PER_DAY))
}

fn display_domain(domain: &str) -> &str {
    if domain.is_empty() {
        "the user's domain"
    } else {
        domain
    }
}

export_policy!(TwoStageErase);
