//! Every statement against the deployment tables (`lethe_tenants`,
//! `lethe_policy_*`, `lethe_replica*`). Nothing else in the crate writes
//! them.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::gate::GateReport;
use super::replay::ReplayReport;
use super::shadow::{Disagreement, ShadowCounts};
use super::{
    Activation, ActivationKind, DeployError, PolicyVersion, ReplicaStatus, Tenant, VersionStatus,
};
use crate::db::{Db, DbError, RowLock};

fn corrupt(what: &str, e: impl std::fmt::Display) -> DeployError {
    DeployError::Corrupt(format!("{what}: {e}"))
}

pub(super) async fn insert_tenant(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO lethe_tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(name)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

const TENANT_SELECT: &str = "SELECT t.id, t.name, t.created_at, a.version FROM lethe_tenants t \
     LEFT JOIN lethe_policy_active a ON a.tenant_id = t.id";

fn tenant_of(r: &AnyRow) -> Result<Tenant, DbError> {
    Ok(Tenant {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        created_at: r.try_get(2)?,
        active_version: r.try_get(3)?,
    })
}

pub(super) async fn tenants(db: &Db) -> Result<Vec<Tenant>, DbError> {
    let rows = sqlx::query(&format!("{TENANT_SELECT} ORDER BY t.id"))
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(tenant_of).collect()
}

/// The tenant, locked against concurrent activations on PostgreSQL (SQLite
/// writers are serialised by `BEGIN IMMEDIATE`).
pub(super) async fn tenant(
    conn: &mut AnyConnection,
    db: &Db,
    id: &str,
    lock: RowLock,
) -> Result<Option<Tenant>, DbError> {
    let lock = db.backend().row_lock_of(lock, "t");
    let row = sqlx::query(&format!("{TENANT_SELECT} WHERE t.id = $1{lock}"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(tenant_of).transpose()
}

/// Takes the tenant's row lock for the rest of the transaction and then
/// reads the tenant as it is now. The lock is its own statement because
/// PostgreSQL's `SELECT … FOR UPDATE OF t` under READ COMMITTED returns the
/// joined `lethe_policy_active` row from the snapshot taken before it waited
/// for the lock: a racer's activation committed meanwhile would be missed.
/// The read that follows is a new statement, so it sees every transaction
/// that held the lock before this one. On SQLite `BEGIN IMMEDIATE` already
/// serialised the writers and the lock statement is a plain read.
pub(super) async fn lock_tenant(
    conn: &mut AnyConnection,
    db: &Db,
    id: &str,
) -> Result<Option<Tenant>, DbError> {
    let lock = db.backend().row_lock(RowLock::Update);
    let found = sqlx::query(&format!("SELECT id FROM lethe_tenants WHERE id = $1{lock}"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if found.is_none() {
        return Ok(None);
    }
    tenant(conn, db, id, RowLock::None).await
}

/// Stores the bytes once per sha256.
pub(super) async fn insert_blob(
    conn: &mut AnyConnection,
    sha256: &str,
    bytes: &[u8],
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO lethe_policy_blobs (sha256, size_bytes, bytes) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(sha256)
    .bind(bytes.len() as i64)
    .bind(bytes.to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn blob(db: &Db, sha256: &str) -> Result<Option<Vec<u8>>, DbError> {
    let row = sqlx::query("SELECT bytes FROM lethe_policy_blobs WHERE sha256 = $1")
        .bind(sha256)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

pub(super) async fn next_version(conn: &mut AnyConnection, tenant: &str) -> Result<i64, DbError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM lethe_policy_versions WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}

pub(super) async fn insert_version(
    conn: &mut AnyConnection,
    v: &PolicyVersion,
) -> Result<(), DeployError> {
    let report = serde_json::to_string(&v.report).map_err(|e| corrupt("report", e))?;
    let describe = v
        .policy
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| corrupt("describe", e))?;
    sqlx::query(
        "INSERT INTO lethe_policy_versions (tenant_id, version, sha256, status, contract_version, describe_json, \
         size_bytes, uploaded_by, message, report_json, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&v.tenant)
    .bind(v.version)
    .bind(&v.sha256)
    .bind(v.status.as_str())
    .bind(v.contract_version.clone())
    .bind(describe)
    .bind(v.size_bytes)
    .bind(&v.uploaded_by)
    .bind(v.message.clone())
    .bind(report)
    .bind(v.created_at)
    .execute(&mut *conn)
    .await
    .map_err(DbError::from)?;
    Ok(())
}

const VERSION_SELECT: &str =
    "SELECT tenant_id, version, sha256, status, contract_version, describe_json, \
     size_bytes, uploaded_by, message, report_json, created_at FROM lethe_policy_versions";

fn version_of(r: &AnyRow) -> Result<PolicyVersion, DeployError> {
    let status: String = r.try_get(3).map_err(DbError::from)?;
    let describe: Option<String> = r.try_get(5).map_err(DbError::from)?;
    let report: String = r.try_get(9).map_err(DbError::from)?;
    Ok(PolicyVersion {
        tenant: r.try_get(0).map_err(DbError::from)?,
        version: r.try_get(1).map_err(DbError::from)?,
        sha256: r.try_get(2).map_err(DbError::from)?,
        status: VersionStatus::parse(&status).ok_or_else(|| corrupt("version status", &status))?,
        contract_version: r.try_get(4).map_err(DbError::from)?,
        policy: describe
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(|e| corrupt("describe", e))?,
        size_bytes: r.try_get(6).map_err(DbError::from)?,
        uploaded_by: r.try_get(7).map_err(DbError::from)?,
        message: r.try_get(8).map_err(DbError::from)?,
        report: serde_json::from_str::<GateReport>(&report).map_err(|e| corrupt("report", e))?,
        created_at: r.try_get(10).map_err(DbError::from)?,
    })
}

pub(super) async fn versions(db: &Db, tenant: &str) -> Result<Vec<PolicyVersion>, DeployError> {
    let rows = sqlx::query(&format!(
        "{VERSION_SELECT} WHERE tenant_id = $1 ORDER BY version DESC"
    ))
    .bind(tenant)
    .fetch_all(db.pool())
    .await
    .map_err(DbError::from)?;
    rows.iter().map(version_of).collect()
}

pub(super) async fn version(
    conn: &mut AnyConnection,
    tenant: &str,
    version: i64,
) -> Result<Option<PolicyVersion>, DeployError> {
    let row = sqlx::query(&format!(
        "{VERSION_SELECT} WHERE tenant_id = $1 AND version = $2"
    ))
    .bind(tenant)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await
    .map_err(DbError::from)?;
    row.as_ref().map(version_of).transpose()
}

/// The tenant's accepted version with these bytes, if one was uploaded.
pub(super) async fn version_with_sha(
    conn: &mut AnyConnection,
    tenant: &str,
    sha256: &str,
) -> Result<Option<PolicyVersion>, DeployError> {
    let row = sqlx::query(&format!(
        "{VERSION_SELECT} WHERE tenant_id = $1 AND sha256 = $2 AND status = 'accepted' ORDER BY version DESC LIMIT 1"
    ))
    .bind(tenant)
    .bind(sha256)
    .fetch_optional(&mut *conn)
    .await
    .map_err(DbError::from)?;
    row.as_ref().map(version_of).transpose()
}

pub(super) async fn set_active(conn: &mut AnyConnection, a: &Activation) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO lethe_policy_active (tenant_id, version, activated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET version = excluded.version, activated_at = excluded.activated_at",
    )
    .bind(&a.tenant)
    .bind(a.to_version)
    .bind(a.at)
    .execute(&mut *conn)
    .await?;
    // The caller holds the tenant's row lock (or SQLite's write lock), so
    // the next number is this activation's alone.
    sqlx::query(
        "INSERT INTO lethe_policy_activations (id, tenant_id, seq, from_version, to_version, kind, activated_by, reason, at) \
         SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6, $7, $8 FROM lethe_policy_activations WHERE tenant_id = $2",
    )
    .bind(&a.id)
    .bind(&a.tenant)
    .bind(a.from_version)
    .bind(a.to_version)
    .bind(a.kind.as_str())
    .bind(&a.activated_by)
    .bind(a.reason.clone())
    .bind(a.at)
    .execute(&mut *conn)
    .await?;
    bump_generation(conn).await
}

/// Tells every replica that the active set changed (see `tenancy::sync`).
pub(super) async fn bump_generation(conn: &mut AnyConnection) -> Result<(), DbError> {
    sqlx::query("UPDATE lethe_policy_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn activations(
    db: &Db,
    tenant: &str,
    limit: i64,
) -> Result<Vec<Activation>, DeployError> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, from_version, to_version, kind, activated_by, reason, at \
         FROM lethe_policy_activations WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .map_err(DbError::from)?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get(4).map_err(DbError::from)?;
            Ok(Activation {
                id: r.try_get(0).map_err(DbError::from)?,
                tenant: r.try_get(1).map_err(DbError::from)?,
                from_version: r.try_get(2).map_err(DbError::from)?,
                to_version: r.try_get(3).map_err(DbError::from)?,
                kind: ActivationKind::parse(&kind)
                    .ok_or_else(|| corrupt("activation kind", &kind))?,
                activated_by: r.try_get(5).map_err(DbError::from)?,
                reason: r.try_get(6).map_err(DbError::from)?,
                at: r.try_get(7).map_err(DbError::from)?,
            })
        })
        .collect()
}

/// The version that was active before the current one (what a rollback
/// without a version returns to).
pub(super) async fn previous_active(
    conn: &mut AnyConnection,
    tenant: &str,
) -> Result<Option<i64>, DbError> {
    let row = sqlx::query(
        "SELECT from_version FROM lethe_policy_activations WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(r) => r.try_get(0)?,
        None => None,
    })
}

/// Replicas seen within `fresh_ms`, with what each serves of `tenant`.
pub(super) async fn replicas(
    db: &Db,
    tenant: &str,
    seen_since_ms: i64,
) -> Result<Vec<ReplicaStatus>, DbError> {
    let rows = sqlx::query(
        "SELECT r.replica_id, r.started_at, r.seen_at, p.version, p.wanted, p.error, p.at \
         FROM lethe_replicas r LEFT JOIN lethe_replica_policies p \
         ON p.replica_id = r.replica_id AND p.tenant_id = $1 \
         WHERE r.seen_at >= $2 ORDER BY r.replica_id",
    )
    .bind(tenant)
    .bind(seen_since_ms)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ReplicaStatus {
                replica: r.try_get(0)?,
                started_at: r.try_get(1)?,
                seen_at: r.try_get(2)?,
                serving: r.try_get(3)?,
                wanted: r.try_get(4)?,
                error: r.try_get(5)?,
                loaded_at: r.try_get(6)?,
            })
        })
        .collect()
}

/// The counter [`bump_generation`] moves.
pub async fn generation(db: &Db) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT generation FROM lethe_policy_generation WHERE id = 1")
            .fetch_one(db.pool())
            .await?,
    )
}

/// Every tenant, with its active version and that version's sha256.
pub async fn active_set(db: &Db) -> Result<Vec<(String, Option<(i64, String)>)>, DbError> {
    let rows = sqlx::query(
        "SELECT t.id, a.version, v.sha256 FROM lethe_tenants t \
         LEFT JOIN lethe_policy_active a ON a.tenant_id = t.id \
         LEFT JOIN lethe_policy_versions v ON v.tenant_id = a.tenant_id AND v.version = a.version \
         ORDER BY t.id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let version: Option<i64> = r.try_get(1)?;
            let sha: Option<String> = r.try_get(2)?;
            Ok((r.try_get(0)?, version.zip(sha)))
        })
        .collect()
}

/// This replica is alive (`seen_at`, unix ms).
pub async fn heartbeat(
    db: &Db,
    replica: &str,
    started_at: i64,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO lethe_replicas (replica_id, started_at, seen_at) VALUES ($1, $2, $3) \
         ON CONFLICT (replica_id) DO UPDATE SET seen_at = excluded.seen_at",
    )
    .bind(replica)
    .bind(started_at)
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// What this replica serves for `tenant` after trying to load `wanted`:
/// `serving` is `wanted` on success, the previous version (or none) on
/// failure, with the error.
pub async fn record_load(
    db: &Db,
    replica: &str,
    tenant: &str,
    serving: Option<i64>,
    wanted: i64,
    error: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO lethe_replica_policies (replica_id, tenant_id, version, wanted, error, at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (replica_id, tenant_id) DO UPDATE SET \
         version = excluded.version, wanted = excluded.wanted, error = excluded.error, at = excluded.at",
    )
    .bind(replica)
    .bind(tenant)
    .bind(serving)
    .bind(wanted)
    .bind(error.map(str::to_owned))
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn tenant_exists(db: &Db, id: &str) -> Result<bool, DbError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lethe_tenants WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await?;
    Ok(n > 0)
}

pub(super) async fn insert_replay(db: &Db, r: &ReplayReport) -> Result<(), DeployError> {
    let report = serde_json::to_string(r).map_err(|e| corrupt("replay report", e))?;
    sqlx::query(
        "INSERT INTO lethe_policy_replays (id, tenant_id, version, created_by, created_at, report_json) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&r.id)
    .bind(&r.tenant)
    .bind(r.version)
    .bind(&r.created_by)
    .bind(r.created_at)
    .bind(report)
    .execute(db.pool())
    .await
    .map_err(DbError::from)?;
    Ok(())
}

/// A tenant's replay reports, newest first (`id` narrows to one).
pub(super) async fn replays(
    db: &Db,
    tenant: &str,
    id: Option<&str>,
) -> Result<Vec<ReplayReport>, DeployError> {
    let rows = sqlx::query(
        "SELECT report_json FROM lethe_policy_replays WHERE tenant_id = $1 AND ($2 IS NULL OR id = $2) \
         ORDER BY created_at DESC, id DESC LIMIT 100",
    )
    .bind(tenant)
    .bind(id.map(str::to_owned))
    .fetch_all(db.pool())
    .await
    .map_err(DbError::from)?;
    rows.iter()
        .map(|r| {
            let text: String = r.try_get(0).map_err(DbError::from)?;
            serde_json::from_str(&text).map_err(|e| corrupt("replay report", e))
        })
        .collect()
}

/// Every tenant's shadow version and its sha256.
pub async fn shadow_set(db: &Db) -> Result<Vec<(String, i64, String)>, DbError> {
    let rows = sqlx::query(
        "SELECT s.tenant_id, s.version, v.sha256 FROM lethe_policy_shadow s \
         JOIN lethe_policy_versions v ON v.tenant_id = s.tenant_id AND v.version = s.version",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

pub(super) async fn set_shadow(
    conn: &mut AnyConnection,
    tenant: &str,
    version: Option<i64>,
    by: &str,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM lethe_policy_shadow WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    if let Some(version) = version {
        sqlx::query(
            "INSERT INTO lethe_policy_shadow (tenant_id, version, started_at, started_by) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant)
        .bind(version)
        .bind(now)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    }
    bump_generation(conn).await
}

/// The tenant's shadow: its version, who started it and when.
pub(super) async fn shadow(db: &Db, tenant: &str) -> Result<Option<(i64, i64, String)>, DbError> {
    let row = sqlx::query(
        "SELECT version, started_at, started_by FROM lethe_policy_shadow WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .transpose()
}

/// What every replica counted for `tenant`'s shadow `version`.
pub(super) async fn shadow_counts(
    db: &Db,
    tenant: &str,
    version: i64,
) -> Result<ShadowCounts, DbError> {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(evaluated), 0) AS BIGINT), CAST(COALESCE(SUM(agreed), 0) AS BIGINT), \
         CAST(COALESCE(SUM(disagreed), 0) AS BIGINT), CAST(COALESCE(SUM(faults), 0) AS BIGINT), \
         CAST(COALESCE(SUM(dropped), 0) AS BIGINT) \
         FROM lethe_shadow_counts WHERE tenant_id = $1 AND version = $2",
    )
    .bind(tenant)
    .bind(version)
    .fetch_one(db.pool())
    .await?;
    Ok(ShadowCounts {
        evaluated: r.try_get(0)?,
        agreed: r.try_get(1)?,
        disagreed: r.try_get(2)?,
        faults: r.try_get(3)?,
        dropped: r.try_get(4)?,
    })
}

/// This replica's counts, replacing what it flushed before.
pub async fn flush_shadow_counts(
    db: &Db,
    replica: &str,
    tenant: &str,
    version: i64,
    c: &ShadowCounts,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO lethe_shadow_counts (replica_id, tenant_id, version, evaluated, agreed, disagreed, faults, dropped, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (replica_id, tenant_id, version) DO UPDATE SET \
         evaluated = excluded.evaluated, agreed = excluded.agreed, disagreed = excluded.disagreed, \
         faults = excluded.faults, dropped = excluded.dropped, at = excluded.at",
    )
    .bind(replica)
    .bind(tenant)
    .bind(version)
    .bind(c.evaluated)
    .bind(c.agreed)
    .bind(c.disagreed)
    .bind(c.faults)
    .bind(c.dropped)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn insert_disagreement(db: &Db, d: &Disagreement) -> Result<(), DeployError> {
    let json = |v: &serde_json::Value| v.to_string();
    sqlx::query(
        "INSERT INTO lethe_shadow_disagreements (id, tenant_id, version, live_version, subject_id, action, \
         request_json, live_json, shadow_json, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&d.id)
    .bind(&d.tenant)
    .bind(d.version)
    .bind(d.live_version)
    .bind(&d.subject)
    .bind(&d.action)
    .bind(json(&d.request))
    .bind(json(&d.live))
    .bind(json(&d.shadow))
    .bind(d.at)
    .execute(db.pool())
    .await
    .map_err(DbError::from)?;
    Ok(())
}

pub(super) async fn disagreements(
    db: &Db,
    tenant: &str,
    version: i64,
    limit: i64,
) -> Result<Vec<Disagreement>, DeployError> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, version, live_version, subject_id, action, request_json, live_json, shadow_json, at \
         FROM lethe_shadow_disagreements WHERE tenant_id = $1 AND version = $2 ORDER BY at DESC, id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(version)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .map_err(DbError::from)?;
    let json = |s: String| serde_json::from_str(&s).map_err(|e| corrupt("shadow disagreement", e));
    rows.into_iter()
        .map(|r| {
            Ok(Disagreement {
                id: r.try_get(0).map_err(DbError::from)?,
                tenant: r.try_get(1).map_err(DbError::from)?,
                version: r.try_get(2).map_err(DbError::from)?,
                live_version: r.try_get(3).map_err(DbError::from)?,
                subject: r.try_get(4).map_err(DbError::from)?,
                action: r.try_get(5).map_err(DbError::from)?,
                request: json(r.try_get(6).map_err(DbError::from)?)?,
                live: json(r.try_get(7).map_err(DbError::from)?)?,
                shadow: json(r.try_get(8).map_err(DbError::from)?)?,
                at: r.try_get(9).map_err(DbError::from)?,
            })
        })
        .collect()
}
