//! Events out, end to end, on SQLite and PostgreSQL: a real `lethe serve`
//! delivers to a real receiver on loopback (`tests/webhooks/receiver.py`)
//! that verifies every signature with the `standardwebhooks` package, an
//! independent implementation of the specification.
//!
//! - A reactivation of a never-logged-in user (seed 004) delivers
//!   `user.reactivated` with `notify: ["welcome"]`, signed; the same
//!   request with a tampered body fails the receiver's verification.
//! - A receiver that answers 500 three times gets the event a fourth time,
//!   with the same `webhook-id`; the event's log shows the four attempts.
//! - A 410 kills the delivery and disables the endpoint.
//! - An erase event carries no email, name or phone of the user.
//! - A denied action and a dry run leave no event.
//! - The server is SIGKILLed while deliveries lag behind commits; after a
//!   restart every committed event reaches the receiver (0 lost), and each
//!   user's events arrive in order.
//! - After a secret rotation both secrets sign: a receiver on the old one
//!   and one on the new one both verify.
//! - Two servers on one database share the deliveries: each event once.
//!
//! Needs the components in `policies/dist/` and PostgreSQL at
//! `LETHE_TEST_PG` (default postgres://postgres@127.0.0.1:5432).

#[path = "../host/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::serve::{free_port, Server};
use common::{call, policy_component, root, scalar, seed_demo, write_config, TestDb};
use lethe::apikeys::{self, Principal};
use lethe::db::Backend;
use lethe::events::signature::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const LOG: &str = "warn,lethe::events=debug";

/// The receiver process, killed by pid when dropped.
struct Receiver {
    child: Child,
    port: u16,
    out: std::path::PathBuf,
}

impl Receiver {
    fn spawn(dir: &Path, secret: &Secret) -> Receiver {
        let venv = Command::new("bash")
            .arg(root().join("tests/webhooks/venv.sh"))
            .output()
            .unwrap();
        assert!(
            venv.status.success(),
            "{}",
            String::from_utf8_lossy(&venv.stderr)
        );
        let python = String::from_utf8(venv.stdout).unwrap().trim().to_owned();
        let port = free_port();
        let out = dir.join(format!("received-{port}.jsonl"));
        let child = Command::new(python)
            .arg(root().join("tests/webhooks/receiver.py"))
            .arg(port.to_string())
            .arg(secret.expose())
            .arg(&out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let r = Receiver { child, port, out };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request received so far.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits (at most 60 s) until `done` holds of what was received.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received: {got:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `webhook-id` of a received request.
fn webhook_id(r: &Value) -> String {
    r["headers"]["webhook-id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn body(r: &Value) -> Value {
    serde_json::from_str(r["body"].as_str().unwrap()).unwrap()
}

fn config(dir: &Path, url: &str, port: u16) -> std::path::PathBuf {
    let rest = format!(
        "listen = \"127.0.0.1:{port}\"\n\
         sweep_interval_secs = 0\n\
         \n\
         [webhooks]\n\
         poll_ms = 50\n\
         timeout_secs = 5\n\
         lease_secs = 10\n\
         backoff_base_secs = 1\n\
         \n\
         [[tenant]]\n\
         id = \"t2\"\n\
         policy = \"{}\"\n\
         \n\
         [[tenant]]\n\
         id = \"t5\"\n\
         policy = \"{}\"\n\
         \n\
         [[tenant]]\n\
         id = \"t1\"\n\
         policy = \"{}\"\n",
        policy_component("two-stage-erase").display(),
        policy_component("deactivate-first").display(),
        policy_component("support-only").display(),
    );
    write_config(dir, url, &rest)
}

struct Api<'a> {
    http: &'a reqwest::Client,
    base: String,
    operator: String,
    support: String,
    t1: String,
    t2: String,
    t5: String,
}

impl Api<'_> {
    async fn act(&self, t: &str, user: &str, body: Value) -> (StatusCode, Value) {
        let key = self.key(t);
        call(
            self.http,
            Method::POST,
            &format!("{}/v1/tenants/{t}/users/{user}/actions", self.base),
            Some(key),
            Some(body),
        )
        .await
    }

    fn key(&self, t: &str) -> &str {
        match t {
            "t1" => &self.t1,
            "t2" => &self.t2,
            _ => &self.t5,
        }
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> Value {
        let (st, v) = call(
            self.http,
            Method::POST,
            &format!("{}{path}", self.base),
            Some(key),
            Some(body),
        )
        .await;
        assert!(st.is_success(), "{path}: {st} {v}");
        v
    }

    /// The tenant's events matching `query`, newest first.
    async fn events(&self, t: &str, query: &str) -> Vec<Value> {
        let v = self
            .get(&format!("/v1/tenants/{t}/events?{query}"), self.key(t))
            .await;
        v["events"].as_array().unwrap().clone()
    }

    async fn endpoint(&self, t: &str, url: &str, secret: &Secret, types: &[&str]) -> Value {
        let (st, v) = call(
            self.http,
            Method::POST,
            &format!("{}/v1/admin/tenants/{t}/webhooks", self.base),
            Some(&self.operator),
            Some(json!({"url": url, "secret": secret.expose(), "event_types": types})),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v
    }

    async fn get(&self, path: &str, key: &str) -> Value {
        let (st, v) = call(
            self.http,
            Method::GET,
            &format!("{}{path}", self.base),
            Some(key),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
        v
    }
}

async fn events(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed_demo(&t.db, 5, 40, 6, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), &t.url, port);
    let db = &t.db;
    let create = |p| async move { apikeys::create(db, p, None, 0).await.unwrap().secret };
    let http = reqwest::Client::new();
    let api = Api {
        http: &http,
        base: format!("http://127.0.0.1:{port}"),
        operator: create(Principal::Operator(String::new())).await,
        support: create(Principal::Support).await,
        t1: create(Principal::Tenant("t1".into())).await,
        t2: create(Principal::Tenant("t2".into())).await,
        t5: create(Principal::Tenant("t5".into())).await,
    };
    let secret = Secret::generate();
    let rx = Receiver::spawn(dir.path(), &secret);
    let mut server = Server::spawn(&cfg, port, &dir.path().join("serve.log"), LOG);
    server.wait_healthy(&http).await;

    // Seed 004: reactivating a user who never logged in promises a welcome mail.
    api.endpoint("t5", &rx.url("/ok"), &secret, &[]).await;
    let (st, v) = api
        .act(
            "t5",
            "t5-u10",
            json!({"action": "reactivate", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let got = rx
        .wait_for("user.reactivated", |r| r.iter().any(|r| r["path"] == "/ok"))
        .await;
    let first = &got[0];
    assert_eq!(first["verified"], true, "{first}");
    let b = body(first);
    assert_eq!(b["type"], "user.reactivated");
    assert_eq!(b["tenant"], "t5");
    assert_eq!(b["data"]["user"], "t5-u10");
    assert_eq!(b["data"]["notify"], json!(["welcome"]));
    assert_eq!(b["data"]["action_id"], v["report"]["action_id"]);
    assert_eq!(first["headers"]["webhook-id"], b["id"]);
    // The receiver's verifier refuses the same request with a changed body.
    let tampered = first["body"]
        .as_str()
        .unwrap()
        .replace("welcome", "password_reset");
    let resend = |text: String| {
        let mut req = http.post(rx.url("/ok"));
        for (k, v) in first["headers"].as_object().unwrap() {
            req = req.header(k, v.as_str().unwrap());
        }
        req.header("content-type", "application/json")
            .body(text)
            .send()
    };
    assert_eq!(
        resend(tampered).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        resend(first["body"].as_str().unwrap().to_owned())
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "the untouched request verifies"
    );

    // A refused action and a dry run leave no event.
    let before = scalar(&t.db, "SELECT COUNT(*) FROM lethe_events").await;
    let (st, v) = api
        .act(
            "t5",
            "t5-u5",
            json!({"action": "delete", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "deactivate-first denies it: {v}");
    let (st, v) = api
        .act(
            "t5",
            "t5-u5",
            json!({"action": "deactivate", "actor_id": "t5-u1", "dry_run": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        scalar(&t.db, "SELECT COUNT(*) FROM lethe_events").await,
        before
    );

    // Every kind of change is in the outbox. Activations: the bootstrap.
    let activated = api.events("t2", "type=policy.activated").await;
    assert_eq!(activated.len(), 1, "{activated:#?}");
    assert_eq!(activated[0]["data"]["kind"], "bootstrap");
    assert_eq!(activated[0]["data"]["to_version"], 1);
    // An escalation and its approval (seed 000), which applies the delete:
    // the approval's event comes first in the user's sequence.
    let (st, v) = api
        .act(
            "t1",
            "t1-u5",
            json!({"action": "delete", "actor_id": "t1-u1", "reason": "left"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let esc = v["escalation"]["id"].as_str().unwrap().to_owned();
    api.post(
        &format!("/v1/escalations/{esc}/approve"),
        &api.support,
        json!({"agent": "sam"}),
    )
    .await;
    let trail = api.events("t1", "user=t1-u5").await;
    let types: Vec<&str> = trail
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["escalation.created", "escalation.approved", "user.deleted"],
        "{trail:#?}"
    );
    let seqs: Vec<i64> = trail
        .iter()
        .rev()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(trail[2]["data"]["escalation"], esc.as_str());
    assert_eq!(
        trail[1]["data"]["actor"],
        json!({"kind": "support", "id": "sam"})
    );
    assert!(
        !trail.iter().any(|e| e.to_string().contains("left")),
        "no free text: {trail:#?}"
    );
    // A bulk job's end, with its counts.
    let preview = api
        .post(
            "/v1/tenants/t5/bulk/preview",
            &api.t5,
            json!({"action": "deactivate", "actor_id": "t5-u1", "filter": {"role": "mentee", "state": "active"}}),
        )
        .await;
    let job = api
        .post(
            &format!(
                "/v1/tenants/t5/bulk/{}/execute",
                preview["preview_id"].as_str().unwrap()
            ),
            &api.t5,
            json!({"confirm_count": preview["confirm_count"]}),
        )
        .await;
    let path = format!("/v1/tenants/t5/jobs/{}", job["job_id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let j = api.get(&path, &api.t5).await;
        if j["status"] == "completed" {
            break j;
        }
        assert!(Instant::now() < deadline, "the job did not complete: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let finished = api.events("t5", "type=bulk.job.completed").await;
    assert_eq!(finished.len(), 1, "{finished:#?}");
    let data = &finished[0]["data"];
    assert_eq!(data["job_id"], job["job_id"]);
    assert!(job["applied"].as_u64().unwrap() > 0, "{job}");
    for count in [
        "total",
        "applied",
        "escalated",
        "denied",
        "failed",
        "cancelled",
    ] {
        assert_eq!(data[count], job[count], "{count}: {data} vs {job}");
    }
    let deactivated = api.events("t5", "type=user.deactivated").await;
    assert_eq!(deactivated.len() as u64, job["applied"].as_u64().unwrap());
    assert!(deactivated.iter().all(|e| e["data"]["bulk"] == true));

    // 500, 500, 500, then 200: four attempts, one webhook-id.
    api.endpoint("t2", &rx.url("/flaky"), &secret, &["user.locked"])
        .await;
    let (st, v) = api
        .act(
            "t2",
            "t2-u7",
            json!({"action": "lock", "actor_id": "t2-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let got = rx
        .wait_for("a fourth attempt", |r| {
            r.iter()
                .any(|r| r["path"] == "/flaky" && r["status"] == 200)
        })
        .await;
    let flaky: Vec<&Value> = got.iter().filter(|r| r["path"] == "/flaky").collect();
    assert_eq!(flaky.len(), 4, "{flaky:#?}");
    let ids: BTreeSet<String> = flaky.iter().map(|r| webhook_id(r)).collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same webhook-id");
    assert!(flaky.iter().all(|r| r["verified"] == true));
    let id = ids.into_iter().next().unwrap();
    // Another tenant's key reaches none of it: 404, like a missing event.
    for path in [
        format!("/v1/tenants/t5/events/{id}"),
        format!("/v1/tenants/t2/events/{id}"),
    ] {
        let (st, v) = call(
            &http,
            Method::GET,
            &format!("{}{path}", api.base),
            Some(&api.t5),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let event = api
        .get(&format!("/v1/tenants/t2/events/{id}"), &api.t2)
        .await;
    assert_eq!(event["type"], "user.locked");
    let d = &event["deliveries"][0];
    assert_eq!(d["status"], "delivered", "{event}");
    let statuses: Vec<&Value> = d["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["http_status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(500), &json!(500), &json!(500), &json!(200)],
        "{event}"
    );

    // 410: the delivery is dead and the endpoint disabled.
    let gone = api
        .endpoint("t2", &rx.url("/gone"), &secret, &["user.unlocked"])
        .await;
    let (st, v) = api
        .act(
            "t2",
            "t2-u7",
            json!({"action": "unlock", "actor_id": "t2-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let path = format!(
        "/v1/admin/tenants/t2/webhooks/{}",
        gone["id"].as_str().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let endpoint = loop {
        let e = api.get(&path, &api.operator).await;
        if e["enabled"] == false || Instant::now() > deadline {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (&endpoint["enabled"], &endpoint["disabled_reason"]),
        (&json!(false), &json!("gone")),
        "{endpoint}"
    );
    assert_eq!(endpoint["counts"]["dead"], 1, "{endpoint}");
    assert_eq!(
        rx.received()
            .iter()
            .filter(|r| r["path"] == "/gone")
            .count(),
        1
    );
    // A dead delivery is visible, and sent again on demand once the
    // endpoint is back on.
    let dead = api.events("t2", "status=dead").await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let dead_id = dead[0]["id"].as_str().unwrap().to_owned();
    let (st, v) = call(
        &http,
        Method::PATCH,
        &format!("{}{path}", api.base),
        Some(&api.operator),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!((st, &v["enabled"]), (StatusCode::OK, &json!(true)), "{v}");
    let v = api
        .post(
            &format!("/v1/tenants/t2/events/{dead_id}/redeliver"),
            &api.t2,
            json!({}),
        )
        .await;
    assert_eq!(v["deliveries"][0]["status"], "pending", "{v}");
    rx.wait_for("the redelivery", |r| {
        r.iter().filter(|r| r["path"] == "/gone").count() == 2
    })
    .await;
    // A test ping, signed like any event and stored nowhere.
    let ok = api
        .get("/v1/admin/tenants/t5/webhooks", &api.operator)
        .await;
    let ok_id = ok["endpoints"][0]["id"].as_str().unwrap().to_owned();
    let ping = api
        .post(
            &format!("/v1/admin/tenants/t5/webhooks/{ok_id}/ping"),
            &api.operator,
            json!(null),
        )
        .await;
    assert_eq!(
        (&ping["delivered"], &ping["http_status"]),
        (&json!(true), &json!(200)),
        "{ping}"
    );
    let pings: Vec<Value> = rx
        .received()
        .into_iter()
        .filter(|r| body(r)["type"] == "webhook.ping")
        .collect();
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0]["verified"], true);
    // Per endpoint and status on /metrics, zeros included.
    let metrics = http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = |status: &str| {
        format!(
            "lethe_webhook_deliveries{{tenant=\"t5\",endpoint=\"{ok_id}\",status=\"{status}\"}}"
        )
    };
    let line = |status: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&series(status)))
            .map(str::to_owned)
    };
    assert_eq!(
        line("dead").as_deref(),
        Some(format!("{} 0", series("dead")).as_str()),
        "{metrics}"
    );
    let delivered: f64 = line("delivered")
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(delivered >= 1.0, "{metrics}");

    // Every t2 event from here on, to a receiver that lags behind.
    api.endpoint("t2", &rx.url("/slow"), &secret, &[]).await;
    // An erase names the user by id only.
    let (name, email, phone): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT name, email, phone FROM users WHERE tenant_id = 't2' AND id = 't2-u8'",
    )
    .fetch_one(t.db.pool())
    .await
    .unwrap();
    let profile: Vec<String> = [Some(name), email, phone].into_iter().flatten().collect();
    assert!(profile.len() >= 2, "{profile:?}");
    for action in ["delete", "erase"] {
        let (st, v) = api
            .act(
                "t2",
                "t2-u8",
                json!({"action": action, "actor_id": "t2-u1"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{action}: {v}");
    }
    // Many changes, then SIGKILL while deliveries lag behind the commits.
    for i in 0..10 {
        for user in ["t2-u11", "t2-u12"] {
            let action = if i % 2 == 0 { "lock" } else { "unlock" };
            let (st, v) = api
                .act("t2", user, json!({"action": action, "actor_id": "t2-u1"}))
                .await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
    }
    server.kill();
    let committed: BTreeSet<String> = sqlx::query_scalar(
        "SELECT d.event_id FROM lethe_webhook_deliveries d JOIN lethe_webhook_endpoints e \
         ON e.id = d.endpoint_id WHERE e.url LIKE '%/slow'",
    )
    .fetch_all(t.db.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(
        committed.len(),
        22,
        "a delete, an erase, 20 locks and unlocks"
    );
    let slow_ids = |r: &[Value]| -> BTreeSet<String> {
        r.iter()
            .filter(|r| r["path"] == "/slow")
            .map(webhook_id)
            .collect()
    };
    let before_kill = slow_ids(&rx.received()).len();
    let mut server = Server::spawn(&cfg, port, &dir.path().join("serve2.log"), LOG);
    server.wait_healthy(&http).await;
    let got = rx
        .wait_for("every committed event", |r| {
            slow_ids(r).is_superset(&committed)
        })
        .await;
    assert_eq!(
        slow_ids(&got),
        committed,
        "exactly the committed events, none lost"
    );
    eprintln!(
        "{backend:?}: {} events committed, {before_kill} delivered before SIGKILL, all {} after restart: 0 lost",
        committed.len(),
        committed.len()
    );
    let slow: Vec<Value> = got
        .iter()
        .filter(|r| r["path"] == "/slow")
        .map(body)
        .collect();
    let erase = slow
        .iter()
        .find(|b| b["type"] == "user.erased")
        .expect("an erase event");
    let text = erase.to_string();
    for value in &profile {
        assert!(
            !text.contains(value.as_str()),
            "the erase event names `{value}`: {text}"
        );
    }
    // Each user's events arrive in order (first receipt of each id).
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for b in &slow {
        if seen.insert(b["id"].as_str().unwrap_or_default().to_owned()) {
            let user = b["data"]["user"].as_str().unwrap_or_default().to_owned();
            order
                .entry(user)
                .or_default()
                .push(b["type"].as_str().unwrap().to_owned());
        }
    }
    for user in ["t2-u11", "t2-u12"] {
        let expected: Vec<&str> = (0..10)
            .map(|i| {
                if i % 2 == 0 {
                    "user.locked"
                } else {
                    "user.unlocked"
                }
            })
            .collect();
        assert_eq!(order[user], expected, "{user}'s events out of order");
    }

    // Secret rotation: both secrets sign for the overlap, so the receiver,
    // which still knows only the old one, keeps verifying; and so does one
    // that switched to the new one already.
    let ok = api
        .get("/v1/admin/tenants/t5/webhooks", &api.operator)
        .await;
    let ok_id = ok["endpoints"][0]["id"].as_str().unwrap().to_owned();
    let rotated = api
        .post(
            &format!("/v1/admin/tenants/t5/webhooks/{ok_id}/rotate-secret"),
            &api.operator,
            json!({}),
        )
        .await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret.expose());
    let (st, v) = api
        .act(
            "t5",
            "t5-u7",
            json!({"action": "lock", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let got = rx
        .wait_for("the first event after the rotation", |r| {
            r.iter()
                .any(|r| r["path"] == "/ok" && body(r)["data"]["user"] == "t5-u7")
        })
        .await;
    let after = got
        .iter()
        .rev()
        .find(|r| body(r)["data"]["user"] == "t5-u7")
        .unwrap();
    assert_eq!(
        after["verified"], true,
        "the old secret still verifies: {after}"
    );
    let signatures = after["headers"]["webhook-signature"].as_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    let python = String::from_utf8(
        Command::new("bash")
            .arg(root().join("tests/webhooks/venv.sh"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let verify = Command::new(python.trim())
        .args([
            "-c",
            "import json,sys; from standardwebhooks.webhooks import Webhook; \
             r = json.loads(sys.argv[2]); Webhook(sys.argv[1]).verify(r['body'], r['headers'])",
            &new_secret,
            &after.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "the new secret verifies too: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Two servers on one database share the deliveries under leases: each
    // event is sent once (the receiver answers at once, so nothing retries).
    let port2 = free_port();
    let dir2 = dir.path().join("second");
    std::fs::create_dir_all(&dir2).unwrap();
    let mut second = Server::spawn(
        &config(&dir2, &t.url, port2),
        port2,
        &dir.path().join("serve3.log"),
        LOG,
    );
    second.wait_healthy(&http).await;
    api.endpoint(
        "t5",
        &rx.url("/replicas"),
        &secret,
        &["user.locked", "user.unlocked"],
    )
    .await;
    let bases = [api.base.clone(), format!("http://127.0.0.1:{port2}")];
    let mut sent = 0;
    for i in 0..10 {
        for (n, user) in ["t5-u11", "t5-u2"].into_iter().enumerate() {
            let action = if i % 2 == 0 { "lock" } else { "unlock" };
            let (st, v) = call(
                &http,
                Method::POST,
                &format!("{}/v1/tenants/t5/users/{user}/actions", bases[(i + n) % 2]),
                Some(&api.t5),
                Some(json!({"action": action, "actor_id": "t5-u1"})),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{v}");
            sent += 1;
        }
    }
    rx.wait_for("the events of both servers", |r| {
        r.iter().filter(|r| r["path"] == "/replicas").count() >= sent
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<Value> = rx
        .received()
        .into_iter()
        .filter(|r| r["path"] == "/replicas")
        .collect();
    let ids: BTreeSet<String> = got.iter().map(webhook_id).collect();
    assert_eq!(
        (got.len(), ids.len()),
        (sent, sent),
        "each event once: {got:#?}"
    );
    let attempts = scalar(
        &t.db,
        "SELECT COUNT(*) FROM lethe_webhook_attempts a JOIN lethe_webhook_endpoints e \
         ON e.id = a.endpoint_id WHERE e.url LIKE '%/replicas'",
    )
    .await;
    assert_eq!(attempts, sent as i64);
    second.terminate().await;
    server.terminate().await;
    drop(rx);
    t.drop_db().await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events() {
        super::events(lethe::db::Backend::Sqlite).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events() {
        super::events(lethe::db::Backend::Postgres).await;
    }
}
