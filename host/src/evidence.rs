//! Reading the evidence [`crate::audit`] writes: the audit trail of a
//! tenant and one decision record, for operators answering "why was this
//! user deleted, by whom, under which policy version".
//!
//! Every query is scoped by tenant, so one tenant's records are never
//! reachable through another's.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::contract::{Action, ActorKind, Decision, Request};
use crate::db::{Db, DbError};
use crate::escalation::EscalationStep;
use crate::executor::Effects;
use crate::page::Limit;

/// Filters of `GET /v1/tenants/{t}/audit`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// The subject's id.
    pub user: Option<String>,
    pub action: Option<Action>,
    /// At or after this unix time.
    pub since: Option<i64>,
    /// At most this many entries, newest first (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<Limit<1000>>,
}

/// One audit row: who asked for what, and what happened.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub action_id: String,
    pub subject: String,
    #[schema(value_type = ActorKind)]
    pub actor_kind: String,
    pub actor_id: String,
    #[schema(value_type = Action)]
    pub action: String,
    /// `allow`, `escalate`, `deny`, or an escalation step
    /// (`escalation-approved`, `escalation-rejected`).
    #[schema(value_type = AuditOutcome)]
    pub outcome: String,
    #[schema(value_type = AuditEffects)]
    pub effects: serde_json::Value,
    pub at: i64,
}

/// What an audit row's `outcome` says; rows keep it as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuditOutcome {
    Allow,
    Escalate,
    Deny,
    EscalationApproved,
    EscalationRejected,
}

/// What an audit row's `effects` hold: an action's effects, or for an
/// escalation step the escalation and the actions it links.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AuditEffects {
    Action(Effects),
    EscalationStep(EscalationStep),
}

/// A stored decision: what the policy saw and said, under which version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionRecord {
    pub action_id: String,
    pub subject: String,
    pub policy_sha256: String,
    /// The tenant's policy version that decided (none for decisions made
    /// before versions were kept).
    pub policy_version: Option<i64>,
    /// The request exactly as the policy saw it.
    #[schema(value_type = Request)]
    pub input: serde_json::Value,
    #[schema(value_type = Decision)]
    pub decision: serde_json::Value,
    pub rules: Vec<String>,
    pub fuel_used: i64,
    pub latency_us: i64,
    pub at: i64,
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::String(text.to_owned()))
}

pub async fn audit(db: &Db, tenant: &str, f: &AuditFilter) -> Result<Vec<AuditEntry>, DbError> {
    let limit = i64::from(Limit::or(f.limit, 100));
    let rows = sqlx::query(
        "SELECT action_id, subject_id, actor_kind, actor_id, action, outcome, effects_json, at FROM lethe_audit \
         WHERE tenant_id = $1 AND ($2 IS NULL OR subject_id = $2) AND ($3 IS NULL OR action = $3) \
         AND ($4 IS NULL OR at >= $4) ORDER BY at DESC, action_id DESC LIMIT $5",
    )
    .bind(tenant)
    .bind(f.user.clone())
    .bind(f.action.map(Action::as_str))
    .bind(f.since)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(AuditEntry {
            action_id: r.try_get(0)?,
            subject: r.try_get(1)?,
            actor_kind: r.try_get(2)?,
            actor_id: r.try_get(3)?,
            action: r.try_get(4)?,
            outcome: r.try_get(5)?,
            effects: json(&r.try_get::<String, _>(6)?),
            at: r.try_get(7)?,
        });
    }
    Ok(out)
}

/// The decision record `action_id` of `tenant`, or `None`.
pub async fn decision(
    db: &Db,
    tenant: &str,
    action_id: &str,
) -> Result<Option<DecisionRecord>, DbError> {
    let row = sqlx::query(
        "SELECT action_id, subject_id, policy_sha256, request_json, decision_json, rules, fuel_used, latency_us, at, policy_version \
         FROM lethe_decisions WHERE tenant_id = $1 AND action_id = $2",
    )
    .bind(tenant)
    .bind(action_id)
    .fetch_optional(db.pool())
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let rules: String = r.try_get(5)?;
    Ok(Some(DecisionRecord {
        action_id: r.try_get(0)?,
        subject: r.try_get(1)?,
        policy_sha256: r.try_get(2)?,
        input: json(&r.try_get::<String, _>(3)?),
        decision: json(&r.try_get::<String, _>(4)?),
        rules: rules
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        fuel_used: r.try_get(6)?,
        latency_us: r.try_get(7)?,
        at: r.try_get(8)?,
        policy_version: r.try_get(9)?,
    }))
}

/// Which recorded decisions to re-run: the newest `last`, within
/// `since..=until` (unix seconds) when given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordWindow {
    pub last: Option<u32>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// One decision record as stored, for re-running (replay, verify). The
/// JSON stays text: a record that no longer parses is itself a finding.
#[derive(Debug, Clone)]
pub struct StoredDecision {
    pub action_id: String,
    pub subject: String,
    pub policy_sha256: String,
    pub policy_version: Option<i64>,
    pub request_json: String,
    pub decision_json: String,
    pub at: i64,
}

/// A tenant's decision records in `window`, oldest first.
pub async fn stored_decisions(
    db: &Db,
    tenant: &str,
    window: RecordWindow,
    max: u32,
) -> Result<Vec<StoredDecision>, DbError> {
    let limit = i64::from(window.last.unwrap_or(max).clamp(1, max));
    let rows = sqlx::query(
        "SELECT action_id, subject_id, policy_sha256, policy_version, request_json, decision_json, at \
         FROM lethe_decisions WHERE tenant_id = $1 AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at <= $3) \
         ORDER BY at DESC, action_id DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(window.since)
    .bind(window.until)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(StoredDecision {
                action_id: r.try_get(0)?,
                subject: r.try_get(1)?,
                policy_sha256: r.try_get(2)?,
                policy_version: r.try_get(3)?,
                request_json: r.try_get(4)?,
                decision_json: r.try_get(5)?,
                at: r.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    out.reverse();
    Ok(out)
}
