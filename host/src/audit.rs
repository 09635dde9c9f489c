//! Evidence: the decision record, the audit record and the lifecycle
//! history, written in the same transaction as the action's effects.
//!
//! An operator must be able to answer "why was this user deleted, by whom,
//! under which policy version" years later, without the erased person's
//! personal data: these rows hold ids, the request the policy saw (which
//! carries no name, email or phone) and the decision, never profile values.

use sqlx::AnyConnection;

use crate::contract::{Action, Actor, ActorKind, Decision, LifecycleState};

/// Everything recorded about one decided action.
pub struct Evidence<'a> {
    pub action_id: &'a str,
    pub tenant: &'a str,
    pub subject: &'a str,
    pub actor: &'a Actor,
    pub action: Action,
    pub at: i64,
    pub policy_sha256: &'a str,
    pub request_json: &'a str,
    pub decision: &'a Decision,
    pub effects_json: &'a str,
    /// `(from, to)` when the action changed the subject's state.
    pub transition: Option<(LifecycleState, LifecycleState)>,
}

fn actor_kind(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::TenantUser => "tenant_user",
        ActorKind::Support => "support",
        ActorKind::System => "system",
    }
}

pub async fn record(conn: &mut AnyConnection, e: &Evidence<'_>) -> Result<(), sqlx::Error> {
    let decision_json = serde_json::to_string(e.decision).unwrap_or_default();
    let rules = e.decision.rules.join(",");
    sqlx::query(
        "INSERT INTO lethe_decisions (action_id, tenant_id, subject_id, policy_sha256, request_json, \
         decision_json, rules, fuel_used, latency_us, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(e.action_id)
    .bind(e.tenant)
    .bind(e.subject)
    .bind(e.policy_sha256)
    .bind(e.request_json)
    .bind(&decision_json)
    .bind(&rules)
    .bind(i64::try_from(e.decision.fuel_used).unwrap_or(i64::MAX))
    .bind(i64::try_from(e.decision.elapsed_us).unwrap_or(i64::MAX))
    .bind(e.at)
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
    .bind(e.decision.outcome.kind())
    .bind(e.effects_json)
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
