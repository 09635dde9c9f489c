//! Evidence: the decision record, the audit record and the lifecycle
//! history, written in the same transaction as the action's effects.
//!
//! An operator must be able to answer "why was this user deleted, by whom,
//! under which policy version" years later, without the erased person's
//! personal data: these rows hold ids, the request the policy saw (which
//! carries no name, email or phone) and the decision, never profile values.

use sqlx::AnyConnection;

use crate::contract::{Action, Actor, ActorKind, LifecycleState, Request};
use crate::executor::{ActionReport, ExecError};

/// Everything recorded about one decided action, encoded. Encoding happens
/// before anything is written, and a value that cannot be encoded fails
/// the action: evidence is never stored empty.
pub struct Evidence<'a> {
    pub action_id: &'a str,
    pub tenant: &'a str,
    pub subject: &'a str,
    pub actor: &'a Actor,
    pub action: Action,
    pub outcome: &'static str,
    pub at: i64,
    pub policy_sha256: &'a str,
    pub policy_version: Option<i64>,
    pub request_json: String,
    pub decision_json: String,
    pub rules: String,
    pub fuel_used: i64,
    pub latency_us: i64,
    pub effects_json: String,
    /// `(from, to)` when the action changed the subject's state.
    pub transition: Option<(LifecycleState, LifecycleState)>,
}

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<String, ExecError> {
    serde_json::to_string(v).map_err(|source| ExecError::Encode { what, source })
}

impl<'a> Evidence<'a> {
    /// The evidence of `report`, decided on `request` at `at`.
    pub fn of(
        request: &'a Request,
        report: &'a ActionReport,
        at: i64,
    ) -> Result<Evidence<'a>, ExecError> {
        let d = &report.decision;
        Ok(Evidence {
            action_id: &report.action_id,
            tenant: &report.tenant,
            subject: &report.subject,
            actor: &request.actor,
            action: report.action,
            outcome: d.outcome.kind(),
            at,
            policy_sha256: &report.policy_sha256,
            policy_version: report.policy_version,
            request_json: encode("the request", request)?,
            decision_json: encode("the decision", d)?,
            rules: d.rules.join(","),
            fuel_used: i64::try_from(d.fuel_used).unwrap_or(i64::MAX),
            latency_us: i64::try_from(d.elapsed_us).unwrap_or(i64::MAX),
            effects_json: encode("the effects", &report.effects)?,
            transition: report.to_state.map(|to| (report.from_state, to)),
        })
    }
}

fn actor_kind(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::TenantUser => "tenant_user",
        ActorKind::Support => "support",
        ActorKind::System => "system",
    }
}

/// Write the decision record, the audit row and (for an applied action)
/// the lifecycle history entry.
pub async fn record(conn: &mut AnyConnection, e: &Evidence<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO lethe_decisions (action_id, tenant_id, subject_id, policy_sha256, request_json, \
         decision_json, rules, fuel_used, latency_us, at, policy_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(e.action_id)
    .bind(e.tenant)
    .bind(e.subject)
    .bind(e.policy_sha256)
    .bind(&e.request_json)
    .bind(&e.decision_json)
    .bind(&e.rules)
    .bind(e.fuel_used)
    .bind(e.latency_us)
    .bind(e.at)
    .bind(e.policy_version)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO lethe_audit (action_id, tenant_id, subject_id, actor_kind, actor_id, action, outcome, \
         effects_json, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.action_id)
    .bind(e.tenant)
    .bind(e.subject)
    .bind(actor_kind(e.actor.kind))
    .bind(&e.actor.id)
    .bind(e.action.as_str())
    .bind(e.outcome)
    .bind(&e.effects_json)
    .bind(e.at)
    .execute(&mut *conn)
    .await?;
    if let Some((from, to)) = e.transition {
        sqlx::query(
            "INSERT INTO lethe_lifecycle_history (action_id, tenant_id, user_id, action, from_state, to_state, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.action_id)
        .bind(e.tenant)
        .bind(e.subject)
        .bind(e.action.as_str())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(e.at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Rows per multi-row `INSERT` of [`record_many`]: well under every
/// backend's bind-parameter limit (11 values a row).
const ROWS_PER_INSERT: usize = 200;

/// [`record`] for the users of a bulk batch: the decision records, audit
/// rows and history entries of all of them in one statement per table
/// (per [`ROWS_PER_INSERT`]).
pub async fn record_many(
    conn: &mut AnyConnection,
    all: &[Evidence<'_>],
) -> Result<(), sqlx::Error> {
    use crate::platform::Sql;
    for chunk in all.chunks(ROWS_PER_INSERT) {
        let mut q = Sql::new();
        let rows: Vec<String> = chunk
            .iter()
            .map(|e| {
                let version = match e.policy_version {
                    Some(v) => q.int(v),
                    None => "NULL".to_owned(),
                };
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {version})",
                    q.text(e.action_id),
                    q.text(e.tenant),
                    q.text(e.subject),
                    q.text(e.policy_sha256),
                    q.text(e.request_json.as_str()),
                    q.text(e.decision_json.as_str()),
                    q.text(e.rules.as_str()),
                    q.int(e.fuel_used),
                    q.int(e.latency_us),
                    q.int(e.at),
                )
            })
            .collect();
        q.push(&format!(
            "INSERT INTO lethe_decisions (action_id, tenant_id, subject_id, policy_sha256, request_json, \
             decision_json, rules, fuel_used, latency_us, at, policy_version) VALUES {}",
            rows.join(", ")
        ));
        q.execute(&mut *conn).await?;

        let mut q = Sql::new();
        let rows: Vec<String> = chunk
            .iter()
            .map(|e| {
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, {}, {})",
                    q.text(e.action_id),
                    q.text(e.tenant),
                    q.text(e.subject),
                    q.text(actor_kind(e.actor.kind)),
                    q.text(e.actor.id.as_str()),
                    q.text(e.action.as_str()),
                    q.text(e.outcome),
                    q.text(e.effects_json.as_str()),
                    q.int(e.at),
                )
            })
            .collect();
        q.push(&format!(
            "INSERT INTO lethe_audit (action_id, tenant_id, subject_id, actor_kind, actor_id, action, outcome, \
             effects_json, at) VALUES {}",
            rows.join(", ")
        ));
        q.execute(&mut *conn).await?;

        let mut q = Sql::new();
        let rows: Vec<String> = chunk
            .iter()
            .filter_map(|e| {
                let (from, to) = e.transition?;
                Some(format!(
                    "({}, {}, {}, {}, {}, {}, {})",
                    q.text(e.action_id),
                    q.text(e.tenant),
                    q.text(e.subject),
                    q.text(e.action.as_str()),
                    q.text(from.as_str()),
                    q.text(to.as_str()),
                    q.int(e.at),
                ))
            })
            .collect();
        if !rows.is_empty() {
            q.push(&format!(
                "INSERT INTO lethe_lifecycle_history (action_id, tenant_id, user_id, action, from_state, to_state, at) \
                 VALUES {}",
                rows.join(", ")
            ));
            q.execute(&mut *conn).await?;
        }
    }
    Ok(())
}
