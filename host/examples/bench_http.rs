//! Benchmark: one delete over HTTP, through the real `lethe serve`, against
//! a bare axum + sqlx endpoint doing the same reads and writes (the floor).
//!
//! ```text
//! cargo build --release -p lethe --examples --bins
//! cargo run --release -p lethe --example bench_http -- sqlite:/tmp/bench_http.db [requests] [connections]
//! cargo run --release -p lethe --example bench_http -- postgres://postgres@127.0.0.1:5432 [requests] [connections]
//! ```
//!
//! `requests` per cell and side (default 1000, at most 5000); `connections`
//! a comma-separated list (default `1,8`). On PostgreSQL the database
//! `bench_http_main` is created on the given server and dropped at the end;
//! on SQLite the file is created and removed.
//!
//! What is measured, and why: the question is what Lethe's generality costs
//! per action compared with an endpoint a platform would write by hand for
//! one fixed rule. One tenant, `t1`, of the seeded demo data (`lethe
//! seed`'s generator, 6 items per user) is given the two-stage-erase policy
//! (the demo's `t2`): an admin's delete is allowed, everything kept,
//! sessions removed by the operator's guard, 30-day restore window (restore
//! log written).
//!
//! - Lethe: the release binary `lethe serve` as a child process on a
//!   loopback port, `POST /v1/tenants/t1/users/{id}/actions` with
//!   `{"action":"delete","actor_id":"t1-u1","dry_run":…}` and a tenant API
//!   key (`lethe_api_keys`).
//! - Floor: this binary re-run as a second child process (`--floor`), a bare
//!   axum route on another loopback port over a pool opened like Lethe's
//!   (`Db::connect`: same pool size and SQLite pragmas). It does what
//!   Lethe's applied delete does, by hand-written SQL, without a policy:
//!   API key looked up by hash; in one transaction the subject read with its
//!   lifecycle row (locked on PostgreSQL), the actor read, the holdings
//!   counted (one `UNION ALL` over the ten categories); the restore log of
//!   the sessions and of the user's state, the sessions deleted, the state
//!   updated, the lifecycle row upserted; the decision record, audit row and
//!   history entry; the event outbox (stream bump, event, endpoint fan-out
//!   read); commit; a JSON answer. A dry run does the same and rolls back,
//!   without the event, as Lethe does.
//!
//! Both servers are separate processes with tokio's default runtime, so the
//! client (this process) treats them alike. Every request deletes a
//! distinct active member (dry runs reuse one pool of members, as they
//! change nothing). Per cell (mode × connections): a warm-up of each side,
//! then four rounds of `requests / 4`, Lethe and floor alternating which
//! goes first; latencies per request on the client (keep-alive reqwest),
//! req/s = requests / wall time of that side's rounds. Around each side's
//! rounds every table's row count (and the users marked `deleted`) is
//! taken: the two sides must change the same rows per action, or the run
//! fails. Each cell also prints both servers' own means over its rounds
//! (Lethe's `/metrics` histograms: the route, the transaction, the policy
//! decision; the floor's handler timers) and each server process's CPU
//! time per request (`/proc/<pid>/stat`). Last, a second `lethe serve`
//! with `lethe::executor=info` logs runs the applied delete at one
//! connection again, to say where Lethe's time goes (its `action decided`
//! stages and the request's `served` time), beside the floor's own stage
//! timings.
//!
//! No timed assertion: it prints figures. Loopback only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::{AnyConnection, Row};

use lethe::apikeys::{self, Principal};
use lethe::db::{Backend, Db};
use lethe::seed::{seed, SeedOptions};

const TENANT: &str = "t1";
const ADMIN: &str = "t1-u1";
const POLICY: &str = "two-stage-erase";
/// Rows per user and main category in the seeded data.
const ITEMS: u32 = 6;
/// Warm-up requests per side and cell (not timed).
const WARMUP: usize = 50;
/// Timed rounds per cell; the side going first alternates.
const ROUNDS: usize = 4;
/// Requests of the breakdown pass (applied, one connection), at most.
const BREAKDOWN: usize = 500;
/// A cell that takes longer than this is reported as stuck.
const CELL_TIMEOUT: Duration = Duration::from_secs(900);
/// The PostgreSQL database this benchmark creates and drops.
const PG_DB: &str = "bench_http_main";

// ---------------------------------------------------------------------------
// The floor: a hand-written endpoint

#[derive(Deserialize)]
struct FloorRequest {
    action: String,
    actor_id: String,
    #[serde(default)]
    dry_run: bool,
}

/// Per request, µs: auth, context (begin, subject, actor, holdings), apply
/// (restore log, sessions, state, lifecycle row), evidence (records, event,
/// commit or rollback), handler total.
type Stages = [u64; 5];

struct Floor {
    db: Db,
    sql: FloorSql,
    stages: Mutex<Vec<Stages>>,
}

/// A category of the demo data map, as a hand-written endpoint names it.
struct Cat {
    name: &'static str,
    table: &'static str,
    owner: &'static str,
    /// The `status` values of open rows, when the category has them.
    open: Option<&'static str>,
}

const fn cat(
    name: &'static str,
    table: &'static str,
    owner: &'static str,
    open: Option<&'static str>,
) -> Cat {
    Cat {
        name,
        table,
        owner,
        open,
    }
}

const CATEGORIES: &[Cat] = &[
    cat("contacts", "contacts", "owner_id", None),
    cat(
        "campaigns",
        "campaigns",
        "owner_id",
        Some("'draft', 'running'"),
    ),
    cat("assets", "assets", "owner_id", None),
    cat("deals", "deals", "owner_id", Some("'open'")),
    cat("leads", "leads", "owner_id", Some("'open'")),
    cat("products", "products", "owner_id", None),
    cat("activities", "activities", "owner_id", Some("'undone'")),
    cat(
        "mentoring",
        "mentoring_matches",
        "mentor_id",
        Some("'active'"),
    ),
    cat(
        "mentorships",
        "mentoring_matches",
        "mentee_id",
        Some("'active'"),
    ),
    cat("messages", "messages", "sender_id", None),
];

fn holdings_sql() -> String {
    CATEGORIES
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (table, owner) = (c.table, c.owner);
            let open = match c.open {
                Some(values) => {
                    format!("COALESCE(SUM(CASE WHEN x.status IN ({values}) THEN 1 ELSE 0 END), 0)")
                }
                None => "COUNT(*)".into(),
            };
            format!(
                "SELECT CAST({i} AS BIGINT), CAST(COUNT(*) AS BIGINT), CAST({open} AS BIGINT) \
                 FROM {table} x WHERE x.tenant_id = $1 AND x.{owner} = $2"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The user read: the columns a policy request carries, with Lethe's
/// lifecycle row.
fn user_sql(lock: bool, backend: Backend) -> String {
    format!(
        "SELECT x.id, x.status, x.role, x.permissions, x.domain, x.created_at, x.last_login_at, \
         x.name, x.email, l.previous_state, l.deleted_at, l.restore_until, l.delete_action_id, \
         CAST(x.platform_count AS TEXT), CAST(x.is_domain_contact AS TEXT) \
         FROM users x LEFT JOIN lethe_user_lifecycle l ON l.tenant_id = x.tenant_id AND l.user_id = x.id \
         WHERE x.tenant_id = $1 AND x.id = $2{}",
        if lock && backend == Backend::Postgres {
            " FOR UPDATE OF x"
        } else {
            ""
        }
    )
}

/// Statements prepared once (text; sqlx caches the prepared statements per
/// connection).
struct FloorSql {
    user_locked: String,
    user: String,
    holdings: String,
    log_sessions: String,
    log_state: String,
}

impl FloorSql {
    fn new(backend: Backend) -> FloorSql {
        let log = |step: u32, table: &str, op: &str, json: String, from: &str| {
            format!(
                "INSERT INTO lethe_restore_log (action_id, tenant_id, user_id, step, table_name, op, row_key, data, expect) \
                 SELECT $3, $1, $2, {step}, '{table}', '{op}', x.id, {json}, NULL {from}"
            )
        };
        FloorSql {
            user_locked: user_sql(true, backend),
            user: user_sql(false, backend),
            holdings: holdings_sql(),
            log_sessions: log(
                1,
                "sessions",
                "insert",
                backend.json_object(
                    "x",
                    &["id", "tenant_id", "user_id", "token_hash", "created_at"],
                ),
                "FROM sessions x WHERE x.tenant_id = $1 AND x.user_id = $2",
            ),
            log_state: log(
                2,
                "users",
                "update",
                backend.json_object("x", &["status"]),
                "FROM users x WHERE x.tenant_id = $1 AND x.id = $2",
            ),
        }
    }
}

fn us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn refuse(status: StatusCode, msg: &str) -> Response {
    (status, msg.to_owned()).into_response()
}

/// A user row as JSON (what the decision record keeps of it).
fn user_json(row: &sqlx::any::AnyRow) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::json!({
        "id": row.try_get::<String, _>(0)?,
        "state": row.try_get::<String, _>(1)?,
        "roles": row.try_get::<String, _>(2)?.split(',').collect::<Vec<_>>(),
        "permissions": row.try_get::<String, _>(3)?.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
        "domain": row.try_get::<String, _>(4)?,
        "created_at": row.try_get::<i64, _>(5)?,
        "last_login_at": row.try_get::<Option<i64>, _>(6)?,
        "attributes": {
            "platform_count": row.try_get::<Option<String>, _>(13)?,
            "is_domain_contact": row.try_get::<Option<String>, _>(14)?,
        },
    }))
}

async fn floor_act(
    State(floor): State<Arc<Floor>>,
    UrlPath((tenant, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    Json(req): Json<FloorRequest>,
) -> Response {
    match floor_act_inner(&floor, &tenant, &id, &headers, &req).await {
        Ok(r) => r,
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
    }
}

async fn floor_act_inner(
    floor: &Floor,
    tenant: &str,
    id: &str,
    headers: &HeaderMap,
    req: &FloorRequest,
) -> anyhow::Result<Response> {
    let t0 = Instant::now();
    // The key, by its hash, outside the transaction (as Lethe does).
    let Some(secret) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return Ok(refuse(StatusCode::UNAUTHORIZED, "missing key"));
    };
    let hash = apikeys::hash_secret(secret.trim());
    let key = sqlx::query(
        "SELECT sha256, tenant_id, role, id FROM lethe_api_keys WHERE sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(&hash)
    .fetch_optional(floor.db.pool())
    .await?;
    let Some(key) = key else {
        return Ok(refuse(StatusCode::UNAUTHORIZED, "unknown key"));
    };
    let stored: String = key.try_get(0)?;
    let key_tenant: Option<String> = key.try_get(1)?;
    if !apikeys::constant_time_eq(stored.as_bytes(), hash.as_bytes())
        || key_tenant.as_deref() != Some(tenant)
    {
        return Ok(refuse(StatusCode::NOT_FOUND, "not found"));
    }
    if req.action != "delete" {
        return Ok(refuse(StatusCode::BAD_REQUEST, "only delete"));
    }
    let auth_us = us(t0);

    let t1 = Instant::now();
    let sql = &floor.sql;
    let now = lethe::clock::unix_now();
    let mut tx = floor.db.begin_write().await?;
    let conn: &mut AnyConnection = &mut tx;
    let Some(subject) = sqlx::query(&sql.user_locked)
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(refuse(StatusCode::NOT_FOUND, "no such user"));
    };
    let from: String = subject.try_get(1)?;
    if from == "deleted" || from == "erased" {
        return Ok(refuse(StatusCode::CONFLICT, "invalid-transition"));
    }
    let Some(actor) = sqlx::query(&sql.user)
        .bind(tenant)
        .bind(&req.actor_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(refuse(StatusCode::UNPROCESSABLE_ENTITY, "unknown-actor"));
    };
    let actor_state: String = actor.try_get(1)?;
    let actor_roles: String = actor.try_get(2)?;
    if actor_state != "active" || !actor_roles.split(',').any(|r| r.trim() == "admin") {
        return Ok(refuse(StatusCode::FORBIDDEN, "denied"));
    }
    let mut holdings = Vec::with_capacity(CATEGORIES.len());
    for row in sqlx::query(&sql.holdings)
        .bind(tenant)
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
    {
        let i: i64 = row.try_get(0)?;
        let name = usize::try_from(i)
            .ok()
            .and_then(|i| CATEGORIES.get(i))
            .map_or("?", |c| c.name);
        holdings.push(serde_json::json!({
            "category": name, "total": row.try_get::<i64, _>(1)?, "open": row.try_get::<i64, _>(2)?,
        }));
    }
    let context_us = us(t1);

    // The rule: an active admin may delete; 30-day window, everything kept,
    // sessions removed.
    let t2 = Instant::now();
    let action_id = format!("act-{:032x}", rand::random::<u128>());
    let restore_until = now + 30 * 86_400;
    let mut log_rows = 0;
    log_rows += sqlx::query(&sql.log_sessions)
        .bind(tenant)
        .bind(id)
        .bind(&action_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let sessions = sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    log_rows += sqlx::query(&sql.log_state)
        .bind(tenant)
        .bind(id)
        .bind(&action_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("UPDATE users SET status = 'deleted' WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO lethe_user_lifecycle (tenant_id, user_id, previous_state, deleted_at, restore_until, delete_action_id) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
         previous_state = excluded.previous_state, deleted_at = excluded.deleted_at, \
         restore_until = excluded.restore_until, delete_action_id = excluded.delete_action_id",
    )
    .bind(tenant)
    .bind(id)
    .bind(from.as_str())
    .bind(now)
    .bind(restore_until)
    .bind(&action_id)
    .execute(&mut *conn)
    .await?;
    let apply_us = us(t2);

    // Evidence and the event, then commit (a dry run rolls back).
    let t3 = Instant::now();
    let effects = serde_json::json!({
        "guards": {"sessions": sessions}, "restore_log_rows": log_rows,
    });
    let request_json = serde_json::json!({
        "action": "delete", "now": now, "subject": user_json(&subject)?,
        "actor": user_json(&actor)?, "holdings": holdings,
    })
    .to_string();
    let decision_json = serde_json::json!({
        "outcome": {"allow": {"restore_window_days": 30, "profile": "keep"}},
        "rules": ["floor.admin-delete"],
    })
    .to_string();
    sqlx::query(
        "INSERT INTO lethe_decisions (action_id, tenant_id, subject_id, policy_sha256, request_json, \
         decision_json, rules, fuel_used, latency_us, at, policy_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&action_id)
    .bind(tenant)
    .bind(id)
    .bind("floor")
    .bind(&request_json)
    .bind(&decision_json)
    .bind("floor.admin-delete")
    .bind(0_i64)
    .bind(0_i64)
    .bind(now)
    .bind(None::<i64>)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO lethe_audit (action_id, tenant_id, subject_id, actor_kind, actor_id, action, outcome, \
         effects_json, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&action_id)
    .bind(tenant)
    .bind(id)
    .bind("tenant_user")
    .bind(&req.actor_id)
    .bind("delete")
    .bind("allow")
    .bind(effects.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO lethe_lifecycle_history (action_id, tenant_id, user_id, action, from_state, to_state, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&action_id)
    .bind(tenant)
    .bind(id)
    .bind("delete")
    .bind(from.as_str())
    .bind("deleted")
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if !req.dry_run {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO lethe_event_streams (tenant_id, user_id, last_seq) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET last_seq = lethe_event_streams.last_seq + 1 \
             RETURNING last_seq",
        )
        .bind(tenant)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        let payload = serde_json::json!({
            "action_id": action_id, "user": id, "action": "delete", "from_state": from,
            "to_state": "deleted", "actor": {"kind": "tenant_user", "id": req.actor_id},
            "effects": effects, "restore_until": restore_until, "bulk": false,
        });
        sqlx::query(
            "INSERT INTO lethe_events (id, tenant_id, event_type, user_id, stream_seq, payload_json, at, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(format!("evt-{}", hex::encode(rand::random::<[u8; 16]>())))
        .bind(tenant)
        .bind("user.deleted")
        .bind(id)
        .bind(seq)
        .bind(payload.to_string())
        .bind(now)
        .bind(lethe::clock::unix_millis())
        .execute(&mut *conn)
        .await?;
        let endpoints = sqlx::query(
            "SELECT id, event_types_json FROM lethe_webhook_endpoints WHERE tenant_id = $1 AND enabled = 1",
        )
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await?;
        ensure!(
            endpoints.is_empty(),
            "the floor does not fan out to endpoints"
        );
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    let evidence_us = us(t3);
    let body = serde_json::json!({
        "result": if req.dry_run { "dry_run" } else { "applied" },
        "report": {
            "action_id": action_id, "tenant": tenant, "subject": id, "action": "delete",
            "from_state": from, "to_state": "deleted", "effects": effects,
            "restore_until": restore_until, "dry_run": req.dry_run, "holdings": holdings,
        },
    });
    let total = us(t0);
    if let Ok(mut s) = floor.stages.lock() {
        s.push([auth_us, context_us, apply_us, evidence_us, total]);
    }
    Ok(Json(body).into_response())
}

/// The floor's stage timings since the last call (and forget them).
async fn floor_stages(State(floor): State<Arc<Floor>>) -> Json<Vec<Stages>> {
    let taken = floor
        .stages
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    Json(taken)
}

/// `bench_http --floor <database url>`: serve the floor on a loopback port
/// until killed.
fn run_floor_server(url: &str) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let db = Db::connect(url).await?;
            let floor = Arc::new(Floor {
                sql: FloorSql::new(db.backend()),
                db,
                stages: Mutex::new(Vec::new()),
            });
            let app = Router::new()
                .route("/v1/tenants/{t}/users/{id}/actions", post(floor_act))
                .route("/stages", get(floor_stages))
                .with_state(floor);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            eprintln!("floor: listening on http://{}", listener.local_addr()?);
            axum::serve(listener, app).await?;
            Ok(())
        })
}

// ---------------------------------------------------------------------------
// Child processes

/// A server child process; its stderr is drained by a thread, which keeps
/// the lines the benchmark parses (and the last few, for errors).
struct Server {
    name: &'static str,
    child: Child,
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
    tail: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(name: &'static str, mut cmd: Command, prefix: &'static str) -> anyhow::Result<Server> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        {
            let (lines, tail) = (lines.clone(), tail.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.strip_prefix(prefix) {
                        let _ = addr_tx.send(addr.trim().to_owned());
                    }
                    if line.contains("action decided") || line.contains("\"served\"") {
                        if let Ok(mut l) = lines.lock() {
                            l.push(line.clone());
                        }
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.push(line);
                        if t.len() > 40 {
                            t.remove(0);
                        }
                    }
                }
            });
        }
        let mut server = Server {
            name,
            child,
            base: String::new(),
            lines,
            tail,
        };
        match addr_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => server.base = base,
            Err(_) => {
                let tail = server.tail();
                server.stop();
                bail!("{name} did not start:\n{tail}");
            }
        }
        Ok(server)
    }

    fn tail(&self) -> String {
        self.tail.lock().map(|t| t.join("\n")).unwrap_or_default()
    }

    /// CPU time the process has used so far (user + system), in ms, from
    /// `/proc/<pid>/stat` (clock ticks of USER_HZ = 100).
    fn cpu_ms(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // After the command: state is field 3, utime 14, stime 15.
        let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        tick(11).zip(tick(12)).map_or(0.0, |(u, s)| (u + s) * 10.0)
    }

    fn take_lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    /// SIGTERM by pid, then SIGKILL if it has not exited within 10 s.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `lethe` binary beside this example (`target/release/lethe`).
fn lethe_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("no target directory")?;
    let bin = dir.join("lethe");
    ensure!(
        bin.exists(),
        "{} not found: cargo build --release -p lethe --bins",
        bin.display()
    );
    Ok(bin)
}

fn start_lethe(work: &Path, log: &str) -> anyhow::Result<Server> {
    let mut cmd = Command::new(lethe_binary()?);
    cmd.arg("serve")
        .arg("--config")
        .arg(work.join("lethe.toml"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("LETHE_LOG", log)
        .env("LETHE_CACHE_DIR", work.join("cache"))
        .env_remove("RUST_LOG");
    if log != "warn" {
        cmd.env("LETHE_LOG_FORMAT", "json");
    }
    Server::start("lethe serve", cmd, "lethe: listening on ")
}

fn start_floor(url: &str) -> anyhow::Result<Server> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--floor").arg(url);
    Server::start("floor", cmd, "floor: listening on ")
}

// ---------------------------------------------------------------------------
// Client

/// One side's requests: latencies (µs) and wall time.
#[derive(Default, Clone)]
struct Timed {
    lat_us: Vec<u64>,
    wall: Duration,
}

impl Timed {
    fn add(&mut self, other: Timed) {
        self.lat_us.extend(other.lat_us);
        self.wall += other.wall;
    }

    fn pct(&self, p: f64) -> f64 {
        let mut v = self.lat_us.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1));
        v.get(i).map_or(0.0, |&x| x as f64 / 1000.0)
    }

    fn rps(&self) -> f64 {
        self.lat_us.len() as f64 / self.wall.as_secs_f64()
    }
}

/// POST a delete for each of `users` from `conns` workers; every answer must
/// be a 200 saying `applied` (or `dry_run`).
async fn drive(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    users: &[String],
    conns: usize,
    dry_run: bool,
) -> anyhow::Result<Timed> {
    let users = Arc::new(users.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let body = serde_json::to_vec(&serde_json::json!({
        "action": "delete", "actor_id": ADMIN, "dry_run": dry_run,
    }))?;
    let expect = if dry_run {
        "\"result\":\"dry_run\""
    } else {
        "\"result\":\"applied\""
    };
    let deadline = Instant::now() + CELL_TIMEOUT;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (client, users, next, body) =
            (client.clone(), users.clone(), next.clone(), body.clone());
        let (base, key) = (base.to_owned(), key.to_owned());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(user) = users.get(i) else { break };
                anyhow::ensure!(Instant::now() < deadline, "cell timed out");
                let url = format!("{base}/v1/tenants/{TENANT}/users/{user}/actions");
                let t0 = Instant::now();
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                let status = resp.status();
                let bytes = resp.bytes().await?;
                let took = us(t0);
                let text = String::from_utf8_lossy(&bytes);
                anyhow::ensure!(
                    status == 200 && text.contains(expect),
                    "{user}: {status}: {}",
                    text.chars().take(400).collect::<String>()
                );
                lat.push(took);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut out = Timed::default();
    for w in workers {
        out.lat_us.extend(w.await??);
    }
    out.wall = started.elapsed();
    Ok(out)
}

// ---------------------------------------------------------------------------
// Database

/// Row counts of every table, and of the users marked deleted.
async fn row_counts(db: &Db) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for name in db.introspect().await?.tables.keys() {
        if name.starts_with("_sqlx") {
            continue;
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{name}\""))
            .fetch_one(db.pool())
            .await?;
        out.insert(name.clone(), n);
    }
    let deleted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE status = 'deleted'")
        .fetch_one(db.pool())
        .await?;
    out.insert("users (status = deleted)".into(), deleted);
    Ok(out)
}

fn add_delta(
    acc: &mut BTreeMap<String, i64>,
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
) {
    for (t, a) in after {
        let d = a - before.get(t).copied().unwrap_or(0);
        if d != 0 {
            *acc.entry(t.clone()).or_default() += d;
        }
    }
}

/// PostgreSQL statistics for the platform's tables only (see bench_bulk's
/// `analyze_platform`: Lethe's tables are left as a migration leaves them).
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

/// The database URL to use, created empty.
async fn create_database(base: &str) -> anyhow::Result<String> {
    if let Some(path) = base.strip_prefix("sqlite:") {
        remove_sqlite(path);
        Ok(base.to_owned())
    } else {
        let admin = Db::connect(&format!("{base}/postgres")).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"))
            .execute(admin.pool())
            .await?;
        sqlx::query(&format!("CREATE DATABASE {PG_DB}"))
            .execute(admin.pool())
            .await?;
        admin.close().await;
        Ok(format!("{base}/{PG_DB}"))
    }
}

async fn drop_database(base: &str) -> anyhow::Result<()> {
    if let Some(path) = base.strip_prefix("sqlite:") {
        remove_sqlite(path);
    } else {
        let admin = Db::connect(&format!("{base}/postgres")).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"))
            .execute(admin.pool())
            .await?;
        admin.close().await;
    }
    Ok(())
}

fn remove_sqlite(path: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}

/// The 1, 5 and 15-minute load averages (Linux), to judge the figures by.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(mut v: Vec<u64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// Hands out distinct users.
struct Users {
    ids: Vec<String>,
    next: usize,
}

impl Users {
    fn take(&mut self, n: usize) -> anyhow::Result<Vec<String>> {
        ensure!(
            self.next + n <= self.ids.len(),
            "out of users ({} seeded active members)",
            self.ids.len()
        );
        let out = self.ids[self.next..self.next + n].to_vec();
        self.next += n;
        Ok(out)
    }
}

/// One cell's result.
struct Cell {
    dry_run: bool,
    conns: usize,
    lethe: Timed,
    floor: Timed,
    lethe_rows: BTreeMap<String, i64>,
    floor_rows: BTreeMap<String, i64>,
    /// Lethe's own histograms over the cell's rounds (`/metrics`, sum and
    /// count deltas): HTTP route, executor transaction, policy decision.
    lethe_means: [f64; 3],
    /// The floor's own timers over the cell's rounds.
    floor_stages: Vec<Stages>,
    /// CPU ms each server process used during its own rounds.
    lethe_cpu_ms: f64,
    floor_cpu_ms: f64,
}

/// `(sum, count)` of the histograms `name` whose labels contain `labels`,
/// from Lethe's Prometheus text.
fn histogram(text: &str, name: &str, labels: &str) -> (f64, f64) {
    let (mut sum, mut count) = (0.0, 0.0);
    for line in text.lines() {
        let value = || {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if !line.contains(labels) {
            continue;
        }
        if line.starts_with(&format!("{name}_sum{{")) {
            sum += value();
        } else if line.starts_with(&format!("{name}_count{{")) {
            count += value();
        }
    }
    (sum, count)
}

/// Lethe's histograms `(sum, count)` for the actions route, the delete's
/// transaction (`dry_run` as given) and the policy decisions.
async fn lethe_metrics(
    client: &reqwest::Client,
    base: &str,
    dry_run: bool,
) -> anyhow::Result<[(f64, f64); 3]> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok([
        histogram(
            &text,
            "lethe_http_request_seconds",
            "route=\"/v1/tenants/{t}/users/{id}/actions\"",
        ),
        histogram(
            &text,
            "lethe_executor_transaction_seconds",
            &format!("dry_run=\"{dry_run}\""),
        ),
        histogram(&text, "lethe_decision_seconds", "tenant=\"t1\""),
    ])
}

#[allow(clippy::too_many_arguments)]
async fn run_cell(
    db: &Db,
    client: &reqwest::Client,
    lethe: &Server,
    floor: &Server,
    key: &str,
    users: &mut Users,
    dry_pool: &[String],
    dry_run: bool,
    conns: usize,
    requests: usize,
) -> anyhow::Result<Cell> {
    let per_round = requests / ROUNDS;
    // Applied deletes need fresh users; dry runs change nothing and reuse
    // one pool (distinct users within a run, so no row lock is shared).
    let mut pick = |n: usize| -> anyhow::Result<(Vec<String>, Vec<String>)> {
        if dry_run {
            Ok((dry_pool[..n].to_vec(), dry_pool[..n].to_vec()))
        } else {
            // Alternate users between the sides, so both get the same mix.
            let both = users.take(2 * n)?;
            let l = both.iter().step_by(2).cloned().collect();
            let f = both.iter().skip(1).step_by(2).cloned().collect();
            Ok((l, f))
        }
    };
    let (wl, wf) = pick(WARMUP)?;
    drive(client, &lethe.base, key, &wl, conns, dry_run).await?;
    drive(client, &floor.base, key, &wf, conns, dry_run).await?;
    let _ = client.get(format!("{}/stages", floor.base)).send().await?;
    let mut cell = Cell {
        dry_run,
        conns,
        lethe: Timed::default(),
        floor: Timed::default(),
        lethe_rows: BTreeMap::new(),
        floor_rows: BTreeMap::new(),
        lethe_means: [0.0; 3],
        floor_stages: Vec::new(),
        lethe_cpu_ms: 0.0,
        floor_cpu_ms: 0.0,
    };
    let metrics_before = lethe_metrics(client, &lethe.base, dry_run).await?;
    for round in 0..ROUNDS {
        let (lu, fu) = pick(per_round)?;
        for side in 0..2 {
            let lethe_turn = (side == 0) == round.is_multiple_of(2);
            let before = row_counts(db).await?;
            if lethe_turn {
                let cpu = lethe.cpu_ms();
                let t = drive(client, &lethe.base, key, &lu, conns, dry_run).await?;
                cell.lethe_cpu_ms += lethe.cpu_ms() - cpu;
                cell.lethe.add(t);
                add_delta(&mut cell.lethe_rows, &before, &row_counts(db).await?);
            } else {
                let cpu = floor.cpu_ms();
                let t = drive(client, &floor.base, key, &fu, conns, dry_run).await?;
                cell.floor_cpu_ms += floor.cpu_ms() - cpu;
                cell.floor.add(t);
                add_delta(&mut cell.floor_rows, &before, &row_counts(db).await?);
            }
        }
    }
    let metrics_after = lethe_metrics(client, &lethe.base, dry_run).await?;
    for (i, mean) in cell.lethe_means.iter_mut().enumerate() {
        let (sum, count) = (
            metrics_after[i].0 - metrics_before[i].0,
            metrics_after[i].1 - metrics_before[i].1,
        );
        *mean = if count > 0.0 { sum / count * 1e6 } else { 0.0 };
    }
    cell.floor_stages = client
        .get(format!("{}/stages", floor.base))
        .send()
        .await?
        .json()
        .await?;
    Ok(cell)
}

fn write_config(work: &Path, url: &str) -> anyhow::Result<()> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let root = root.canonicalize()?;
    let policy = root.join(format!("policies/dist/{POLICY}.wasm"));
    ensure!(
        policy.exists(),
        "{} missing (bash policies/build.sh)",
        policy.display()
    );
    let toml = format!(
        "database_url = {url:?}\n\
         datamap = {:?}\n\
         listen = \"127.0.0.1:0\"\n\
         \n\
         [[tenant]]\n\
         id = \"{TENANT}\"\n\
         policy = {:?}\n",
        root.join("examples/demo/datamap.toml")
            .display()
            .to_string(),
        policy.display().to_string(),
    );
    std::fs::write(work.join("lethe.toml"), toml)?;
    Ok(())
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return Ok(());
            }
        }
        ensure!(Instant::now() < deadline, "lethe serve not ready in 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A JSON log line's `fields`.
fn log_fields(line: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("fields")?.as_object().cloned()
}

struct Breakdown {
    lethe_client: Timed,
    floor_client: Timed,
    /// context, decide, apply, evidence+commit, executor total, served.
    lethe_stages: Vec<[u64; 6]>,
    floor_stages: Vec<Stages>,
}

async fn breakdown(
    client: &reqwest::Client,
    work: &Path,
    floor: &Server,
    key: &str,
    users: &mut Users,
    n: usize,
) -> anyhow::Result<Breakdown> {
    let lethe = start_lethe(
        work,
        "warn,lethe::executor=info,lethe::telemetry::request=debug",
    )?;
    wait_ready(client, &lethe.base).await?;
    let warm = users.take(2 * WARMUP)?;
    drive(client, &lethe.base, key, &warm[..WARMUP], 1, false).await?;
    drive(client, &floor.base, key, &warm[WARMUP..], 1, false).await?;
    let _ = lethe.take_lines();
    let _ = client.get(format!("{}/stages", floor.base)).send().await?;
    let both = users.take(2 * n)?;
    let lu: Vec<String> = both.iter().step_by(2).cloned().collect();
    let fu: Vec<String> = both.iter().skip(1).step_by(2).cloned().collect();
    // Two halves, the side going first alternating, as in the cells.
    let half = n / 2;
    let mut lethe_client = Timed::default();
    let mut floor_client = Timed::default();
    lethe_client.add(drive(client, &lethe.base, key, &lu[..half], 1, false).await?);
    floor_client.add(drive(client, &floor.base, key, &fu[..half], 1, false).await?);
    floor_client.add(drive(client, &floor.base, key, &fu[half..], 1, false).await?);
    lethe_client.add(drive(client, &lethe.base, key, &lu[half..], 1, false).await?);
    let floor_stages: Vec<Stages> = client
        .get(format!("{}/stages", floor.base))
        .send()
        .await?
        .json()
        .await?;
    // Give the log thread a moment to drain the last lines.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut decided = Vec::new();
    let mut served = Vec::new();
    for line in lethe.take_lines() {
        let Some(f) = log_fields(&line) else { continue };
        // u128 fields (`as_micros`) may be written as strings.
        let get = |k: &str| match f.get(k) {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        match f.get("message").and_then(|m| m.as_str()) {
            Some("action decided") => {
                if let (Some(c), Some(d), Some(a), Some(e)) = (
                    get("context_us"),
                    get("decide_us"),
                    get("apply_us"),
                    get("evidence_us"),
                ) {
                    decided.push([c, d, a, e]);
                }
            }
            Some("served") => {
                if let Some(s) = get("elapsed_us") {
                    served.push(s);
                }
            }
            _ => {}
        }
    }
    ensure!(
        decided.len() == n && served.len() == n,
        "breakdown: {} `action decided` and {} `served` lines for {n} requests",
        decided.len(),
        served.len()
    );
    let lethe_stages = decided
        .iter()
        .zip(&served)
        .map(|(d, s)| [d[0], d[1], d[2], d[3], d.iter().sum(), *s])
        .collect();
    drop(lethe);
    Ok(Breakdown {
        lethe_client,
        floor_client,
        lethe_stages,
        floor_stages,
    })
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--floor") {
        let url = args.get(1).context("--floor <database url>")?;
        return run_floor_server(url);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: Vec<String>) -> anyhow::Result<()> {
    let base = args
        .first()
        .cloned()
        .unwrap_or_else(|| "sqlite:/tmp/bench_http.db".into());
    let requests: usize = args.get(1).map_or(Ok(1000), |s| s.parse())?;
    let conns: Vec<usize> = args
        .get(2)
        .map_or("1,8", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    ensure!(
        (ROUNDS..=5000).contains(&requests),
        "requests per cell: {ROUNDS}..=5000"
    );
    ensure!(
        conns.iter().all(|c| (1..=64).contains(c)),
        "connections: 1..=64"
    );
    let requests = requests / ROUNDS * ROUNDS;
    let pg = base.starts_with("postgres");
    ensure!(
        pg || base.starts_with("sqlite:"),
        "sqlite:<path> or postgres://…"
    );
    if pg {
        let host = base
            .split("://")
            .nth(1)
            .and_then(|rest| rest.rsplit('@').next())
            .and_then(|h| h.split([':', '/']).next())
            .unwrap_or_default();
        ensure!(
            matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
            "loopback PostgreSQL only"
        );
    }
    let backend = if pg { "postgres" } else { "sqlite" };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# lethe HTTP benchmark: {backend}, {cpus} CPUs, load average at start: {}",
        loadavg()
    );
    let all = Instant::now();

    // Users: each applied delete a fresh active member (about 78 % of the
    // seeded users are active members).
    let breakdown_n = requests.min(BREAKDOWN);
    let applied = conns.len() * 2 * (requests + WARMUP)
        + 2 * (breakdown_n + WARMUP)
        + requests / ROUNDS
        + WARMUP;
    let per_tenant = u32::try_from(applied * 100 / 75 + 50)?;
    let url = create_database(&base).await?;
    let db = Db::connect(&url).await?;
    let started = Instant::now();
    seed(
        &db,
        &SeedOptions {
            tenants: 1,
            users: per_tenant,
            items: ITEMS,
            seed: 1,
        },
    )
    .await?;
    if pg {
        analyze_platform(&db).await?;
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM users WHERE tenant_id = $1 AND status = 'active' AND role LIKE 'member%' ORDER BY id",
    )
    .bind(TENANT)
    .fetch_all(db.pool())
    .await?;
    println!(
        "seeded {per_tenant} users, {ITEMS} items each, in {:.1} s; {} active members of {TENANT} to delete",
        started.elapsed().as_secs_f64(),
        ids.len()
    );
    let mut users = Users { ids, next: 0 };
    let dry_pool = users.take(requests / ROUNDS + WARMUP)?;
    let key = apikeys::create(
        &db,
        Principal::Tenant(TENANT.into()),
        Some("bench_http"),
        lethe::clock::unix_now(),
    )
    .await?
    .secret;

    let work = std::env::temp_dir().join(format!("bench_http-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    write_config(&work, &url)?;
    let max_conns = conns.iter().copied().max().unwrap_or(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(max_conns)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;

    let result = async {
        let floor = start_floor(&url)?;
        let lethe = start_lethe(&work, "warn")?;
        wait_ready(&client, &lethe.base).await?;
        let mut cells = Vec::new();
        for dry_run in [true, false] {
            for &c in &conns {
                let cell = run_cell(
                    &db, &client, &lethe, &floor, &key, &mut users, &dry_pool, dry_run, c, requests,
                )
                .await?;
                cells.push(cell);
            }
        }
        drop(lethe);
        let bd = breakdown(&client, &work, &floor, &key, &mut users, breakdown_n).await?;
        drop(floor);
        Ok::<_, anyhow::Error>((cells, bd))
    }
    .await;
    db.close().await;
    let _ = std::fs::remove_dir_all(&work);
    if std::env::var_os("BENCH_HTTP_KEEP").is_none() {
        drop_database(&base).await?;
    }
    let (cells, bd) = result?;

    println!(
        "\n## {backend}: delete of an active member by an admin (two-stage-erase: everything kept, sessions removed, \
         30-day restore window), {requests} requests per cell and side in {ROUNDS} rounds after {WARMUP} warm-up"
    );
    println!(
        "Lethe: `lethe serve` (release, child process). Floor: bare axum + sqlx, same reads and writes, no policy \
         (child process). Ratio = Lethe / floor (p50 latency; floor req/s / Lethe req/s).\n"
    );
    println!(
        "| mode | conns | Lethe p50 | Lethe p99 | Lethe req/s | floor p50 | floor p99 | floor req/s | ratio p50 | ratio req/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut worst: f64 = 0.0;
    let mut mismatch = Vec::new();
    for c in &cells {
        let rp = c.lethe.pct(0.5) / c.floor.pct(0.5);
        let rt = c.floor.rps() / c.lethe.rps();
        worst = worst.max(rp).max(rt);
        println!(
            "| {} | {} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2}× | {:.2}× |",
            if c.dry_run { "dry-run" } else { "applied" },
            c.conns,
            c.lethe.pct(0.5),
            c.lethe.pct(0.99),
            c.lethe.rps(),
            c.floor.pct(0.5),
            c.floor.pct(0.99),
            c.floor.rps(),
            rp,
            rt,
        );
        if c.lethe_rows != c.floor_rows {
            mismatch.push(format!(
                "{} at {} connections: Lethe {:?}, floor {:?}",
                if c.dry_run { "dry-run" } else { "applied" },
                c.conns,
                c.lethe_rows,
                c.floor_rows
            ));
        }
    }
    println!();
    for c in &cells {
        let n = c.lethe.lat_us.len() as i64;
        let per: Vec<String> = c
            .lethe_rows
            .iter()
            .map(|(t, d)| {
                if d % n == 0 {
                    format!("{t} {:+}", d / n)
                } else {
                    format!("{t} {:+.2}", *d as f64 / n as f64)
                }
            })
            .collect();
        println!(
            "rows changed per action, {} at {} connections: {} ({})",
            if c.dry_run { "dry-run" } else { "applied" },
            c.conns,
            if per.is_empty() {
                "none".to_owned()
            } else {
                per.join(", ")
            },
            if c.lethe_rows == c.floor_rows {
                "Lethe = floor"
            } else {
                "Lethe ≠ floor"
            }
        );
    }

    println!(
        "\nmean per request over each cell's rounds, from the servers' own timers \
         (Lethe: its /metrics histograms; floor: its handler's timers), and each server \
         process's CPU time (user + system) per request:\n"
    );
    println!(
        "| mode | conns | Lethe HTTP route | Lethe transaction | of which policy | floor handler | floor transaction | floor key lookup | Lethe CPU | floor CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for c in &cells {
        let mean = |i: usize| {
            let n = c.floor_stages.len().max(1) as f64;
            c.floor_stages.iter().map(|s| s[i] as f64).sum::<f64>() / n
        };
        let floor_tx = mean(1) + mean(2) + mean(3);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            if c.dry_run { "dry-run" } else { "applied" },
            c.conns,
            ms(c.lethe_means[0]),
            ms(c.lethe_means[1]),
            ms(c.lethe_means[2]),
            ms(mean(4)),
            ms(floor_tx),
            ms(mean(0)),
            ms(c.lethe_cpu_ms * 1000.0 / c.lethe.lat_us.len().max(1) as f64),
            ms(c.floor_cpu_ms * 1000.0 / c.floor.lat_us.len().max(1) as f64),
        );
    }

    // Where the time goes: applied, one connection, logging server.
    let n = bd.lethe_stages.len();
    let col = |i: usize| median(bd.lethe_stages.iter().map(|s| s[i]).collect());
    let fcol = |i: usize| median(bd.floor_stages.iter().map(|s| s[i]).collect());
    let outside: Vec<u64> = bd
        .lethe_stages
        .iter()
        .map(|s| s[5].saturating_sub(s[4]))
        .collect();
    let l_client = bd.lethe_client.pct(0.5) * 1000.0;
    let f_client = bd.floor_client.pct(0.5) * 1000.0;
    println!(
        "\n## {backend}: where the time goes, applied delete at 1 connection ({n} requests each; medians per stage; \
         a second `lethe serve` logging `lethe::executor=info` and each request's `served` time)\n"
    );
    println!("| stage | Lethe | floor |");
    println!("|---|---|---|");
    println!(
        "| API key (hash lookup), body, routing, middleware, JSON answer | {} (served − executor) | {} (key lookup only) |",
        ms(median(outside)),
        ms(fcol(0))
    );
    println!(
        "| context: BEGIN, subject locked + lifecycle row, actor, holdings | {} | {} |",
        ms(col(0)),
        ms(fcol(1))
    );
    println!(
        "| policy decision (blocking pool, fresh instance) | {} | — |",
        ms(col(1))
    );
    println!(
        "| apply: restore log, sessions, state, lifecycle row | {} | {} |",
        ms(col(2)),
        ms(fcol(2))
    );
    println!(
        "| evidence + event + COMMIT | {} | {} |",
        ms(col(3)),
        ms(fcol(3))
    );
    println!(
        "| server total (Lethe: `served`; floor: handler) | {} | {} |",
        ms(col(5)),
        ms(fcol(4))
    );
    println!(
        "| client p50 (this pass) | {} | {} |",
        ms(l_client),
        ms(f_client)
    );
    println!(
        "\ntarget ≤ 1.50× the floor in every cell: {} (worst ratio {worst:.2}×)",
        if worst <= 1.5 { "met" } else { "MISSED" }
    );
    println!(
        "\ntotal {:.0} s; load average at end: {}",
        all.elapsed().as_secs_f64(),
        loadavg()
    );
    ensure!(
        mismatch.is_empty(),
        "Lethe and the floor changed different rows:\n{}",
        mismatch.join("\n")
    );
    Ok(())
}
