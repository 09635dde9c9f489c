//! Bulk actions: one action over many users of a tenant, previewed,
//! confirmed by count, and executed by a durable, resumable job.
//!
//! ```text
//! selection (filter | user ids)
//!   → preview: matched users, set-based contexts, one policy session,
//!     outcomes and effects counted; no user changes          (preview.rs)
//!   → execute {confirm_count}: re-evaluate, refuse a stale preview or a
//!     wrong count, write the job and one item per user        (preview.rs)
//!   → worker: batches of pending items, contexts read set-based, decided
//!     in one policy session, then one transaction per user that also
//!     moves the item out of `pending`                         (worker.rs)
//!   → job views, item lists, progress events, cancel         (jobs.rs)
//! ```
//!
//! Every statement on the `lethe_bulk_*` tables is in `store.rs`; every
//! job status, item status and outcome name is an enum of `status.rs`.
//!
//! The invariant that makes jobs durable: an item leaves `pending` in the
//! same transaction as its user's action. A host killed mid-job leaves every
//! user either fully applied (item done) or untouched (item pending); the
//! next worker to take the job over (after its lease lapses) carries on
//! with the pending items. A second worker racing on the same item finds it
//! no longer pending and rolls its own action back.
//!
//! This module knows the executor, the directory and the escalation queue;
//! it knows nothing of HTTP (the API translates) or of WebAssembly (it asks
//! a [`Decider`](crate::executor::Decider)).

mod jobs;
mod preview;
mod status;
mod store;
mod worker;

use crate::clock::{unix_millis, unix_now};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::contract::{Action, LifecycleState};
use crate::db::DbError;
use crate::directory::{Directory, DirectoryError, UserFilter};
use crate::executor::{ExecError, Executor};

pub use jobs::{ItemPage, Job, JobItem, JobPage};
pub use status::{ItemStatus, JobStatus, OutcomeKind, UnknownStatus};
pub use worker::run_worker;

/// Operator settings (`[bulk]` in `lethe.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BulkSettings {
    /// Users per worker batch: one set-based context read and one policy
    /// session per batch; the lease is renewed and cancellation checked
    /// between batches.
    pub batch_size: usize,
    /// How long a worker holds a job without renewing; a killed host's jobs
    /// are taken over after this.
    pub lease_secs: u64,
    /// How long a preview may be executed after it was made.
    pub preview_ttl_secs: i64,
    /// Largest explicit `user_ids` list and largest job.
    pub max_users: usize,
    /// How often an idle worker looks for jobs queued by other hosts.
    pub poll_ms: u64,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            batch_size: 100,
            lease_secs: 30,
            preview_ttl_secs: 900,
            max_users: 100_000,
            poll_ms: 1_000,
        }
    }
}

/// The users a bulk action is about: a filter, or an explicit list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// active, locked, deactivated, deleted or erased.
    pub state: Option<String>,
    /// Users holding this role.
    pub role: Option<String>,
    /// Case-insensitive substring of the display name or email.
    pub q: Option<String>,
    pub domain: Option<String>,
    /// Last login strictly before this unix time (never-logged-in included).
    pub last_login_before: Option<i64>,
    /// Deleted at or after this unix time.
    pub deleted_after: Option<i64>,
    /// Deleted strictly before this unix time.
    pub deleted_before: Option<i64>,
}

/// `POST /v1/tenants/{t}/bulk/preview`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"action": "delete", "actor_id": "t2-u1", "filter": {"state": "deactivated"}}))]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub action: Action,
    /// The tenant user asking (must be active).
    #[schema(example = "t2-u1")]
    pub actor_id: String,
    /// Select by filter…
    pub filter: Option<BulkFilter>,
    /// …or by id (exactly one of the two).
    pub user_ids: Option<Vec<String>>,
    pub transfer_to: Option<String>,
    pub reason: Option<String>,
}

impl PreviewRequest {
    /// The directory filter of this selection, checked.
    fn user_filter(f: &BulkFilter) -> Result<UserFilter, BulkError> {
        let state = f
            .state
            .as_deref()
            .map(|s| {
                s.parse()
                    .map_err(|_| BulkError::InvalidSelection(format!("unknown state `{s}`")))
            })
            .transpose()?;
        Ok(UserFilter {
            state,
            role: f.role.clone(),
            q: f.q.clone(),
            domain: f.domain.clone(),
            last_login_before: f.last_login_before,
            deleted_after: f.deleted_after,
            deleted_before: f.deleted_before,
            limit: None,
            cursor: None,
        })
    }
}

/// Users per outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutcomeCounts {
    /// Self-service: the execute applies these (`confirm_count`).
    pub allow: u64,
    /// Sent to a queue; the execute queues them for support.
    pub escalate: u64,
    /// Refused by the policy, or impossible from the user's state.
    pub deny: u64,
    /// The policy could not decide, or its plan was refused.
    pub fault: u64,
}

/// How many users got one outcome for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReasonCount {
    pub outcome: OutcomeKind,
    /// The policy's deny code, the escalation queue, or the host's code
    /// (`invalid-transition`, `policy-fault`…).
    pub code: String,
    pub count: u64,
}

/// Rows per category and disposition the allowed users own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EffectEstimate {
    pub category: String,
    pub disposition: String,
    pub rows: u64,
}

/// One matched user and what the policy said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SampleUser {
    pub user_id: String,
    pub display_name: Option<String>,
    pub state: LifecycleState,
    pub roles: Vec<String>,
    pub last_login_at: Option<i64>,
    pub outcome: OutcomeKind,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// What executing a selection would do. Making one changes no user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preview {
    pub preview_id: String,
    pub tenant: String,
    pub action: Action,
    pub actor_id: String,
    /// Users of the tenant the selection matched.
    pub matched: u64,
    /// What `confirm_count` must be: the users the execute would apply.
    pub confirm_count: u64,
    pub outcomes: OutcomeCounts,
    pub reasons: Vec<ReasonCount>,
    pub effects: Vec<EffectEstimate>,
    /// Ids given that are not users of this tenant (never acted on).
    pub unknown_user_ids: Vec<String>,
    /// The first matched users, in key order.
    pub sample: Vec<SampleUser>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// `POST /v1/tenants/{t}/bulk/{preview}/execute`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// The number of users the preview would apply to, typed by the admin.
    pub confirm_count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("invalid selection: {0}")]
    InvalidSelection(String),
    #[error("not found")]
    NotFound,
    /// A page cursor this server did not hand out.
    #[error("invalid cursor")]
    BadCursor,
    #[error("the preview expired at {expires_at}; preview again")]
    Expired { expires_at: i64 },
    #[error("the preview was already executed as job `{job_id}`")]
    Used { job_id: String },
    #[error("confirm_count is {got}, but the preview applies to {expected} users")]
    Mismatch { expected: u64, got: u64 },
    #[error("the matched users or their outcomes changed since the preview")]
    Stale(Box<Preview>),
    #[error("the job is already {status}")]
    Finished { status: JobStatus },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("corrupt bulk record: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for BulkError {
    fn from(e: sqlx::Error) -> Self {
        BulkError::Db(DbError::Sql(e))
    }
}

/// Bulk previews, jobs and their worker, over one executor. Cheap to clone.
#[derive(Clone)]
pub struct Bulk {
    inner: Arc<Inner>,
}

struct Inner {
    executor: Executor,
    directory: Directory,
    store: store::Store,
    settings: BulkSettings,
    /// Wakes this host's worker when a job is queued here.
    wake: Notify,
    /// Jobs cancelled through this host: its worker stops before the next
    /// user instead of the next batch.
    cancelled: Mutex<HashSet<String>>,
}

impl Bulk {
    pub fn new(executor: Executor, settings: BulkSettings) -> Bulk {
        let directory = Directory::new(executor.platform().clone());
        Bulk {
            inner: Arc::new(Inner {
                store: store::Store::new(executor.db().clone()),
                executor,
                directory,
                settings,
                wake: Notify::new(),
                cancelled: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub fn settings(&self) -> &BulkSettings {
        &self.inner.settings
    }

    fn executor(&self) -> &Executor {
        &self.inner.executor
    }

    fn store(&self) -> &store::Store {
        &self.inner.store
    }
}
