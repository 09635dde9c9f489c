//! Helpers shared by every test binary: the host's own (`host/tests/*.rs`,
//! `mod common;`) and the end-to-end ones in the top-level `tests/`
//! (`#[path = "../host/tests/common/mod.rs"] mod common;`), so there is one
//! copy of each.
//!
//! - The repository and the `lethe` binary: [`root`], [`policy_component`],
//!   [`write_config`], [`lethe_cmd`], [`lethe`], [`lethe_ok`], [`lethe_json`].
//! - HTTP: [`call`]; a `lethe serve` process: [`serve::Server`].
//! - Test databases on both backends: [`TestDb`], [`BACKENDS`], [`seeded`],
//!   [`seed_demo`], dumps and one-value queries ([`scalar`], [`text`],
//!   [`identity`]).
//! - A Rust stand-in for policies: [`FnDecider`], [`allow_all`] and plans.
//!
//! Every executor test runs on SQLite (a temporary file) and PostgreSQL (a
//! uniquely named database created for the test and dropped afterwards).
//! PostgreSQL is found at `LETHE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432`); the tests fail rather than skip
//! when it is unreachable, so a green run means both backends were tested.
//!
//! Not every binary uses every helper, hence `dead_code` is allowed.
#![allow(dead_code)]

pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use lethe::contract::{
    Action, CategoryPlan, Decision, Disposition, Outcome, Plan, ProfilePlan, References, Request,
    TransferTarget,
};
use lethe::db::{Backend, Db};
use lethe::executor::{ActionInput, ActorRef, Decider, PolicyFault, Verdict};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Row;

/// The repository root (`host/`'s parent): `policies/`, `examples/`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// A built policy component, `policies/dist/{name}.wasm`; fails the test
/// when it has not been built.
pub fn policy_component(name: &str) -> PathBuf {
    let path = root().join("policies/dist").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `bash policies/build.sh` first",
        path.display()
    );
    path
}

/// The built `lethe` binary, run in the repository root with the compile
/// cache the tests share (`target/lethe-cache`) and without backtraces (its
/// errors read as a user sees them).
pub fn lethe_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lethe"));
    cmd.current_dir(root())
        .env("LETHE_CACHE_DIR", root().join("target/lethe-cache"))
        .env("RUST_BACKTRACE", "0");
    cmd
}

/// Run `lethe args` to completion; what it did, success or not.
pub fn lethe(args: &[&str]) -> Output {
    lethe_cmd().args(args).output().expect("run lethe")
}

/// Run `lethe args`, which must succeed; what it did.
pub fn lethe_ok(args: &[&str]) -> Output {
    let out = lethe(args);
    assert!(
        out.status.success(),
        "lethe {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run `lethe args`, which must succeed; its stdout as JSON.
pub fn lethe_json(args: &[&str]) -> Value {
    serde_json::from_slice(&lethe_ok(args).stdout).unwrap()
}

/// Write `dir/lethe.toml` for the database at `url` with the demo's data
/// map, followed by `rest` (more settings, tenants); its path.
pub fn write_config(dir: &Path, url: &str, rest: &str) -> PathBuf {
    let datamap = root().join("examples/demo/datamap.toml");
    let text = format!(
        "database_url = \"{url}\"\ndatamap = \"{}\"\n{rest}",
        datamap.display()
    );
    let path = dir.join("lethe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One HTTP request to `url`, with `key` as bearer token and `body` as
/// JSON. The status and the body as JSON: `Null` when empty, a JSON string
/// when it is not JSON.
pub async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The backends every database test runs on.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// The PostgreSQL server the tests use (`LETHE_TEST_PG`), without a database.
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
            policy_version: None,
            decision: Decision {
                outcome,
                rules: vec![format!("test.{}", request.action)],
                fuel_used: 1234,
                elapsed_us: 56,
            },
        })
    }
}

/// The demo data map's categories, in its order.
pub const CATEGORIES: [&str; 10] = [
    "contacts",
    "campaigns",
    "assets",
    "deals",
    "leads",
    "products",
    "activities",
    "mentoring",
    "mentorships",
    "messages",
];

fn disposition() -> impl proptest::strategy::Strategy<Value = Disposition> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Disposition::Keep),
        Just(Disposition::Cascade),
        Just(Disposition::Anonymise),
        Just(Disposition::Transfer),
    ]
}

/// A random valid delete plan over every category (billing untouched,
/// target an active admin), its restore window drawn from `windows`.
pub fn plan_strategy(
    windows: impl proptest::strategy::Strategy<Value = u32>,
) -> impl proptest::strategy::Strategy<Value = Plan> {
    use proptest::prelude::*;
    (
        proptest::collection::vec((disposition(), any::<bool>()), CATEGORIES.len()),
        prop_oneof![Just("t1-u1"), Just("t1-u2")],
        any::<bool>(),
        windows,
    )
        .prop_map(|(ds, target, scrub, window)| Plan {
            categories: CATEGORIES
                .iter()
                .zip(ds)
                .map(|(c, (d, only_open))| CategoryPlan {
                    category: (*c).into(),
                    disposition: d,
                    only_open,
                })
                .collect(),
            transfer_target: Some(TransferTarget::User(target.into())),
            profile: if scrub {
                ProfilePlan::Scrub("(deleted user)".into())
            } else {
                ProfilePlan::Keep
            },
            restore_window_days: window,
            references: References::Pseudonymise,
            notify: vec![],
        })
}

/// A policy that allows deletes with `plan` and everything else with
/// [`empty_plan`].
pub fn with_plan(
    plan: Plan,
) -> FnDecider<impl Fn(&Request) -> Result<Outcome, PolicyFault> + Send + Sync> {
    FnDecider(move |r: &Request| {
        Ok(Outcome::Allow {
            plan: match r.action {
                Action::Delete => plan.clone(),
                _ => empty_plan(),
            },
        })
    })
}

/// A property runner of `cases` cases that persists no failures.
pub fn runner(cases: u32) -> proptest::test_runner::TestRunner {
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
}

/// One category of a plan.
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

/// A plan that changes no data.
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

/// `action` on `user` by the tenant's first user (`{tenant}-u1`) at `now`.
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

/// Table → its rows in a stable order, every value as text (`None`: NULL).
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
    seed_demo(&t.db, tenants, users, items, seed).await;
    let map = lethe::datamap::DataMap::parse(&test_datamap()).unwrap();
    let ex = lethe::executor::Executor::new(t.db.clone(), map)
        .await
        .unwrap();
    (t, ex)
}

/// Seed the demo platform into `db`, like `lethe seed`: `tenants` tenants
/// of `users` users with `items` rows each per main category, generated
/// from `seed`.
pub async fn seed_demo(db: &Db, tenants: u32, users: u32, items: u32, seed: u64) {
    lethe::seed::seed(
        db,
        &lethe::seed::SeedOptions {
            tenants,
            users,
            items,
            seed,
        },
    )
    .await
    .unwrap();
}

/// The first column of the one row `sql` returns.
async fn first_column<T>(db: &Db, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// The first column of the one row `sql` returns, as an integer (a count).
pub async fn scalar(db: &Db, sql: &str) -> i64 {
    first_column(db, sql).await
}

/// The first column of the one row `sql` returns, as text (`None` for NULL).
pub async fn text(db: &Db, sql: &str) -> Option<String> {
    first_column(db, sql).await
}

/// A user's email, name and phone, none of them NULL.
pub async fn identity(db: &Db, user: &str) -> Vec<String> {
    let row = sqlx::query("SELECT email, name, phone FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(db.pool())
        .await
        .unwrap();
    (0..3)
        .map(|i| row.try_get::<String, _>(i).unwrap())
        .collect()
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
