//! The escalation queue: actions a policy sent to a team instead of
//! allowing them (seed 000 sends every tenant delete to `support`, seed 003
//! sends users on several platforms to `customer-success`).
//!
//! An escalation is opened from the escalating decision's report, and
//! closed by a support agent: approving re-submits the same action as a
//! support actor through the policy and the executor (so what is applied is
//! what the policy allows support to do, decided on the facts of the moment),
//! rejecting closes it with a reason. Each step leaves an audit row.
//!
//! Status moves `pending → approving → approved`, `approving → pending`
//! (when the approval could not be applied) or `pending → rejected`. The
//! `approving` claim is a conditional UPDATE, so two agents (or two hosts)
//! can never apply one escalation twice.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::contract::{Action, LifecycleState, Outcome};
use crate::db::{Db, DbError};
use crate::executor::{ActionReport, Epilogue, ExecError};

#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    #[error("no escalation `{0}`")]
    NotFound(String),
    #[error("escalation `{id}` is {status}, not pending")]
    NotPending { id: String, status: String },
    #[error("the report is not an escalation")]
    NotEscalated,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("corrupt escalation record: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for EscalationError {
    fn from(e: sqlx::Error) -> Self {
        EscalationError::Db(DbError::Sql(e))
    }
}

/// One queued action and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Escalation {
    pub id: String,
    pub tenant: String,
    pub user: String,
    #[schema(value_type = String, example = "delete")]
    pub action: Action,
    /// The tenant user who asked.
    pub actor_id: String,
    pub transfer_to: Option<String>,
    pub reason: Option<String>,
    /// The team the policy named, e.g. `support`.
    pub queue: String,
    /// Why the policy escalated, in its own words.
    pub queue_reason: String,
    /// The subject's state when the action was asked for.
    #[schema(value_type = String, example = "active")]
    pub from_state: LifecycleState,
    /// The escalating decision (see `GET /v1/tenants/{t}/decisions/{id}`).
    pub action_id: String,
    /// `pending`, `approving`, `approved` or `rejected`.
    pub status: String,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    /// The action that applied the approval.
    pub result_action_id: Option<String>,
}

const COLUMNS: &str =
    "id, tenant_id, user_id, action, actor_id, transfer_to, reason, queue, queue_reason, \
     from_state, action_id, status, created_at, decided_at, decided_by, note, result_action_id";

fn from_row(row: &AnyRow) -> Result<Escalation, EscalationError> {
    let corrupt = |e: crate::contract::UnknownName| EscalationError::Corrupt(e.to_string());
    Ok(Escalation {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        user: row.try_get(2)?,
        action: row.try_get::<String, _>(3)?.parse().map_err(corrupt)?,
        actor_id: row.try_get(4)?,
        transfer_to: row.try_get(5)?,
        reason: row.try_get(6)?,
        queue: row.try_get(7)?,
        queue_reason: row.try_get(8)?,
        from_state: row.try_get::<String, _>(9)?.parse().map_err(corrupt)?,
        action_id: row.try_get(10)?,
        status: row.try_get(11)?,
        created_at: row.try_get(12)?,
        decided_at: row.try_get(13)?,
        decided_by: row.try_get(14)?,
        note: row.try_get(15)?,
        result_action_id: row.try_get(16)?,
    })
}

/// What the tenant asked for, as the escalation keeps it.
pub struct Asked<'a> {
    pub actor_id: &'a str,
    pub transfer_to: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// Open an escalation for an escalating `report` inside the action's own
/// transaction, so the decision and its queue entry commit together.
/// Returns the new escalation's id.
pub async fn insert(
    conn: &mut AnyConnection,
    report: &ActionReport,
    asked: &Asked<'_>,
    now: i64,
) -> Result<String, EscalationError> {
    let Outcome::Escalate { queue, reason } = &report.decision.outcome else {
        return Err(EscalationError::NotEscalated);
    };
    let id = format!("esc-{}", hex::encode(rand::random::<[u8; 12]>()));
    sqlx::query(
        "INSERT INTO lethe_escalations (id, tenant_id, user_id, action, actor_id, transfer_to, reason, queue, \
         queue_reason, from_state, action_id, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12)",
    )
    .bind(&id)
    .bind(&report.tenant)
    .bind(&report.subject)
    .bind(report.action.as_str())
    .bind(asked.actor_id)
    .bind(asked.transfer_to.map(str::to_owned))
    .bind(asked.reason.map(str::to_owned))
    .bind(queue)
    .bind(reason)
    .bind(report.from_state.as_str())
    .bind(&report.action_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    tracing::info!(escalation = %id, tenant = %report.tenant, user = %report.subject, %queue, "escalation opened");
    Ok(id)
}

/// An [`Epilogue`] that queues an escalating decision in the action's
/// transaction; other outcomes write nothing.
pub struct Queue<'a> {
    pub asked: Asked<'a>,
    pub now: i64,
}

impl Epilogue for Queue<'_> {
    async fn write(
        &self,
        conn: &mut AnyConnection,
        report: &ActionReport,
    ) -> Result<(), ExecError> {
        if !matches!(report.decision.outcome, Outcome::Escalate { .. }) || report.dry_run {
            return Ok(());
        }
        insert(conn, report, &self.asked, self.now)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                EscalationError::Db(d) => ExecError::Db(d),
                other => ExecError::Corrupt(other.to_string()),
            })
    }
}

/// The escalation an action's decision opened, if any.
pub async fn of_action(db: &Db, action_id: &str) -> Result<Escalation, EscalationError> {
    by_action(db, action_id)
        .await?
        .ok_or_else(|| EscalationError::NotFound(action_id.to_owned()))
}

pub async fn get(db: &Db, id: &str) -> Result<Escalation, EscalationError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM lethe_escalations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| EscalationError::NotFound(id.to_owned()))?;
    from_row(&row)
}

async fn by_action(db: &Db, action_id: &str) -> Result<Option<Escalation>, EscalationError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM lethe_escalations WHERE action_id = $1"
    ))
    .bind(action_id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Escalations, oldest first, optionally of one tenant and one status.
pub async fn list(
    db: &Db,
    tenant: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Escalation>, EscalationError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM lethe_escalations \
         WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR status = $2) \
         ORDER BY created_at, id LIMIT $3"
    ))
    .bind(tenant.map(str::to_owned))
    .bind(status.map(str::to_owned))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Claim a pending escalation for approval; only one claimant wins.
pub async fn claim(db: &Db, id: &str) -> Result<Escalation, EscalationError> {
    let claimed = sqlx::query(
        "UPDATE lethe_escalations SET status = 'approving' WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .execute(db.pool())
    .await?
    .rows_affected();
    let esc = get(db, id).await?;
    if claimed == 0 {
        return Err(EscalationError::NotPending {
            id: id.to_owned(),
            status: esc.status,
        });
    }
    Ok(esc)
}

/// Give a claimed escalation back to the queue (its approval failed).
pub async fn release(db: &Db, id: &str) -> Result<(), EscalationError> {
    sqlx::query(
        "UPDATE lethe_escalations SET status = 'pending' WHERE id = $1 AND status = 'approving'",
    )
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Close an escalation: `approved` (from the claim, with the applying
/// action) or `rejected` (from pending). Writes the step's audit row in the
/// same transaction.
pub async fn close(
    db: &Db,
    esc: &Escalation,
    step: Step<'_>,
    now: i64,
) -> Result<Escalation, EscalationError> {
    let (status, from, result, note) = match &step {
        Step::Approved { result, note, .. } => (
            "approved",
            "approving",
            Some(result.action_id.as_str()),
            *note,
        ),
        Step::Rejected { reason, .. } => ("rejected", "pending", None, Some(*reason)),
    };
    let agent = step.agent();
    let mut tx = db.pool().begin().await?;
    let n = sqlx::query(
        "UPDATE lethe_escalations SET status = $1, decided_at = $2, decided_by = $3, note = $4, \
         result_action_id = $5 WHERE id = $6 AND status = $7",
    )
    .bind(status)
    .bind(now)
    .bind(agent)
    .bind(note.map(str::to_owned))
    .bind(result.map(str::to_owned))
    .bind(&esc.id)
    .bind(from)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        let current = get(db, &esc.id).await?;
        return Err(EscalationError::NotPending {
            id: esc.id.clone(),
            status: current.status,
        });
    }
    let effects = serde_json::json!({
        "escalation": esc.id,
        "escalating_action_id": esc.action_id,
        "note": note,
        "applied_action_id": result,
    });
    sqlx::query(
        "INSERT INTO lethe_audit (action_id, tenant_id, subject_id, actor_kind, actor_id, action, outcome, \
         effects_json, at) VALUES ($1, $2, $3, 'support', $4, $5, $6, $7, $8)",
    )
    .bind(format!("{}-{status}", esc.id))
    .bind(&esc.tenant)
    .bind(&esc.user)
    .bind(agent)
    .bind(esc.action.as_str())
    .bind(format!("escalation-{status}"))
    .bind(effects.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(escalation = %esc.id, %status, %agent, "escalation closed");
    get(db, &esc.id).await
}

/// How an escalation was closed.
pub enum Step<'a> {
    Approved {
        agent: &'a str,
        note: Option<&'a str>,
        result: &'a ActionReport,
    },
    Rejected {
        agent: &'a str,
        reason: &'a str,
    },
}

impl Step<'_> {
    fn agent(&self) -> &str {
        match self {
            Step::Approved { agent, .. } | Step::Rejected { agent, .. } => agent,
        }
    }
}
