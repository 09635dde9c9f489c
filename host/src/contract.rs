//! The policy contract in its JSON form.
//!
//! These types mirror `wit/policy.wit` (package `lethe:policy@0.1.0`) field
//! for field, with snake_case names. They are what the CLI reads and prints,
//! what the HTTP API speaks, and what the decision record stores, so that a
//! decision can be replayed and explained without the WebAssembly types.
//!
//! The WIT bindings live in [`crate::policy`]; conversions between the two
//! forms are there too, so this module knows nothing of WebAssembly.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A lifecycle action on a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Lock,
    Unlock,
    Deactivate,
    Reactivate,
    Delete,
    Restore,
    Erase,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Lock,
        Action::Unlock,
        Action::Deactivate,
        Action::Reactivate,
        Action::Delete,
        Action::Restore,
        Action::Erase,
    ];

    pub fn as_str(self) -> &'static str {
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

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "action",
                name: s.to_owned(),
            })
    }
}

/// A name that is not one of a closed set (an action, a state…).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind} `{name}`")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

/// Where a user is in the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    Active,
    Locked,
    Deactivated,
    Deleted,
    Erased,
}

impl LifecycleState {
    pub const ALL: [LifecycleState; 5] = [
        LifecycleState::Active,
        LifecycleState::Locked,
        LifecycleState::Deactivated,
        LifecycleState::Deleted,
        LifecycleState::Erased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Active => "active",
            LifecycleState::Locked => "locked",
            LifecycleState::Deactivated => "deactivated",
            LifecycleState::Deleted => "deleted",
            LifecycleState::Erased => "erased",
        }
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LifecycleState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LifecycleState::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "lifecycle state",
                name: s.to_owned(),
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    TenantUser,
    Support,
    System,
}

/// Free-form facts about a user, e.g. `platform_count = "2"`.
pub type Attributes = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub id: String,
    pub state: LifecycleState,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub domain: String,
    pub created_at: i64,
    #[serde(default)]
    pub last_login_at: Option<i64>,
    #[serde(default)]
    pub deleted_at: Option<i64>,
    #[serde(default)]
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub category: String,
    pub total: u64,
    pub open: u64,
}

/// Everything a policy may know about one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub action: Action,
    pub now: i64,
    pub subject: Subject,
    pub actor: Actor,
    #[serde(default)]
    pub holdings: Vec<Holding>,
    #[serde(default)]
    pub transfer_to: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub bulk: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Keep,
    Cascade,
    Anonymise,
    Transfer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryPlan {
    pub category: String,
    pub disposition: Disposition,
    #[serde(default)]
    pub only_open: bool,
}

/// `{"user":"u-7"}`, `"actor"` or `{"role":"admin"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    User(String),
    Actor,
    Role(String),
}

/// `"keep"` or `{"scrub":"(deleted user)"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfilePlan {
    Keep,
    Scrub(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum References {
    Keep,
    Pseudonymise,
}

/// What an allowed action does to the subject's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    #[serde(default)]
    pub categories: Vec<CategoryPlan>,
    #[serde(default)]
    pub transfer_target: Option<TransferTarget>,
    pub profile: ProfilePlan,
    pub restore_window_days: u32,
    pub references: References,
    #[serde(default)]
    pub notify: Vec<String>,
}

impl Plan {
    /// The disposition the plan gives `category`; categories it does not
    /// name are kept.
    pub fn disposition(&self, category: &str) -> Disposition {
        self.categories
            .iter()
            .find(|c| c.category == category)
            .map_or(Disposition::Keep, |c| c.disposition)
    }
}

/// The policy's answer, without evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Allow { plan: Plan },
    Escalate { queue: String, reason: String },
    Deny { code: String, message: String },
}

impl Outcome {
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Allow { .. } => "allow",
            Outcome::Escalate { .. } => "escalate",
            Outcome::Deny { .. } => "deny",
        }
    }
}

/// A policy's decision with the evidence of how it was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Ids of the rules that produced the decision.
    pub rules: Vec<String>,
    /// Deterministic work units the policy consumed.
    pub fuel_used: u64,
    /// Wall-clock time of the call, instance creation included.
    pub elapsed_us: u64,
}

/// The policy's self-description (`describe()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub actions: Vec<Action>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_REQUEST: &str = r#"{"action":"delete","now":1795000000,"subject":{"id":"u-42","state":"deactivated","roles":["member"],"permissions":[],"domain":"acme.example","created_at":1700000000,"last_login_at":1790000000,"deleted_at":null,"attributes":{"platform_count":"1"}},"actor":{"kind":"tenant_user","id":"u-1","roles":["admin"],"permissions":["account_settings"],"domain":"acme.example","attributes":{"is_domain_contact":"true"}},"holdings":[{"category":"deals","total":12,"open":5}],"transfer_to":"u-7","reason":null,"bulk":false}"#;

    #[test]
    fn example_request_round_trips() {
        let req: Request = serde_json::from_str(EXAMPLE_REQUEST).unwrap();
        assert_eq!(req.action, Action::Delete);
        assert_eq!(req.subject.state, LifecycleState::Deactivated);
        assert_eq!(req.actor.kind, ActorKind::TenantUser);
        assert_eq!(req.subject.attributes["platform_count"], "1");
        assert_eq!(req.transfer_to.as_deref(), Some("u-7"));
        let back: serde_json::Value = serde_json::to_value(&req).unwrap();
        let orig: serde_json::Value = serde_json::from_str(EXAMPLE_REQUEST).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn decision_json_shape() {
        let d = Decision {
            outcome: Outcome::Allow {
                plan: Plan {
                    categories: vec![CategoryPlan {
                        category: "deals".into(),
                        disposition: Disposition::Transfer,
                        only_open: true,
                    }],
                    transfer_target: Some(TransferTarget::User("u-7".into())),
                    profile: ProfilePlan::Scrub("(deleted user)".into()),
                    restore_window_days: 0,
                    references: References::Pseudonymise,
                    notify: vec![],
                },
            },
            rules: vec!["r1".into()],
            fuel_used: 10,
            elapsed_us: 3,
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["outcome"], "allow");
        assert_eq!(v["plan"]["transfer_target"]["user"], "u-7");
        assert_eq!(v["plan"]["profile"]["scrub"], "(deleted user)");
        assert_eq!(v["plan"]["references"], "pseudonymise");
        assert_eq!(v["plan"]["categories"][0]["disposition"], "transfer");
        let actor: TransferTarget = serde_json::from_str(r#""actor""#).unwrap();
        assert_eq!(actor, TransferTarget::Actor);
        let back: Decision = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn unknown_request_fields_are_refused() {
        let mut v: serde_json::Value = serde_json::from_str(EXAMPLE_REQUEST).unwrap();
        v["acton"] = "delete".into();
        assert!(serde_json::from_value::<Request>(v).is_err());
    }
}
