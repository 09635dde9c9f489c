//! Benchmark: a bulk job over N users who own 20 rows each, run by Lethe's
//! bulk worker with a real WebAssembly policy, against hand-written SQL
//! making the same changes, one transaction per user (the floor).
//!
//! ```text
//! cargo run --release -p lethe --example bench_bulk -- sqlite:/tmp/lethe-bulk 1000,10000 [repeat] [policies]
//! cargo run --release -p lethe --example bench_bulk -- postgres://postgres@127.0.0.1:5432 1000,10000 [repeat] [policies]
//! ```
//!
//! `policies` is a comma-separated list of scenarios (default
//! `deactivate-first`):
//!
//! - `deactivate-first`: an admin bulk-deletes deactivated users; the policy
//!   cascades every category, scrubs the profile, pseudonymises references
//!   and has no restore window (users end erased, no restore log).
//! - `two-stage-erase`: an admin bulk-deletes active members; the policy
//!   keeps every row and the profile, with a 30-day restore window (sessions
//!   removed by the operator's guard, restore log written). The floor is
//!   then also run with a hand-written restore log.
//!
//! Data: one tenant `t1` with an active admin and N members, each owning
//! exactly 20 rows over the data map's ten categories (examples/demo/
//! datamap.toml), plus 4 campaign recipients, 1 session, 1 billing seat and
//! 1 admin-activity line naming them. Inserted set-based into a template
//! database once per size (on PostgreSQL with statistics for the platform's
//! tables only, see `analyze_platform`); every run starts from a fresh copy
//! of it, and the sizes are interleaved within each repeat.
//!
//! Per run: Lethe (preview, execute, in-process worker with default
//! `BulkSettings` until the job completes; the job must end with every user
//! applied) and the floor (one transaction per user, same users, same
//! order) each on their own copy, and the set-based floor (`floor_set`: the
//! same changes as one statement per table for each batch of users, one
//! transaction per batch, no evidence: what a DBA would write for a one-off
//! cleanup); the platform tables of all are then compared row for row. Policies are loaded from `policies/dist` (`bash
//! policies/build.sh`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use tokio::sync::watch;

use lethe::bulk::{run_worker, Bulk, BulkFilter, BulkSettings, ExecuteRequest, PreviewRequest};
use lethe::contract::{Action, Outcome};
use lethe::datamap::DataMap;
use lethe::db::{Backend, Db};
use lethe::executor::{pseudonym_for, ActorRef, Ask, Decider, Executor};
use lethe::policy::{Runtime, RuntimeConfig};
use lethe::seed::EPOCH;
use lethe::tenancy::TenantPolicies;

const TENANT: &str = "t1";
const ADMIN: &str = "t1-admin";
const DOMAIN: &str = "tenant1.example";
/// Rows each member owns across the categories (checked after inserting).
const OWNED_PER_USER: i64 = 20;
/// Users in the separately timed "context + decisions" call.
const BREAKDOWN_USERS: usize = 1000;
/// A job that takes longer than this is reported as stuck.
const JOB_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    DeactivateFirst,
    TwoStageErase,
}

impl Scenario {
    fn parse(s: &str) -> anyhow::Result<Scenario> {
        match s {
            "deactivate-first" => Ok(Scenario::DeactivateFirst),
            "two-stage-erase" => Ok(Scenario::TwoStageErase),
            other => bail!("unknown scenario `{other}` (deactivate-first, two-stage-erase)"),
        }
    }

    fn policy(self) -> &'static str {
        match self {
            Scenario::DeactivateFirst => "deactivate-first",
            Scenario::TwoStageErase => "two-stage-erase",
        }
    }

    /// `users.status` of the members, and the directory state selecting them.
    fn member_state(self) -> (&'static str, &'static str) {
        match self {
            Scenario::DeactivateFirst => ("inactive", "deactivated"),
            Scenario::TwoStageErase => ("active", "active"),
        }
    }

    fn plan(self) -> &'static str {
        match self {
            Scenario::DeactivateFirst => {
                "delete of deactivated members: every category cascaded, profile scrubbed, \
                 references pseudonymised, no restore window (users end erased)"
            }
            Scenario::TwoStageErase => {
                "delete of active members: every row and the profile kept, sessions removed \
                 (guard), 30-day restore window (restore log written)"
            }
        }
    }

    fn has_window(self) -> bool {
        self == Scenario::TwoStageErase
    }
}

fn uid(i: u32) -> String {
    format!("{TENANT}-u{i:06}")
}

// ---------------------------------------------------------------------------
// Data

/// A value to insert, typed so NULLs carry the right SQL type on PostgreSQL.
enum V {
    T(Option<String>),
    I(i64),
    B(bool),
}

fn t(s: impl Into<String>) -> V {
    V::T(Some(s.into()))
}

/// Rows for one table, written with multi-row INSERTs.
struct Rows {
    table: &'static str,
    cols: &'static [&'static str],
    rows: Vec<Vec<V>>,
}

impl Rows {
    fn new(table: &'static str, cols: &'static [&'static str]) -> Rows {
        Rows {
            table,
            cols,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<V>) {
        debug_assert_eq!(row.len(), self.cols.len(), "{}", self.table);
        self.rows.push(row);
    }

    async fn write(&self, conn: &mut AnyConnection) -> anyhow::Result<()> {
        // About 2,000 parameters per statement: the bind cost of one
        // statement grows faster than its parameter count (20,000 per
        // statement made inserting quadratic).
        let per_stmt = 2_000 / self.cols.len();
        for chunk in self.rows.chunks(per_stmt) {
            let mut sql = format!(
                "INSERT INTO {} ({}) VALUES ",
                self.table,
                self.cols.join(", ")
            );
            let mut n = 0;
            for r in 0..chunk.len() {
                if r > 0 {
                    sql.push_str(", ");
                }
                let ps: Vec<String> = (0..self.cols.len())
                    .map(|_| {
                        n += 1;
                        format!("${n}")
                    })
                    .collect();
                sql.push_str(&format!("({})", ps.join(", ")));
            }
            let mut q = sqlx::query(&sql);
            for row in chunk {
                for v in row {
                    q = match v {
                        V::T(s) => q.bind(s.clone()),
                        V::I(i) => q.bind(*i),
                        V::B(b) => q.bind(*b),
                    };
                }
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// The admin and `n` members with their rows, in one transaction.
async fn populate(db: &Db, n: u32, member_status: &str) -> anyhow::Result<()> {
    db.ensure_platform_schema().await?;
    db.migrate().await?;
    let mut users = Rows::new(
        "users",
        &[
            "id",
            "tenant_id",
            "email",
            "name",
            "phone",
            "avatar_url",
            "role",
            "permissions",
            "domain",
            "is_domain_contact",
            "platform_count",
            "status",
            "last_login_at",
            "created_at",
        ],
    );
    let mut contacts = Rows::new(
        "contacts",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "email",
            "phone",
            "company",
            "created_at",
        ],
    );
    let mut campaigns = Rows::new(
        "campaigns",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "status",
            "created_at",
        ],
    );
    let mut recipients = Rows::new(
        "campaign_recipients",
        &["id", "tenant_id", "campaign_id", "email", "name"],
    );
    let mut assets = Rows::new(
        "assets",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "campaign_id",
            "title",
            "url",
            "created_at",
        ],
    );
    let mut deals = Rows::new(
        "deals",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "title",
            "value_cents",
            "status",
            "contact_name",
            "created_at",
        ],
    );
    let mut leads = Rows::new(
        "leads",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "email",
            "phone",
            "status",
            "created_at",
        ],
    );
    let mut products = Rows::new(
        "products",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "price_cents",
            "created_at",
        ],
    );
    let mut activities = Rows::new(
        "activities",
        &["id", "tenant_id", "owner_id", "subject", "status", "due_at"],
    );
    let mut matches = Rows::new(
        "mentoring_matches",
        &[
            "id",
            "tenant_id",
            "mentor_id",
            "mentee_id",
            "status",
            "goal",
            "created_at",
        ],
    );
    let mut messages = Rows::new(
        "messages",
        &["id", "tenant_id", "sender_id", "body", "sent_at"],
    );
    let mut sessions = Rows::new(
        "sessions",
        &["id", "tenant_id", "user_id", "token_hash", "created_at"],
    );
    let mut activity_log = Rows::new(
        "admin_activity",
        &["id", "tenant_id", "actor_id", "target_id", "line", "at"],
    );
    let mut billing = Rows::new("billing_seats", &["id", "tenant_id", "user_id", "month"]);

    let created = EPOCH - 400 * 86_400;
    users.push(vec![
        t(ADMIN),
        t(TENANT),
        t(format!("admin@{DOMAIN}")),
        t("Tenant Admin"),
        t("+1-555-900000"),
        V::T(None),
        t("admin"),
        t(""),
        t(DOMAIN),
        V::B(true),
        V::I(1),
        t("active"),
        V::I(EPOCH - 3_600),
        V::I(created),
    ]);
    for i in 1..=n {
        let u = uid(i);
        let email = format!("u{i:06}@{DOMAIN}");
        let name = format!("Member {i:06}");
        users.push(vec![
            t(&u),
            t(TENANT),
            t(&email),
            t(&name),
            t(format!("+1-555-{i:06}")),
            t(format!("https://cdn.{DOMAIN}/avatars/{i:06}.png")),
            t("member"),
            t(""),
            t(DOMAIN),
            V::B(false),
            V::I(1),
            t(member_status),
            V::I(EPOCH - 40 * 86_400),
            V::I(created),
        ]);
        // 3 contacts.
        for k in 1..=3 {
            contacts.push(vec![
                t(format!("{u}-c{k}")),
                t(TENANT),
                t(&u),
                t(format!("Contact {k} of {i:06}")),
                t(format!("c{k}.{i:06}@customer.example")),
                t(format!("+1-666-{i:06}{k}")),
                t("Acme Corp"),
                V::I(created + i64::from(k)),
            ]);
        }
        // 2 campaigns (one open), 2 recipients each.
        for k in 1..=2 {
            let cp = format!("{u}-cp{k}");
            campaigns.push(vec![
                t(&cp),
                t(TENANT),
                t(&u),
                t(format!("Campaign {k}")),
                t(if k == 1 { "draft" } else { "done" }),
                V::I(created),
            ]);
            for j in 1..=2 {
                recipients.push(vec![
                    t(format!("{cp}-r{j}")),
                    t(TENANT),
                    t(&cp),
                    t(format!("r{j}.cp{k}.{i:06}@list.example")),
                    t(format!("Recipient {j}")),
                ]);
            }
        }
        // 2 assets, the first used by the first campaign (detached by its
        // cascade, then removed as an asset of the user).
        for k in 1..=2 {
            assets.push(vec![
                t(format!("{u}-a{k}")),
                t(TENANT),
                t(&u),
                V::T((k == 1).then(|| format!("{u}-cp1"))),
                t(format!("Asset {k}")),
                t(format!("https://cdn.{DOMAIN}/assets/{u}-a{k}.png")),
                V::I(created),
            ]);
        }
        // 2 deals, 2 leads, 2 products, 2 activities (one open each).
        for k in 1..=2 {
            deals.push(vec![
                t(format!("{u}-d{k}")),
                t(TENANT),
                t(&u),
                t(format!("Deal {k}")),
                V::I(10_000 * i64::from(k)),
                t(if k == 1 { "open" } else { "won" }),
                t(format!("Deal contact {k}")),
                V::I(created),
            ]);
            leads.push(vec![
                t(format!("{u}-l{k}")),
                t(TENANT),
                t(&u),
                t(format!("Lead {k}")),
                t(format!("l{k}.{i:06}@prospect.example")),
                t(format!("+1-777-{i:06}{k}")),
                t(if k == 1 { "open" } else { "lost" }),
                V::I(created),
            ]);
            products.push(vec![
                t(format!("{u}-p{k}")),
                t(TENANT),
                t(&u),
                t(format!("Product {k}")),
                V::I(990 * i64::from(k)),
                V::I(created),
            ]);
            activities.push(vec![
                t(format!("{u}-ac{k}")),
                t(TENANT),
                t(&u),
                t(format!("Call {k}")),
                t(if k == 1 { "undone" } else { "done" }),
                V::I(EPOCH + 86_400 * i64::from(k)),
            ]);
        }
        // Mentor of the admin (mentoring), mentee of the admin (mentorships).
        matches.push(vec![
            t(format!("{u}-m1")),
            t(TENANT),
            t(&u),
            t(ADMIN),
            t("active"),
            t("Learn the ropes"),
            V::I(created),
        ]);
        matches.push(vec![
            t(format!("{u}-m2")),
            t(TENANT),
            t(ADMIN),
            t(&u),
            t("ended"),
            t("Public speaking"),
            V::I(created),
        ]);
        // 3 messages.
        for k in 1..=3 {
            messages.push(vec![
                t(format!("{u}-msg{k}")),
                t(TENANT),
                t(&u),
                t(format!("Status update {k}.")),
                V::I(EPOCH - 86_400 * i64::from(k)),
            ]);
        }
        sessions.push(vec![
            t(format!("{u}-s1")),
            t(TENANT),
            t(&u),
            t(format!("hash-{i:06}")),
            V::I(EPOCH - 86_400),
        ]);
        activity_log.push(vec![
            t(format!("{u}-log")),
            t(TENANT),
            t(ADMIN),
            t(&u),
            t(format!("Tenant Admin deactivated {name} <{email}>")),
            V::I(EPOCH - 86_400),
        ]);
        billing.push(vec![t(format!("{u}-b1")), t(TENANT), t(&u), t("2026-10")]);
    }
    let mut tx = db.pool().begin().await?;
    for rows in [
        &users,
        &contacts,
        &campaigns,
        &recipients,
        &assets,
        &deals,
        &leads,
        &products,
        &activities,
        &matches,
        &messages,
        &sessions,
        &activity_log,
        &billing,
    ] {
        rows.write(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// (members, min, max) rows owned per member over the data map's categories.
async fn owned_per_user(db: &Db, map: &DataMap) -> anyhow::Result<(i64, i64, i64)> {
    let parts: Vec<String> = map
        .categories
        .iter()
        .map(|c| {
            format!(
                "SELECT {} AS owner FROM {} WHERE tenant_id = '{TENANT}'",
                c.owner, c.table
            )
        })
        .collect();
    let sql = format!(
        "SELECT COUNT(*), MIN(n), MAX(n) FROM (SELECT owner, COUNT(*) AS n FROM ({}) o \
         WHERE owner <> '{ADMIN}' GROUP BY owner) g",
        parts.join(" UNION ALL ")
    );
    let row = sqlx::query(&sql).fetch_one(db.pool()).await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

// ---------------------------------------------------------------------------
// Databases

/// Where the databases of one benchmark live: SQLite files next to the
/// given path, or PostgreSQL databases on the given server.
struct Dbs {
    base: String,
    pg: bool,
}

impl Dbs {
    fn url(&self, name: &str) -> String {
        if self.pg {
            format!("{}/lethe_bulkbench_{name}", self.base)
        } else {
            format!("sqlite:{}", self.path(name))
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}-{name}.db", self.base.trim_start_matches("sqlite:"))
    }

    async fn admin(&self) -> anyhow::Result<Db> {
        Ok(Db::connect(&format!("{}/postgres", self.base)).await?)
    }

    async fn drop(&self, name: &str) -> anyhow::Result<()> {
        if self.pg {
            let admin = self.admin().await?;
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS lethe_bulkbench_{name} WITH (FORCE)"
            ))
            .execute(admin.pool())
            .await?;
            admin.close().await;
        } else {
            let path = self.path(name);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
        Ok(())
    }

    /// A fresh, empty database.
    async fn create(&self, name: &str) -> anyhow::Result<Db> {
        self.drop(name).await?;
        if self.pg {
            let admin = self.admin().await?;
            sqlx::query(&format!("CREATE DATABASE lethe_bulkbench_{name}"))
                .execute(admin.pool())
                .await?;
            admin.close().await;
        }
        Ok(Db::connect(&self.url(name)).await?)
    }

    /// A fresh copy of the (closed) template `from`.
    async fn copy(&self, from: &str, name: &str) -> anyhow::Result<Db> {
        self.drop(name).await?;
        if self.pg {
            let admin = self.admin().await?;
            sqlx::query(&format!(
                "CREATE DATABASE lethe_bulkbench_{name} TEMPLATE lethe_bulkbench_{from}"
            ))
            .execute(admin.pool())
            .await?;
            admin.close().await;
        } else {
            std::fs::copy(self.path(from), self.path(name))?;
        }
        Ok(Db::connect(&self.url(name)).await?)
    }

    /// Close a database so it can be copied (SQLite: WAL folded in).
    async fn seal(&self, db: Db) -> anyhow::Result<()> {
        if !self.pg {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(db.pool())
                .await?;
        }
        db.close().await;
        Ok(())
    }
}

/// PostgreSQL statistics for the platform's tables, as a live platform has
/// them. Lethe's own tables are left as `lethe migrate` leaves them, never
/// analyzed: analyzed while empty, the planner would cache a sequential scan
/// of `lethe_user_lifecycle` for the executor's per-user lookup (a prepared
/// statement's generic plan) and every user of a large job would then read
/// the whole table until autovacuum re-analyzes it.
async fn analyze_platform(db: &Db) -> anyhow::Result<()> {
    for name in db.introspect().await?.tables.keys() {
        if !name.starts_with("lethe_") && !name.starts_with("_sqlx") {
            sqlx::query(&format!("ANALYZE {name}"))
                .execute(db.pool())
                .await?;
        }
    }
    Ok(())
}

/// sha256 per platform table (every row, every column, as text): the two
/// contenders must leave the platform in exactly the same state.
async fn platform_digest(db: &Db) -> anyhow::Result<Vec<(String, usize, String)>> {
    let schema = db.introspect().await?;
    let mut out = Vec::new();
    for (name, table) in &schema.tables {
        if name.starts_with("lethe_") || name.starts_with("_sqlx") {
            continue;
        }
        let rows = db.dump_table(table, name).await?;
        let mut h = Sha256::new();
        for row in &rows {
            for v in row {
                match v {
                    Some(s) => {
                        h.update([1u8]);
                        h.update(s.as_bytes());
                    }
                    None => h.update([0u8]),
                }
                h.update([0xffu8]);
            }
        }
        out.push((name.clone(), rows.len(), hex::encode(h.finalize())));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Lethe

struct LetheRun {
    preview_ms: f64,
    execute_ms: f64,
    /// Execute (re-evaluation, items written) + worker until completed.
    job_ms: f64,
    /// `Executor::contexts` and `decide_batch` over the first
    /// `BREAKDOWN_USERS` users.
    contexts_ms: f64,
    decide_ms: f64,
    breakdown_users: usize,
    restore_log_rows: i64,
}

async fn run_lethe(
    db: &Db,
    map: &DataMap,
    policies: &TenantPolicies,
    scenario: Scenario,
    users: &[String],
) -> anyhow::Result<LetheRun> {
    let n = users.len() as u64;
    let executor = Executor::new(db.clone(), map.clone()).await?;

    // Context + decisions, timed on their own (read-only).
    let now = EPOCH;
    let ask = Ask {
        tenant: TENANT.into(),
        action: Action::Delete,
        actor: ActorRef::TenantUser(ADMIN.into()),
        transfer_to: None,
        reason: None,
        now,
    };
    let some = &users[..users.len().min(BREAKDOWN_USERS)];
    let started = Instant::now();
    let prepared = executor.contexts(&ask, some).await?;
    let contexts_ms = ms(started);
    let requests: Vec<_> = prepared
        .into_iter()
        .map(|p| p.request.map_err(|r| anyhow::anyhow!("{}: {r:?}", p.user)))
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let verdicts = policies.decide_batch(TENANT, &requests).await;
    let decide_ms = ms(started);
    for v in &verdicts {
        match v {
            Ok(v) if matches!(v.decision.outcome, Outcome::Allow { .. }) => {}
            other => bail!("the policy did not allow: {other:?}"),
        }
    }

    let bulk = Bulk::new(executor, BulkSettings::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(run_worker(bulk.clone(), policies.clone(), stop_rx));
    let (_, state) = scenario.member_state();
    let req = PreviewRequest {
        action: Action::Delete,
        actor_id: ADMIN.into(),
        filter: Some(BulkFilter {
            state: Some(state.into()),
            role: Some("member".into()),
            ..Default::default()
        }),
        user_ids: None,
        transfer_to: None,
        reason: Some("bench_bulk".into()),
    };
    let started = Instant::now();
    let preview = bulk.preview(policies, TENANT, &req).await?;
    let preview_ms = ms(started);
    ensure!(
        preview.matched == n && preview.confirm_count == n,
        "preview matched {} and allows {}, expected {n}: {:?}",
        preview.matched,
        preview.confirm_count,
        preview.reasons
    );
    let started = Instant::now();
    let job = bulk
        .execute(
            policies,
            TENANT,
            &preview.preview_id,
            &ExecuteRequest {
                confirm_count: preview.confirm_count,
            },
        )
        .await?;
    let execute_ms = ms(started);
    // Wait for the worker: a primary-key read of the job's status.
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM lethe_bulk_jobs WHERE id = $1")
            .bind(&job.job_id)
            .fetch_one(db.pool())
            .await?;
        if status == "completed" || status == "cancelled" {
            break;
        }
        ensure!(started.elapsed() < JOB_TIMEOUT, "job stuck in `{status}`");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let job_ms = ms(started);
    let _ = stop_tx.send(true);
    worker.await?;
    let done = bulk.job(TENANT, &job.job_id).await?;
    ensure!(
        done.status == lethe::bulk::JobStatus::Completed && done.total == n && done.applied == n,
        "job ended {} with {} of {} applied (denied {}, failed {}, escalated {}): {:?}",
        done.status,
        done.applied,
        done.total,
        done.denied,
        done.failed,
        done.escalated,
        done.not_applied.first()
    );
    let restore_log_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lethe_restore_log")
        .fetch_one(db.pool())
        .await?;
    Ok(LetheRun {
        preview_ms,
        execute_ms,
        job_ms,
        contexts_ms,
        decide_ms,
        breakdown_users: some.len(),
        restore_log_rows,
    })
}

// ---------------------------------------------------------------------------
// Floor

/// What a platform would write by hand for the deactivate-first plan:
/// remove everything the user owns (campaign recipients with their
/// campaigns, assets detached from them first), the sessions, pseudonymise
/// the activity log and scrub the profile.
const CASCADE: &[&str] = &[
    "DELETE FROM contacts WHERE tenant_id = $1 AND owner_id = $2",
    "DELETE FROM campaign_recipients WHERE campaign_id IN (SELECT id FROM campaigns WHERE tenant_id = $1 AND owner_id = $2)",
    "UPDATE assets SET campaign_id = NULL WHERE campaign_id IN (SELECT id FROM campaigns WHERE tenant_id = $1 AND owner_id = $2)",
    "DELETE FROM campaigns WHERE tenant_id = $1 AND owner_id = $2",
    "DELETE FROM assets WHERE tenant_id = $1 AND owner_id = $2",
    "DELETE FROM deals WHERE tenant_id = $1 AND owner_id = $2",
    "DELETE FROM leads WHERE tenant_id = $1 AND owner_id = $2",
    "DELETE FROM products WHERE tenant_id = $1 AND owner_id = $2",
    "DELETE FROM activities WHERE tenant_id = $1 AND owner_id = $2",
    "DELETE FROM mentoring_matches WHERE tenant_id = $1 AND mentor_id = $2",
    "DELETE FROM mentoring_matches WHERE tenant_id = $1 AND mentee_id = $2",
    "DELETE FROM messages WHERE tenant_id = $1 AND sender_id = $2",
    "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2",
];
const SCRUB: &str = "UPDATE users SET email = NULL, name = '(deleted user)', phone = NULL, \
                     avatar_url = NULL, status = 'erased' WHERE tenant_id = $1 AND id = $2";
const SOFT_DELETE: &[&str] = &[
    "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2",
    "UPDATE users SET status = 'deleted' WHERE tenant_id = $1 AND id = $2",
];

/// Statements of one user's floor transaction; rows changed.
async fn floor_user(
    conn: &mut AnyConnection,
    scenario: Scenario,
    backend: Backend,
    with_log: bool,
    user: &str,
) -> anyhow::Result<u64> {
    let mut changed = 0;
    match scenario {
        Scenario::DeactivateFirst => {
            // The profile as it is, to remove it from the activity log's text.
            let lock = if backend == Backend::Postgres {
                " FOR UPDATE"
            } else {
                ""
            };
            let row = sqlx::query(&format!(
                "SELECT email, name, phone, avatar_url FROM users WHERE tenant_id = $1 AND id = $2{lock}"
            ))
            .bind(TENANT)
            .bind(user)
            .fetch_one(&mut *conn)
            .await?;
            let mut identity: Vec<String> = (0..4)
                .filter_map(|i| row.try_get::<Option<String>, _>(i).transpose())
                .collect::<Result<_, _>>()?;
            identity.retain(|v| v.chars().count() >= 3 && v != "(deleted user)");
            identity.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            identity.dedup();
            for sql in CASCADE {
                changed += sqlx::query(sql)
                    .bind(TENANT)
                    .bind(user)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            }
            let mut line = "line".to_owned();
            for i in 0..identity.len() {
                line = format!("REPLACE({line}, ${}, $3)", i + 4);
            }
            // One statement per id column, each served by its index (an
            // `actor_id = $2 OR target_id = $2` reads every line of the
            // tenant on SQLite). A line naming the user twice is rewritten
            // twice, to the same text.
            for col in ["target_id", "actor_id"] {
                let sql = format!(
                    "UPDATE admin_activity SET line = {line}, {col} = $3 \
                     WHERE tenant_id = $1 AND {col} = $2"
                );
                let mut q = sqlx::query(&sql)
                    .bind(TENANT)
                    .bind(user)
                    .bind(pseudonym_for(TENANT, user));
                for s in &identity {
                    q = q.bind(s.as_str());
                }
                changed += q.execute(&mut *conn).await?.rows_affected();
            }
            changed += sqlx::query(SCRUB)
                .bind(TENANT)
                .bind(user)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
        Scenario::TwoStageErase => {
            // Restore log: whole session rows, the old status.
            let logs = [
                (
                    "sessions",
                    "insert",
                    backend.json_object(
                        "x",
                        &["id", "tenant_id", "user_id", "token_hash", "created_at"],
                    ),
                    "FROM sessions x WHERE x.tenant_id = $1 AND x.user_id = $2",
                ),
                (
                    "users",
                    "update",
                    backend.json_object("x", &["status"]),
                    "FROM users x WHERE x.tenant_id = $1 AND x.id = $2",
                ),
            ];
            for (step, (sql, (table, op, json, from))) in SOFT_DELETE.iter().zip(&logs).enumerate()
            {
                if with_log {
                    sqlx::query(&format!(
                        "INSERT INTO lethe_restore_log (action_id, tenant_id, user_id, step, table_name, op, row_key, data, expect) \
                         SELECT $3, $1, $2, {}, '{table}', '{op}', x.id, {json}, NULL {from}",
                        step + 1
                    ))
                    .bind(TENANT)
                    .bind(user)
                    .bind(format!("floor-{user}"))
                    .execute(&mut *conn)
                    .await?;
                }
                changed += sqlx::query(sql)
                    .bind(TENANT)
                    .bind(user)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            }
        }
    }
    Ok(changed)
}

/// The floor over every user, one transaction each: (ms, rows changed per
/// user, restore-log rows).
async fn run_floor(
    db: &Db,
    scenario: Scenario,
    with_log: bool,
    users: &[String],
) -> anyhow::Result<(f64, u64, i64)> {
    let started = Instant::now();
    let mut changed = Vec::with_capacity(users.len());
    for user in users {
        let mut tx = db.begin_write().await?;
        changed.push(floor_user(&mut tx, scenario, db.backend(), with_log, user).await?);
        tx.commit().await?;
    }
    let floor_ms = ms(started);
    let first = changed[0];
    ensure!(
        changed.iter().all(|c| *c == first),
        "the floor changed different row counts per user"
    );
    let log: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lethe_restore_log")
        .fetch_one(db.pool())
        .await?;
    Ok((floor_ms, first, log))
}

/// `$from, $from+1, …` for `n` values.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a DBA would write for a one-off cleanup of one batch of users:
/// the same changes as [`floor_user`], each statement for the whole batch
/// (`… IN (…)`), no evidence, no restore log. Rows changed.
async fn floor_set(
    conn: &mut AnyConnection,
    scenario: Scenario,
    backend: Backend,
    users: &[String],
) -> anyhow::Result<u64> {
    let n = users.len();
    let ids = placeholders(2, n);
    let mut changed = 0;
    macro_rules! exec {
        ($sql:expr, $extra:expr) => {{
            let sql: String = $sql;
            let mut q = sqlx::query(&sql).bind(TENANT);
            for u in users {
                q = q.bind(u.as_str());
            }
            for v in $extra {
                q = q.bind(v);
            }
            q.execute(&mut *conn).await?.rows_affected()
        }};
    }
    let none: Vec<String> = Vec::new();
    match scenario {
        Scenario::DeactivateFirst => {
            let lock = if backend == Backend::Postgres {
                " FOR UPDATE"
            } else {
                ""
            };
            let sql = format!(
                "SELECT id, email, name, phone, avatar_url FROM users WHERE tenant_id = $1 AND id IN ({ids}){lock}"
            );
            let mut q = sqlx::query(&sql).bind(TENANT);
            for u in users {
                q = q.bind(u.as_str());
            }
            let mut identities = Vec::with_capacity(n);
            for row in q.fetch_all(&mut *conn).await? {
                let id: String = row.try_get(0)?;
                let mut identity: Vec<String> = (1..5)
                    .filter_map(|i| row.try_get::<Option<String>, _>(i).transpose())
                    .collect::<Result<_, _>>()?;
                identity.retain(|v| v.chars().count() >= 3 && v != "(deleted user)");
                identity.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
                identity.dedup();
                identities.push((id, identity));
            }
            for sql in CASCADE {
                changed += exec!(sql.replace("= $2", &format!("IN ({ids})")), none.clone());
            }
            // One statement per id column: each user's own strings and
            // pseudonym picked by CASE.
            for col in ["target_id", "actor_id"] {
                let mut binds: Vec<String> = Vec::new();
                let mut next = 2 + n;
                let mut line_case = Vec::new();
                let mut id_case = Vec::new();
                for (id, identity) in &identities {
                    let (u, p) = (next, next + 1);
                    binds.push(id.clone());
                    binds.push(pseudonym_for(TENANT, id));
                    next += 2;
                    let mut line = "line".to_owned();
                    for s in identity {
                        line = format!("REPLACE({line}, ${next}, ${p})");
                        binds.push(s.clone());
                        next += 1;
                    }
                    line_case.push(format!("WHEN {col} = ${u} THEN {line}"));
                    id_case.push(format!("WHEN {col} = ${u} THEN ${p}"));
                }
                changed += exec!(
                    format!(
                        "UPDATE admin_activity SET line = CASE {} ELSE line END, {col} = CASE {} ELSE {col} END \
                         WHERE tenant_id = $1 AND {col} IN ({ids})",
                        line_case.join(" "),
                        id_case.join(" ")
                    ),
                    binds
                );
            }
            changed += exec!(SCRUB.replace("= $2", &format!("IN ({ids})")), none.clone());
        }
        Scenario::TwoStageErase => {
            for sql in SOFT_DELETE {
                changed += exec!(sql.replace("= $2", &format!("IN ({ids})")), none.clone());
            }
        }
    }
    Ok(changed)
}

/// The set-based floor over every user, one transaction per batch of
/// `batch` users: (ms, rows changed per user).
async fn run_floor_set(
    db: &Db,
    scenario: Scenario,
    users: &[String],
    batch: usize,
) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut changed = 0;
    for chunk in users.chunks(batch) {
        let mut tx = db.begin_write().await?;
        changed += floor_set(&mut tx, scenario, db.backend(), chunk).await?;
        tx.commit().await?;
    }
    Ok((ms(started), changed / users.len().max(1) as u64))
}

// ---------------------------------------------------------------------------
// Runs and report

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The 1, 5 and 15-minute load averages (Linux), to judge the figures by.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Sample {
    lethe: LetheRun,
    floor_ms: f64,
    /// The set-based floor ([`floor_set`]).
    set_ms: f64,
    log_ms: Option<f64>,
    changed_per_user: u64,
}

/// One run: fresh copies of the template for Lethe and the floor(s), then
/// the platform tables compared.
async fn measure(
    dbs: &Dbs,
    template: &str,
    map: &DataMap,
    policies: &TenantPolicies,
    scenario: Scenario,
    users: &[String],
) -> anyhow::Result<Sample> {
    let lethe_db = dbs.copy(template, "lethe").await?;
    let lethe = run_lethe(&lethe_db, map, policies, scenario, users).await?;
    let lethe_state = platform_digest(&lethe_db).await?;
    lethe_db.close().await;
    dbs.drop("lethe").await?;

    let floor_db = dbs.copy(template, "floor").await?;
    let (floor_ms, changed_per_user, _) = run_floor(&floor_db, scenario, false, users).await?;
    let floor_state = platform_digest(&floor_db).await?;
    floor_db.close().await;
    dbs.drop("floor").await?;
    ensure!(
        floor_state == lethe_state,
        "the floor and Lethe left different platform data:\n{floor_state:?}\n{lethe_state:?}"
    );

    let set_db = dbs.copy(template, "floorset").await?;
    let batch = BulkSettings::default().batch_size;
    let (set_ms, set_changed) = run_floor_set(&set_db, scenario, users, batch).await?;
    let set_state = platform_digest(&set_db).await?;
    set_db.close().await;
    dbs.drop("floorset").await?;
    ensure!(
        set_state == lethe_state && set_changed == changed_per_user,
        "the set-based floor left different platform data ({set_changed} vs {changed_per_user} rows per user)"
    );

    let log_ms = if scenario.has_window() {
        let db = dbs.copy(template, "floorlog").await?;
        let (log_ms, _, log_rows) = run_floor(&db, scenario, true, users).await?;
        let state = platform_digest(&db).await?;
        db.close().await;
        dbs.drop("floorlog").await?;
        ensure!(
            state == lethe_state,
            "the floor with log left different platform data"
        );
        ensure!(
            log_rows == lethe.restore_log_rows,
            "the floor logged {log_rows} rows, Lethe {}",
            lethe.restore_log_rows
        );
        Some(log_ms)
    } else {
        None
    };
    Ok(Sample {
        lethe,
        floor_ms,
        set_ms,
        log_ms,
        changed_per_user,
    })
}

/// Medians of one size.
struct SizeRow {
    n: usize,
    lethe_us: f64,
    floor_us: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RUST_LOG=lethe=info shows where each action's time goes (slow).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "sqlite:/tmp/lethe-bulk".into());
    let sizes: Vec<u32> = args
        .next()
        .unwrap_or_else(|| "1000,10000".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let repeat: usize = args
        .next()
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(3)
        .max(1);
    let scenarios: Vec<Scenario> = args
        .next()
        .unwrap_or_else(|| "deactivate-first".into())
        .split(',')
        .map(Scenario::parse)
        .collect::<Result<_, _>>()?;
    let pg = !base.starts_with("sqlite");
    let dbs = Dbs {
        base: base.clone(),
        pg,
    };
    let backend = if pg { "postgres" } else { "sqlite" };
    let map = DataMap::parse(include_str!("../../examples/demo/datamap.toml"))?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let dist = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/dist"));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# lethe bulk benchmark: {backend}, {cpus} CPUs, load average at start: {}",
        loadavg()
    );
    let all = Instant::now();

    for scenario in scenarios {
        let path = dist.join(format!("{}.wasm", scenario.policy()));
        let policy = runtime
            .load_file(&path)
            .with_context(|| format!("cannot load {} (bash policies/build.sh)", path.display()))?;
        let policies = TenantPolicies::single(TENANT, policy);
        println!(
            "\n## {backend}: {} ({}), median of {repeat}",
            scenario.policy(),
            scenario.plan()
        );
        println!(
            "Lethe: preview, then job = execute (re-evaluate, queue items) + worker (batches of {}) until completed.",
            BulkSettings::default().batch_size
        );
        println!("Floor: the same changes by hand-written SQL, one transaction per user.");
        println!(
            "Set floor: the same changes by hand-written set-based SQL, one transaction per batch of {} users, no evidence.\n",
            BulkSettings::default().batch_size
        );
        // One template per size, then the sizes interleaved within each
        // repeat, so that every size sees the same share of whatever else
        // the machine is doing.
        let mut inserted = Vec::new();
        for &n in &sizes {
            let template = format!("tpl{n}");
            let db = dbs.create(&template).await?;
            let started = Instant::now();
            populate(&db, n, scenario.member_state().0).await?;
            inserted.push(ms(started));
            if pg {
                analyze_platform(&db).await?;
            }
            let (members, min, max) = owned_per_user(&db, &map).await?;
            ensure!(
                members == i64::from(n) && min == OWNED_PER_USER && max == OWNED_PER_USER,
                "{members} members own {min}..{max} rows each, expected {n} × {OWNED_PER_USER}"
            );
            dbs.seal(db).await?;
        }
        let mut samples: Vec<Vec<Sample>> = sizes.iter().map(|_| Vec::new()).collect();
        for _ in 0..repeat {
            for (i, &n) in sizes.iter().enumerate() {
                let users: Vec<String> = (1..=n).map(uid).collect();
                let template = format!("tpl{n}");
                samples[i].push(measure(&dbs, &template, &map, &policies, scenario, &users).await?);
            }
        }
        for &n in &sizes {
            dbs.drop(&format!("tpl{n}")).await?;
        }
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        for ((&n, samples), insert_ms) in sizes.iter().zip(&samples).zip(inserted) {
            let med = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
            let preview_ms = med(&|s| s.lethe.preview_ms);
            let execute_ms = med(&|s| s.lethe.execute_ms);
            let job_ms = med(&|s| s.lethe.job_ms);
            let floor_ms = med(&|s| s.floor_ms);
            let set_ms = med(&|s| s.set_ms);
            let log_ms = samples[0]
                .log_ms
                .is_some()
                .then(|| med(&|s| s.log_ms.unwrap_or(0.0)));
            let contexts_ms = med(&|s| s.lethe.contexts_ms);
            let decide_ms = med(&|s| s.lethe.decide_ms);
            let k = samples[0].lethe.breakdown_users;
            let nf = f64::from(n);
            if rows.is_empty() {
                println!(
                    "{:>6}  {:>10}  {:>10}  {:>10}  {:>10}  {:>8}  {:>8}  {:>10}  {:>14}  {:>8}  {:>11}  {:>14}  {:>8}  {:>9}",
                    "users",
                    "owned/user",
                    "preview_ms",
                    "execute_ms",
                    "job_ms",
                    "users/s",
                    "µs/user",
                    "floor_ms",
                    "floor users/s",
                    "floor µs",
                    "lethe/floor",
                    "floor+log ratio",
                    "set µs",
                    "lethe/set"
                );
            }
            let log_cell = match log_ms {
                Some(l) => format!("{l:.0} ms {:.2}×", job_ms / l),
                None => "n/a (no log)".into(),
            };
            println!(
                "{n:>6}  {OWNED_PER_USER:>10}  {preview_ms:>10.1}  {execute_ms:>10.1}  {job_ms:>10.1}  {:>8.0}  {:>8.1}  {floor_ms:>10.1}  {:>14.0}  {:>8.1}  {:>10.2}×  {log_cell:>14}  {:>8.1}  {:>8.2}×",
                nf / job_ms * 1000.0,
                job_ms * 1000.0 / nf,
                nf / floor_ms * 1000.0,
                floor_ms * 1000.0 / nf,
                job_ms / floor_ms,
                set_ms * 1000.0 / nf,
                job_ms / set_ms,
            );
            notes.push(format!(
                "{n:>6} users: data inserted in {insert_ms:.0} ms; the floor changes {} rows per user; \
                 context + decisions for {k} users: contexts {contexts_ms:.1} ms + decide_batch {decide_ms:.1} ms \
                 = {:.1} µs/user ({:.0}% of the job's µs/user)",
                samples[0].changed_per_user,
                (contexts_ms + decide_ms) * 1000.0 / k as f64,
                (contexts_ms + decide_ms) * 1000.0 / k as f64 / (job_ms * 1000.0 / nf) * 100.0,
            ));
            rows.push(SizeRow {
                n: n as usize,
                lethe_us: job_ms * 1000.0 / nf,
                floor_us: floor_ms * 1000.0 / nf,
            });
        }
        println!();
        for note in &notes {
            println!("{note}");
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            if last.n > first.n {
                let g = last.lethe_us / first.lethe_us;
                println!(
                    "growth of the per-user cost, {} vs {} users: Lethe {g:.2}× ({:.0} → {:.0} µs), floor {:.2}× ({:.0} → {:.0} µs); target ≤ 1.10×: {}",
                    last.n,
                    first.n,
                    first.lethe_us,
                    last.lethe_us,
                    last.floor_us / first.floor_us,
                    first.floor_us,
                    last.floor_us,
                    if g <= 1.1 { "met" } else { "MISSED" }
                );
            }
        }
    }
    println!(
        "\ntotal {:.0} s; load average at end: {}",
        all.elapsed().as_secs_f64(),
        loadavg()
    );
    Ok(())
}
