//! Benchmark: deleting one user who owns N rows, Lethe's executor against
//! hand-written SQL making the same changes in one transaction (the floor).
//!
//! ```text
//! cargo run --example bench_delete -- sqlite:/tmp/bench 1000,10000,100000 [repeat]
//! cargo run --example bench_delete -- postgres://postgres@127.0.0.1:5432 1000,10000,100000 [repeat]
//! ```
//!
//! For each size two identical databases are seeded (the subject owns
//! about N rows across categories); one is changed by the executor (plan:
//! open deals, contacts and undone activities transferred, campaigns
//! cascaded with their recipients and detached assets, leads cascaded,
//! messages anonymised, sessions removed by guard, profile scrubbed, 30-day
//! window so the restore log is written), the other by the equivalent SQL
//! without restore log. The decision comes from a fixed Rust decider: this
//! measures the executor, not the policy runtime.

use std::time::Instant;

use lethe::contract::{
    CategoryPlan, Decision, Disposition, Outcome, Plan, ProfilePlan, References, Request,
    TransferTarget,
};
use lethe::datamap::DataMap;
use lethe::db::Db;
use lethe::executor::{ActionInput, ActorRef, Decider, Executor, PolicyFault, Verdict};
use lethe::seed::{seed, SeedOptions, EPOCH};

struct FixedPlan;

fn cat(c: &str, d: Disposition, only_open: bool) -> CategoryPlan {
    CategoryPlan {
        category: c.into(),
        disposition: d,
        only_open,
    }
}

impl Decider for FixedPlan {
    async fn decide(&self, _tenant: &str, _request: &Request) -> Result<Verdict, PolicyFault> {
        Ok(Verdict {
            policy_sha256: "bench".into(),
            policy_version: None,
            decision: Decision {
                outcome: Outcome::Allow {
                    plan: Plan {
                        categories: vec![
                            cat("deals", Disposition::Transfer, true),
                            cat("contacts", Disposition::Transfer, false),
                            cat("activities", Disposition::Transfer, true),
                            cat("campaigns", Disposition::Cascade, false),
                            cat("leads", Disposition::Cascade, false),
                            cat("messages", Disposition::Anonymise, false),
                        ],
                        transfer_target: Some(TransferTarget::User("t1-u2".into())),
                        profile: ProfilePlan::Scrub("(deleted user)".into()),
                        restore_window_days: 30,
                        references: References::Pseudonymise,
                        notify: vec![],
                    },
                },
                rules: vec!["bench".into()],
                fuel_used: 0,
                elapsed_us: 0,
            },
        })
    }
}

const FLOOR: &[&str] = &[
    "UPDATE deals SET owner_id = 't1-u2' WHERE tenant_id = 't1' AND owner_id = 't1-u1' AND status IN ('open')",
    "UPDATE contacts SET owner_id = 't1-u2' WHERE tenant_id = 't1' AND owner_id = 't1-u1'",
    "UPDATE activities SET owner_id = 't1-u2' WHERE tenant_id = 't1' AND owner_id = 't1-u1' AND status IN ('undone')",
    "DELETE FROM campaign_recipients WHERE campaign_id IN (SELECT id FROM campaigns WHERE tenant_id = 't1' AND owner_id = 't1-u1')",
    "UPDATE assets SET campaign_id = NULL WHERE campaign_id IN (SELECT id FROM campaigns WHERE tenant_id = 't1' AND owner_id = 't1-u1')",
    "DELETE FROM campaigns WHERE tenant_id = 't1' AND owner_id = 't1-u1'",
    "DELETE FROM leads WHERE tenant_id = 't1' AND owner_id = 't1-u1'",
    "UPDATE messages SET body = '(removed)' WHERE tenant_id = 't1' AND sender_id = 't1-u1'",
    "DELETE FROM sessions WHERE tenant_id = 't1' AND user_id = 't1-u1'",
    "UPDATE users SET email = NULL, phone = NULL, avatar_url = NULL, name = '(deleted user)', status = 'deleted' WHERE tenant_id = 't1' AND id = 't1-u1'",
];

/// The floor with the undo information a restore needs, written by hand:
/// each change preceded by an `INSERT … SELECT` saving the old values (whole
/// rows for removals) into `lethe_restore_log`.
fn floor_with_log(pg: bool) -> Vec<String> {
    let j = |cols: &[&str]| {
        let args: Vec<String> = cols.iter().map(|c| format!("'{c}', x.{c}")).collect();
        if pg {
            format!("json_build_object({})::text", args.join(", "))
        } else {
            format!("json_object({})", args.join(", "))
        }
    };
    let log = |step: u32, table: &str, op: &str, data: String, expect: &str, from_where: &str| {
        format!(
            "INSERT INTO lethe_restore_log (action_id, tenant_id, user_id, step, table_name, op, row_key, data, expect) \
             SELECT 'floor', 't1', 't1-u1', {step}, '{table}', '{op}', x.id, {data}, {expect} {from_where}"
        )
    };
    let owned = |t: &str, extra: &str| {
        format!("FROM {t} x WHERE x.tenant_id = 't1' AND x.owner_id = 't1-u1'{extra}")
    };
    let campaigns = "(SELECT id FROM campaigns WHERE tenant_id = 't1' AND owner_id = 't1-u1')";
    let mut out = Vec::new();
    let mut step = 0;
    let mut pair = |logsql: String, change: &str| {
        out.push(logsql);
        out.push(change.to_owned());
    };
    step += 1;
    pair(
        log(
            step,
            "deals",
            "update",
            j(&["owner_id"]),
            "'t1-u2'",
            &owned("deals", " AND x.status IN ('open')"),
        ),
        FLOOR[0],
    );
    step += 1;
    pair(
        log(
            step,
            "contacts",
            "update",
            j(&["owner_id"]),
            "'t1-u2'",
            &owned("contacts", ""),
        ),
        FLOOR[1],
    );
    step += 1;
    pair(
        log(
            step,
            "activities",
            "update",
            j(&["owner_id"]),
            "'t1-u2'",
            &owned("activities", " AND x.status IN ('undone')"),
        ),
        FLOOR[2],
    );
    step += 1;
    pair(
        log(
            step,
            "campaign_recipients",
            "insert",
            j(&["id", "tenant_id", "campaign_id", "email", "name"]),
            "NULL",
            &format!("FROM campaign_recipients x WHERE x.campaign_id IN {campaigns}"),
        ),
        FLOOR[3],
    );
    step += 1;
    pair(
        log(
            step,
            "assets",
            "update",
            j(&["campaign_id"]),
            "NULL",
            &format!("FROM assets x WHERE x.campaign_id IN {campaigns}"),
        ),
        FLOOR[4],
    );
    step += 1;
    pair(
        log(
            step,
            "campaigns",
            "insert",
            j(&[
                "id",
                "tenant_id",
                "owner_id",
                "name",
                "status",
                "created_at",
            ]),
            "NULL",
            &owned("campaigns", ""),
        ),
        FLOOR[5],
    );
    step += 1;
    pair(
        log(
            step,
            "leads",
            "insert",
            j(&[
                "id",
                "tenant_id",
                "owner_id",
                "name",
                "email",
                "phone",
                "status",
                "created_at",
            ]),
            "NULL",
            &owned("leads", ""),
        ),
        FLOOR[6],
    );
    step += 1;
    pair(
        log(
            step,
            "messages",
            "update",
            j(&["body"]),
            "NULL",
            "FROM messages x WHERE x.tenant_id = 't1' AND x.sender_id = 't1-u1'",
        ),
        FLOOR[7],
    );
    step += 1;
    pair(
        log(
            step,
            "sessions",
            "insert",
            j(&["id", "tenant_id", "user_id", "token_hash", "created_at"]),
            "NULL",
            "FROM sessions x WHERE x.tenant_id = 't1' AND x.user_id = 't1-u1'",
        ),
        FLOOR[8],
    );
    step += 1;
    pair(
        log(
            step,
            "users",
            "update",
            j(&["email", "name", "phone", "avatar_url", "status"]),
            "NULL",
            "FROM users x WHERE x.tenant_id = 't1' AND x.id = 't1-u1'",
        ),
        FLOOR[9],
    );
    out
}

/// Run `statements` in one write transaction; (rows changed, ms).
async fn timed(db: &Db, statements: &[String]) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut tx = db.begin_write().await?;
    let mut changed = 0;
    for sql in statements {
        changed += sqlx::query(sql).execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok((changed, started.elapsed().as_secs_f64() * 1000.0))
}

async fn fresh(base: &str, name: &str, items: u32) -> anyhow::Result<Db> {
    let url = if base.starts_with("sqlite:") {
        let path = format!("{}-{name}.db", base.trim_start_matches("sqlite:"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        format!("sqlite:{path}")
    } else {
        let admin = Db::connect(&format!("{base}/postgres")).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS lethe_bench_{name} WITH (FORCE)"
        ))
        .execute(admin.pool())
        .await?;
        sqlx::query(&format!("CREATE DATABASE lethe_bench_{name}"))
            .execute(admin.pool())
            .await?;
        admin.close().await;
        format!("{base}/lethe_bench_{name}")
    };
    let db = Db::connect(&url).await?;
    seed(
        &db,
        &SeedOptions {
            tenants: 1,
            users: 2,
            items,
            seed: 1,
        },
    )
    .await?;
    if url.starts_with("postgres") {
        sqlx::query("ANALYZE").execute(db.pool()).await?;
    }
    Ok(db)
}

/// One run of each contender on freshly seeded databases.
struct Sample {
    owned: i64,
    changed: u64,
    log_rows: u64,
    lethe_ms: f64,
    floor_ms: f64,
    log_ms: f64,
}

async fn measure(base: &str, map: &DataMap, items: u32) -> anyhow::Result<Sample> {
    let db = fresh(base, "lethe", items).await?;
    let owned: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM contacts WHERE owner_id = 't1-u1') + (SELECT COUNT(*) FROM campaigns WHERE owner_id = 't1-u1') \
             + (SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id LIKE 't1-u1-%') + (SELECT COUNT(*) FROM assets WHERE owner_id = 't1-u1') \
             + (SELECT COUNT(*) FROM deals WHERE owner_id = 't1-u1') + (SELECT COUNT(*) FROM leads WHERE owner_id = 't1-u1') \
             + (SELECT COUNT(*) FROM products WHERE owner_id = 't1-u1') + (SELECT COUNT(*) FROM activities WHERE owner_id = 't1-u1') \
             + (SELECT COUNT(*) FROM messages WHERE sender_id = 't1-u1')",
        )
        .fetch_one(db.pool())
        .await?;
    let ex = Executor::new(db.clone(), map.clone()).await?;
    let input = ActionInput {
        tenant: "t1".into(),
        subject: "t1-u1".into(),
        action: lethe::contract::Action::Delete,
        actor: ActorRef::Support("bench".into()),
        transfer_to: None,
        reason: None,
        bulk: false,
        now: EPOCH,
        idempotency_key: None,
        dry_run: false,
    };
    let started = Instant::now();
    let report = ex.act(&FixedPlan, &input).await?;
    let lethe_ms = started.elapsed().as_secs_f64() * 1000.0;
    let e = &report.effects;
    let changed: u64 = e
        .categories
        .iter()
        .map(|c| c.transferred + c.deleted + c.detached + c.anonymised)
        .sum::<u64>()
        + e.guards.values().sum::<u64>()
        + 1;
    db.close().await;

    let pg = !base.starts_with("sqlite");
    let floor_db = fresh(base, "floor", items).await?;
    let bare: Vec<String> = FLOOR.iter().map(|s| s.to_string()).collect();
    let (floor_changed, floor_ms) = timed(&floor_db, &bare).await?;
    floor_db.close().await;
    anyhow::ensure!(
        floor_changed == changed,
        "floor changed {floor_changed} rows, Lethe {changed}"
    );
    let floor_db = fresh(base, "floor", items).await?;
    let (with_log_changed, log_ms) = timed(&floor_db, &floor_with_log(pg)).await?;
    floor_db.close().await;
    anyhow::ensure!(
        // Lethe logs the users row twice (profile scrub, then state).
        with_log_changed + 1 == changed + e.restore_log_rows,
        "floor with log wrote {with_log_changed} rows, Lethe {changed} + {}",
        e.restore_log_rows
    );
    Ok(Sample {
        owned,
        changed,
        log_rows: e.restore_log_rows,
        lethe_ms,
        floor_ms,
        log_ms,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RUST_LOG=lethe=info shows where an action's time goes.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "sqlite:/tmp/lethe-bench".into());
    let sizes: Vec<u32> = args
        .next()
        .unwrap_or_else(|| "1000,10000,100000".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let repeat: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let pg = !base.starts_with("sqlite");
    let map = DataMap::parse(include_str!("../../examples/demo/datamap.toml"))?;
    println!(
        "backend  rows_owned  rows_changed  restore_log_rows  lethe_ms  floor_ms  ratio  floor+log_ms  ratio   (median of {repeat})"
    );
    for n in sizes {
        // Seeded rows per user are about 6.25 × items (see seed.rs).
        let items = (f64::from(n) / 6.25).round() as u32;
        let mut samples = Vec::new();
        for _ in 0..repeat.max(1) {
            samples.push(measure(&base, &map, items).await?);
        }
        let first = &samples[0];
        let lethe_ms = median(samples.iter().map(|s| s.lethe_ms).collect());
        let floor_ms = median(samples.iter().map(|s| s.floor_ms).collect());
        let log_ms = median(samples.iter().map(|s| s.log_ms).collect());
        println!(
            "{:<8} {:>10}  {:>12}  {:>16}  {lethe_ms:>8.1}  {floor_ms:>8.1}  {:>5.2}  {log_ms:>12.1}  {:>5.2}",
            if pg { "postgres" } else { "sqlite" },
            first.owned,
            first.changed,
            first.log_rows,
            lethe_ms / floor_ms,
            lethe_ms / log_ms,
        );
    }
    Ok(())
}
