//! `lethe.toml`'s bootstrap (`Deployments::bootstrap`) run by several
//! replicas at once, on SQLite and PostgreSQL: each racer has its own
//! connection pool, like separate `lethe serve` processes, and they start
//! together behind a barrier. However they interleave, each tenant ends
//! with what one replica alone would have left: on an empty database one
//! version and one activation; after the component in `lethe.toml` changes,
//! one more of each; and an unchanged component never displaces what an
//! operator activated since.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{policy_component, scalar, TestDb, BACKENDS};
use lethe::config::TenantConfig;
use lethe::db::Db;
use lethe::deploy::{Activate, ActivationKind, Deployments};
use lethe::policy::{Runtime, RuntimeConfig};

const RACERS: usize = 4;
const NOW: i64 = 1_800_000_000;

fn tenant(id: &str, policy: PathBuf) -> TenantConfig {
    TenantConfig {
        id: id.into(),
        policy,
        api_key_sha256: Vec::new(),
    }
}

/// Runs `tenants`' bootstrap on every racer at once; all must succeed.
async fn race(racers: &[Deployments], tenants: &[TenantConfig]) {
    let start = Arc::new(tokio::sync::Barrier::new(racers.len()));
    let tasks: Vec<_> = racers
        .iter()
        .map(|d| {
            let (d, start, tenants) = (d.clone(), start.clone(), tenants.to_vec());
            tokio::spawn(async move {
                start.wait().await;
                d.bootstrap(&tenants, NOW).await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        if let Err(e) = task.await.unwrap() {
            panic!("racer {i}: bootstrap failed: {e}");
        }
    }
}

/// (versions, activations, active version) of `tenant`.
async fn history(db: &Db, tenant: &str) -> (i64, i64, i64) {
    (
        scalar(
            db,
            &format!("SELECT COUNT(*) FROM lethe_policy_versions WHERE tenant_id = '{tenant}'"),
        )
        .await,
        scalar(
            db,
            &format!("SELECT COUNT(*) FROM lethe_policy_activations WHERE tenant_id = '{tenant}'"),
        )
        .await,
        scalar(
            db,
            &format!("SELECT version FROM lethe_policy_active WHERE tenant_id = '{tenant}'"),
        )
        .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bootstraps_import_once() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let first = [
        tenant("acme", policy_component("two-stage-erase")),
        tenant("beta", policy_component("support-only")),
    ];
    let changed = [
        tenant("acme", policy_component("deactivate-first")),
        tenant("beta", policy_component("support-only")),
    ];
    for backend in BACKENDS {
        let ctx = format!("{backend:?}");
        let t = TestDb::new(backend).await;
        t.db.migrate().await.unwrap();
        // A pool per racer, like separate processes.
        let mut racers = Vec::new();
        for _ in 0..RACERS {
            let db = Db::connect(&t.url).await.unwrap();
            racers.push(Deployments::new(db, runtime.clone()));
        }

        // An empty database: one version and one activation per tenant.
        race(&racers, &first).await;
        assert_eq!(history(&t.db, "acme").await, (1, 1, 1), "{ctx}: acme");
        assert_eq!(history(&t.db, "beta").await, (1, 1, 1), "{ctx}: beta");
        let activations = racers[0].status("acme", NOW * 1000).await.unwrap();
        assert_eq!(activations.activations.len(), 1, "{ctx}");
        assert_eq!(activations.activations[0].kind, ActivationKind::Bootstrap);
        assert_eq!(activations.activations[0].from_version, None);

        // The same config again (a restart of all replicas): nothing new.
        race(&racers, &first).await;
        assert_eq!(history(&t.db, "acme").await, (1, 1, 1), "{ctx}: acme");
        assert_eq!(history(&t.db, "beta").await, (1, 1, 1), "{ctx}: beta");

        // acme's component changed: one new version, activated once.
        race(&racers, &changed).await;
        assert_eq!(history(&t.db, "acme").await, (2, 2, 2), "{ctx}: acme");
        assert_eq!(history(&t.db, "beta").await, (1, 1, 1), "{ctx}: beta");
        let status = racers[0].status("acme", NOW * 1000).await.unwrap();
        assert_eq!(status.activations[0].from_version, Some(1), "{ctx}");
        assert_eq!(status.activations[0].to_version, 2, "{ctx}");

        // An operator rolls acme back; restarts with the unchanged config
        // leave that alone.
        racers[0]
            .activate(
                Activate {
                    tenant: "acme",
                    version: None,
                    kind: ActivationKind::Rollback,
                    by: "operator",
                    reason: Some("test"),
                },
                NOW,
            )
            .await
            .unwrap();
        race(&racers, &changed).await;
        assert_eq!(history(&t.db, "acme").await, (2, 3, 1), "{ctx}: acme");

        for d in &racers {
            d.db().close().await;
        }
        t.drop_db().await;
    }
}
