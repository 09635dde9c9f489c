//! Seed policy 000, "support-only": tenant admins control access, only the
//! platform's support team deletes.
//!
//! The seed article (Mindmatrix) removed user deletion from tenant super
//! admins because a delete cascades into contacts, campaigns and assets, and
//! undoing a wrong one was costly. Admins keep lock/unlock; every
//! irreversible or data-destroying request goes to the `support` queue, where
//! an agent re-submits it as a support actor. An identity provider
//! deprovisioning over SCIM (a system actor with id `scim:<label>`) is held
//! to a tenant admin's rules. See README.md for the rules.

use lethe_policy::{
    export_policy, log, Action, ActorKind, Decision, LifecycleState, Plan, Policy, PolicyInfo,
    Request,
};

/// Days a support delete stays restorable.
const RESTORE_WINDOW_DAYS: u32 = 30;
/// The queue that receives every tenant admin's or identity provider's
/// request to delete, restore or erase.
const SUPPORT_QUEUE: &str = "support";
/// What a support delete removes, with everything attached to it.
const CASCADED: [&str; 3] = ["contacts", "campaigns", "assets"];
const SECONDS_PER_DAY: i64 = 86_400;

struct SupportOnly;

impl Policy for SupportOnly {
    fn decide(req: &Request) -> Decision {
        // Whoever asks, only a deleted user can be erased; saying so first
        // keeps an impossible erase from reaching the support queue.
        if req.action == Action::Erase && req.subject.state != LifecycleState::Deleted {
            return Decision::deny(
                "not-deleted",
                format!(
                    "user {} is {}; only deleted users can be erased",
                    req.subject.id,
                    req.subject.state.name()
                ),
            )
            .rule("erase.only-deleted");
        }
        match req.actor.kind {
            ActorKind::TenantUser => tenant_user(req),
            ActorKind::Support => support(req),
            // An identity provider deprovisioning over SCIM (a system actor
            // with id `scim:<label>`) is held to a tenant admin's rules.
            ActorKind::System if req.actor.is_identity_provider() => identity_provider(req),
            ActorKind::System => system(req),
        }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo::new(
            "support-only",
            env!("CARGO_PKG_VERSION"),
            "Tenant admins lock and unlock users; deletions, restores and erasures are \
             escalated to the support queue, and support deletes cascade contacts, campaigns \
             and assets with a 30-day restore window.",
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

fn tenant_user(req: &Request) -> Decision {
    if !req.actor.has_role("admin") {
        return Decision::deny(
            "not-admin",
            format!(
                "only tenant admins may {} users; ask an admin of your tenant",
                req.action.name()
            ),
        )
        .rule("tenant.non-admin-refused");
    }
    tenant_admin(req, &format!("Tenant admin {}", req.actor.id))
}

/// An identity provider acting over SCIM: a tenant admin's rules (lock and
/// unlock allowed, deactivate and reactivate not offered, delete, restore
/// and erase escalated to support), with `actor.identity-provider` ending
/// the rule trail.
fn identity_provider(req: &Request) -> Decision {
    let label = req.actor.identity_provider().unwrap_or_default();
    tenant_admin(req, &format!("Identity provider {label} (SCIM)")).rule("actor.identity-provider")
}

/// What a tenant admin may do; `requester` opens the escalation reason
/// support reads, e.g. "Tenant admin u-1".
fn tenant_admin(req: &Request, requester: &str) -> Decision {
    match req.action {
        Action::Lock | Action::Unlock => {
            Decision::allow(Plan::keep_all()).rule("access.admin-lock")
        }
        Action::Deactivate | Action::Reactivate => lock_instead(req),
        Action::Delete => Decision::escalate(
            SUPPORT_QUEUE,
            format!(
                "{requester} asks to delete user {}. A delete cascades their {}; only \
                 support deletes users on this platform. Lock the user meanwhile to revoke access.",
                req.subject.id,
                cascade_summary(req)
            ),
        )
        .rule("delete.escalate-to-support"),
        Action::Restore => Decision::escalate(
            SUPPORT_QUEUE,
            format!(
                "{requester} asks to restore deleted user {} (their contacts, campaigns and \
                 assets come back from the restore log); only support restores users.",
                req.subject.id
            ),
        )
        .rule("restore.escalate-to-support"),
        Action::Erase => Decision::escalate(
            SUPPORT_QUEUE,
            format!(
                "{requester} asks to erase deleted user {} before the restore window ends; \
                 erasure is irreversible and only support performs it.",
                req.subject.id
            ),
        )
        .rule("erase.escalate-to-support"),
    }
}

fn support(req: &Request) -> Decision {
    match req.action {
        Action::Lock | Action::Unlock => {
            Decision::allow(Plan::keep_all()).rule("access.support-lock")
        }
        Action::Deactivate | Action::Reactivate => lock_instead(req),
        Action::Delete => {
            log::info(&format!(
                "support {} deletes {}: cascading {}",
                req.actor.id,
                req.subject.id,
                cascade_summary(req)
            ));
            let plan = CASCADED
                .iter()
                .fold(Plan::keep_all(), |plan, category| plan.cascade(category))
                .scrub_profile("(deleted user)")
                .restore_window_days(RESTORE_WINDOW_DAYS);
            Decision::allow(plan).rule("delete.support-cascade")
        }
        Action::Restore => Decision::allow(Plan::keep_all()).rule("restore.support"),
        Action::Erase => Decision::allow(erase_plan()).rule("erase.support"),
    }
}

/// The window-expiry sweep (a system actor that is not an identity
/// provider): it only erases, and only once the restore window is over.
fn system(req: &Request) -> Decision {
    if req.action != Action::Erase {
        return Decision::deny(
            "not-permitted",
            format!(
                "the system actor only erases users whose restore window is over, it may not {}",
                req.action.name()
            ),
        )
        .rule("system.erase-only");
    }
    match window_ends_at(req) {
        Some(ends) if req.now < ends => Decision::deny(
            "window-open",
            format!(
                "user {} stays restorable until {ends} (unix seconds); it is not erased before",
                req.subject.id
            ),
        )
        .rule("erase.window-open"),
        _ => Decision::allow(erase_plan()).rule("erase.window-expired"),
    }
}

/// When the subject's restore window ends, if the request says when it was
/// deleted. A deleted subject without a deletion time has no window the
/// policy could protect, so the sweep is allowed to erase it.
fn window_ends_at(req: &Request) -> Option<i64> {
    req.subject
        .deleted_at
        .map(|at| at.saturating_add(i64::from(RESTORE_WINDOW_DAYS) * SECONDS_PER_DAY))
}

/// Erase: nothing personal stays; activity-log references get a pseudonym.
fn erase_plan() -> Plan {
    Plan::keep_all()
        .scrub_profile("(deleted user)")
        .pseudonymise_references()
}

fn lock_instead(req: &Request) -> Decision {
    Decision::deny(
        "action-not-offered",
        format!(
            "this platform does not {} users; lock or unlock them instead",
            req.action.name()
        ),
    )
    .rule("access.lock-instead")
}

/// "contacts (3), campaigns (0) and assets (12)": what a delete would remove,
/// so the support agent sees the cost before approving.
fn cascade_summary(req: &Request) -> String {
    let parts: Vec<String> = CASCADED
        .iter()
        .map(|category| {
            let rows = req.holding(category).map_or(0, |h| h.total);
            format!("{category} ({rows})")
        })
        .collect();
    match parts.as_slice() {
        [first, second, last] => format!("{first}, {second} and {last}"),
        _ => parts.join(", "),
    }
}

export_policy!(SupportOnly);
