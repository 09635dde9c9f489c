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

use serde::{Deserialize, Deserializer, Serialize};

/// For a field that may be left out (`#[serde(default)]`): `null` means the
/// same as leaving it out, the field's default. (`Option` fields need no
/// help: `null` is `None` already.)
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A lifecycle action on a user.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
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
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    TenantUser,
    Support,
    System,
}

/// Free-form facts about a user, e.g. `platform_count = "2"`.
pub type Attributes = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subject {
    pub id: String,
    pub state: LifecycleState,
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub permissions: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub domain: String,
    pub created_at: i64,
    #[serde(default)]
    pub last_login_at: Option<i64>,
    #[serde(default)]
    pub deleted_at: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub permissions: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub domain: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Holding {
    pub category: String,
    pub total: u64,
    pub open: u64,
}

/// Everything a policy may know about one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub action: Action,
    pub now: i64,
    pub subject: Subject,
    pub actor: Actor,
    #[serde(default, deserialize_with = "null_as_default")]
    pub holdings: Vec<Holding>,
    #[serde(default)]
    pub transfer_to: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub bulk: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Keep,
    Cascade,
    Anonymise,
    Transfer,
}

impl Disposition {
    /// The wire name (`cascade`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Keep => "keep",
            Disposition::Cascade => "cascade",
            Disposition::Anonymise => "anonymise",
            Disposition::Transfer => "transfer",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryPlan {
    pub category: String,
    pub disposition: Disposition,
    #[serde(default, deserialize_with = "null_as_default")]
    pub only_open: bool,
}

/// `{"user":"u-7"}`, `"actor"` or `{"role":"admin"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    User(String),
    Actor,
    Role(String),
}

/// `"keep"` or `{"scrub":"(deleted user)"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProfilePlan {
    Keep,
    Scrub(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum References {
    Keep,
    Pseudonymise,
}

/// What an allowed action does to the subject's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    #[serde(default, deserialize_with = "null_as_default")]
    pub categories: Vec<CategoryPlan>,
    #[serde(default)]
    pub transfer_target: Option<TransferTarget>,
    pub profile: ProfilePlan,
    pub restore_window_days: u32,
    pub references: References,
    #[serde(default, deserialize_with = "null_as_default")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

    /// `value` with the field at `path` (object keys) set to `null`, and
    /// `value` without it.
    fn null_and_absent(
        value: &serde_json::Value,
        path: &[&str],
    ) -> (serde_json::Value, serde_json::Value) {
        let (field, parents) = path.split_last().unwrap();
        let (mut null, mut absent) = (value.clone(), value.clone());
        let (mut n, mut a) = (&mut null, &mut absent);
        for key in parents {
            n = &mut n[*key];
            a = &mut a[*key];
        }
        assert!(a.get(*field).is_some(), "{path:?} is in the example");
        n[*field] = serde_json::Value::Null;
        a.as_object_mut().unwrap().remove(*field);
        (null, absent)
    }

    #[test]
    fn null_means_absent_where_a_field_may_be_left_out() {
        // The reported case: a support actor with `"domain": null`.
        let actor: Actor =
            serde_json::from_str(r#"{"kind":"support","id":"s-1","domain":null}"#).unwrap();
        assert_eq!(
            actor,
            serde_json::from_str::<Actor>(r#"{"kind":"support","id":"s-1"}"#).unwrap()
        );
        assert_eq!(actor.domain, "");

        // Every field of a request that may be left out.
        let request: serde_json::Value = serde_json::from_str(EXAMPLE_REQUEST).unwrap();
        for path in [
            &["subject", "roles"][..],
            &["subject", "permissions"],
            &["subject", "domain"],
            &["subject", "last_login_at"],
            &["subject", "deleted_at"],
            &["subject", "attributes"],
            &["actor", "roles"],
            &["actor", "permissions"],
            &["actor", "domain"],
            &["actor", "attributes"],
            &["holdings"],
            &["transfer_to"],
            &["reason"],
            &["bulk"],
        ] {
            let (null, absent) = null_and_absent(&request, path);
            let null: Request = serde_json::from_value(null)
                .unwrap_or_else(|e| panic!("{path:?}: null refused: {e}"));
            let absent: Request = serde_json::from_value(absent).unwrap();
            assert_eq!(null, absent, "{path:?}");
        }

        // And of a decision's plan.
        let decision = serde_json::json!({
            "outcome": "allow",
            "plan": {
                "categories": [{"category": "deals", "disposition": "transfer", "only_open": true}],
                "transfer_target": {"user": "u-7"},
                "profile": "keep",
                "restore_window_days": 30,
                "references": "keep",
                "notify": ["dpo"],
            },
            "rules": [],
            "fuel_used": 1,
            "elapsed_us": 1,
        });
        for path in [
            &["plan", "categories"][..],
            &["plan", "transfer_target"],
            &["plan", "notify"],
        ] {
            let (null, absent) = null_and_absent(&decision, path);
            let null: Decision = serde_json::from_value(null)
                .unwrap_or_else(|e| panic!("{path:?}: null refused: {e}"));
            let absent: Decision = serde_json::from_value(absent).unwrap();
            assert_eq!(null, absent, "{path:?}");
        }
        let category = &decision["plan"]["categories"][0];
        let (null, absent) = null_and_absent(category, &["only_open"]);
        let null: CategoryPlan = serde_json::from_value(null).unwrap();
        assert_eq!(null, serde_json::from_value(absent).unwrap());
        assert!(!null.only_open);
    }

    #[test]
    fn null_is_refused_where_a_field_is_required() {
        let request: serde_json::Value = serde_json::from_str(EXAMPLE_REQUEST).unwrap();
        for path in [
            &["action"][..],
            &["now"],
            &["subject", "id"],
            &["subject", "state"],
            &["subject", "created_at"],
            &["actor", "kind"],
            &["actor", "id"],
        ] {
            let (null, absent) = null_and_absent(&request, path);
            assert!(
                serde_json::from_value::<Request>(null).is_err(),
                "{path:?}: null accepted"
            );
            assert!(
                serde_json::from_value::<Request>(absent).is_err(),
                "{path:?}: absence accepted"
            );
        }
    }
}
