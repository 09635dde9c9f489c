//! Re-deciding recorded requests, two ways.
//!
//! - **Replay**: a candidate version decides a tenant's recorded requests
//!   (the exact input each decision record kept), and the report counts how
//!   its answers differ from what was decided then: transitions between
//!   outcomes, plan changes per category and disposition, rule changes,
//!   faults, with examples. Nothing is written but the report.
//! - **Verify** ([`super::verify`]): each record is re-decided by the very
//!   component that made it, and must come out the same.
//!
//! Both compare decisions with [`compare`]: same outcome (plan, codes,
//! messages included) and same rule ids. Fuel and latency are not compared:
//! a bulk decision reuses an instance and so uses less fuel than a fresh one.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::contract::{Decision, Outcome, Plan, Request};
use crate::evidence::{RecordWindow, StoredDecision};
use crate::policy::{Policy, PolicyFault};

/// Examples kept in a report.
const EXAMPLES: usize = 20;
/// Most records one replay re-runs.
pub const MAX_REPLAY: u32 = 100_000;

/// How a decision came out the second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Same,
    /// The outcome or the rules differ. `plan` lists, for two allows, what
    /// differs in the plans: `(field, then, now)`.
    Changed {
        from: &'static str,
        to: &'static str,
        plan: Vec<(String, String, String)>,
    },
    /// The policy could not decide.
    Fault(PolicyFault),
}

/// Compares what was decided with what is decided now.
pub fn compare(then: &Decision, now: &Result<Decision, PolicyFault>) -> Difference {
    let now = match now {
        Ok(now) => now,
        Err(fault) => return Difference::Fault(fault.clone()),
    };
    if then.outcome == now.outcome && then.rules == now.rules {
        return Difference::Same;
    }
    let plan = match (&then.outcome, &now.outcome) {
        (Outcome::Allow { plan: a }, Outcome::Allow { plan: b }) => plan_changes(a, b),
        _ => Vec::new(),
    };
    Difference::Changed {
        from: then.outcome.kind(),
        to: now.outcome.kind(),
        plan,
    }
}

fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Per category (and for the profile, window, transfer target and
/// references), what differs between two plans.
fn plan_changes(a: &Plan, b: &Plan) -> Vec<(String, String, String)> {
    let mut categories: Vec<&str> = a
        .categories
        .iter()
        .chain(&b.categories)
        .map(|c| c.category.as_str())
        .collect();
    categories.sort_unstable();
    categories.dedup();
    let of = |p: &Plan, c: &str| {
        p.categories.iter().find(|x| x.category == c).map_or_else(
            || "absent".to_owned(),
            |x| {
                let d = name(&x.disposition);
                if x.only_open {
                    format!("{d} (open only)")
                } else {
                    d
                }
            },
        )
    };
    let mut out: Vec<(String, String, String)> = categories
        .into_iter()
        .map(|c| (c.to_owned(), of(a, c), of(b, c)))
        .filter(|(_, x, y)| x != y)
        .collect();
    let mut field = |label: &str, x: String, y: String| {
        if x != y {
            out.push((label.to_owned(), x, y));
        }
    };
    field("(profile)", name(&a.profile), name(&b.profile));
    field(
        "(restore window)",
        format!("{} days", a.restore_window_days),
        format!("{} days", b.restore_window_days),
    );
    field(
        "(transfer target)",
        name(&a.transfer_target),
        name(&b.transfer_target),
    );
    field("(references)", name(&a.references), name(&b.references));
    out
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transition {
    pub from: String,
    /// `fault` when the candidate could not decide.
    pub to: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanChange {
    /// A category, or `(profile)`, `(restore window)`, `(transfer target)`,
    /// `(references)`.
    pub category: String,
    /// A disposition, `absent` when the plan did not name the category.
    pub from: String,
    pub to: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Example {
    pub action_id: String,
    pub subject: String,
    pub action: String,
    pub from: String,
    pub to: String,
    pub from_rules: Vec<String>,
    pub to_rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// What a candidate version would have decided on recorded traffic.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayReport {
    pub id: String,
    pub tenant: String,
    /// The candidate.
    pub version: i64,
    pub created_by: String,
    pub created_at: i64,
    #[serde(flatten)]
    pub window: RecordWindow,
    /// Recorded decisions re-run.
    pub requests: u64,
    pub unchanged: u64,
    pub changed: u64,
    pub faults: u64,
    /// Records whose stored request or decision no longer parses.
    #[serde(default)]
    pub unreadable: u64,
    pub elapsed_ms: u64,
    pub per_second: f64,
    pub transitions: Vec<Transition>,
    /// Changed decisions with the same outcome (different rules, codes,
    /// messages or plans).
    pub rule_changes: u64,
    pub plan_changes: Vec<PlanChange>,
    pub examples: Vec<Example>,
}

/// A stored record, parsed.
pub(super) struct Recorded {
    pub action_id: String,
    pub subject: String,
    pub request: Request,
    pub decision: Decision,
}

pub(super) fn parse(r: &StoredDecision) -> Option<Recorded> {
    Some(Recorded {
        action_id: r.action_id.clone(),
        subject: r.subject.clone(),
        request: serde_json::from_str(&r.request_json).ok()?,
        decision: serde_json::from_str(&r.decision_json).ok()?,
    })
}

/// The header of a report, before it is run.
pub(super) struct ReplayOf {
    pub id: String,
    pub tenant: String,
    pub version: i64,
    pub created_by: String,
    pub created_at: i64,
    pub window: RecordWindow,
}

/// Runs `policy` on every record, in one instance (a fault drops it).
/// Blocking: call it off the async workers.
pub(super) fn run(of: ReplayOf, policy: &Policy, records: &[StoredDecision]) -> ReplayReport {
    let start = Instant::now();
    let mut session = policy.session();
    let mut transitions: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut plans: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut examples = Vec::new();
    let (mut unchanged, mut changed, mut faults, mut unreadable, mut rule_changes) =
        (0, 0, 0, 0, 0);
    for stored in records {
        let Some(r) = parse(stored) else {
            unreadable += 1;
            continue;
        };
        let now = session.decide(&r.request);
        let (to, fault) = match compare(&r.decision, &now) {
            Difference::Same => {
                unchanged += 1;
                continue;
            }
            Difference::Fault(f) => {
                faults += 1;
                ("fault", Some(f.to_string()))
            }
            Difference::Changed { from, to, plan } => {
                changed += 1;
                if from == to {
                    rule_changes += 1;
                }
                for p in plan {
                    *plans.entry(p).or_default() += 1;
                }
                (to, None)
            }
        };
        let from = r.decision.outcome.kind();
        if from != to {
            *transitions
                .entry((from.to_owned(), to.to_owned()))
                .or_default() += 1;
        }
        if examples.len() < EXAMPLES {
            examples.push(Example {
                action_id: r.action_id,
                subject: r.subject,
                action: r.request.action.to_string(),
                from: from.to_owned(),
                to: to.to_owned(),
                from_rules: r.decision.rules,
                to_rules: now.map(|d| d.rules).unwrap_or_default(),
                fault,
            });
        }
    }
    let elapsed = start.elapsed();
    let requests = (records.len() as u64).saturating_sub(unreadable);
    ReplayReport {
        id: of.id,
        tenant: of.tenant,
        version: of.version,
        created_by: of.created_by,
        created_at: of.created_at,
        window: of.window,
        requests,
        unchanged,
        changed,
        faults,
        unreadable,
        elapsed_ms: elapsed.as_millis() as u64,
        per_second: requests as f64 / elapsed.as_secs_f64().max(1e-9),
        transitions: transitions
            .into_iter()
            .map(|((from, to), count)| Transition { from, to, count })
            .collect(),
        rule_changes,
        plan_changes: plans
            .into_iter()
            .map(|((category, from, to), count)| PlanChange {
                category,
                from,
                to,
                count,
            })
            .collect(),
        examples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{CategoryPlan, Disposition, ProfilePlan, References};

    fn allow(categories: &[(&str, Disposition)], window: u32) -> Decision {
        Decision {
            outcome: Outcome::Allow {
                plan: Plan {
                    categories: categories
                        .iter()
                        .map(|(c, d)| CategoryPlan {
                            category: (*c).into(),
                            disposition: *d,
                            only_open: false,
                        })
                        .collect(),
                    transfer_target: None,
                    profile: ProfilePlan::Keep,
                    restore_window_days: window,
                    references: References::Keep,
                    notify: vec![],
                },
            },
            rules: vec!["r".into()],
            fuel_used: 1,
            elapsed_us: 1,
        }
    }

    #[test]
    fn same_decision_with_other_fuel_is_the_same() {
        let a = allow(&[("deals", Disposition::Cascade)], 30);
        let mut b = a.clone();
        b.fuel_used = 99;
        b.elapsed_us = 99;
        assert_eq!(compare(&a, &Ok(b)), Difference::Same);
    }

    #[test]
    fn plan_changes_name_category_and_dispositions() {
        let a = allow(
            &[
                ("deals", Disposition::Transfer),
                ("notes", Disposition::Keep),
            ],
            30,
        );
        let b = allow(&[("deals", Disposition::Cascade)], 0);
        let Difference::Changed { from, to, plan } = compare(&a, &Ok(b)) else {
            panic!("changed");
        };
        assert_eq!((from, to), ("allow", "allow"));
        assert_eq!(
            plan,
            vec![
                ("deals".into(), "transfer".into(), "cascade".into()),
                ("notes".into(), "keep".into(), "absent".into()),
                ("(restore window)".into(), "30 days".into(), "0 days".into()),
            ]
        );
    }

    #[test]
    fn a_fault_is_its_own_difference() {
        let a = allow(&[], 30);
        let fault = PolicyFault::OutOfFuel { budget: 1 };
        assert_eq!(compare(&a, &Err(fault.clone())), Difference::Fault(fault));
    }
}
