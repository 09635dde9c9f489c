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
//! Status moves `pending → approved` or `pending → rejected`, each by a
//! conditional UPDATE that only matches a pending escalation, so two agents
//! (or two hosts) can never close one escalation twice. Approval
//! ([`approve`]) closes the escalation inside the approving action's own
//! transaction (the [`Approve`] epilogue): the action and the close commit
//! together or not at all, so no crash can leave an escalation half
//! approved. `approving` is a status earlier versions wrote while they
//! applied an approval in separate transactions; nothing writes it now.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::contract::{Action, LifecycleState, Outcome};
use crate::db::{Db, DbError};
use crate::directory::{Directory, DirectoryError};
use crate::executor::{
    ActionInput, ActionReport, ActorRef, Decider, Epilogue, ExecError, Executor,
};

/// Where an escalation stands (`lethe_escalations.status`, and its JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EscalationStatus {
    /// Waiting for support.
    Pending,
    /// Written by earlier versions while an approval was being applied;
    /// never written now (approval closes in the action's transaction).
    Approving,
    Approved,
    Rejected,
}

impl EscalationStatus {
    /// The SQL and JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationStatus::Pending => "pending",
            EscalationStatus::Approving => "approving",
            EscalationStatus::Approved => "approved",
            EscalationStatus::Rejected => "rejected",
        }
    }
}

/// A stored escalation status this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown escalation status `{0}`")]
pub struct UnknownEscalationStatus(pub String);

impl FromStr for EscalationStatus {
    type Err = UnknownEscalationStatus;
    fn from_str(s: &str) -> Result<EscalationStatus, UnknownEscalationStatus> {
        [
            EscalationStatus::Pending,
            EscalationStatus::Approving,
            EscalationStatus::Approved,
            EscalationStatus::Rejected,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| UnknownEscalationStatus(s.to_owned()))
    }
}

impl fmt::Display for EscalationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EscalationError {
    #[error("no escalation `{0}`")]
    NotFound(String),
    #[error("escalation `{id}` is {status}, not pending")]
    NotPending {
        id: String,
        status: EscalationStatus,
    },
    #[error("the report is not an escalation")]
    NotEscalated,
    /// The user is no longer in the state the action was escalated from.
    #[error("the user's state changed since the escalation; ask again")]
    SubjectChanged {
        escalated_in: LifecycleState,
        now_in: Option<LifecycleState>,
    },
    /// The policy denies the action to support too (recorded as evidence;
    /// the escalation stays pending).
    #[error("the policy denied the approval")]
    Denied(Box<ActionReport>),
    /// The policy escalates the action for support too (the escalation
    /// stays pending).
    #[error("the policy escalates this action for support too")]
    StillEscalated { queue: String },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("corrupt escalation record: {0}")]
    Corrupt(String),
}

/// An escalation written inside an action (an epilogue) fails the action
/// with what went wrong: a database error stays a database error.
impl From<EscalationError> for ExecError {
    fn from(e: EscalationError) -> ExecError {
        match e {
            EscalationError::Db(d) => ExecError::Db(d),
            EscalationError::Exec(e) => e,
            other => ExecError::Corrupt(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for EscalationError {
    fn from(e: sqlx::Error) -> Self {
        EscalationError::Db(DbError::Sql(e))
    }
}

/// The audit row's `effects` of an escalation step (approve or reject).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EscalationStep {
    pub escalation: String,
    /// The action that escalated.
    pub escalating_action_id: String,
    /// The agent's note (approve) or reason (reject).
    pub note: Option<String>,
    /// The action that applied an approval.
    pub applied_action_id: Option<String>,
}

/// One queued action and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Escalation {
    pub id: String,
    pub tenant: String,
    pub user: String,
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
    pub from_state: LifecycleState,
    /// The escalating decision (see `GET /v1/tenants/{t}/decisions/{id}`).
    pub action_id: String,
    pub status: EscalationStatus,
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
        status: row
            .try_get::<String, _>(11)?
            .parse()
            .map_err(|e: UnknownEscalationStatus| EscalationError::Corrupt(e.to_string()))?,
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

/// Every queue that has had an escalation, with how many are pending now
/// (zero included, so a drained queue reads 0 rather than its last value).
pub async fn pending_per_queue(
    db: &crate::db::Db,
) -> Result<Vec<(String, i64)>, crate::db::DbError> {
    let rows = sqlx::query(
        "SELECT queue, CAST(SUM(CASE WHEN status = $1 THEN 1 ELSE 0 END) AS BIGINT) \
         FROM lethe_escalations GROUP BY queue ORDER BY queue",
    )
    .bind(EscalationStatus::Pending.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
    .bind(EscalationStatus::Pending.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let opened = crate::events::EscalationChanged {
        escalation: id.clone(),
        user: report.subject.clone(),
        action: report.action,
        queue: queue.clone(),
        action_id: report.action_id.clone(),
        actor: crate::events::EventActor {
            kind: crate::contract::ActorKind::TenantUser,
            id: asked.actor_id.to_owned(),
        },
        applied_action_id: None,
    };
    let event = crate::events::Event::escalation(
        &report.tenant,
        crate::events::EventType::EscalationCreated,
        &opened,
        now,
    )?;
    crate::events::record(conn, &event).await?;
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
        insert(conn, report, &self.asked, self.now).await?;
        Ok(())
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

/// The pending escalation of `action` on `tenant`'s `user`, if one waits:
/// asking again (an identity provider retrying its DELETE) joins it rather
/// than queueing a second one.
pub async fn pending_of(
    db: &Db,
    tenant: &str,
    user: &str,
    action: Action,
) -> Result<Option<Escalation>, EscalationError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM lethe_escalations \
         WHERE tenant_id = $1 AND user_id = $2 AND action = $3 AND status = $4 \
         ORDER BY created_at, id"
    ))
    .bind(tenant)
    .bind(user)
    .bind(action.as_str())
    .bind(EscalationStatus::Pending.as_str())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Escalations, oldest first, optionally of one tenant and one status.
pub async fn list(
    db: &Db,
    tenant: Option<&str>,
    status: Option<EscalationStatus>,
    limit: i64,
) -> Result<Vec<Escalation>, EscalationError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM lethe_escalations \
         WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR status = $2) \
         ORDER BY created_at, id LIMIT $3"
    ))
    .bind(tenant.map(str::to_owned))
    .bind(status.map(|s| s.as_str().to_owned()))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// An approved escalation and the action that applied it.
#[derive(Debug)]
pub struct Approval {
    pub escalation: Escalation,
    pub report: ActionReport,
}

/// Approve escalation `id` as support agent `agent`: re-submit the
/// escalated action as a support actor through the policy and the
/// executor, and close the escalation in that action's own transaction.
///
/// Only an allowed action closes it (`approved`, with an audit row). A
/// denial or a new escalation is recorded as evidence and leaves it
/// pending ([`EscalationError::Denied`], [`EscalationError::StillEscalated`]);
/// so does any failure, because the close commits with the action or not
/// at all. A user whose state changed since the escalation is
/// [`EscalationError::SubjectChanged`], checked before the action (a
/// friendly early answer) and again under the action's row lock.
#[tracing::instrument(name = "escalation.approve", skip_all, fields(escalation = %id))]
pub async fn approve<D: Decider>(
    executor: &Executor,
    decider: &D,
    directory: &Directory,
    id: &str,
    agent: &str,
    note: Option<&str>,
    now: i64,
) -> Result<Approval, EscalationError> {
    let db = executor.db();
    let esc = get(db, id).await?;
    if esc.status != EscalationStatus::Pending {
        return Err(EscalationError::NotPending {
            id: esc.id,
            status: esc.status,
        });
    }
    let current = directory.state(&esc.tenant, &esc.user).await?;
    if current != Some(esc.from_state) {
        return Err(EscalationError::SubjectChanged {
            escalated_in: esc.from_state,
            now_in: current,
        });
    }
    let input = ActionInput {
        tenant: esc.tenant.clone(),
        subject: esc.user.clone(),
        action: esc.action,
        actor: ActorRef::Support(agent.to_owned()),
        transfer_to: esc.transfer_to.clone(),
        reason: note.map(str::to_owned).or_else(|| esc.reason.clone()),
        bulk: false,
        now,
        // No idempotency key: the epilogue's conditional `pending →
        // approved` already applies an escalation once (a second approval
        // rolls back), and a key would also replay a support denial on
        // every later attempt, pinning an escalation that stays pending.
        idempotency_key: None,
        dry_run: false,
    };
    let close = Approve {
        esc: &esc,
        agent,
        note,
        now,
        stopped: Mutex::new(None),
    };
    let report = match executor.act_with(decider, &input, &close).await {
        Ok(report) => report,
        Err(e) => {
            return Err(match close.stopped() {
                Some(Stop::NotPending) => not_pending(db, &esc.id).await,
                Some(Stop::SubjectChanged(now_in)) => EscalationError::SubjectChanged {
                    escalated_in: esc.from_state,
                    now_in: Some(now_in),
                },
                None => EscalationError::Exec(e),
            })
        }
    };
    match &report.decision.outcome {
        Outcome::Allow { .. } => {
            tracing::info!(escalation = %esc.id, %agent, "escalation approved");
            Ok(Approval {
                escalation: get(db, &esc.id).await?,
                report,
            })
        }
        Outcome::Deny { .. } => Err(EscalationError::Denied(Box::new(report))),
        Outcome::Escalate { queue, .. } => Err(EscalationError::StillEscalated {
            queue: queue.clone(),
        }),
    }
}

/// Reject escalation `id` with a reason; only a pending one.
pub async fn reject(
    db: &Db,
    id: &str,
    agent: &str,
    reason: &str,
    now: i64,
) -> Result<Escalation, EscalationError> {
    let esc = get(db, id).await?;
    let mut tx = db.begin_write().await?;
    if !close_on(&mut tx, &esc, Step::Rejected { agent, reason }, now).await? {
        tx.rollback().await?;
        return Err(not_pending(db, id).await);
    }
    tx.commit().await?;
    tracing::info!(escalation = %esc.id, %agent, "escalation rejected");
    get(db, id).await
}

/// `NotPending` with the escalation's current status (or why it could not
/// be read).
async fn not_pending(db: &Db, id: &str) -> EscalationError {
    match get(db, id).await {
        Ok(esc) => EscalationError::NotPending {
            id: esc.id,
            status: esc.status,
        },
        Err(e) => e,
    }
}

/// Why [`Approve`] refused to close, so [`approve`] can answer precisely
/// after the executor rolled the action back.
#[derive(Debug, Clone, Copy)]
enum Stop {
    NotPending,
    SubjectChanged(LifecycleState),
}

/// The [`Epilogue`] of an approving action: closes the escalation
/// `pending → approved` with its audit row when the policy allowed the
/// action, in the action's transaction. It fails (rolling the action back)
/// when the escalation is no longer pending (another agent closed it
/// meanwhile) or the user left the state it was escalated from; other
/// outcomes write nothing.
pub struct Approve<'a> {
    esc: &'a Escalation,
    agent: &'a str,
    note: Option<&'a str>,
    now: i64,
    stopped: Mutex<Option<Stop>>,
}

impl Approve<'_> {
    fn stop(&self, why: Stop) -> ExecError {
        if let Ok(mut s) = self.stopped.lock() {
            *s = Some(why);
        }
        ExecError::Superseded(format!("escalation {}: {why:?}", self.esc.id))
    }

    fn stopped(&self) -> Option<Stop> {
        self.stopped.lock().ok().and_then(|s| *s)
    }
}

impl Epilogue for Approve<'_> {
    async fn write(
        &self,
        conn: &mut AnyConnection,
        report: &ActionReport,
    ) -> Result<(), ExecError> {
        if report.dry_run {
            return Ok(());
        }
        // The state read under the row lock: a change since the escalation
        // that the state machine still allowed is refused here.
        if report.from_state != self.esc.from_state {
            return Err(self.stop(Stop::SubjectChanged(report.from_state)));
        }
        if !matches!(report.decision.outcome, Outcome::Allow { .. }) {
            return Ok(());
        }
        let step = Step::Approved {
            agent: self.agent,
            note: self.note,
            result_action_id: &report.action_id,
        };
        match close_on(conn, self.esc, step, self.now).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.stop(Stop::NotPending)),
            Err(e) => Err(ExecError::Db(DbError::Sql(e))),
        }
    }
}

/// Close a pending escalation on `conn` and write the step's audit row
/// there. `false` (nothing written) when it was no longer pending.
async fn close_on(
    conn: &mut AnyConnection,
    esc: &Escalation,
    step: Step<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let (status, result, note) = match &step {
        Step::Approved {
            result_action_id,
            note,
            ..
        } => (EscalationStatus::Approved, Some(*result_action_id), *note),
        Step::Rejected { reason, .. } => (EscalationStatus::Rejected, None, Some(*reason)),
    };
    let agent = step.agent();
    let n = sqlx::query(
        "UPDATE lethe_escalations SET status = $1, decided_at = $2, decided_by = $3, note = $4, \
         result_action_id = $5 WHERE id = $6 AND status = $7",
    )
    .bind(status.as_str())
    .bind(now)
    .bind(agent)
    .bind(note.map(str::to_owned))
    .bind(result.map(str::to_owned))
    .bind(&esc.id)
    .bind(EscalationStatus::Pending.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    let effects = serde_json::to_string(&EscalationStep {
        escalation: esc.id.clone(),
        escalating_action_id: esc.action_id.clone(),
        note: note.map(str::to_owned),
        applied_action_id: result.map(str::to_owned),
    })
    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
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
    .bind(effects)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let closed = crate::events::EscalationChanged {
        escalation: esc.id.clone(),
        user: esc.user.clone(),
        action: esc.action,
        queue: esc.queue.clone(),
        action_id: esc.action_id.clone(),
        actor: crate::events::EventActor {
            kind: crate::contract::ActorKind::Support,
            id: agent.to_owned(),
        },
        applied_action_id: result.map(str::to_owned),
    };
    let event_type = match status {
        EscalationStatus::Rejected => crate::events::EventType::EscalationRejected,
        _ => crate::events::EventType::EscalationApproved,
    };
    let event = crate::events::Event::escalation(&esc.tenant, event_type, &closed, now)?;
    crate::events::record(conn, &event).await?;
    Ok(true)
}

/// How an escalation was closed.
enum Step<'a> {
    Approved {
        agent: &'a str,
        note: Option<&'a str>,
        /// The action that applied the approval.
        result_action_id: &'a str,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Decision, Plan, ProfilePlan, References, Request};
    use crate::decision::{PolicyFault, Verdict};

    /// A policy that answers every request with one outcome.
    struct Says(Outcome);

    impl Decider for Says {
        async fn decide(&self, _: &str, _: &Request) -> Result<Verdict, PolicyFault> {
            Ok(Verdict {
                policy_sha256: "0".repeat(64),
                policy_version: None,
                decision: Decision {
                    outcome: self.0.clone(),
                    rules: vec!["test".into()],
                    fuel_used: 1,
                    elapsed_us: 1,
                },
            })
        }
    }

    fn allow() -> Says {
        Says(Outcome::Allow {
            plan: Plan {
                categories: vec![],
                transfer_target: None,
                profile: ProfilePlan::Keep,
                restore_window_days: 0,
                references: References::Pseudonymise,
                notify: vec![],
            },
        })
    }

    /// A seeded SQLite database, its executor and directory, and an
    /// escalated lock of an active user of `t1`.
    async fn escalated() -> (tempfile::TempDir, Executor, Directory, Escalation) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("t.db").display());
        let db = Db::connect(&url).await.unwrap();
        let opts = crate::seed::SeedOptions {
            tenants: 1,
            users: 12,
            items: 1,
            seed: 7,
        };
        crate::seed::seed(&db, &opts).await.unwrap();
        let map = crate::datamap::DataMap::parse(include_str!("../../examples/demo/datamap.toml"))
            .unwrap();
        let ex = Executor::new(db, map).await.unwrap();
        let directory = Directory::new(ex.platform().clone());
        let mut user = None;
        for i in 2..=12 {
            let id = format!("t1-u{i}");
            if directory.state("t1", &id).await.unwrap() == Some(LifecycleState::Active) {
                user = Some(id);
                break;
            }
        }
        let user = user.expect("an active user");
        let input = ActionInput {
            tenant: "t1".into(),
            subject: user,
            action: Action::Lock,
            actor: ActorRef::TenantUser("t1-u1".into()),
            transfer_to: None,
            reason: None,
            bulk: false,
            now: 1_000,
            idempotency_key: None,
            dry_run: false,
        };
        let queue = Queue {
            asked: Asked {
                actor_id: "t1-u1",
                transfer_to: None,
                reason: None,
            },
            now: 1_000,
        };
        let escalate = Says(Outcome::Escalate {
            queue: "support".into(),
            reason: "ask a human".into(),
        });
        let report = ex.act_with(&escalate, &input, &queue).await.unwrap();
        let esc = of_action(ex.db(), &report.action_id).await.unwrap();
        assert_eq!(esc.status, EscalationStatus::Pending);
        (dir, ex, directory, esc)
    }

    #[tokio::test]
    async fn a_denied_approval_leaves_it_pending_and_a_later_one_applies_once() {
        let (_dir, ex, directory, esc) = escalated().await;
        let deny = Says(Outcome::Deny {
            code: "not-today".into(),
            message: "no".into(),
        });
        let e = approve(&ex, &deny, &directory, &esc.id, "sam", None, 2_000)
            .await
            .unwrap_err();
        assert!(matches!(e, EscalationError::Denied(_)), "{e}");
        assert_eq!(
            get(ex.db(), &esc.id).await.unwrap().status,
            EscalationStatus::Pending
        );

        let done = approve(&ex, &allow(), &directory, &esc.id, "sam", Some("ok"), 3_000)
            .await
            .unwrap();
        assert_eq!(done.escalation.status, EscalationStatus::Approved);
        assert_eq!(
            done.escalation.result_action_id.as_deref(),
            Some(done.report.action_id.as_str())
        );
        assert_eq!(
            directory.state("t1", &esc.user).await.unwrap(),
            Some(LifecycleState::Locked)
        );
        let e = approve(&ex, &allow(), &directory, &esc.id, "sam", None, 4_000)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                EscalationError::NotPending {
                    status: EscalationStatus::Approved,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_approval_that_cannot_close_applies_nothing() {
        let (_dir, ex, directory, esc) = escalated().await;
        // Rejected after the approver read it pending: the approving
        // action's epilogue finds it closed and rolls the action back.
        reject(ex.db(), &esc.id, "kim", "no", 2_000).await.unwrap();
        let input = ActionInput {
            tenant: esc.tenant.clone(),
            subject: esc.user.clone(),
            action: esc.action,
            actor: ActorRef::Support("sam".into()),
            transfer_to: None,
            reason: None,
            bulk: false,
            now: 3_000,
            idempotency_key: None,
            dry_run: false,
        };
        let close = Approve {
            esc: &esc,
            agent: "sam",
            note: None,
            now: 3_000,
            stopped: Mutex::new(None),
        };
        let e = ex.act_with(&allow(), &input, &close).await.unwrap_err();
        assert!(matches!(e, ExecError::Superseded(_)), "{e}");
        assert!(matches!(close.stopped(), Some(Stop::NotPending)));
        assert_eq!(
            directory.state("t1", &esc.user).await.unwrap(),
            Some(LifecycleState::Active)
        );
        let after = get(ex.db(), &esc.id).await.unwrap();
        assert_eq!(after.status, EscalationStatus::Rejected);
        assert_eq!(after.result_action_id, None);
    }

    #[test]
    fn status_names_round_trip_through_sql_and_json() {
        for s in [
            EscalationStatus::Pending,
            EscalationStatus::Approving,
            EscalationStatus::Approved,
            EscalationStatus::Rejected,
        ] {
            assert_eq!(s.as_str().parse::<EscalationStatus>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert!("closed".parse::<EscalationStatus>().is_err());
    }
}
