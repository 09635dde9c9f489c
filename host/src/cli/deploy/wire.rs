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
}
