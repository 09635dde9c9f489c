//! Deploying tenants' policies: tenants, immutable policy versions that
//! pass a validation gate ([`gate`]), and activation, switched in one
//! transaction and served by every replica (`crate::tenancy` follows it).
//! A rollback is an activation of an earlier version.
//!
//! `lethe.toml`'s `[[tenant]]` entries are a bootstrap ([`Deployments::bootstrap`]):
//! a component file not yet uploaded for its tenant is imported as a new
//! version and activated, so existing configs keep working and a changed
//! file still deploys on restart, while an unchanged one leaves whatever
//! an operator activated since.

pub mod gate;
pub mod replay;
pub mod shadow;
pub mod store;
pub mod verify;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::TenantConfig;
use crate::db::{Db, DbError, RowLock};
use crate::error_code::ErrorCode;
use crate::evidence::RecordWindow;
use crate::policy::Runtime;
use gate::GateReport;
use replay::{ReplayOf, ReplayReport};
use verify::VerifyReport;

/// A tenant of the platform.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// The value of `tenant_id` in the platform's tables.
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// The version its decisions are made by; none until one is activated.
    pub active_version: Option<i64>,
}

/// Whether a version passed the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionStatus {
    /// Passed every check; may be activated.
    Accepted,
    /// Failed a check or a case; kept so the operator sees why, never
    /// activated.
    Rejected,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Accepted => "accepted",
            VersionStatus::Rejected => "rejected",
        }
    }
    fn parse(s: &str) -> Option<VersionStatus> {
        match s {
            "accepted" => Some(VersionStatus::Accepted),
            "rejected" => Some(VersionStatus::Rejected),
            _ => None,
        }
    }
}

/// One immutable upload of a tenant's component.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyVersion {
    pub tenant: String,
    /// 1, 2, 3… per tenant.
    pub version: i64,
    /// Of the component bytes: what decision records name.
    pub sha256: String,
    pub status: VersionStatus,
    /// The contract version it implements (none when the gate stopped
    /// before it could tell).
    pub contract_version: Option<String>,
    /// What `describe()` answered.
    pub policy: Option<crate::contract::PolicyInfo>,
    pub size_bytes: i64,
    /// The operator key (or `lethe.toml`) that uploaded it.
    pub uploaded_by: String,
    pub message: Option<String>,
    pub report: GateReport,
    pub created_at: i64,
}

/// How an activation came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActivationKind {
    Activate,
    Rollback,
    /// Imported from `lethe.toml` at start.
    Bootstrap,
}

impl ActivationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationKind::Activate => "activate",
            ActivationKind::Rollback => "rollback",
            ActivationKind::Bootstrap => "bootstrap",
        }
    }
    fn parse(s: &str) -> Option<ActivationKind> {
        match s {
            "activate" => Some(ActivationKind::Activate),
            "rollback" => Some(ActivationKind::Rollback),
            "bootstrap" => Some(ActivationKind::Bootstrap),
            _ => None,
        }
    }
}

/// One switch of a tenant's active version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Activation {
    pub id: String,
    pub tenant: String,
    pub from_version: Option<i64>,
    pub to_version: i64,
    pub kind: ActivationKind,
    pub activated_by: String,
    pub reason: Option<String>,
    pub at: i64,
}

/// What one running replica serves of a tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReplicaStatus {
    pub replica: String,
    pub started_at: i64,
    /// Last heartbeat, unix milliseconds.
    pub seen_at: i64,
    /// The version it decides with; none when it has not loaded one yet
    /// (tenants load on first use) or has none that loads.
    pub serving: Option<i64>,
    /// The version it last tried to load.
    pub wanted: Option<i64>,
    /// Why `wanted` did not load, when it did not.
    pub error: Option<String>,
    pub loaded_at: Option<i64>,
}

/// A tenant's deployment at a glance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyStatus {
    pub tenant: String,
    pub active: Option<PolicyVersion>,
    /// Newest first, at most 100.
    pub activations: Vec<Activation>,
    /// Replicas seen in the last [`REPLICA_FRESH_MS`].
    pub replicas: Vec<ReplicaStatus>,
}

/// A replica that has not sent a heartbeat for this long is not reported.
pub const REPLICA_FRESH_MS: i64 = 15_000;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("tenant id `{0}` is invalid: 1 to 64 characters of letters, digits, `-`, `_` or `.`")]
    InvalidTenantId(String),
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
    #[error("no such tenant")]
    NoTenant,
    #[error("tenant has no version {0}")]
    NoVersion(i64),
    /// The upload failed the gate; it is stored as rejected.
    #[error("the component failed validation: {}", .0.report.failures().join("; "))]
    Rejected(Box<PolicyVersion>),
    #[error("version {0} was rejected at upload and can never be activated")]
    VersionRejected(i64),
    #[error("version {0} is already active")]
    AlreadyActive(i64),
    #[error("there is no earlier activation to roll back to")]
    NothingToRollBack,
    #[error("no such replay report")]
    NoReplay,
    #[error("the tenant has no shadow version")]
    NoShadow,
    #[error("cannot read the component {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the policy runtime failed: {0}")]
    Runtime(String),
    #[error("corrupt deployment record: {0}")]
    Corrupt(String),
}

impl DeployError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DeployError::InvalidTenantId(_) => ErrorCode::InvalidInput,
            DeployError::TenantExists(_) => ErrorCode::TenantExists,
            DeployError::NoTenant
            | DeployError::NoVersion(_)
            | DeployError::NoReplay
            | DeployError::NoShadow => ErrorCode::NotFound,
            DeployError::Rejected(_) => ErrorCode::PolicyRejected,
            DeployError::VersionRejected(_) => ErrorCode::VersionRejected,
            DeployError::AlreadyActive(_) => ErrorCode::AlreadyActive,
            DeployError::NothingToRollBack => ErrorCode::NothingToRollBack,
            DeployError::Db(_)
            | DeployError::Read { .. }
            | DeployError::Runtime(_)
            | DeployError::Corrupt(_) => ErrorCode::Internal,
        }
    }
}

/// An upload, as the operator gave it.
pub struct Upload<'a> {
    pub tenant: &'a str,
    pub component: &'a [u8],
    /// A cases file (TOML); every case must pass.
    pub cases: Option<&'a str>,
    pub message: Option<&'a str>,
    pub uploaded_by: &'a str,
}

/// An activation, as asked.
pub struct Activate<'a> {
    pub tenant: &'a str,
    /// For a rollback, `None` means the version active before this one.
    pub version: Option<i64>,
    pub kind: ActivationKind,
    pub by: &'a str,
    pub reason: Option<&'a str>,
}

/// Tenants, versions and activations over one database.
#[derive(Clone)]
pub struct Deployments {
    db: Db,
    runtime: Runtime,
}

/// Concurrent uploads for one tenant race for the next number; the loser
/// retries this many times.
const UPLOAD_ATTEMPTS: usize = 5;

impl Deployments {
    pub fn new(db: Db, runtime: Runtime) -> Deployments {
        Deployments { db, runtime }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    #[tracing::instrument(name = "deploy.create_tenant", skip(self, name))]
    pub async fn create_tenant(
        &self,
        id: &str,
        name: &str,
        now: i64,
    ) -> Result<Tenant, DeployError> {
        check_tenant_id(id)?;
        let mut tx = self.db.begin_write().await?;
        if !store::insert_tenant(&mut tx, id, name, now).await? {
            return Err(DeployError::TenantExists(id.to_owned()));
        }
        store::bump_generation(&mut tx).await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(Tenant {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: now,
            active_version: None,
        })
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, DeployError> {
        Ok(store::tenants(&self.db).await?)
    }

    pub async fn tenant(&self, id: &str) -> Result<Tenant, DeployError> {
        let mut conn = self.db.pool().acquire().await.map_err(DbError::from)?;
        store::tenant(&mut conn, &self.db, id, RowLock::None)
            .await?
            .ok_or(DeployError::NoTenant)
    }

    /// Runs the gate and stores the version, accepted or rejected. A
    /// rejected one comes back as [`DeployError::Rejected`], stored.
    #[tracing::instrument(name = "deploy.upload", skip_all, fields(tenant = u.tenant, size = u.component.len()))]
    pub async fn upload(&self, u: Upload<'_>, now: i64) -> Result<PolicyVersion, DeployError> {
        self.tenant(u.tenant).await?;
        let mut version = self.gate(&u, now).await?;
        self.store_version(&mut version, u.component).await?;
        tracing::info!(version = version.version, status = version.status.as_str(), sha256 = %&version.sha256[..12], "policy version stored");
        match version.status {
            VersionStatus::Accepted => Ok(version),
            VersionStatus::Rejected => Err(DeployError::Rejected(Box::new(version))),
        }
    }

    /// Runs the validation gate on an upload (off the async threads) and
    /// describes the version it would be, not yet numbered (`version` 0)
    /// nor stored.
    async fn gate(&self, u: &Upload<'_>, now: i64) -> Result<PolicyVersion, DeployError> {
        let runtime = self.runtime.clone();
        let wasm = u.component.to_vec();
        let cases = u.cases.map(str::to_owned);
        let (report, admitted) = tokio::task::spawn_blocking(move || {
            let (report, admitted) = gate::run(&runtime, &wasm, cases.as_deref());
            (
                report,
                admitted.map(|a| (a.info, a.policy.contract_version())),
            )
        })
        .await
        .map_err(|e| DeployError::Runtime(format!("validation task failed: {e}")))?;
        let status = if admitted.is_some() {
            VersionStatus::Accepted
        } else {
            VersionStatus::Rejected
        };
        let (policy, contract_version) = match admitted {
            Some((info, version)) => (Some(info), Some(version.as_str().to_owned())),
            None => (None, None),
        };
        Ok(PolicyVersion {
            tenant: u.tenant.to_owned(),
            version: 0,
            sha256: hex::encode(Sha256::digest(u.component)),
            status,
            contract_version,
            policy,
            size_bytes: u.component.len() as i64,
            uploaded_by: u.uploaded_by.to_owned(),
            message: u.message.map(str::to_owned),
            report,
            created_at: now,
        })
    }

    /// Numbers the version and stores it with its bytes, retrying when a
    /// concurrent upload took the number.
    async fn store_version(&self, v: &mut PolicyVersion, wasm: &[u8]) -> Result<(), DeployError> {
        let mut last = None;
        for _ in 0..UPLOAD_ATTEMPTS {
            let mut tx = self.db.begin_write().await?;
            // Uploads and bootstrap imports of a tenant take turns on its
            // row lock (SQLite: the write lock), so the next number is
            // free; the primary key would still refuse a duplicate.
            store::lock_tenant(&mut tx, &self.db, &v.tenant)
                .await?
                .ok_or(DeployError::NoTenant)?;
            v.version = store::next_version(&mut tx, &v.tenant).await?;
            store::insert_blob(&mut tx, &v.sha256, wasm).await?;
            match store::insert_version(&mut tx, v).await {
                Ok(()) => {
                    tx.commit().await.map_err(DbError::from)?;
                    return Ok(());
                }
                Err(DeployError::Db(e)) if e.is_unique_violation() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.map_or_else(
            || DeployError::Corrupt("no upload attempt ran".into()),
            DeployError::Db,
        ))
    }

    pub async fn versions(&self, tenant: &str) -> Result<Vec<PolicyVersion>, DeployError> {
        self.tenant(tenant).await?;
        store::versions(&self.db, tenant).await
    }

    pub async fn version(&self, tenant: &str, version: i64) -> Result<PolicyVersion, DeployError> {
        let mut conn = self.db.pool().acquire().await.map_err(DbError::from)?;
        store::version(&mut conn, tenant, version)
            .await?
            .ok_or(DeployError::NoVersion(version))
    }

    /// Switches the tenant's active version in one transaction, recording
    /// who, when, from which version and why, and tells every replica.
    #[tracing::instrument(name = "deploy.activate", skip_all, fields(tenant = a.tenant, version = a.version, kind = a.kind.as_str()))]
    pub async fn activate(&self, a: Activate<'_>, now: i64) -> Result<Activation, DeployError> {
        let mut tx = self.db.begin_write().await?;
        let tenant = store::lock_tenant(&mut tx, &self.db, a.tenant)
            .await?
            .ok_or(DeployError::NoTenant)?;
        let to = match (a.version, a.kind) {
            (Some(v), _) => v,
            (None, ActivationKind::Rollback) => store::previous_active(&mut tx, a.tenant)
                .await?
                .ok_or(DeployError::NothingToRollBack)?,
            (None, _) => return Err(DeployError::NoVersion(0)),
        };
        let version = store::version(&mut tx, a.tenant, to)
            .await?
            .ok_or(DeployError::NoVersion(to))?;
        if version.status == VersionStatus::Rejected {
            return Err(DeployError::VersionRejected(to));
        }
        if tenant.active_version == Some(to) {
            return Err(DeployError::AlreadyActive(to));
        }
        let activation = switch(&mut tx, &tenant, &version, &a, now).await?;
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(from = ?activation.from_version, to, "policy version activated");
        Ok(activation)
    }

    pub async fn status(&self, tenant: &str, now_ms: i64) -> Result<PolicyStatus, DeployError> {
        let t = self.tenant(tenant).await?;
        let active = match t.active_version {
            Some(v) => Some(self.version(tenant, v).await?),
            None => None,
        };
        Ok(PolicyStatus {
            tenant: t.id,
            active,
            activations: store::activations(&self.db, tenant, 100).await?,
            replicas: store::replicas(&self.db, tenant, now_ms - REPLICA_FRESH_MS).await?,
        })
    }

    /// Imports `lethe.toml`'s tenants: each is created if new, and its
    /// component uploaded and activated unless this tenant already has an
    /// accepted version with these bytes. A component that fails the gate
    /// stops the start, as a broken config always has.
    ///
    /// Replicas starting together on one database all run this at once, and
    /// the outcome is the same as one replica's: the import of a tenant
    /// ([`Deployments::import`]) is one transaction under the tenant's row
    /// lock that reuses a version with these bytes when a racer stored it
    /// first, and leaves a tenant alone once it has an active version.
    #[tracing::instrument(name = "deploy.bootstrap", skip_all, fields(tenants = tenants.len()))]
    pub async fn bootstrap(&self, tenants: &[TenantConfig], now: i64) -> Result<(), DeployError> {
        for t in tenants {
            check_tenant_id(&t.id)?;
            let wasm = std::fs::read(&t.policy).map_err(|source| DeployError::Read {
                path: t.policy.display().to_string(),
                source,
            })?;
            let sha = hex::encode(Sha256::digest(&wasm));
            let mut tx = self.db.begin_write().await?;
            if store::insert_tenant(&mut tx, &t.id, &t.id, now).await? {
                store::bump_generation(&mut tx).await?;
            }
            let known = store::version_with_sha(&mut tx, &t.id, &sha).await?;
            let active = store::tenant(&mut tx, &self.db, &t.id, RowLock::None)
                .await?
                .and_then(|t| t.active_version);
            tx.commit().await.map_err(DbError::from)?;
            if let (Some(v), Some(_)) = (&known, active) {
                tracing::debug!(tenant = %t.id, version = v.version, "lethe.toml component already deployed");
                continue;
            }
            // Gate the bytes only when no accepted version has them (a
            // racer may store one meanwhile; the import then reuses it).
            let candidate = match known {
                Some(_) => None,
                None => {
                    let message = format!("imported from {}", t.policy.display());
                    let upload = Upload {
                        tenant: &t.id,
                        component: &wasm,
                        cases: None,
                        message: Some(&message),
                        uploaded_by: "lethe.toml",
                    };
                    let mut v = self.gate(&upload, now).await?;
                    if v.status == VersionStatus::Rejected {
                        self.store_version(&mut v, &wasm).await?;
                        tracing::info!(tenant = %t.id, version = v.version, sha256 = %&v.sha256[..12], "lethe.toml component rejected");
                        return Err(DeployError::Rejected(Box::new(v)));
                    }
                    Some(v)
                }
            };
            self.import(&t.id, &sha, candidate, &wasm, now).await?;
        }
        Ok(())
    }

    /// One tenant's bootstrap import, in one transaction under the tenant's
    /// row lock (SQLite: the database write lock), so concurrent imports
    /// take turns and each sees what the one before it committed: the
    /// accepted version with `sha` is reused if there is one, otherwise
    /// `candidate` (gated, accepted) is stored as the next version; then it
    /// is activated when the tenant has no active version yet or when the
    /// version is new (the component in `lethe.toml` changed). An existing
    /// version never displaces what an operator activated since.
    async fn import(
        &self,
        tenant: &str,
        sha: &str,
        candidate: Option<PolicyVersion>,
        wasm: &[u8],
        now: i64,
    ) -> Result<(), DeployError> {
        let mut tx = self.db.begin_write().await?;
        let current = store::lock_tenant(&mut tx, &self.db, tenant)
            .await?
            .ok_or(DeployError::NoTenant)?;
        let (version, new) = match store::version_with_sha(&mut tx, tenant, sha).await? {
            Some(v) => (v, false),
            None => {
                let mut v = candidate.ok_or_else(|| {
                    DeployError::Corrupt(format!(
                        "tenant {tenant}'s version with sha256 {sha} is gone"
                    ))
                })?;
                // The row lock makes this number ours: every writer of the
                // tenant's versions (uploads too) holds it or, on SQLite,
                // the database write lock.
                v.version = store::next_version(&mut tx, tenant).await?;
                store::insert_blob(&mut tx, &v.sha256, wasm).await?;
                store::insert_version(&mut tx, &v).await?;
                (v, true)
            }
        };
        let activate = match current.active_version {
            Some(active) if active == version.version => None,
            Some(_) if new => Some("the component in lethe.toml changed"),
            Some(_) => None,
            None => Some("imported from lethe.toml"),
        };
        let activation = match activate {
            Some(reason) => {
                let a = Activate {
                    tenant,
                    version: Some(version.version),
                    kind: ActivationKind::Bootstrap,
                    by: "lethe.toml",
                    reason: Some(reason),
                };
                Some(switch(&mut tx, &current, &version, &a, now).await?)
            }
            None => None,
        };
        tx.commit().await.map_err(DbError::from)?;
        if new {
            tracing::info!(tenant, version = version.version, sha256 = %&sha[..12.min(sha.len())], "lethe.toml component stored");
        }
        match activation {
            Some(a) => {
                tracing::info!(tenant, from = ?a.from_version, to = a.to_version, "lethe.toml component activated")
            }
            None => {
                tracing::debug!(
                    tenant,
                    version = version.version,
                    "lethe.toml component already deployed"
                )
            }
        }
        Ok(())
    }
}

/// Makes `version` the tenant's active one inside `tx`, which holds the
/// tenant's row lock (`tenant` read under it): the activation recorded with
/// who, when, from which version and why, and its event.
async fn switch(
    tx: &mut sqlx::AnyConnection,
    tenant: &Tenant,
    version: &PolicyVersion,
    a: &Activate<'_>,
    now: i64,
) -> Result<Activation, DeployError> {
    let activation = Activation {
        id: format!("act-{}", hex::encode(rand::random::<[u8; 8]>())),
        tenant: tenant.id.clone(),
        from_version: tenant.active_version,
        to_version: version.version,
        kind: a.kind,
        activated_by: a.by.to_owned(),
        reason: a.reason.map(str::to_owned),
        at: now,
    };
    store::set_active(tx, &activation).await?;
    let event = crate::events::Event::policy_activated(&activation, &version.sha256)
        .map_err(DbError::from)?;
    crate::events::record(tx, &event)
        .await
        .map_err(DbError::from)?;
    Ok(activation)
}

/// A replay, as asked.
pub struct Replay<'a> {
    pub tenant: &'a str,
    pub version: i64,
    pub window: RecordWindow,
    pub by: &'a str,
}

impl Deployments {
    /// Re-runs the tenant's recorded requests (`window`) on `version` and
    /// keeps the report. Writes nothing else: no decision record, no
    /// change.
    #[tracing::instrument(name = "deploy.replay", skip_all, fields(tenant = r.tenant, version = r.version))]
    pub async fn replay(&self, r: Replay<'_>, now: i64) -> Result<ReplayReport, DeployError> {
        let candidate = self.version(r.tenant, r.version).await?;
        if candidate.status == VersionStatus::Rejected {
            return Err(DeployError::VersionRejected(r.version));
        }
        let records =
            crate::evidence::stored_decisions(&self.db, r.tenant, r.window, replay::MAX_REPLAY)
                .await?;
        let bytes = store::blob(&self.db, &candidate.sha256)
            .await?
            .ok_or_else(|| DeployError::Corrupt(format!("no component {}", candidate.sha256)))?;
        let runtime = self.runtime.clone();
        let of = ReplayOf {
            id: format!("rep-{}", hex::encode(rand::random::<[u8; 8]>())),
            tenant: r.tenant.to_owned(),
            version: r.version,
            created_by: r.by.to_owned(),
            created_at: now,
            window: r.window,
        };
        let report = tokio::task::spawn_blocking(move || {
            let policy = runtime
                .load(&bytes)
                .map_err(|e| DeployError::Runtime(e.to_string()))?;
            Ok::<_, DeployError>(replay::run(of, &policy, &records))
        })
        .await
        .map_err(|e| DeployError::Runtime(format!("replay task failed: {e}")))??;
        store::insert_replay(&self.db, &report).await?;
        tracing::info!(
            requests = report.requests,
            changed = report.changed,
            faults = report.faults,
            per_second = report.per_second as u64,
            "replayed"
        );
        Ok(report)
    }

    pub async fn replays(&self, tenant: &str) -> Result<Vec<ReplayReport>, DeployError> {
        self.tenant(tenant).await?;
        store::replays(&self.db, tenant, None).await
    }

    pub async fn replay_report(&self, tenant: &str, id: &str) -> Result<ReplayReport, DeployError> {
        store::replays(&self.db, tenant, Some(id))
            .await?
            .pop()
            .ok_or(DeployError::NoReplay)
    }

    /// Re-decides every record of `tenant` since `since` with the component
    /// that made it (see [`verify`]).
    #[tracing::instrument(name = "deploy.verify", skip(self))]
    pub async fn verify(
        &self,
        tenant: &str,
        since: Option<i64>,
    ) -> Result<VerifyReport, DeployError> {
        let window = RecordWindow {
            last: None,
            since,
            until: None,
        };
        let records = crate::evidence::stored_decisions(&self.db, tenant, window, u32::MAX).await?;
        let mut shas: Vec<&str> = records.iter().map(|r| r.policy_sha256.as_str()).collect();
        shas.sort_unstable();
        shas.dedup();
        let mut blobs = std::collections::HashMap::new();
        for sha in shas {
            if let Some(bytes) = store::blob(&self.db, sha).await? {
                blobs.insert(sha.to_owned(), bytes);
            }
        }
        let runtime = self.runtime.clone();
        let tenant = tenant.to_owned();
        tokio::task::spawn_blocking(move || {
            verify::verify(&runtime, &tenant, window, &records, |sha| {
                blobs.get(sha).cloned()
            })
        })
        .await
        .map_err(|e| DeployError::Runtime(format!("verify task failed: {e}")))
    }
}

fn check_tenant_id(id: &str) -> Result<(), DeployError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DeployError::InvalidTenantId(id.to_owned()))
    }
}
