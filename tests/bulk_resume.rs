//! A bulk job survives its server being killed (SIGKILL) mid-run, on SQLite
//! and on PostgreSQL, through the real `lethe` binary.
//!
//! `lethe seed` builds a large demo platform, `lethe serve` runs tenant t4
//! (the `cohort-cleanup` policy: admins erase mentors and mentees for good,
//! multi-platform users are escalated to customer-success, everyone else is
//! denied). A bulk delete of every member is previewed and executed over
//! HTTP; the server is killed with SIGKILL once some users are done. The
//! database then shows every user either fully applied (erased, nothing
//! owned, one history entry, one decision) or untouched (pending: no trace
//! at all). The server is restarted on the same config; once the dead
//! worker's lease has lapsed the new one takes the job over and completes
//! it: every user is decided exactly once and the counts add up to the
//! preview's.
//!
//! Needs the components in `policies/dist/` (`bash policies/build.sh`) and
//! PostgreSQL at `LETHE_TEST_PG` (default postgres://postgres@127.0.0.1:5432).

#[path = "bulk_checks.rs"]
mod bulk_checks;
#[path = "../host/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulk_checks::{check_items, Snapshot};
use common::serve::{free_port, Server};
use common::{call, lethe_json, policy_component, write_config, TestDb};
use lethe::db::Backend;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Row;

const TENANT: &str = "t4";
/// The servers' log filter: the worker's progress is what a failure needs.
const LOG: &str = "warn,lethe::bulk=info";
/// Users per tenant. Large enough that the job runs for seconds (998
/// members of t4: about 5 s on SQLite and 10 s on PostgreSQL on a 2-core
/// machine), so the server is killed while it is well under way.
const USERS: u32 = 1000;
/// Seeded tenants (t1..t4: t4 is the one acted on).
const TENANTS: u32 = 4;
/// The server is killed once at least this many users are done: in the
/// middle of the fourth batch of 10, most likely with the next user's
/// transaction under way.
const KILL_AFTER: u64 = 35;

/// The server's config: the demo data map, tenant t4 only, short leases
/// and small batches.
fn server_config(dir: &Path, url: &str, port: u16) -> PathBuf {
    let policy = policy_component("cohort-cleanup");
    let rest = format!(
        "listen = \"127.0.0.1:{port}\"\n\
         sweep_interval_secs = 0\n\
         \n\
         [bulk]\n\
         lease_secs = 1\n\
         batch_size = 10\n\
         poll_ms = 100\n\
         \n\
         [[tenant]]\n\
         id = \"{TENANT}\"\n\
         policy = \"{}\"\n",
        policy.display()
    );
    write_config(dir, url, &rest)
}

fn count(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no `{field}` in {v}"))
}

async fn kill_and_resume(backend: Backend) {
    let started = Instant::now();
    let t = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let users = USERS.to_string();
    let tenants = TENANTS.to_string();
    lethe_json(&[
        "seed",
        "--database",
        &t.url,
        "--tenants",
        &tenants,
        "--users",
        &users,
        "--items",
        "2",
    ]);
    let port = free_port();
    let config = server_config(dir.path(), &t.url, port);
    let key = lethe_json(&[
        "keys",
        "create",
        "--config",
        config.to_str().unwrap(),
        "--tenant",
        TENANT,
    ])["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let seed = Snapshot::read(&t.db, TENANT).await;
    assert_eq!(seed.users.len(), USERS as usize);
    eprintln!("[{backend:?}] seeded in {:?}", started.elapsed());

    let http = reqwest::Client::new();
    let mut server = Server::spawn(&config, port, &dir.path().join("serve-1.log"), LOG);
    server.wait_healthy(&http).await;
    eprintln!("[{backend:?}] serving at {:?}", started.elapsed());

    // Every member: mentors and mentees are erased, multi-platform ones
    // escalated, the rest denied.
    let selection = json!({
        "action": "delete",
        "actor_id": "t4-u1",
        "filter": {"role": "member"},
        "reason": "kill-and-resume test",
    });
    let (status, preview) = call(
        &http,
        Method::POST,
        &server.url(&format!("/v1/tenants/{TENANT}/bulk/preview")),
        Some(&key),
        Some(selection),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    let total = count(&preview, "matched");
    let outcomes = &preview["outcomes"];
    let (allow, escalate, deny) = (
        count(outcomes, "allow"),
        count(outcomes, "escalate"),
        count(outcomes, "deny"),
    );
    assert_eq!(total, u64::from(USERS) - 2, "every user but the two admins");
    assert_eq!(count(outcomes, "fault"), 0, "{preview}");
    assert_eq!(allow + escalate + deny, total);
    assert!(allow > 0 && escalate > 0 && deny > 0, "{outcomes}");
    let (status, job) = call(
        &http,
        Method::POST,
        &server.url(&format!(
            "/v1/tenants/{TENANT}/bulk/{}/execute",
            preview["preview_id"].as_str().unwrap()
        )),
        Some(&key),
        Some(json!({"confirm_count": count(&preview, "confirm_count")})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    assert_eq!(count(&job, "total"), total);
    let job_path = format!("/v1/tenants/{TENANT}/jobs/{job_id}");
    let executed = Instant::now();
    eprintln!("[{backend:?}] executed at {:?}", started.elapsed());

    // Kill the server (SIGKILL) once a few batches are through.
    let deadline = Instant::now() + Duration::from_secs(180);
    let seen = loop {
        let (status, job) =
            call(&http, Method::GET, &server.url(&job_path), Some(&key), None).await;
        assert_eq!(status, 200, "{job}");
        assert!(
            job["status"] != "completed",
            "the job completed before the server could be killed; raise USERS"
        );
        if count(&job, "done") >= KILL_AFTER {
            server.kill();
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the job made no progress: {job}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "[{backend:?}] killed {:?} after execute, {} of {total} done when last seen",
        executed.elapsed(),
        count(&seen, "done")
    );

    // With the server dead: every user is fully applied or untouched.
    let at_kill = check_items(&t.db, &job_id, &seed).await;
    let pending = at_kill.get("pending").copied().unwrap_or(0);
    let done = total - pending;
    assert!(
        done >= count(&seen, "done") && done > 0 && pending > 0,
        "the job was not mid-run at the kill: {at_kill:?}"
    );
    assert!(
        at_kill.get("applied").copied().unwrap_or(0) > 0,
        "nobody applied before the kill: {at_kill:?}"
    );
    let (status, lease): (String, Option<i64>) =
        sqlx::query("SELECT status, lease_until FROM lethe_bulk_jobs WHERE id = $1")
            .bind(&job_id)
            .fetch_one(t.db.pool())
            .await
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
    assert_eq!(status, "running");
    assert!(lease.is_some(), "a killed worker leaves its lease behind");
    eprintln!(
        "[{backend:?}] at the kill: {at_kill:?} (checked at {:?})",
        started.elapsed()
    );

    // Restart on the same config: the job is taken over once the lease has
    // lapsed, and completes.
    let log = dir.path().join("serve-2.log");
    let mut server = Server::spawn(&config, port, &log, LOG);
    server.wait_healthy(&http).await;
    let restarted = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    let job = loop {
        let (status, job) =
            call(&http, Method::GET, &server.url(&job_path), Some(&key), None).await;
        assert_eq!(status, 200, "{job}");
        if job["status"] == "completed" {
            break job;
        }
        assert_ne!(job["status"], "cancelled", "{job}");
        assert!(
            Instant::now() < deadline,
            "the job did not complete after the restart: {job}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "[{backend:?}] completed {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(count(&job, "total"), total);
    assert_eq!(count(&job, "pending"), 0, "{job}");
    assert_eq!(count(&job, "failed"), 0, "{job}");
    assert_eq!(count(&job, "cancelled"), 0, "{job}");
    assert_eq!(count(&job, "done"), total, "{job}");
    assert_eq!(
        count(&job, "applied") + count(&job, "escalated") + count(&job, "denied"),
        total,
        "{job}"
    );
    // Exactly what the preview said: nobody was decided twice or skipped.
    assert_eq!(
        (
            count(&job, "applied"),
            count(&job, "escalated"),
            count(&job, "denied")
        ),
        (allow, escalate, deny),
        "{job} vs {preview}"
    );
    drop(http);
    server.terminate().await;

    let end = check_items(&t.db, &job_id, &seed).await;
    assert_eq!(end.get("pending"), None, "{end:?}");
    assert_eq!(end.get("applied").copied(), Some(allow), "{end:?}");
    assert_eq!(end.get("escalated").copied(), Some(escalate), "{end:?}");
    assert_eq!(end.get("denied").copied(), Some(deny), "{end:?}");
    // One decision per user of the job, none twice; one history entry per
    // erased user.
    let audited: i64 = sqlx::query("SELECT COUNT(*) FROM lethe_audit WHERE tenant_id = $1")
        .bind(TENANT)
        .fetch_one(t.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, total as i64);
    let histories: i64 = sqlx::query(
        "SELECT COUNT(*) FROM lethe_lifecycle_history WHERE tenant_id = $1 AND action = 'delete'",
    )
    .bind(TENANT)
    .fetch_one(t.db.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(histories, allow as i64);
    let escalated: i64 = sqlx::query(
        "SELECT COUNT(*) FROM lethe_escalations WHERE tenant_id = $1 AND queue = 'customer-success' \
         AND status = 'pending'",
    )
    .bind(TENANT)
    .fetch_one(t.db.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(escalated, escalate as i64);
    // The restarted server's worker took the job over.
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text
            .lines()
            .any(|l| l.contains("bulk job claimed") && l.contains(&job_id)),
        "{log_text}"
    );
    eprintln!(
        "[{backend:?}] {total} users: {allow} erased, {escalate} escalated, {deny} denied; \
         test took {:?}",
        started.elapsed()
    );
    t.drop_db().await;
}

#[tokio::test]
async fn sqlite_job_survives_sigkill() {
    kill_and_resume(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_job_survives_sigkill() {
    kill_and_resume(Backend::Postgres).await;
}
