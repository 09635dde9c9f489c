//! Table-driven policy cases, for `lethe policy test`.
//!
//! A cases file (TOML, format in `policies/CASES.md`) has a `[base]` request
//! and a list of `[[case]]`s, each a patch over the base plus what the
//! decision must look like. Policy authors run them locally and CI runs them
//! for every seed policy, so a policy's README, its cases and its behaviour
//! cannot drift apart.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::contract::{Decision, Outcome, Request};
use crate::policy::{Policy, PolicyFault};

#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("case `{case}`: the request is invalid: {source}")]
    Request {
        case: String,
        source: serde_json::Error,
    },
    #[error("case `{case}`: cannot unset `{path}`: no such field")]
    Unset { case: String, path: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasesFile {
    #[serde(default)]
    pub base: toml::Table,
    #[serde(rename = "case", default)]
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub input: toml::Table,
    #[serde(default)]
    pub unset: Vec<String>,
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub outcome: String,
    pub code: Option<String>,
    pub queue: Option<String>,
    pub rules: Option<Vec<String>>,
    pub max_fuel: Option<u64>,
    pub plan: Option<toml::Table>,
    pub message_contains: Option<String>,
}

/// One case's result.
#[derive(Debug)]
pub struct CaseReport {
    pub name: String,
    /// The decision, or the fault that prevented it.
    pub result: Result<Decision, PolicyFault>,
    /// Every way the decision differs from what was expected; empty = pass.
    pub failures: Vec<String>,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl CasesFile {
    pub fn load(path: &Path) -> Result<CasesFile, CasesError> {
        let text = std::fs::read_to_string(path).map_err(|source| CasesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| CasesError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }

    /// Parses a cases file's text (an upload carries it, not a path).
    pub fn parse(text: &str) -> Result<CasesFile, toml::de::Error> {
        toml::from_str(text)
    }

    /// The request a case sends: base, merged with the case's input, minus
    /// its unset paths.
    pub fn request(&self, case: &Case) -> Result<Request, CasesError> {
        let mut value = toml_to_json(&toml::Value::Table(self.base.clone()));
        merge(
            &mut value,
            toml_to_json(&toml::Value::Table(case.input.clone())),
        );
        for path in &case.unset {
            if !unset(&mut value, path) {
                return Err(CasesError::Unset {
                    case: case.name.clone(),
                    path: path.clone(),
                });
            }
        }
        serde_json::from_value(value).map_err(|source| CasesError::Request {
            case: case.name.clone(),
            source,
        })
    }

    /// Runs every case against `policy`, each in a fresh sandbox.
    pub fn run(&self, policy: &Policy) -> Result<Vec<CaseReport>, CasesError> {
        self.cases
            .iter()
            .map(|case| {
                let request = self.request(case)?;
                let result = policy.decide(&request);
                let failures = match &result {
                    Ok(decision) => check(&case.expect, decision),
                    Err(fault) => vec![format!("policy fault: {fault}")],
                };
                Ok(CaseReport {
                    name: case.name.clone(),
                    result,
                    failures,
                })
            })
            .collect()
    }
}

/// Compares a decision with what a case expects.
pub fn check(expect: &Expect, decision: &Decision) -> Vec<String> {
    let mut failures = Vec::new();
    let outcome = decision.outcome.kind();
    if expect.outcome != outcome {
        failures.push(format!(
            "outcome: expected {}, got {outcome}",
            expect.outcome
        ));
    }
    let (code, queue, text) = match &decision.outcome {
        Outcome::Deny { code, message } => (Some(code), None, Some(message)),
        Outcome::Escalate { queue, reason } => (None, Some(queue), Some(reason)),
        Outcome::Allow { .. } => (None, None, None),
    };
    if let Some(want) = &expect.code {
        if code != Some(want) {
            failures.push(format!("code: expected {want}, got {code:?}"));
        }
    }
    if let Some(want) = &expect.queue {
        if queue != Some(want) {
            failures.push(format!("queue: expected {want}, got {queue:?}"));
        }
    }
    if let Some(want) = &expect.message_contains {
        if !text.is_some_and(|t| t.contains(want.as_str())) {
            failures.push(format!(
                "message: expected it to contain {want:?}, got {text:?}"
            ));
        }
    }
    if let Some(want) = &expect.rules {
        if want != &decision.rules {
            failures.push(format!(
                "rules: expected {want:?}, got {:?}",
                decision.rules
            ));
        }
    }
    if let Some(max) = expect.max_fuel {
        if decision.fuel_used > max {
            failures.push(format!("fuel: used {} > ceiling {max}", decision.fuel_used));
        }
    }
    if let Some(want) = &expect.plan {
        match &decision.outcome {
            Outcome::Allow { plan } => {
                let got = serde_json::to_value(plan).unwrap_or(Value::Null);
                let want = toml_to_json(&toml::Value::Table(want.clone()));
                subset_mismatches("plan", &want, &got, &mut failures);
            }
            _ => failures.push("plan: expected a plan, the decision has none".into()),
        }
    }
    failures
}

/// Records where `want` is not contained in `got`: objects are matched key by
/// key, everything else (arrays included) must be equal.
fn subset_mismatches(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, wv) in w {
                let sub = format!("{path}.{key}");
                match g.get(key) {
                    Some(gv) => subset_mismatches(&sub, wv, gv, out),
                    None => out.push(format!("{sub}: expected {wv}, missing")),
                }
            }
        }
        _ if want == got => {}
        _ => out.push(format!("{path}: expected {want}, got {got}")),
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Objects merge key by key; anything else replaces.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn unset(value: &mut Value, path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut cur = value;
    for p in parts {
        match cur.get_mut(p) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    cur.as_object_mut()
        .is_some_and(|o| o.remove(last).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[base]
action = "delete"
now = 1795000000
[base.subject]
id = "u-42"
state = "deactivated"
created_at = 1700000000
last_login_at = 1790000000
attributes = { platform_count = "1" }
[base.actor]
kind = "tenant_user"
id = "u-1"
roles = ["admin"]

[[case]]
name = "active"
input = { subject = { state = "active", attributes = { x = "y" } } }
unset = ["subject.last_login_at"]
expect = { outcome = "deny", code = "user-active" }
"#;

    #[test]
    fn cases_merge_over_base_and_unset_fields() {
        let file: CasesFile = toml::from_str(FILE).unwrap();
        let req = file.request(&file.cases[0]).unwrap();
        assert_eq!(req.subject.state, crate::contract::LifecycleState::Active);
        assert_eq!(req.subject.id, "u-42");
        assert_eq!(req.subject.last_login_at, None);
        assert_eq!(
            req.subject
                .attributes
                .get("platform_count")
                .map(String::as_str),
            Some("1")
        );
        assert_eq!(
            req.subject.attributes.get("x").map(String::as_str),
            Some("y")
        );
    }

    #[test]
    fn check_reports_each_mismatch() {
        let file: CasesFile = toml::from_str(FILE).unwrap();
        let decision = Decision {
            outcome: Outcome::Escalate {
                queue: "support".into(),
                reason: "r".into(),
            },
            rules: vec![],
            fuel_used: 5,
            elapsed_us: 1,
        };
        let failures = check(&file.cases[0].expect, &decision);
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0].starts_with("outcome"));
        assert!(failures[1].starts_with("code"));
    }

    #[test]
    fn plan_subset_match() {
        let mut out = vec![];
        let want =
            serde_json::json!({"restore_window_days": 0, "profile": {"scrub": "(deleted user)"}});
        let got =
            serde_json::json!({"restore_window_days": 0, "profile": {"scrub": "x"}, "notify": []});
        subset_mismatches("plan", &want, &got, &mut out);
        assert_eq!(
            out,
            vec!["plan.profile.scrub: expected \"(deleted user)\", got \"x\"".to_string()]
        );
    }
}
