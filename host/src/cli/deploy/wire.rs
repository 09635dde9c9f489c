//! The operator API's documents, as this client reads them.
//!
//! `lethe::deploy`'s types only serialize, and a newer server may add
//! fields, checks, statuses or kinds: these are local, ignore unknown
//! fields, and keep enumerations as strings, so an older client still shows
//! what a newer server says. Fields the summaries cannot do without are
//! required; the tests check that the library's own types read back.

use serde::Deserialize;

/// `PolicyVersion`: one immutable upload of a tenant's component.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Version {
    pub(super) version: i64,
    pub(super) sha256: String,
    /// `accepted` or `rejected`.
    pub(super) status: String,
    pub(super) contract_version: Option<String>,
    /// What `describe()` answered.
    pub(super) policy: Option<PolicyName>,
    #[serde(default)]
    pub(super) size_bytes: i64,
    #[serde(default)]
    pub(super) uploaded_by: String,
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) report: Report,
    #[serde(default)]
    pub(super) created_at: i64,
}

/// The part of `describe()` shown in summaries.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct PolicyName {
    pub(super) name: String,
    #[serde(default)]
    pub(super) version: String,
}

/// `GateReport`: what the validation gate found.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(super) struct Report {
    pub(super) checks: Vec<Check>,
    pub(super) cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Check {
    /// `component`, `compiles`, `imports`, `contract`, `describe`, `cases`.
    pub(super) check: String,
    /// `passed`, `failed` or `skipped`.
    pub(super) status: String,
    pub(super) detail: Option<String>,
}

/// One case attached to the upload, as the gate ran it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Case {
    pub(super) name: String,
    pub(super) passed: bool,
    #[serde(default)]
    pub(super) outcome: String,
    #[serde(default)]
    pub(super) fuel_used: u64,
    #[serde(default)]
    pub(super) failures: Vec<String>,
}

/// One switch of a tenant's active version.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Activation {
    #[serde(default)]
    pub(super) tenant: String,
    pub(super) from_version: Option<i64>,
    pub(super) to_version: i64,
    /// `activate`, `rollback` or `bootstrap`.
    pub(super) kind: String,
    #[serde(default)]
    pub(super) activated_by: String,
    pub(super) reason: Option<String>,
    #[serde(default)]
    pub(super) at: i64,
}

/// `PolicyStatus`: a tenant's deployment at a glance.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Status {
    pub(super) tenant: String,
    pub(super) active: Option<Version>,
    /// Newest first.
    #[serde(default)]
    pub(super) activations: Vec<Activation>,
    #[serde(default)]
    pub(super) replicas: Vec<Replica>,
}

/// What one running replica serves of the tenant.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Replica {
    pub(super) replica: String,
    /// Last heartbeat, unix milliseconds.
    pub(super) seen_at: i64,
    pub(super) serving: Option<i64>,
    pub(super) wanted: Option<i64>,
    pub(super) error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Tenant {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) created_at: i64,
    pub(super) active_version: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct VersionList {
    pub(super) versions: Vec<Version>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TenantList {
    pub(super) tenants: Vec<Tenant>,
}

/// `ReplayReport`: what a version decides on a tenant's recorded requests,
/// against what was decided then. Unlike the documents above, every field
/// of the contract is required: the report came with replays, so there is
/// no older server to be lenient with, and a field renamed on either side
/// should fail loudly rather than show an empty table.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Replay {
    pub(super) id: String,
    pub(super) tenant: String,
    /// The version replayed.
    pub(super) version: i64,
    pub(super) created_by: String,
    pub(super) created_at: i64,
    /// The records asked for: the newest `last`, within `since..=until`
    /// (unix seconds).
    pub(super) last: Option<u64>,
    pub(super) since: Option<i64>,
    pub(super) until: Option<i64>,
    /// Recorded decisions re-run: `unchanged + changed + faults`.
    pub(super) requests: u64,
    pub(super) unchanged: u64,
    pub(super) changed: u64,
    pub(super) faults: u64,
    /// Records whose stored request or decision no longer parses, not
    /// counted in `requests`; not in every server's report.
    #[serde(default)]
    pub(super) unreadable: u64,
    pub(super) elapsed_ms: u64,
    pub(super) per_second: f64,
    /// Between outcomes (`allow`, `escalate`, `deny`; `fault` as `to`).
    pub(super) transitions: Vec<Transition>,
    /// Changed decisions that kept their outcome: other rules, codes,
    /// messages or plan.
    pub(super) rule_changes: u64,
    pub(super) plan_changes: Vec<PlanChange>,
    /// A few of the changed decisions (the server keeps at most 20).
    pub(super) examples: Vec<Example>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Transition {
    pub(super) from: String,
    pub(super) to: String,
    pub(super) count: u64,
}

/// How two allows' plans differ, counted over the replay.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct PlanChange {
    /// A category, or a plan field: `(profile)`, `(restore window)`…
    pub(super) category: String,
    /// A disposition; `absent` when the plan did not name the category.
    pub(super) from: String,
    pub(super) to: String,
    pub(super) count: u64,
}

/// One recorded decision that came out differently.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Example {
    pub(super) action_id: String,
    pub(super) subject: String,
    pub(super) action: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) from_rules: Vec<String>,
    pub(super) to_rules: Vec<String>,
    /// Why the version could not decide, when `to` is `fault`.
    #[serde(default)]
    pub(super) fault: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplayList {
    pub(super) replays: Vec<Replay>,
}

/// Samples made from the library's own types, so that a field renamed on
/// the server side fails these tests rather than the command.
#[cfg(test)]
pub(super) mod fixtures {
    use lethe::contract::{Action, PolicyInfo};
    use lethe::deploy::gate::{CaseResult, Check, CheckName, CheckStatus, GateReport};
    use lethe::deploy::{
        Activation, ActivationKind, PolicyStatus, PolicyVersion, ReplicaStatus, Tenant,
        VersionStatus,
    };

    pub(in super::super) fn version(n: i64, status: VersionStatus) -> PolicyVersion {
        let passed = |check| Check {
            check,
            status: CheckStatus::Passed,
            detail: None,
        };
        let accepted = status == VersionStatus::Accepted;
        PolicyVersion {
            tenant: "acme".into(),
            version: n,
            sha256: "3f2a9c1b0d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8".into(),
            status,
            contract_version: accepted.then(|| "0.2.0".into()),
            policy: accepted.then(|| PolicyInfo {
                name: "acme-deletion".into(),
                version: "1.4.0".into(),
                description: "d".into(),
                actions: vec![Action::Delete],
            }),
            size_bytes: 1_258_291,
            uploaded_by: "op-key-1".into(),
            message: Some("stricter admin rule".into()),
            report: GateReport {
                checks: vec![
                    passed(CheckName::Component),
                    passed(CheckName::Compiles),
                    passed(CheckName::Imports),
                    passed(CheckName::Contract),
                    passed(CheckName::Describe),
                    Check {
                        check: CheckName::Cases,
                        status: if accepted {
                            CheckStatus::Passed
                        } else {
                            CheckStatus::Failed
                        },
                        detail: Some(if accepted {
                            "2 cases passed".into()
                        } else {
                            "1 of 2 cases failed".into()
                        }),
                    },
                ],
                cases: vec![
                    CaseResult {
                        name: "admins are kept".into(),
                        passed: true,
                        outcome: "deny".into(),
                        fuel_used: 1200,
                        failures: vec![],
                    },
                    CaseResult {
                        name: "members go".into(),
                        passed: accepted,
                        outcome: if accepted { "allow" } else { "deny" }.into(),
                        fuel_used: 900,
                        failures: if accepted {
                            vec![]
                        } else {
                            vec!["expected allow, got deny (subject-is-admin)".into()]
                        },
                    },
                ],
            },
            created_at: 1_790_000_000,
        }
    }

    pub(in super::super) fn activation(from: Option<i64>, to: i64) -> Activation {
        Activation {
            id: "act-1".into(),
            tenant: "acme".into(),
            from_version: from,
            to_version: to,
            kind: ActivationKind::Rollback,
            activated_by: "op-key-1".into(),
            reason: Some("v8 escalates too much".into()),
            at: 1_790_000_100,
        }
    }

    pub(in super::super) fn status() -> PolicyStatus {
        PolicyStatus {
            tenant: "acme".into(),
            active: Some(version(7, VersionStatus::Accepted)),
            activations: vec![activation(Some(8), 7), activation(None, 8)],
            replicas: vec![
                ReplicaStatus {
                    replica: "web-1:41:a1b2c3".into(),
                    started_at: 1_789_990_000,
                    seen_at: 1_790_000_195_500,
                    serving: Some(7),
                    wanted: Some(7),
                    error: None,
                    loaded_at: Some(1_790_000_101),
                },
                ReplicaStatus {
                    replica: "web-2:17:d4e5f6".into(),
                    started_at: 1_789_990_000,
                    seen_at: 1_790_000_150_000,
                    serving: Some(8),
                    wanted: Some(7),
                    error: Some("out of memory".into()),
                    loaded_at: Some(1_790_000_050),
                },
            ],
        }
    }

    pub(in super::super) fn tenant() -> Tenant {
        Tenant {
            id: "acme".into(),
            name: "Acme Corp".into(),
            created_at: 1_780_000_000,
            active_version: Some(7),
        }
    }

    /// The contract's sample replay report (`POST …/versions/{n}/replay`).
    pub(in super::super) const REPLAY: &str = r#"{"id":"rep-1f3a","tenant":"t2","version":3,
 "created_by":"key-op1","created_at":1790000000,
 "last":1000,"since":null,"until":1790000000,
 "requests":1234,"unchanged":1000,"changed":200,"faults":34,
 "elapsed_ms":812,"per_second":1519.7,
 "transitions":[{"from":"allow","to":"deny","count":12},
                {"from":"allow","to":"fault","count":34},
                {"from":"escalate","to":"allow","count":183}],
 "rule_changes":5,
 "plan_changes":[{"category":"deals","from":"transfer","to":"cascade","count":3},
                 {"category":"(restore window)","from":"30 days","to":"0 days","count":2}],
 "examples":[{"action_id":"act-9","subject":"t2-u5","action":"delete","from":"allow","to":"deny",
              "from_rules":["members-go"],"to_rules":["admins-kept","no-open-deals"],"fault":null},
             {"action_id":"act-12","subject":"t2-u7","action":"lock","from":"allow","to":"fault",
              "from_rules":["members-go"],"to_rules":[],"fault":"out of fuel (budget 1000000)"}]}"#;

    pub(in super::super) fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).expect("serializes")
    }
}

#[cfg(test)]
mod tests {
    use lethe::deploy::VersionStatus;

    use super::fixtures::*;
    use super::*;

    #[test]
    fn the_library_documents_read_back() {
        let v: Version = serde_json::from_str(&json(&version(7, VersionStatus::Rejected)))
            .expect("a version reads");
        assert_eq!((v.version, v.status.as_str()), (7, "rejected"));
        assert!(v.policy.is_none());
        assert_eq!(v.report.checks.len(), 6);
        assert_eq!(v.report.cases[1].failures.len(), 1);
        let s: Status = serde_json::from_str(&json(&status())).expect("a status reads");
        assert_eq!(s.active.map(|v| v.version), Some(7));
        assert_eq!(s.activations[0].kind, "rollback");
        assert_eq!(s.replicas[1].error.as_deref(), Some("out of memory"));
        let t: Tenant = serde_json::from_str(&json(&tenant())).expect("a tenant reads");
        assert_eq!((t.id.as_str(), t.active_version), ("acme", Some(7)));
    }

    #[test]
    fn later_additions_are_read() {
        let text = json(&version(7, VersionStatus::Accepted))
            .replace(
                r#""status":"accepted""#,
                r#""status":"quarantined","new":[1]"#,
            )
            .replace(r#""check":"cases""#, r#""check":"signature""#);
        let v: Version = serde_json::from_str(&text).expect("unknown fields and names are read");
        assert_eq!(v.status, "quarantined");
        assert_eq!(v.report.checks[5].check, "signature");
        let a: Activation =
            serde_json::from_str(r#"{"from_version":null,"to_version":3,"kind":"canary"}"#)
                .expect("an activation with the bare minimum reads");
        assert_eq!((a.to_version, a.kind.as_str()), (3, "canary"));
    }

    #[test]
    fn replay_reports_read_both_ways() {
        // The sample is the server's document: the library reads it, and
        // what the library writes, this client reads.
        let report: lethe::deploy::replay::ReplayReport =
            serde_json::from_str(REPLAY).expect("the library reads the contract's sample");
        let r: Replay = serde_json::from_str(&json(&report)).expect("a report reads");
        assert_eq!(
            (r.id.as_str(), r.version, r.requests, r.changed, r.faults),
            ("rep-1f3a", 3, 1234, 200, 34)
        );
        assert_eq!(
            (r.last, r.since, r.until),
            (Some(1000), None, Some(1_790_000_000))
        );
        assert_eq!(r.transitions.len(), 3);
        assert_eq!(r.plan_changes[1].category, "(restore window)");
        assert_eq!(
            r.examples[1].fault.as_deref(),
            Some("out of fuel (budget 1000000)")
        );
        assert_eq!(r.unreadable, 0);

        let list: ReplayList =
            serde_json::from_str(&format!(r#"{{"replays":[{REPLAY}],"next":null}}"#))
                .expect("a list reads");
        assert_eq!(list.replays[0].rule_changes, 5);
        // Every field of the contract is needed: none is made up.
        let without = REPLAY.replace(r#""faults":34,"#, "");
        assert!(serde_json::from_str::<Replay>(&without).is_err());
    }
}
