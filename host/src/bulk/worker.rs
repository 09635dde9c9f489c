//! The bulk worker: takes a job, works its pending items in batches, one
//! transaction per user.
//!
//! Per batch: the users' contexts are read set-based
//! ([`Executor::contexts`](crate::executor::Executor::contexts)) and decided
//! in one policy session ([`Decider::decide_batch`]). Each user then goes
//! through the executor like any single action: its transaction locks and
//! re-reads the user, and uses the batch's verdict only when the request it
//! builds is exactly the one the batch decided (otherwise it decides
//! afresh), so a decision is always made on the facts it is applied to. The
//! item leaves `pending` in that same transaction ([`ItemDone`]).
//!
//! A job is held under a lease (`lease_owner`, `lease_until`) renewed every
//! batch. A worker that dies stops renewing; once the lease has passed any
//! worker (another host, or this one restarted) takes the job over and
//! carries on with the items still pending.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::{AnyConnection, Row};
use tokio::sync::watch;

use super::jobs::{cancel_pending, PENDING};
use super::{unix_millis, unix_now, Bulk, BulkError};
use crate::contract::{Action, Outcome, Request};
use crate::escalation::{self, Asked};
use crate::executor::{
    ActionReport, ActorRef, Ask, Decider, Epilogue, ExecError, PolicyFault, Verdict,
};

/// A job this worker holds.
#[derive(Debug, Clone)]
struct Claimed {
    id: String,
    tenant: String,
    action: Action,
    actor_id: String,
    transfer_to: Option<String>,
    reason: Option<String>,
}

/// Work bulk jobs until `stop` turns true: this host's queued jobs at once
/// (woken by execute), other hosts' and abandoned ones by polling.
pub async fn run_worker<D: Decider>(bulk: Bulk, decider: D, mut stop: watch::Receiver<bool>) {
    let me = format!(
        "worker-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    );
    let poll = Duration::from_millis(bulk.settings().poll_ms.max(10));
    tracing::info!(worker = %me, "bulk worker started");
    loop {
        if *stop.borrow() {
            return;
        }
        match bulk.claim(&me).await {
            Ok(Some(job)) => {
                if let Err(e) = bulk.work(&decider, &job, &me, &stop).await {
                    tracing::warn!(job = %job.id, error = %e, "bulk job interrupted; it resumes after its lease");
                    tokio::time::sleep(poll).await;
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = bulk.inner.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => return,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "bulk worker cannot claim jobs");
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Why [`Bulk::work`] stopped working a job.
enum Stopped {
    Done,
    Cancelled,
    /// Another worker holds the job now.
    LostLease,
    /// The host is shutting down.
    Shutdown,
}

impl Bulk {
    fn lease_until(&self) -> i64 {
        let lease_ms =
            i64::try_from(self.settings().lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        unix_millis().saturating_add(lease_ms)
    }

    /// Take the oldest job that is queued, or running under a lapsed lease.
    async fn claim(&self, me: &str) -> Result<Option<Claimed>, BulkError> {
        let now_ms = unix_millis();
        let candidates = sqlx::query(
            "SELECT id FROM lethe_bulk_jobs WHERE status IN ('queued', 'running') \
             AND (lease_until IS NULL OR lease_until < $1) ORDER BY created_at, id LIMIT 8",
        )
        .bind(now_ms)
        .fetch_all(self.db().pool())
        .await?;
        for row in candidates {
            let id: String = row.try_get(0)?;
            let took = sqlx::query(
                "UPDATE lethe_bulk_jobs SET lease_owner = $2, lease_until = $3, status = 'running', \
                 started_at = COALESCE(started_at, $4) \
                 WHERE id = $1 AND status IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < $5)",
            )
            .bind(&id)
            .bind(me)
            .bind(self.lease_until())
            .bind(unix_now())
            .bind(now_ms)
            .execute(self.db().pool())
            .await?
            .rows_affected();
            if took != 1 {
                continue; // another worker was faster
            }
            let r = sqlx::query(
                "SELECT tenant_id, action, actor_id, transfer_to, reason FROM lethe_bulk_jobs WHERE id = $1",
            )
            .bind(&id)
            .fetch_one(self.db().pool())
            .await?;
            let action: String = r.try_get(1)?;
            let job = Claimed {
                id,
                tenant: r.try_get(0)?,
                action: action
                    .parse()
                    .map_err(|_| BulkError::Corrupt(format!("job action `{action}`")))?,
                actor_id: r.try_get(2)?,
                transfer_to: r.try_get(3)?,
                reason: r.try_get(4)?,
            };
            tracing::info!(job = %job.id, tenant = %job.tenant, worker = %me, "bulk job claimed");
            return Ok(Some(job));
        }
        Ok(None)
    }

    /// Work one claimed job until it is done, cancelled, lost or the host
    /// stops.
    #[tracing::instrument(name = "bulk.job", skip_all, fields(job = %job.id, tenant = %job.tenant, action = %job.action))]
    async fn work<D: Decider>(
        &self,
        decider: &D,
        job: &Claimed,
        me: &str,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), BulkError> {
        let stopped = loop {
            if *stop.borrow() {
                break Stopped::Shutdown;
            }
            // Renew the lease, and learn whether a cancel was asked for
            // (possibly through another host).
            let renewed = sqlx::query(
                "UPDATE lethe_bulk_jobs SET lease_until = $3 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(&job.id)
            .bind(me)
            .bind(self.lease_until())
            .execute(self.db().pool())
            .await?
            .rows_affected();
            if renewed != 1 {
                break Stopped::LostLease;
            }
            let cancel: i64 =
                sqlx::query("SELECT cancel_requested FROM lethe_bulk_jobs WHERE id = $1")
                    .bind(&job.id)
                    .fetch_one(self.db().pool())
                    .await?
                    .try_get(0)?;
            if cancel != 0 {
                break Stopped::Cancelled;
            }
            let batch = sqlx::query(
                "SELECT seq, user_id FROM lethe_bulk_items WHERE job_id = $1 AND status = $2 ORDER BY seq LIMIT $3",
            )
            .bind(&job.id)
            .bind(PENDING)
            .bind(self.settings().batch_size.max(1) as i64)
            .fetch_all(self.db().pool())
            .await?;
            if batch.is_empty() {
                break Stopped::Done;
            }
            let items: Vec<(i64, String)> = batch
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()?;
            if let Some(why) = self.batch(decider, job, &items, stop).await? {
                break why;
            }
        };
        let now = unix_now();
        match stopped {
            Stopped::Done => {
                sqlx::query(
                    "UPDATE lethe_bulk_jobs SET status = 'completed', finished_at = $3, lease_owner = NULL, \
                     lease_until = NULL WHERE id = $1 AND lease_owner = $2",
                )
                .bind(&job.id)
                .bind(me)
                .bind(now)
                .execute(self.db().pool())
                .await?;
                tracing::info!(job = %job.id, "bulk job completed");
            }
            Stopped::Cancelled => {
                let mut tx = self.db().begin_write().await?;
                let left = cancel_pending(&mut tx, &job.id, now).await?;
                sqlx::query(
                    "UPDATE lethe_bulk_jobs SET status = 'cancelled', finished_at = $3, lease_owner = NULL, \
                     lease_until = NULL WHERE id = $1 AND lease_owner = $2",
                )
                .bind(&job.id)
                .bind(me)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                if let Ok(mut c) = self.inner.cancelled.lock() {
                    c.remove(&job.id);
                }
                tracing::info!(job = %job.id, untouched = left, "bulk job cancelled");
            }
            Stopped::Shutdown => {
                // Hand the job back at once: the next host start resumes it
                // without waiting for the lease.
                sqlx::query(
                    "UPDATE lethe_bulk_jobs SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
                )
                .bind(&job.id)
                .bind(me)
                .execute(self.db().pool())
                .await?;
                tracing::info!(job = %job.id, "bulk job released at shutdown");
            }
            Stopped::LostLease => {
                tracing::warn!(job = %job.id, "bulk job lease lost to another worker");
            }
        }
        Ok(())
    }

    /// One batch: contexts set-based, one policy session, then one
    /// transaction per user. `Some` when the job must stop before the batch
    /// is through.
    async fn batch<D: Decider>(
        &self,
        decider: &D,
        job: &Claimed,
        items: &[(i64, String)],
        stop: &watch::Receiver<bool>,
    ) -> Result<Option<Stopped>, BulkError> {
        let ask = Ask {
            tenant: job.tenant.clone(),
            action: job.action,
            actor: ActorRef::TenantUser(job.actor_id.clone()),
            transfer_to: job.transfer_to.clone(),
            reason: job.reason.clone(),
            now: unix_now(),
        };
        let users: Vec<String> = items.iter().map(|(_, u)| u.clone()).collect();
        // The batch's verdicts. An actor who can no longer act (deactivated
        // since the job started) leaves none: every user's own action then
        // fails with that reason.
        let mut verdicts = HashMap::new();
        match self.executor().contexts(&ask, &users).await {
            Ok(prepared) => {
                let requests: Vec<Request> = prepared
                    .into_iter()
                    .filter_map(|p| p.request.ok())
                    .collect();
                let decided = decider.decide_batch(&job.tenant, &requests).await;
                for (request, verdict) in requests.into_iter().zip(decided) {
                    if let Ok(v) = verdict {
                        verdicts.insert(request.subject.id.clone(), (request, v));
                    }
                }
            }
            Err(e) => tracing::warn!(job = %job.id, error = %e, "batch context unavailable"),
        }
        let batch = Precomputed {
            inner: decider,
            verdicts,
        };
        let asked = Asked {
            actor_id: &job.actor_id,
            transfer_to: job.transfer_to.as_deref(),
            reason: job.reason.as_deref(),
        };
        for (seq, user) in items {
            if *stop.borrow() {
                return Ok(Some(Stopped::Shutdown));
            }
            if self
                .inner
                .cancelled
                .lock()
                .is_ok_and(|c| c.contains(&job.id))
            {
                return Ok(Some(Stopped::Cancelled));
            }
            let done = ItemDone {
                job: &job.id,
                seq: *seq,
                asked: &asked,
                now: ask.now,
            };
            match self
                .executor()
                .act_with(&batch, &ask.input(user), &done)
                .await
            {
                Ok(_) => {}
                Err(ExecError::Superseded(why)) => {
                    tracing::warn!(job = %job.id, seq, %why, "item already handled");
                }
                Err(e) => {
                    let status = match e {
                        ExecError::Lifecycle(_) => "denied",
                        _ => "failed",
                    };
                    tracing::info!(job = %job.id, %user, status, error = %e, "bulk item not applied");
                    sqlx::query(
                        "UPDATE lethe_bulk_items SET status = $3, code = $4, detail = $5, done_at = $6 \
                         WHERE job_id = $1 AND seq = $2 AND status = 'pending'",
                    )
                    .bind(&job.id)
                    .bind(*seq)
                    .bind(status)
                    .bind(e.code().as_str())
                    .bind(e.to_string())
                    .bind(ask.now)
                    .execute(self.db().pool())
                    .await?;
                }
            }
        }
        Ok(None)
    }
}

/// The batch's verdicts, used only for the exact request they were made
/// for; any other request (the user changed since the batch read) is
/// decided afresh by the real decider.
struct Precomputed<'a, D> {
    inner: &'a D,
    verdicts: HashMap<String, (Request, Verdict)>,
}

impl<D: Decider> Decider for Precomputed<'_, D> {
    async fn decide(&self, tenant: &str, request: &Request) -> Result<Verdict, PolicyFault> {
        if let Some((seen, verdict)) = self.verdicts.get(&request.subject.id) {
            if seen == request {
                return Ok(verdict.clone());
            }
            tracing::debug!(user = %request.subject.id, "facts changed since the batch read; deciding afresh");
        }
        self.inner.decide(tenant, request).await
    }
}

/// Moves a job item out of `pending` in its user's action transaction, and
/// queues an escalated user for support there too.
struct ItemDone<'a> {
    job: &'a str,
    seq: i64,
    asked: &'a Asked<'a>,
    now: i64,
}

impl Epilogue for ItemDone<'_> {
    async fn write(
        &self,
        conn: &mut AnyConnection,
        report: &ActionReport,
    ) -> Result<(), ExecError> {
        let (status, code, detail, escalation_id) = match &report.decision.outcome {
            Outcome::Allow { .. } => ("applied", None, None, None),
            Outcome::Escalate { queue, reason } => {
                let id = escalation::insert(conn, report, self.asked, self.now)
                    .await
                    .map_err(|e| ExecError::Corrupt(e.to_string()))?;
                (
                    "escalated",
                    Some(queue.clone()),
                    Some(reason.clone()),
                    Some(id),
                )
            }
            Outcome::Deny { code, message } => {
                ("denied", Some(code.clone()), Some(message.clone()), None)
            }
        };
        let moved = sqlx::query(
            "UPDATE lethe_bulk_items SET status = $3, code = $4, detail = $5, action_id = $6, escalation_id = $7, \
             done_at = $8 WHERE job_id = $1 AND seq = $2 AND status = 'pending'",
        )
        .bind(self.job)
        .bind(self.seq)
        .bind(status)
        .bind(code)
        .bind(detail)
        .bind(&report.action_id)
        .bind(escalation_id)
        .bind(self.now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if moved != 1 {
            return Err(ExecError::Superseded(format!(
                "item {} of job {} is no longer pending",
                self.seq, self.job
            )));
        }
        Ok(())
    }
}
