//! Test databases on both backends.
//!
//! Every executor test runs on SQLite (a temporary file) and PostgreSQL (a
//! uniquely named database created for the test and dropped afterwards).
//! PostgreSQL is found at `LETHE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432`); the tests fail rather than skip
//! when it is unreachable, so a green run means both backends were tested.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use lethe::contract::{
    Action, CategoryPlan, Decision, Disposition, Outcome, Plan, ProfilePlan, References, Request,
    TransferTarget,
};
use lethe::db::{Backend, Db};
use lethe::executor::{ActionInput, ActorRef, Decider, PolicyFault, Verdict};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

pub fn pg_base() -> String {
    std::env::var("LETHE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A throwaway database; call [`TestDb::drop_db`] at the end of the test
/// (async cleanup cannot run in `Drop`).
pub struct TestDb {
    pub db: Db,
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite:{}", dir.path().join("test.db").display());
                let db = Db::connect(&url).await.unwrap();
                TestDb {
                    db,
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!(
                    "lethe_test_{}_{}_{}",
                    std::process::id(),
                    n,
                    rand::random::<u32>()
                );
                let admin = Db::connect(&format!("{}/postgres", pg_base()))
                    .await
                    .expect("PostgreSQL reachable at LETHE_TEST_PG");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(admin.pool())
                    .await
                    .unwrap();
                admin.close().await;
                let url = format!("{}/{name}", pg_base());
                let db = Db::connect(&url).await.unwrap();
                TestDb {
                    db,
                    url,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    pub async fn drop_db(mut self) {
        self.db.close().await;
        if let Some(name) = self.pg_name.take() {
            drop_pg(&name).await;
        }
    }
}

async fn drop_pg(name: &str) {
    let admin = Db::connect(&format!("{}/postgres", pg_base()))
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(admin.pool())
        .await
        .unwrap();
    admin.close().await;
}

/// A test that panics never reaches `drop_db`; drop its database anyway
/// (on a thread of its own, since `Drop` cannot await).
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Runtime::new() {
                    rt.block_on(drop_pg(&name));
                }
            })
            .join();
        }
    }
}

/// A Rust stand-in for the WebAssembly policy runtime: a closure from the
/// request to a decision (or a fault). Only a test double; end-to-end tests
/// with real policy components live with the runtime.
pub struct FnDecider<F>(pub F);

impl<F> Decider for FnDecider<F>
where
    F: Fn(&Request) -> Result<Outcome, PolicyFault> + Send + Sync,
{
    async fn decide(&self, _tenant: &str, request: &Request) -> Result<Verdict, PolicyFault> {
        let outcome = (self.0)(request)?;
        Ok(Verdict {
            policy_sha256: "0".repeat(64),
            decision: Decision {
                outcome,
                rules: vec![format!("test.{}", request.action)],
                fuel_used: 1234,
                elapsed_us: 56,
            },
        })
    }
}

pub fn cat(name: &str, d: Disposition, only_open: bool) -> CategoryPlan {
    CategoryPlan {
        category: name.into(),
        disposition: d,
        only_open,
    }
}

/// A delete plan in the spirit of the seed policies: open items go to the
/// requested user, campaigns (with recipients) are removed, messages
/// anonymised, the profile scrubbed, references pseudonymised on erase.
pub fn delete_plan(transfer_to: Option<&str>, window: u32) -> Plan {
    let mut categories = vec![
        cat("campaigns", Disposition::Cascade, false),
        cat("messages", Disposition::Anonymise, false),
        cat("leads", Disposition::Cascade, false),
        cat("billing", Disposition::Keep, false),
    ];
    if transfer_to.is_some() {
        categories.push(cat("deals", Disposition::Transfer, true));
        categories.push(cat("contacts", Disposition::Transfer, false));
        categories.push(cat("activities", Disposition::Transfer, true));
    }
    Plan {
        categories,
        transfer_target: transfer_to.map(|t| TransferTarget::User(t.into())),
        profile: ProfilePlan::Scrub("(deleted user)".into()),
        restore_window_days: window,
        references: References::Pseudonymise,
        notify: vec![],
    }
}

pub fn empty_plan() -> Plan {
    Plan {
        categories: vec![],
        transfer_target: None,
        profile: ProfilePlan::Keep,
        restore_window_days: 0,
        references: References::Pseudonymise,
        notify: vec![],
    }
}

/// A policy that allows everything: deletes use [`delete_plan`] with the
/// request's `transfer_to` and a 30-day window.
pub fn allow_all() -> FnDecider<impl Fn(&Request) -> Result<Outcome, PolicyFault> + Send + Sync> {
    FnDecider(|r: &Request| {
        Ok(Outcome::Allow {
            plan: match r.action {
                Action::Delete => delete_plan(r.transfer_to.as_deref(), 30),
                _ => empty_plan(),
            },
        })
    })
}

pub fn input(tenant: &str, user: &str, action: Action, now: i64) -> ActionInput {
    ActionInput {
        tenant: tenant.into(),
        subject: user.into(),
        action,
        actor: ActorRef::TenantUser(format!("{tenant}-u1")),
        transfer_to: None,
        reason: None,
        bulk: false,
        now,
        idempotency_key: None,
        dry_run: false,
    }
}

pub type Dump = std::collections::BTreeMap<String, Vec<Vec<Option<String>>>>;

/// The platform's tables (not Lethe's own, whose history grows).
pub async fn platform_dump(db: &Db) -> Dump {
    db.dump(|n| !n.starts_with("lethe_") && !n.starts_with("_sqlx"))
        .await
        .unwrap()
}

/// Every table, Lethe's included.
pub async fn full_dump(db: &Db) -> Dump {
    db.dump(|n| !n.starts_with("_sqlx")).await.unwrap()
}

/// Executor over a freshly seeded database with the demo data map.
pub async fn seeded(
    backend: Backend,
    tenants: u32,
    users: u32,
    items: u32,
    seed: u64,
) -> (TestDb, lethe::executor::Executor) {
    let t = TestDb::new(backend).await;
    lethe::seed::seed(
        &t.db,
        &lethe::seed::SeedOptions {
            tenants,
            users,
            items,
            seed,
        },
    )
    .await
    .unwrap();
    let map = lethe::datamap::DataMap::parse(&test_datamap()).unwrap();
    let ex = lethe::executor::Executor::new(t.db.clone(), map)
        .await
        .unwrap();
    (t, ex)
}

/// The demo data map, plus billing exposed as a category: the demo keeps
/// billing as a guard only, and these tests need a category a guard forbids
/// plans to change, to show such plans are refused.
pub fn test_datamap() -> String {
    format!(
        "{}\n[[category]]\nname = \"billing\"\ntable = \"billing_seats\"\nowner = \"user_id\"\n",
        include_str!("../../../examples/demo/datamap.toml")
    )
}
