//! Predicates on the request, so rules read as conditions rather than as
//! list searches.

use crate::{Action, Actor, ActorKind, Attribute, Holding, LifecycleState, Request, Subject};

fn find_attr<'a>(attributes: &'a [Attribute], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.as_str())
}

impl Actor {
    /// The actor holds `role` (tenant users only; other kinds have none).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The actor holds `permission` (tenant users only).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// The value of attribute `key`, if the platform records one.
    pub fn attr(&self, key: &str) -> Option<&str> {
        find_attr(&self.attributes, key)
    }

    /// Attribute `key` is present and equals `value` exactly.
    pub fn attr_is(&self, key: &str, value: &str) -> bool {
        self.attr(key) == Some(value)
    }

    /// A user of the tenant, e.g. an admin in the tenant's console.
    pub fn is_tenant_user(&self) -> bool {
        self.kind == ActorKind::TenantUser
    }

    /// A support agent of the platform operator.
    pub fn is_support(&self) -> bool {
        self.kind == ActorKind::Support
    }

    /// Lethe itself: the window-expiry sweep (id `system`), or an identity
    /// provider deprovisioning users over SCIM (id `scim:<token label>`, see
    /// [`Actor::identity_provider`]). Rules that mean only the sweep should
    /// check `is_system() && !is_identity_provider()`.
    pub fn is_system(&self) -> bool {
        self.kind == ActorKind::System
    }

    /// The label of the identity provider acting over SCIM, e.g. `"okta"`.
    ///
    /// The contract has no actor kind of its own for identity providers:
    /// Lethe presents a SCIM request as a `system` actor whose id is
    /// `scim:<label>`, where `<label>` names the SCIM token the provider
    /// authenticated with (`scim:okta` gives `Some("okta")`). `None` for
    /// every other actor, the window-expiry sweep (id `system`) included,
    /// and for a tenant user or support agent whose id merely starts with
    /// `scim:`. Like every system actor, an identity provider carries no
    /// roles, permissions, domain or attributes.
    pub fn identity_provider(&self) -> Option<&str> {
        if self.kind == ActorKind::System {
            self.id.strip_prefix("scim:")
        } else {
            None
        }
    }

    /// An identity provider acting over SCIM (see
    /// [`Actor::identity_provider`]).
    pub fn is_identity_provider(&self) -> bool {
        self.identity_provider().is_some()
    }
}

impl Subject {
    /// The subject holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The subject holds `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// The value of attribute `key`, if the platform records one.
    pub fn attr(&self, key: &str) -> Option<&str> {
        find_attr(&self.attributes, key)
    }

    /// Attribute `key` is present and equals `value` exactly.
    pub fn attr_is(&self, key: &str, value: &str) -> bool {
        self.attr(key) == Some(value)
    }

    /// The subject is in `state`.
    pub fn is(&self, state: LifecycleState) -> bool {
        self.state == state
    }

    /// The subject has never logged in (no `last-login-at`).
    pub fn never_logged_in(&self) -> bool {
        self.last_login_at.is_none()
    }
}

impl Request {
    /// The subject's holding in `category`, if it has one.
    pub fn holding(&self, category: &str) -> Option<&Holding> {
        self.holdings.iter().find(|h| h.category == category)
    }

    /// The actor and the subject belong to the same, non-empty domain.
    pub fn same_domain(&self) -> bool {
        !self.actor.domain.is_empty() && self.actor.domain == self.subject.domain
    }

    /// The actor asks about themself.
    pub fn is_self_service(&self) -> bool {
        self.actor.is_tenant_user() && self.actor.id == self.subject.id
    }
}

impl Action {
    /// The contract's name for the action (`"delete"`...), for messages.
    pub fn name(self) -> &'static str {
        match self {
            Action::Lock => "lock",
            Action::Unlock => "unlock",
            Action::Deactivate => "deactivate",
            Action::Reactivate => "reactivate",
            Action::Delete => "delete",
            Action::Restore => "restore",
            Action::Erase => "erase",
        }
    }
}

impl LifecycleState {
    /// The contract's name for the state (`"active"`...), for messages.
    pub fn name(self) -> &'static str {
        match self {
            LifecycleState::Active => "active",
            LifecycleState::Locked => "locked",
            LifecycleState::Deactivated => "deactivated",
            LifecycleState::Deleted => "deleted",
            LifecycleState::Erased => "erased",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            action: Action::Erase,
            subject: Subject {
                id: "u-42".into(),
                state: LifecycleState::Deleted,
                roles: vec!["member".into()],
                permissions: vec![],
                domain: "acme.example".into(),
                created_at: 0,
                last_login_at: None,
                deleted_at: Some(10),
                attributes: vec![],
            },
            actor: Actor {
                kind: ActorKind::TenantUser,
                id: "u-1".into(),
                roles: vec!["admin".into()],
                permissions: vec!["erase_deleted_users".into()],
                domain: "acme.example".into(),
                attributes: vec![Attribute {
                    key: "is_domain_contact".into(),
                    value: "true".into(),
                }],
            },
            holdings: vec![Holding {
                category: "deals".into(),
                total: 3,
                open: 1,
            }],
            transfer_to: None,
            reason: None,
            bulk: false,
            now: 100,
        }
    }

    #[test]
    fn predicates_read_the_request() {
        let mut req = request();
        assert!(req.actor.has_role("admin") && !req.actor.has_role("Admin"));
        assert!(req.actor.has_permission("erase_deleted_users"));
        assert_eq!(req.actor.attr("is_domain_contact"), Some("true"));
        assert!(req.actor.attr_is("is_domain_contact", "true"));
        assert!(!req.actor.attr_is("missing", "true"));
        assert!(req.actor.is_tenant_user() && !req.actor.is_support() && !req.actor.is_system());
        assert!(req.subject.never_logged_in() && req.subject.is(LifecycleState::Deleted));
        assert_eq!(req.holding("deals").map(|h| h.open), Some(1));
        assert!(req.holding("contacts").is_none());
        assert!(req.same_domain() && !req.is_self_service());
        req.actor.domain.clear();
        req.subject.domain.clear();
        assert!(!req.same_domain(), "two empty domains are no match");
    }

    #[test]
    fn identity_providers_are_system_actors_with_a_scim_id() {
        let mut actor = request().actor;
        actor.id = "scim:okta".into();
        assert_eq!(actor.identity_provider(), None, "only system actors");
        assert!(!actor.is_identity_provider());

        actor.kind = ActorKind::System;
        assert_eq!(actor.identity_provider(), Some("okta"));
        assert!(actor.is_identity_provider() && actor.is_system());

        actor.id = "scim:".into();
        assert_eq!(
            actor.identity_provider(),
            Some(""),
            "an empty label is still SCIM"
        );

        for id in ["system", "lethe", "SCIM:okta", "okta"] {
            actor.id = id.into();
            assert_eq!(actor.identity_provider(), None, "{id}");
            assert!(actor.is_system() && !actor.is_identity_provider());
        }

        actor.kind = ActorKind::Support;
        actor.id = "scim:entra".into();
        assert!(!actor.is_identity_provider());
    }
}
