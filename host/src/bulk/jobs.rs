//! Jobs as the API and the CLI see them: the JSON views, and the reads
//! and the cancel behind them (the SQL is in [`super::store`]).
//!
//! Statuses are [`JobStatus`] and [`ItemStatus`]; their JSON spelling is
//! their SQL spelling.

use serde::{Deserialize, Serialize};

use crate::contract::Action;

use super::status::{ItemStatus, JobStatus};
use super::{unix_millis, unix_now, Bulk, BulkError};

/// A bulk job and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub job_id: String,
    pub tenant: String,
    pub preview_id: String,
    pub action: Action,
    pub actor_id: String,
    /// queued, running, completed or cancelled.
    pub status: JobStatus,
    pub cancel_requested: bool,
    pub total: u64,
    /// applied + escalated + denied + failed + cancelled.
    pub done: u64,
    pub pending: u64,
    pub applied: u64,
    /// Queued for support; see the escalation queue.
    pub escalated: u64,
    pub denied: u64,
    pub failed: u64,
    /// Left untouched because the job was cancelled.
    pub cancelled: u64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Users that did not apply (escalated, denied, failed), with the
    /// reason, in job order; the first 100 (all of them: the items list).
    pub not_applied: Vec<JobItem>,
    pub not_applied_truncated: bool,
}

impl Job {
    /// No worker touches the job again (completed or cancelled).
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

/// One user of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobItem {
    pub seq: i64,
    pub user_id: String,
    /// pending, applied, escalated, denied, failed or cancelled.
    pub status: ItemStatus,
    /// The deny code, escalation queue, or failure code.
    pub code: Option<String>,
    pub detail: Option<String>,
    /// The action's id (its audit and decision records), when one ran.
    pub action_id: Option<String>,
    pub escalation_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemPage {
    pub items: Vec<JobItem>,
    pub next_cursor: Option<String>,
}

impl Bulk {
    /// One job of the tenant with its counts and the users that did not
    /// apply; another tenant's job is [`BulkError::NotFound`].
    pub async fn job(&self, tenant: &str, job_id: &str) -> Result<Job, BulkError> {
        self.store().job(tenant, job_id).await
    }

    /// The tenant's jobs, newest first, with counts (without item lists).
    pub async fn jobs(
        &self,
        tenant: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<JobPage, BulkError> {
        self.store().jobs(tenant, limit, cursor).await
    }

    /// A job's items in order, optionally of one status.
    pub async fn items(
        &self,
        tenant: &str,
        job_id: &str,
        status: Option<ItemStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ItemPage, BulkError> {
        self.store()
            .items(tenant, job_id, status, limit, cursor)
            .await
    }

    /// Ask a job to stop. A queued job nobody holds is cancelled at once;
    /// a running one stops before its next user (this host) or batch
    /// (another host). Users already done stay done.
    pub async fn cancel(&self, tenant: &str, job_id: &str) -> Result<Job, BulkError> {
        let status = self.job(tenant, job_id).await?.status;
        if status.is_terminal() {
            return Err(BulkError::Finished { status });
        }
        self.store()
            .request_cancel(tenant, job_id, unix_now(), unix_millis())
            .await?;
        self.inner
            .cancelled
            .lock()
            .map(|mut c| c.insert(job_id.to_owned()))
            .ok();
        tracing::info!(job = %job_id, %tenant, "bulk job cancel requested");
        self.job(tenant, job_id).await
    }
}
