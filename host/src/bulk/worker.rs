//! The bulk worker: takes a job, works its pending items in batches, one
//! transaction per batch.
//!
//! A batch's users are locked, decided and applied in one transaction by
//! [`Executor::act_batch`](crate::executor::Executor::act_batch), and its
//! items leave `pending` in that transaction ([`BatchDone`]): a killed host
//! leaves the whole batch applied or the whole batch pending. When a batch
//! cannot be applied that way (a restore, a transfer to one of its own
//! users) or its transaction fails, it is worked one transaction per user:
//!
//! Per user: the users' contexts are read set-based
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

use sqlx::AnyConnection;
use tokio::sync::watch;

use super::status::{ItemStatus, JobStatus};
use super::store::{self, ClaimedJob as Claimed, Lease, Store};
use super::{unix_millis, unix_now, Bulk, BulkError};
use crate::contract::{Outcome, Request};
use crate::escalation::{self, Asked};
use crate::executor::{
    ActionReport, ActorRef, Ask, BatchEpilogue, Batched, Decider, Epilogue, ExecError, PolicyFault,
    Verdict,
};

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
        let job = self
            .store()
            .claim_job(me, self.lease_until(), unix_now(), unix_millis())
            .await?;
        if let Some(job) = &job {
            tracing::info!(job = %job.id, tenant = %job.tenant, worker = %me, "bulk job claimed");
        }
        Ok(job)
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
        // Every item up to `after` has left `pending` (a batch moves all of
        // its items out, or the job stops here), so the next read starts
        // after it. When nothing is pending after it, one read from the
        // start confirms the job is through.
        let mut after = 0;
        let stopped = loop {
            if *stop.borrow() {
                break Stopped::Shutdown;
            }
            // Renew the lease, and learn whether a cancel was asked for
            // (possibly through another host).
            match self
                .store()
                .renew_lease(&job.id, me, self.lease_until())
                .await?
            {
                Lease::Lost => break Stopped::LostLease,
                Lease::Held {
                    cancel_requested: true,
                } => break Stopped::Cancelled,
                Lease::Held { .. } => {}
            }
            let size = self.settings().batch_size;
            let mut items = self.store().pending_items(&job.id, after, size).await?;
            if items.is_empty() && after > 0 {
                after = 0;
                items = self.store().pending_items(&job.id, after, size).await?;
            }
            let Some(&(last, _)) = items.last() else {
                break Stopped::Done;
            };
            if let Some(why) = self.batch(decider, job, &items, stop).await? {
                break why;
            }
            after = last;
        };
        let now = unix_now();
        match stopped {
            Stopped::Done => {
                self.store().complete_job(&job.id, me, now).await?;
                crate::telemetry::bulk_job_finished(JobStatus::Completed.as_str());
                tracing::info!(job = %job.id, "bulk job completed");
            }
            Stopped::Cancelled => {
                let left = self.store().cancel_job(&job.id, me, now).await?;
                crate::telemetry::bulk_job_finished(JobStatus::Cancelled.as_str());
                if let Ok(mut c) = self.inner.cancelled.lock() {
                    c.remove(&job.id);
                }
                tracing::info!(job = %job.id, untouched = left, "bulk job cancelled");
            }
            Stopped::Shutdown => {
                // Hand the job back at once: the next host start resumes it
                // without waiting for the lease.
                self.store().release_job(&job.id, me).await?;
                tracing::info!(job = %job.id, "bulk job released at shutdown");
            }
            Stopped::LostLease => {
                tracing::warn!(job = %job.id, "bulk job lease lost to another worker");
            }
        }
        Ok(())
    }

    /// One batch: all its users in one transaction
    /// ([`Executor::act_batch`](crate::executor::Executor::act_batch)), or,
    /// when that cannot be done or fails, one transaction per user. `Some`
    /// when the job must stop before the batch is through.
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
        let asked = Asked {
            actor_id: &job.actor_id,
            transfer_to: job.transfer_to.as_deref(),
            reason: job.reason.as_deref(),
        };
        let done = BatchDone {
            job: &job.id,
            seqs: items.iter().map(|(seq, u)| (u.as_str(), *seq)).collect(),
            asked: &asked,
            now: ask.now,
        };
        match self
            .executor()
            .act_batch(decider, &ask, &users, &done)
            .await
        {
            Ok(Batched::Done { reports, refused }) => {
                for r in &reports {
                    crate::telemetry::bulk_item_done(item_status(r).as_str());
                }
                for (_, e) in &refused {
                    crate::telemetry::bulk_item_done(refusal_status(e).as_str());
                }
                return Ok(None);
            }
            Ok(Batched::PerUser(why)) => {
                tracing::debug!(job = %job.id, why, "batch applied one user at a time");
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "batch rolled back; applying its users one at a time");
            }
        }
        self.batch_per_user(decider, job, &ask, items, stop).await
    }

    /// One batch, one transaction per user: contexts set-based, one policy
    /// session, then each user through the executor like a single action.
    async fn batch_per_user<D: Decider>(
        &self,
        decider: &D,
        job: &Claimed,
        ask: &Ask,
        items: &[(i64, String)],
        stop: &watch::Receiver<bool>,
    ) -> Result<Option<Stopped>, BulkError> {
        let users: Vec<String> = items.iter().map(|(_, u)| u.clone()).collect();
        // The batch's verdicts. An actor who can no longer act (deactivated
        // since the job started) leaves none: every user's own action then
        // fails with that reason.
        let mut verdicts = HashMap::new();
        match self.executor().contexts(ask, &users).await {
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
                Ok(report) => {
                    crate::telemetry::bulk_item_done(item_status(&report).as_str());
                }
                Err(ExecError::Superseded(why)) => {
                    tracing::warn!(job = %job.id, seq, %why, "item already handled");
                }
                Err(e) => {
                    let status = refusal_status(&e);
                    tracing::info!(job = %job.id, %user, %status, error = %e, "bulk item not applied");
                    self.store()
                        .mark_item_failed(&job.id, *seq, status, e.code(), &e.to_string(), ask.now)
                        .await?;
                    crate::telemetry::bulk_item_done(status.as_str());
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
        let escalation_id = match &report.decision.outcome {
            Outcome::Escalate { .. } => {
                Some(escalation::insert(conn, report, self.asked, self.now).await?)
            }
            _ => None,
        };
        let done = match &report.decision.outcome {
            Outcome::Allow { .. } => store::ItemOutcome {
                status: ItemStatus::Applied,
                code: None,
                detail: None,
                action_id: &report.action_id,
                escalation_id: None,
            },
            Outcome::Escalate { queue, reason } => store::ItemOutcome {
                status: ItemStatus::Escalated,
                code: Some(queue.as_str()),
                detail: Some(reason.as_str()),
                action_id: &report.action_id,
                escalation_id: escalation_id.as_deref(),
            },
            Outcome::Deny { code, message } => store::ItemOutcome {
                status: ItemStatus::Denied,
                code: Some(code.as_str()),
                detail: Some(message.as_str()),
                action_id: &report.action_id,
                escalation_id: None,
            },
        };
        let moved = Store::mark_item_done(conn, self.job, self.seq, &done, self.now)
            .await
            .map_err(|e| ExecError::Db(crate::db::DbError::Sql(e)))?;
        if !moved {
            return Err(ExecError::Superseded(format!(
                "item {} of job {} is no longer pending",
                self.seq, self.job
            )));
        }
        Ok(())
    }
}

/// The status of an item whose user was decided.
fn item_status(report: &ActionReport) -> ItemStatus {
    match report.decision.outcome {
        Outcome::Allow { .. } => ItemStatus::Applied,
        Outcome::Escalate { .. } => ItemStatus::Escalated,
        Outcome::Deny { .. } => ItemStatus::Denied,
    }
}

/// The status of an item whose action could not happen: the state machine
/// refusing it is a denial, anything else a failure.
fn refusal_status(e: &ExecError) -> ItemStatus {
    match e {
        ExecError::Lifecycle(_) => ItemStatus::Denied,
        _ => ItemStatus::Failed,
    }
}

/// Moves every item of a batch out of `pending` in the batch's transaction,
/// and queues its escalated users for support there too.
struct BatchDone<'a> {
    job: &'a str,
    seqs: HashMap<&'a str, i64>,
    asked: &'a Asked<'a>,
    now: i64,
}

impl BatchEpilogue for BatchDone<'_> {
    async fn write(
        &self,
        conn: &mut AnyConnection,
        reports: &[ActionReport],
        refused: &[(String, ExecError)],
    ) -> Result<(), ExecError> {
        let seq = |user: &str| {
            self.seqs.get(user).copied().ok_or_else(|| {
                ExecError::Corrupt(format!("user {user} is not an item of job {}", self.job))
            })
        };
        let mut items = Vec::with_capacity(reports.len() + refused.len());
        for r in reports {
            let (code, detail, escalation_id) = match &r.decision.outcome {
                Outcome::Allow { .. } => (None, None, None),
                Outcome::Escalate { queue, reason } => (
                    Some(queue.clone()),
                    Some(reason.clone()),
                    Some(escalation::insert(conn, r, self.asked, self.now).await?),
                ),
                Outcome::Deny { code, message } => {
                    (Some(code.clone()), Some(message.clone()), None)
                }
            };
            items.push(store::BatchItem {
                seq: seq(&r.subject)?,
                status: item_status(r),
                code,
                detail,
                action_id: Some(r.action_id.clone()),
                escalation_id,
            });
        }
        for (user, e) in refused {
            tracing::info!(job = %self.job, %user, error = %e, "bulk item not applied");
            items.push(store::BatchItem {
                seq: seq(user)?,
                status: refusal_status(e),
                code: Some(e.code().as_str().to_owned()),
                detail: Some(e.to_string()),
                action_id: None,
                escalation_id: None,
            });
        }
        let moved = Store::mark_items_done(conn, self.job, &items, self.now)
            .await
            .map_err(|e| ExecError::Db(crate::db::DbError::Sql(e)))?;
        if moved != items.len() as u64 {
            return Err(ExecError::Superseded(format!(
                "{} of {} items of job {} are no longer pending",
                items.len() as u64 - moved,
                items.len(),
                self.job
            )));
        }
        Ok(())
    }
}
