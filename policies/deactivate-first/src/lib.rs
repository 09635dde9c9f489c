//! Seed policy 004, "deactivate-first": a user is deactivated before it can
//! be deleted, and a delete is permanent.
//!
//! The seed article (Unifyr One) calls deactivation a "soft delete": the
//! account stays, with status Inactive, and can be reactivated; an inactive
//! account can be deleted permanently, an active one cannot, and a deleted
//! account can never be retrieved. Lock does not exist in the article; this
//! policy treats a locked user as not yet deactivated. An identity provider
//! deprovisioning over SCIM (a system actor with id `scim:<label>`) follows a
//! tenant admin's rules; the window-expiry sweep (id `system`) only erases.
//! See README.md.

use lethe_policy::{
    export_policy, log, Action, ActorKind, Decision, LifecycleState, Plan, Policy, PolicyInfo,
    Request,
};

/// Display name left on a deleted profile.
const DELETED_NAME: &str = "(deleted user)";

struct DeactivateFirst;

impl Policy for DeactivateFirst {
    fn decide(req: &Request) -> Decision {
        match req.actor.kind {
            // An identity provider deprovisioning over SCIM (a system actor
            // with id `scim:<label>`) manages the lifecycle like a tenant
            // admin; the rule id records that it was not a person.
            ActorKind::System if req.actor.is_identity_provider() => identity_provider(req),
            ActorKind::System => system(req),
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
            "deactivate-first",
            env!("CARGO_PKG_VERSION"),
            "Deactivate and reactivate are self-service (reactivation hints a welcome mail to \
             users who never logged in, a password reset to the others); only deactivated \
             users can be deleted, and deletion is permanent: everything they own is removed \
             and the profile scrubbed.",
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

fn admin_action(req: &Request) -> Decision {
    match req.action {
        Action::Lock | Action::Unlock => Decision::allow(Plan::keep_all()).rule("access.admin"),
        Action::Deactivate => Decision::allow(Plan::keep_all()).rule("deactivate.self-service"),
        Action::Reactivate => reactivate(req),
        Action::Delete => delete(req),
        Action::Restore => Decision::deny(
            "not-restorable",
            "deletes under this policy are permanent; nothing can be restored",
        )
        .rule("restore.never"),
        Action::Erase => erase(req),
    }
}

/// The article: a welcome email for users who never logged in, a password
/// reset for the others, because only the latter have a password to reset.
fn reactivate(req: &Request) -> Decision {
    let allowed = Decision::allow(Plan::keep_all().notify(if req.subject.never_logged_in() {
        "welcome"
    } else {
        "password-reset"
    }))
    .rule("reactivate.self-service");
    if req.subject.never_logged_in() {
        allowed.rule("reactivate.notify-welcome")
    } else {
        allowed.rule("reactivate.notify-password-reset")
    }
}

fn delete(req: &Request) -> Decision {
    match req.subject.state {
        LifecycleState::Active => Decision::deny(
            "user-active",
            format!(
                "user {} is active; deactivate the account before deleting it",
                req.subject.id
            ),
        )
        .rule("delete.active-refused"),
        LifecycleState::Locked => Decision::deny(
            "user-not-deactivated",
            format!(
                "user {} is locked, not deactivated; deactivate the account before deleting it",
                req.subject.id
            ),
        )
        .rule("delete.deactivate-first"),
        LifecycleState::Deactivated => {
            log::info(&format!(
                "permanently deleting {} with {} categories of data",
                req.subject.id,
                req.holdings.len()
            ));
            Decision::allow(permanent_removal(req)).rule("delete.inactive-permanent")
        }
        // The host's state machine never asks to delete a deleted or erased
        // user; answer consistently anyway.
        LifecycleState::Deleted | LifecycleState::Erased => Decision::deny(
            "already-deleted",
            format!(
                "user {} is already {}",
                req.subject.id,
                req.subject.state.name()
            ),
        )
        .rule("delete.already-deleted"),
    }
}

/// A user can only be in `deleted` here if an earlier policy deleted it with
/// a restore window; erasing it finishes the job the way this policy deletes.
fn erase(req: &Request) -> Decision {
    if req.subject.state != LifecycleState::Deleted {
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
    Decision::allow(permanent_removal(req)).rule("erase.deleted")
}

/// An identity provider acting over SCIM gets exactly a tenant admin's
/// rules (deactivate first, delete permanently, never restore); the
/// decision's rule trail ends with `actor.identity-provider`, so operators
/// see the request came from the provider and not from a person.
fn identity_provider(req: &Request) -> Decision {
    admin_action(req).rule("actor.identity-provider")
}

/// The sweep (a system actor that is not an identity provider) only erases.
fn system(req: &Request) -> Decision {
    if req.action == Action::Erase {
        return erase(req);
    }
    Decision::deny(
        "not-permitted",
        format!(
            "the system actor only erases deleted users, it may not {}",
            req.action.name()
        ),
    )
    .rule("system.erase-only")
}

/// "Permanently removed": every category the user holds is cascaded, the
/// profile is scrubbed, references are pseudonymised, and there is no
/// restore window, so the user ends erased at once.
fn permanent_removal(req: &Request) -> Plan {
    Plan::keep_all()
        .cascade_holdings(&req.holdings)
        .scrub_profile(DELETED_NAME)
        .pseudonymise_references()
        .restore_window_days(0)
}

export_policy!(DeactivateFirst);
