//! What an operator sees of a running host: Prometheus metrics and the
//! request-id middleware ([`request`]).
//!
//! Metrics go through the `metrics` facade (the library records, the
//! binary or server decides whether anything listens) and are rendered by
//! `metrics-exporter-prometheus` at `GET /metrics`. We chose the facade over
//! `prometheus-client` because recording stays one macro call where the
//! fact happens (`counter!(…).increment(1)`), with no registry threaded
//! through the executor and the runtime; without an installed recorder
//! those calls are no-ops, so tools and tests pay nothing.
//!
//! Every series is defined here, by name, with bounded labels: tenant,
//! policy version, outcome, fault code, action, category, disposition,
//! route template, status. Never a user id, an action id or a raw path.

pub mod request;

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::contract::{Action, Decision};
use crate::decision::PolicyFault;
use crate::executor::ActionReport;

pub const DECISIONS: &str = "lethe_decisions_total";
pub const DECISION_SECONDS: &str = "lethe_decision_seconds";
pub const DECISION_FUEL: &str = "lethe_decision_fuel";
pub const POLICY_FAULTS: &str = "lethe_policy_faults_total";
pub const ACTIONS: &str = "lethe_actions_total";
pub const EFFECT_ROWS: &str = "lethe_effect_rows_total";
pub const EXECUTOR_SECONDS: &str = "lethe_executor_transaction_seconds";
pub const BULK_JOBS: &str = "lethe_bulk_jobs_total";
pub const BULK_ITEMS: &str = "lethe_bulk_items_total";
pub const ESCALATIONS_PENDING: &str = "lethe_escalations_pending";
pub const HTTP_REQUESTS: &str = "lethe_http_requests_total";
pub const WEBHOOK_ATTEMPTS: &str = "lethe_webhook_attempts_total";
pub const SCIM_REQUESTS: &str = "lethe_scim_requests_total";
pub const WEBHOOK_DELIVERIES: &str = "lethe_webhook_deliveries";
pub const HTTP_SECONDS: &str = "lethe_http_request_seconds";
pub const SWEEP_RUNS: &str = "lethe_sweep_runs_total";

/// Latency buckets in seconds, 100 µs to 10 s.
const SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Fuel buckets, 1k to 200M units (the default budget).
const FUEL: &[f64] = &[1e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 1e6, 1e7, 5e7, 1e8, 2e8];

/// The process's Prometheus recorder, installed on first use (a server
/// calls it at start; several in-process test servers share one).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(DECISION_FUEL.into()), FUEL))
                .and_then(|b| b.upkeep_timeout(Duration::from_secs(5)).install_recorder());
            match built {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no metrics: cannot install the Prometheus recorder");
                    None
                }
            }
        })
        .as_ref()
}

/// Folds recorded histogram samples into their buckets every few seconds
/// until `stop`: without it, samples would pile up in memory between
/// scrapes, or for ever when nothing scrapes.
pub async fn upkeep(mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(handle) = prometheus() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}

fn describe() {
    describe_counter!(
        DECISIONS,
        "Policy decisions, by tenant, policy version and outcome."
    );
    describe_histogram!(
        DECISION_SECONDS,
        metrics::Unit::Seconds,
        "Time of one policy decision, instantiation included."
    );
    describe_histogram!(DECISION_FUEL, "Fuel one policy decision used.");
    describe_counter!(
        POLICY_FAULTS,
        "Decisions that did not happen, by tenant and fault code."
    );
    describe_counter!(ACTIONS, "Lifecycle actions through the executor, by tenant, action and outcome (dry runs included, labelled).");
    describe_counter!(
        EFFECT_ROWS,
        "Platform rows changed by applied actions, by tenant, category and disposition."
    );
    describe_histogram!(
        EXECUTOR_SECONDS,
        metrics::Unit::Seconds,
        "One action's transaction, context to commit."
    );
    describe_counter!(BULK_JOBS, "Bulk jobs that finished, by status.");
    describe_counter!(
        SWEEP_RUNS,
        "Window-expiry sweeps this replica ran (it held the cluster's sweep lease for that interval); summed over replicas, at most one per interval."
    );
    describe_counter!(BULK_ITEMS, "Bulk job users that left pending, by status.");
    describe_gauge!(
        ESCALATIONS_PENDING,
        "Pending escalations per queue (read at scrape time)."
    );
    describe_counter!(
        SCIM_REQUESTS,
        "SCIM requests of identity providers, by tenant, identity provider and outcome (created, deprovisioned, escalated, denied, refused…)."
    );
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts, by tenant, answer class (2xx, 4xx, 5xx, none) and what followed (delivered, retry, dead, gone)."
    );
    describe_gauge!(
        WEBHOOK_DELIVERIES,
        "Webhook deliveries per tenant, endpoint and status (pending: not tried yet; failing: tried, due again; delivered; dead), read at scrape time."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by route template, method and status."
    );
    describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request latency by route template and method."
    );
}

fn version_label(version: Option<i64>) -> String {
    version.map_or_else(|| "file".to_owned(), |v| v.to_string())
}

/// A decision a policy made.
pub fn decided(tenant: &str, version: Option<i64>, decision: &Decision) {
    let version = version_label(version);
    counter!(
        DECISIONS,
        "tenant" => tenant.to_owned(),
        "policy_version" => version.clone(),
        "outcome" => decision.outcome.kind()
    )
    .increment(1);
    histogram!(DECISION_SECONDS, "tenant" => tenant.to_owned(), "policy_version" => version.clone())
        .record(decision.elapsed_us as f64 / 1e6);
    histogram!(DECISION_FUEL, "tenant" => tenant.to_owned(), "policy_version" => version)
        .record(decision.fuel_used as f64);
}

/// A decision that did not happen.
pub fn faulted(tenant: &str, fault: &PolicyFault) {
    counter!(POLICY_FAULTS, "tenant" => tenant.to_owned(), "code" => fault.code()).increment(1);
}

/// An action through the executor, once its transaction ended.
pub fn acted(report: &ActionReport, took: Duration) {
    let dry_run = if report.dry_run { "true" } else { "false" };
    counter!(
        ACTIONS,
        "tenant" => report.tenant.clone(),
        "action" => action_label(report.action),
        "outcome" => report.decision.outcome.kind(),
        "dry_run" => dry_run
    )
    .increment(1);
    histogram!(EXECUTOR_SECONDS, "action" => action_label(report.action), "dry_run" => dry_run)
        .record(took.as_secs_f64());
    if report.dry_run {
        return;
    }
    for c in &report.effects.categories {
        let Some(d) = c.disposition else { continue };
        let rows = c.transferred + c.deleted + c.detached + c.anonymised;
        if rows > 0 {
            let disposition = serde_json::to_value(d)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            counter!(
                EFFECT_ROWS,
                "tenant" => report.tenant.clone(),
                "category" => c.category.clone(),
                "disposition" => disposition
            )
            .increment(rows);
        }
    }
}

fn action_label(action: Action) -> String {
    action.to_string()
}

/// A bulk job that finished (`completed`, `cancelled`).
pub fn bulk_job_finished(status: &'static str) {
    counter!(BULK_JOBS, "status" => status).increment(1);
}

/// The sweep loop started: the series shows 0 rather than nothing on a
/// replica that never wins the sweep lease.
pub fn sweep_loop_started() {
    counter!(SWEEP_RUNS).increment(0);
}

/// This replica won the sweep lease for an interval and swept.
pub fn sweep_ran() {
    counter!(SWEEP_RUNS).increment(1);
}

/// A bulk item that left `pending`.
pub fn bulk_item_done(status: &'static str) {
    counter!(BULK_ITEMS, "status" => status).increment(1);
}

/// Pending escalations of `queue`, as counted now.
pub fn escalations_pending(queue: &str, pending: i64) {
    gauge!(ESCALATIONS_PENDING, "queue" => queue.to_owned()).set(pending as f64);
}

/// One webhook attempt: how the receiver answered, and what followed.
pub fn webhook_attempt(tenant: &str, http_status: Option<u16>, next: &'static str) {
    let class = match http_status {
        Some(s) => match s / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
        None => "none",
    };
    counter!(WEBHOOK_ATTEMPTS, "tenant" => tenant.to_owned(), "answer" => class, "next" => next)
        .increment(1);
}

/// One SCIM request answered.
pub fn scim_request(tenant: &str, idp: &str, outcome: &'static str) {
    counter!(SCIM_REQUESTS, "tenant" => tenant.to_owned(), "idp" => idp.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Deliveries of one endpoint in one status, as counted now.
pub fn webhook_deliveries(tenant: &str, endpoint: &str, status: &str, n: i64) {
    gauge!(WEBHOOK_DELIVERIES, "tenant" => tenant.to_owned(), "endpoint" => endpoint.to_owned(),
        "status" => status.to_owned())
    .set(n as f64);
}

/// One HTTP request, by route template (`/v1/tenants/{t}/users`, or
/// `unmatched`).
pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    counter!(
        HTTP_REQUESTS,
        "route" => route.to_owned(),
        "method" => method.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
    histogram!(HTTP_SECONDS, "route" => route.to_owned(), "method" => method.to_owned())
        .record(took.as_secs_f64());
}
