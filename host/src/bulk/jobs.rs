//! The job store: create a job with its items, read jobs and items, cancel.
//!
//! Counts are always computed from the items (`GROUP BY status`), never
//! kept as counters, so they cannot drift from what was applied.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{unix_millis, unix_now, Bulk, BulkError, PreviewRequest};

/// Item statuses. `pending` until the user's action commits (or fails).
pub(super) const PENDING: &str = "pending";
/// Terminal job statuses.
const TERMINAL: [&str; 2] = ["completed", "cancelled"];
/// Items that did not apply, shown inline in a job view.
const NOT_APPLIED_INLINE: i64 = 100;
/// Item rows per multi-row INSERT (3 bind parameters each).
const INSERT_CHUNK: usize = 300;

/// A bulk job and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub job_id: String,
    pub tenant: String,
    pub preview_id: String,
    pub action: String,
    pub actor_id: String,
    /// queued, running, completed or cancelled.
    pub status: String,
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
    pub fn is_terminal(&self) -> bool {
        TERMINAL.contains(&self.status.as_str())
    }
}

/// One user of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobItem {
    pub seq: i64,
    pub user_id: String,
    /// pending, applied, escalated, denied, failed or cancelled.
    pub status: String,
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

const JOB_COLUMNS: &str =
    "id, tenant_id, preview_id, action, actor_id, status, cancel_requested, total, \
                           created_at, started_at, finished_at";
const ITEM_COLUMNS: &str = "seq, user_id, status, code, detail, action_id, escalation_id";

fn job_from_row(r: &AnyRow) -> Result<Job, BulkError> {
    let total: i64 = r.try_get(7)?;
    let cancel: i64 = r.try_get(6)?;
    Ok(Job {
        job_id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        preview_id: r.try_get(2)?,
        action: r.try_get(3)?,
        actor_id: r.try_get(4)?,
        status: r.try_get(5)?,
        cancel_requested: cancel != 0,
        total: total.max(0) as u64,
        done: 0,
        pending: 0,
        applied: 0,
        escalated: 0,
        denied: 0,
        failed: 0,
        cancelled: 0,
        created_at: r.try_get(8)?,
        started_at: r.try_get(9)?,
        finished_at: r.try_get(10)?,
        not_applied: Vec::new(),
        not_applied_truncated: false,
    })
}

fn item_from_row(r: &AnyRow) -> Result<JobItem, BulkError> {
    Ok(JobItem {
        seq: r.try_get(0)?,
        user_id: r.try_get(1)?,
        status: r.try_get(2)?,
        code: r.try_get(3)?,
        detail: r.try_get(4)?,
        action_id: r.try_get(5)?,
        escalation_id: r.try_get(6)?,
    })
}

impl Bulk {
    /// Mark the preview used and write the job and its items, atomically:
    /// a preview runs one job at most, even when executed twice at once.
    pub(super) async fn create_job(
        &self,
        tenant: &str,
        preview_id: &str,
        req: &PreviewRequest,
        users: &[String],
        now: i64,
    ) -> Result<Job, BulkError> {
        let job_id = format!("job-{}", hex::encode(rand::random::<[u8; 12]>()));
        let mut tx = self.db().begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE lethe_bulk_previews SET job_id = $1 WHERE id = $2 AND tenant_id = $3 AND job_id IS NULL",
        )
        .bind(&job_id)
        .bind(preview_id)
        .bind(tenant)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != 1 {
            let row = sqlx::query("SELECT job_id FROM lethe_bulk_previews WHERE id = $1")
                .bind(preview_id)
                .fetch_optional(&mut *tx)
                .await?;
            let job_id: Option<String> = match row {
                Some(r) => r.try_get(0)?,
                None => None,
            };
            return Err(match job_id {
                Some(job_id) => BulkError::Used { job_id },
                None => BulkError::NotFound,
            });
        }
        // With no user to act on there is nothing to wait for.
        let status = if users.is_empty() {
            "completed"
        } else {
            "queued"
        };
        sqlx::query(
            "INSERT INTO lethe_bulk_jobs (id, tenant_id, preview_id, action, actor_id, transfer_to, reason, status, \
             total, cancel_requested, created_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)",
        )
        .bind(&job_id)
        .bind(tenant)
        .bind(preview_id)
        .bind(req.action.as_str())
        .bind(&req.actor_id)
        .bind(req.transfer_to.clone())
        .bind(req.reason.clone())
        .bind(status)
        .bind(users.len() as i64)
        .bind(now)
        .bind(users.is_empty().then_some(now))
        .execute(&mut *tx)
        .await?;
        for (c, chunk) in users.chunks(INSERT_CHUNK).enumerate() {
            let mut sql =
                String::from("INSERT INTO lethe_bulk_items (job_id, seq, user_id, status) VALUES ");
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, ${}, ${}, 'pending')", 2 * i + 2, 2 * i + 3))
                .collect();
            sql.push_str(&values.join(", "));
            let mut q = sqlx::query(&sql).bind(&job_id);
            for (i, user) in chunk.iter().enumerate() {
                q = q.bind((c * INSERT_CHUNK + i + 1) as i64).bind(user.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        tracing::info!(job = %job_id, %tenant, total = users.len(), "bulk job queued");
        self.job(tenant, &job_id).await
    }

    /// One job of the tenant with its counts and the users that did not
    /// apply; another tenant's job is [`BulkError::NotFound`].
    pub async fn job(&self, tenant: &str, job_id: &str) -> Result<Job, BulkError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM lethe_bulk_jobs WHERE id = $1 AND tenant_id = $2"
        ))
        .bind(job_id)
        .bind(tenant)
        .fetch_optional(self.db().pool())
        .await?
        .ok_or(BulkError::NotFound)?;
        let mut job = job_from_row(&row)?;
        self.count(&mut job).await?;
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM lethe_bulk_items \
             WHERE job_id = $1 AND status IN ('escalated', 'denied', 'failed') ORDER BY seq LIMIT $2"
        ))
        .bind(job_id)
        .bind(NOT_APPLIED_INLINE + 1)
        .fetch_all(self.db().pool())
        .await?;
        job.not_applied_truncated = rows.len() as i64 > NOT_APPLIED_INLINE;
        job.not_applied = rows
            .iter()
            .take(NOT_APPLIED_INLINE as usize)
            .map(item_from_row)
            .collect::<Result<_, _>>()?;
        Ok(job)
    }

    /// Fill a job's counts from its items.
    async fn count(&self, job: &mut Job) -> Result<(), BulkError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) FROM lethe_bulk_items WHERE job_id = $1 GROUP BY status",
        )
        .bind(&job.job_id)
        .fetch_all(self.db().pool())
        .await?;
        for r in rows {
            let status: String = r.try_get(0)?;
            let n = r.try_get::<i64, _>(1)?.max(0) as u64;
            match status.as_str() {
                PENDING => job.pending = n,
                "applied" => job.applied = n,
                "escalated" => job.escalated = n,
                "denied" => job.denied = n,
                "failed" => job.failed = n,
                "cancelled" => job.cancelled = n,
                other => return Err(BulkError::Corrupt(format!("item status `{other}`"))),
            }
        }
        job.done = job.applied + job.escalated + job.denied + job.failed + job.cancelled;
        Ok(())
    }

    /// The tenant's jobs, newest first, with counts (without item lists).
    pub async fn jobs(
        &self,
        tenant: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<JobPage, BulkError> {
        let limit = i64::from(limit.clamp(1, 200));
        let (before_at, before_id) = match cursor {
            Some(c) => decode_job_cursor(c)?,
            None => (i64::MAX, String::new()),
        };
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM lethe_bulk_jobs WHERE tenant_id = $1 \
             AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(tenant)
        .bind(before_at)
        .bind(&before_id)
        .bind(limit + 1)
        .fetch_all(self.db().pool())
        .await?;
        let more = rows.len() as i64 > limit;
        let mut jobs = Vec::new();
        for r in rows.iter().take(limit as usize) {
            let mut job = job_from_row(r)?;
            self.count(&mut job).await?;
            jobs.push(job);
        }
        let next_cursor = match jobs.last() {
            Some(j) if more => Some(hex::encode(format!("{}:{}", j.created_at, j.job_id))),
            _ => None,
        };
        Ok(JobPage { jobs, next_cursor })
    }

    /// A job's items in order, optionally of one status.
    pub async fn items(
        &self,
        tenant: &str,
        job_id: &str,
        status: Option<&str>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<ItemPage, BulkError> {
        // The job must be the tenant's: items carry no tenant of their own.
        self.job_row_exists(tenant, job_id).await?;
        let limit = i64::from(limit.clamp(1, 1000));
        let after: i64 = match cursor {
            Some(c) => c
                .parse()
                .map_err(|_| BulkError::InvalidSelection("invalid cursor".into()))?,
            None => 0,
        };
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM lethe_bulk_items WHERE job_id = $1 AND seq > $2 \
             AND ($3 IS NULL OR status = $3) ORDER BY seq LIMIT $4"
        ))
        .bind(job_id)
        .bind(after)
        .bind(status.map(str::to_owned))
        .bind(limit + 1)
        .fetch_all(self.db().pool())
        .await?;
        let more = rows.len() as i64 > limit;
        let items: Vec<JobItem> = rows
            .iter()
            .take(limit as usize)
            .map(item_from_row)
            .collect::<Result<_, _>>()?;
        let next_cursor = match items.last() {
            Some(i) if more => Some(i.seq.to_string()),
            _ => None,
        };
        Ok(ItemPage { items, next_cursor })
    }

    async fn job_row_exists(&self, tenant: &str, job_id: &str) -> Result<(), BulkError> {
        sqlx::query("SELECT id FROM lethe_bulk_jobs WHERE id = $1 AND tenant_id = $2")
            .bind(job_id)
            .bind(tenant)
            .fetch_optional(self.db().pool())
            .await?
            .map(|_| ())
            .ok_or(BulkError::NotFound)
    }

    /// Ask a job to stop. A queued job nobody holds is cancelled at once;
    /// a running one stops before its next user (this host) or batch
    /// (another host). Users already done stay done.
    pub async fn cancel(&self, tenant: &str, job_id: &str) -> Result<Job, BulkError> {
        let job = self.job(tenant, job_id).await?;
        if job.is_terminal() {
            return Err(BulkError::Finished { status: job.status });
        }
        let mut tx = self.db().begin_write().await?;
        sqlx::query(
            "UPDATE lethe_bulk_jobs SET cancel_requested = 1 WHERE id = $1 AND tenant_id = $2",
        )
        .bind(job_id)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        let now = unix_now();
        let idle = sqlx::query(
            "UPDATE lethe_bulk_jobs SET status = 'cancelled', finished_at = $2 \
             WHERE id = $1 AND status = 'queued' AND (lease_until IS NULL OR lease_until < $3)",
        )
        .bind(job_id)
        .bind(now)
        .bind(unix_millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if idle == 1 {
            cancel_pending(&mut tx, job_id, now).await?;
        }
        tx.commit().await?;
        self.inner
            .cancelled
            .lock()
            .map(|mut c| c.insert(job_id.to_owned()))
            .ok();
        tracing::info!(job = %job_id, %tenant, "bulk job cancel requested");
        self.job(tenant, job_id).await
    }
}

/// Mark every pending item of a job cancelled.
pub(super) async fn cancel_pending(
    conn: &mut sqlx::AnyConnection,
    job_id: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE lethe_bulk_items SET status = 'cancelled', code = 'cancelled', detail = 'the job was cancelled', \
         done_at = $2 WHERE job_id = $1 AND status = 'pending'",
    )
    .bind(job_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

fn decode_job_cursor(c: &str) -> Result<(i64, String), BulkError> {
    let bad = || BulkError::InvalidSelection("invalid cursor".into());
    let bytes = hex::decode(c).map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = s.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}
