//! Evidence an auditor can re-check: every decision record is re-decided by
//! the exact component that made it (kept by sha256 in
//! `lethe_policy_blobs`) and must come out the same. Policies are
//! deterministic by construction (no clock, no randomness, no I/O: the
//! sandbox links none), so a record that does not reproduce was changed
//! after the fact, or was made by a component that is not the one it names.

use std::collections::HashMap;

use serde::Serialize;

use super::replay::{compare, parse, Difference};
use crate::evidence::{RecordWindow, StoredDecision};
use crate::policy::{Policy, Runtime};

/// A record that did not reproduce.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub action_id: String,
    pub subject: String,
    pub at: i64,
    pub policy_version: Option<i64>,
    pub policy_sha256: String,
    /// Why: the outcome then and now, a fault, or an unreadable record.
    pub reason: String,
}

/// What `lethe decisions verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub tenant: String,
    pub since: Option<i64>,
    /// Records re-decided.
    pub checked: u64,
    pub reproduced: u64,
    pub mismatches: Vec<Mismatch>,
    /// Records made by a component this database does not hold (decided
    /// before versions were kept, or by a tool with a component file), by
    /// sha256: they cannot be re-checked here.
    pub unverifiable: HashMap<String, u64>,
}

impl VerifyReport {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Re-decides `records`; `component` gives the bytes of a sha256, if held.
/// Blocking: compiles components and runs them.
pub fn verify(
    runtime: &Runtime,
    tenant: &str,
    window: RecordWindow,
    records: &[StoredDecision],
    component: impl Fn(&str) -> Option<Vec<u8>>,
) -> VerifyReport {
    let mut report = VerifyReport {
        tenant: tenant.to_owned(),
        since: window.since,
        ..VerifyReport::default()
    };
    let mut loaded: HashMap<String, Option<Policy>> = HashMap::new();
    for stored in records {
        let policy = loaded
            .entry(stored.policy_sha256.clone())
            .or_insert_with(|| {
                let bytes = component(&stored.policy_sha256)?;
                runtime
                    .load(&bytes)
                    .inspect_err(|e| tracing::warn!(sha256 = %stored.policy_sha256, error = %e, "stored component does not load"))
                    .ok()
            });
        let Some(policy) = policy else {
            *report
                .unverifiable
                .entry(stored.policy_sha256.clone())
                .or_default() += 1;
            continue;
        };
        report.checked += 1;
        let mismatch = |reason: String| Mismatch {
            action_id: stored.action_id.clone(),
            subject: stored.subject.clone(),
            at: stored.at,
            policy_version: stored.policy_version,
            policy_sha256: stored.policy_sha256.clone(),
            reason,
        };
        let Some(r) = parse(stored) else {
            report.mismatches.push(mismatch(
                "the stored request or decision does not parse".into(),
            ));
            continue;
        };
        if policy.sha256() != stored.policy_sha256 {
            report.mismatches.push(mismatch(format!(
                "the stored component hashes to {}, not to the sha256 the record names",
                policy.sha256()
            )));
            continue;
        }
        // A fresh instance per record, as a single action decides.
        match compare(&r.decision, &policy.decide(&r.request)) {
            Difference::Same => report.reproduced += 1,
            Difference::Changed { from, to, .. } => report.mismatches.push(mismatch(format!(
                "recorded {from} {:?}, re-decided {to}",
                r.decision.rules
            ))),
            Difference::Fault(f) => report
                .mismatches
                .push(mismatch(format!("the component faults now: {f}"))),
        }
    }
    report
}
