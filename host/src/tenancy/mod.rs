//! Which policy version decides for which tenant on this replica, and the
//! bridge from the executor's [`Decider`] boundary to the WebAssembly
//! runtime.
//!
//! The executor knows nothing of WebAssembly and the runtime knows nothing
//! of SQL; this module is the one place that knows both exist.
//!
//! A server follows the database ([`TenantPolicies::from_database`]): each
//! tenant has a *slot* for its active version, loaded on first use (so a
//! thousand tenants are ready at once) and shared by every tenant that
//! deployed the same bytes. [`sync`] swaps a slot when an operator activates
//! another version: a decision holds the `Policy` it started with, so
//! in-flight decisions finish on their version and the next ones use the
//! new one. Tools and tests use fixed policies ([`TenantPolicies::single`],
//! [`TenantPolicies::load`]).

mod shadow;
pub mod sync;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::config::TenantConfig;
use crate::contract::{Decision, Request};
use crate::db::Db;
use crate::executor::{Decider, PolicyFault, Verdict};
use crate::policy::{LoadError, Policy, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("tenant `{tenant}`: cannot load policy {}: {source}", path.display())]
    Load {
        tenant: String,
        path: std::path::PathBuf,
        source: LoadError,
    },
    #[error("tenant `{0}` is configured twice")]
    Duplicate(String),
    #[error("reading the active policy versions: {0}")]
    Db(#[from] crate::db::DbError),
}

/// Every tenant's policy on this replica. Cheap to clone.
#[derive(Clone)]
pub struct TenantPolicies {
    inner: Arc<Registry>,
}

struct Registry {
    /// Where versions come from; `None` for fixed policies.
    store: Option<Store>,
    /// Every known tenant; `None` until it has an active version.
    tenants: RwLock<HashMap<String, Option<Arc<Slot>>>>,
    /// Loaded components by sha256, shared between tenants.
    by_sha: Mutex<HashMap<String, Policy>>,
    /// One [`sync::sync`] at a time, so an older read of the active set
    /// never replaces a newer one.
    syncing: tokio::sync::Mutex<()>,
    /// Tenants with a shadow version, and the queue their live decisions
    /// are offered to (none for fixed policies).
    shadows: RwLock<HashMap<String, Arc<shadow::ShadowSlot>>>,
    shadowing: Option<shadow::Shadowing>,
}

#[derive(Clone)]
struct Store {
    db: Db,
    runtime: Runtime,
    /// This replica's id in `lethe_replicas`.
    replica: String,
}

impl Store {
    /// The stored component with this sha256, loaded (from the compile
    /// cache when it has it). The bytes must hash to the sha256 the version
    /// names, or they are not used.
    async fn load(&self, sha256: &str) -> Result<Policy, String> {
        let bytes = crate::deploy::store::blob(&self.db, sha256)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no component with sha256 {sha256} is stored"))?;
        let runtime = self.runtime.clone();
        let policy = tokio::task::spawn_blocking(move || runtime.load(&bytes))
            .await
            .map_err(|e| format!("load task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        if policy.sha256() != sha256 {
            return Err(format!(
                "the stored component hashes to {}, not {sha256}: it was altered",
                policy.sha256()
            ));
        }
        Ok(policy)
    }
}

/// A tenant's active version on this replica.
struct Slot {
    tenant: String,
    /// `None` for a fixed policy (not from the database).
    version: Option<i64>,
    sha256: String,
    policy: tokio::sync::OnceCell<Policy>,
}

impl Slot {
    fn loaded(tenant: &str, version: Option<i64>, policy: Policy) -> Slot {
        Slot {
            tenant: tenant.to_owned(),
            version,
            sha256: policy.sha256().to_owned(),
            policy: tokio::sync::OnceCell::new_with(Some(policy)),
        }
    }
}

/// A version that did not load on this replica.
#[derive(Debug, Clone, thiserror::Error)]
#[error("version {version} does not load: {message}")]
pub struct LoadFailure {
    pub version: i64,
    pub message: String,
}

impl TenantPolicies {
    fn fixed(tenants: HashMap<String, Option<Arc<Slot>>>) -> TenantPolicies {
        TenantPolicies {
            inner: Arc::new(Registry {
                store: None,
                tenants: RwLock::new(tenants),
                by_sha: Mutex::new(HashMap::new()),
                shadows: RwLock::new(HashMap::new()),
                shadowing: None,
                syncing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Loads every tenant's component from its file (tools that run without
    /// the deployment tables); any failure is an error rather than a tenant
    /// left without a policy.
    pub fn load(runtime: &Runtime, tenants: &[TenantConfig]) -> Result<Self, TenancyError> {
        let mut by_tenant = HashMap::new();
        for t in tenants {
            let policy = runtime
                .load_file(&t.policy)
                .map_err(|source| TenancyError::Load {
                    tenant: t.id.clone(),
                    path: t.policy.clone(),
                    source,
                })?;
            tracing::info!(tenant = %t.id, policy = %policy.info().name, sha256 = %&policy.sha256()[..12], "policy loaded");
            let slot = Arc::new(Slot::loaded(&t.id, None, policy));
            if by_tenant.insert(t.id.clone(), Some(slot)).is_some() {
                return Err(TenancyError::Duplicate(t.id.clone()));
            }
        }
        Ok(TenantPolicies::fixed(by_tenant))
    }

    /// One tenant with one policy, for tools and tests.
    pub fn single(tenant: &str, policy: Policy) -> Self {
        let slot = Arc::new(Slot::loaded(tenant, None, policy));
        TenantPolicies::fixed(HashMap::from([(tenant.to_owned(), Some(slot))]))
    }

    /// The tenants and active versions the database holds, each loaded on
    /// first use. `replica` names this process in the status operators read.
    pub async fn from_database(
        db: Db,
        runtime: Runtime,
        replica: String,
    ) -> Result<Self, TenancyError> {
        let store = Store {
            db,
            runtime,
            replica,
        };
        let policies = TenantPolicies {
            inner: Arc::new(Registry {
                shadowing: Some(shadow::Shadowing::start(store.clone())),
                store: Some(store),
                tenants: RwLock::new(HashMap::new()),
                by_sha: Mutex::new(HashMap::new()),
                shadows: RwLock::new(HashMap::new()),
                syncing: tokio::sync::Mutex::new(()),
            }),
        };
        sync::sync(&policies).await?;
        Ok(policies)
    }

    /// This replica's id, when it follows the database.
    pub fn replica(&self) -> Option<&str> {
        self.inner.store.as_ref().map(|s| s.replica.as_str())
    }

    /// Whether `tenant` exists (with or without an active version).
    pub fn knows(&self, tenant: &str) -> bool {
        self.read().contains_key(tenant)
    }

    /// Known tenants with no active version.
    pub fn without_policy(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, s)| s.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        out.sort();
        out
    }

    /// The number of known tenants, and of those whose version is loaded.
    pub fn counts(&self) -> (usize, usize) {
        let tenants = self.read();
        let loaded = tenants
            .values()
            .filter(|s| s.as_ref().is_some_and(|s| s.policy.initialized()))
            .count();
        (tenants.len(), loaded)
    }

    /// The policy deciding for `tenant` now, loading it if needed.
    pub async fn policy(&self, tenant: &str) -> Result<(Policy, Option<i64>), PolicyFault> {
        let slot = self.slot(tenant)?;
        let policy = self.loaded(&slot).await?;
        Ok((policy, slot.version))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Option<Arc<Slot>>>> {
        // A panic while holding the lock leaves a map that is still whole
        // (every write is one insert), so a poisoned lock is used as is.
        self.inner
            .tenants
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn slot(&self, tenant: &str) -> Result<Arc<Slot>, PolicyFault> {
        self.read()
            .get(tenant)
            .cloned()
            .flatten()
            .ok_or_else(|| PolicyFault::NoPolicy {
                tenant: tenant.to_owned(),
            })
    }

    async fn loaded(&self, slot: &Slot) -> Result<Policy, PolicyFault> {
        slot.policy
            .get_or_try_init(|| async {
                let version = slot.version.unwrap_or_default();
                let result = self.load_version(&slot.sha256).await;
                self.record(&slot.tenant, version, &result).await;
                result.map_err(|message| LoadFailure { version, message })
            })
            .await
            .cloned()
            .map_err(|failure| PolicyFault::Unavailable(failure.to_string()))
    }

    /// The component with this sha256: already loaded for another tenant,
    /// or read from the database and loaded (from the compile cache when it
    /// has it).
    async fn load_version(&self, sha256: &str) -> Result<Policy, String> {
        if let Some(p) = self.shared(sha256) {
            return Ok(p);
        }
        let Some(store) = &self.inner.store else {
            return Err("no policy store".into());
        };
        let policy = store.load(sha256).await?;
        let mut by_sha = self
            .inner
            .by_sha
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(by_sha.entry(sha256.to_owned()).or_insert(policy).clone())
    }

    fn shared(&self, sha256: &str) -> Option<Policy> {
        self.inner
            .by_sha
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(sha256)
            .cloned()
    }

    /// Tells operators what this replica now serves of `tenant`. Best
    /// effort: a failed write is logged, the decision goes on.
    async fn record(&self, tenant: &str, wanted: i64, result: &Result<Policy, String>) {
        let Some(store) = &self.inner.store else {
            return;
        };
        let (serving, error) = match result {
            Ok(_) => (Some(wanted), None),
            Err(e) => {
                tracing::error!(tenant, version = wanted, error = %e, "policy version does not load");
                (self.serving(tenant), Some(e.as_str()))
            }
        };
        let now = crate::clock::unix_now();
        if let Err(e) = crate::deploy::store::record_load(
            &store.db,
            &store.replica,
            tenant,
            serving,
            wanted,
            error,
            now,
        )
        .await
        {
            tracing::warn!(tenant, error = %e, "cannot record what this replica serves");
        }
    }

    /// Offers a live decision to the tenant's shadow, if it has one. Never
    /// waits (see [`shadow`]).
    fn offer_shadow(
        &self,
        tenant: &str,
        live_version: Option<i64>,
        request: &Request,
        live: &Decision,
    ) {
        let Some(shadowing) = &self.inner.shadowing else {
            return;
        };
        let slot = self
            .inner
            .shadows
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned();
        if let Some(slot) = slot {
            shadowing.offer(shadow::Offer {
                tenant: tenant.to_owned(),
                slot,
                live_version,
                request: request.clone(),
                live: live.clone(),
            });
        }
    }

    /// The version this replica has loaded for `tenant`, if any.
    fn serving(&self, tenant: &str) -> Option<i64> {
        self.read()
            .get(tenant)
            .and_then(|s| s.as_ref())
            .filter(|s| s.policy.initialized())
            .and_then(|s| s.version)
    }
}

impl Decider for TenantPolicies {
    /// Decides on a blocking thread: a Rust policy takes microseconds, but a
    /// Python one takes a millisecond or more, which must not stall the
    /// async workers serving other tenants.
    async fn decide(&self, tenant: &str, request: &Request) -> Result<Verdict, PolicyFault> {
        let (policy, version) = self.policy(tenant).await?;
        let owned = request.clone();
        let decision = tokio::task::spawn_blocking(move || {
            let decision = policy.decide(&owned);
            (policy, decision)
        })
        .await;
        match decision {
            Ok((policy, Ok(decision))) => {
                crate::telemetry::decided(tenant, version, &decision);
                self.offer_shadow(tenant, version, request, &decision);
                Ok(Verdict {
                    policy_sha256: policy.sha256().to_owned(),
                    policy_version: version,
                    decision,
                })
            }
            Ok((_, Err(fault))) => {
                crate::telemetry::faulted(tenant, &fault);
                Err(fault)
            }
            Err(join) => Err(PolicyFault::Unavailable(format!(
                "decision task failed: {join}"
            ))),
        }
    }

    /// A whole batch on one blocking thread and one policy instance (a
    /// [`crate::policy::Session`]): a Python policy's per-decision cost drops from
    /// about 1.5 ms (fresh instance) to under 0.1 ms. A fault drops the
    /// instance; the next request of the batch gets a fresh one. The whole
    /// batch is decided by one version.
    async fn decide_batch(
        &self,
        tenant: &str,
        requests: &[Request],
    ) -> Vec<Result<Verdict, PolicyFault>> {
        let (policy, version) = match self.policy(tenant).await {
            Ok(p) => p,
            Err(fault) => return requests.iter().map(|_| Err(fault.clone())).collect(),
        };
        let owned = requests.to_vec();
        let n = requests.len();
        let decided = tokio::task::spawn_blocking(move || {
            let sha = policy.sha256().to_owned();
            let mut session = policy.session();
            owned
                .iter()
                .map(|r| {
                    session.decide(r).map(|decision| Verdict {
                        policy_sha256: sha.clone(),
                        policy_version: version,
                        decision,
                    })
                })
                .collect::<Vec<_>>()
        })
        .await;
        match decided {
            Ok(verdicts) => {
                for (request, verdict) in requests.iter().zip(&verdicts) {
                    match verdict {
                        Ok(v) => {
                            crate::telemetry::decided(tenant, version, &v.decision);
                            self.offer_shadow(tenant, version, request, &v.decision);
                        }
                        Err(fault) => crate::telemetry::faulted(tenant, fault),
                    }
                }
                verdicts
            }
            Err(join) => {
                let fault = PolicyFault::Unavailable(format!("decision task failed: {join}"));
                (0..n).map(|_| Err(fault.clone())).collect()
            }
        }
    }
}
