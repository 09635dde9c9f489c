//! End to end over real HTTP: `lethe serve`'s API on an ephemeral loopback
//! port, in-process, with the five real seed policies (WebAssembly) and a
//! freshly seeded database, on SQLite and on PostgreSQL.
//!
//! Each README walkthrough scenario, tenant isolation on every endpoint,
//! bad input, and two concurrent actions on one user.
//!
//! Needs the components in `policies/dist/` (`bash policies/build.sh`) and
//! PostgreSQL at `LETHE_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`).

#[path = "../host/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::TestDb;
use lethe::api::{self, AppState, ServeOptions};
use lethe::apikeys::{self, Principal, StaticKeys};
use lethe::bulk::BulkSettings;
use lethe::config::TenantConfig;
use lethe::db::Backend;
use lethe::policy::{Runtime, RuntimeConfig};
use lethe::tenancy::TenantPolicies;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TENANTS: [(&str, &str); 5] = [
    ("t1", "support-only"),
    ("t2", "two-stage-erase"),
    ("t3", "transfer-and-scrub"),
    ("t4", "cohort-cleanup"),
    ("t5", "deactivate-first"),
];

/// The body limit the test servers run with.
const BODY_LIMIT: usize = 16 * 1024;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// The five seed policies, loaded once per test binary (the runtime and
/// its engine are shared, like in the server).
fn policies() -> &'static TenantPolicies {
    static POLICIES: OnceLock<(Runtime, TenantPolicies)> = OnceLock::new();
    &POLICIES
        .get_or_init(|| {
            let runtime = Runtime::new(RuntimeConfig {
                cache_dir: Some(root().join("target/lethe-cache")),
                ..Default::default()
            })
            .expect("runtime");
            let tenants: Vec<TenantConfig> = TENANTS
                .iter()
                .map(|(t, p)| {
                    let policy = root().join("policies/dist").join(format!("{p}.wasm"));
                    assert!(
                        policy.exists(),
                        "{} missing: run `bash policies/build.sh`",
                        policy.display()
                    );
                    TenantConfig {
                        id: (*t).into(),
                        policy,
                        api_key_sha256: vec![],
                    }
                })
                .collect();
            let policies = TenantPolicies::load(&runtime, &tenants).expect("policies load");
            (runtime, policies)
        })
        .1
}

/// A running server over a fresh database.
struct Server {
    base: String,
    http: reqwest::Client,
    /// Tenant id → its API key.
    keys: BTreeMap<String, String>,
    support: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    db: Option<TestDb>,
}

impl Server {
    async fn start(backend: Backend) -> Server {
        let t = TestDb::new(backend).await;
        lethe::seed::seed(
            &t.db,
            &lethe::seed::SeedOptions {
                tenants: 5,
                users: 40,
                items: 6,
                seed: 1,
            },
        )
        .await
        .unwrap();
        // The demo's own data map, as `lethe serve` runs it.
        let map =
            lethe::datamap::DataMap::parse(include_str!("../examples/demo/datamap.toml")).unwrap();
        let executor = lethe::executor::Executor::new(t.db.clone(), map)
            .await
            .unwrap();
        let mut keys = BTreeMap::new();
        for (tenant, _) in TENANTS {
            let k = apikeys::create(&t.db, Principal::Tenant(tenant.into()), None, 0)
                .await
                .unwrap();
            keys.insert(tenant.to_owned(), k.secret);
        }
        let support = apikeys::create(&t.db, Principal::Support, Some("tests"), 0)
            .await
            .unwrap()
            .secret;
        let state = AppState::new(
            executor,
            policies().clone(),
            StaticKeys::default(),
            TENANTS.iter().map(|(t, _)| (*t).to_owned()).collect(),
            BulkSettings::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(api::serve(
            listener,
            state,
            ServeOptions {
                body_limit_bytes: BODY_LIMIT,
                sweep_interval: None,
                bulk_worker: true,
            },
            async move {
                let _ = rx.await;
            },
        ));
        Server {
            base,
            http: reqwest::Client::new(),
            keys,
            support,
            stop: Some(tx),
            task: Some(task),
            db: Some(t),
        }
    }

    fn key(&self, tenant: &str) -> &str {
        &self.keys[tenant]
    }

    /// One request; the body is returned as JSON (`Null` when empty).
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
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

    async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    /// `POST /v1/tenants/{t}/users/{user}/actions` with the tenant's key.
    async fn act(&self, t: &str, user: &str, body: Value) -> (StatusCode, Value) {
        self.post(
            &format!("/v1/tenants/{t}/users/{user}/actions"),
            self.key(t),
            body,
        )
        .await
    }

    async fn user(&self, t: &str, user: &str) -> Value {
        let (s, v) = self
            .get(&format!("/v1/tenants/{t}/users/{user}"), self.key(t))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    fn db(&self) -> &lethe::db::Db {
        &self.db.as_ref().unwrap().db
    }

    /// Billing seats of a user: kept by the operator's guard whatever
    /// the policy says.
    async fn billing(&self, user: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM billing_seats WHERE user_id = $1")
            .bind(user)
            .fetch_one(self.db().pool())
            .await
            .unwrap()
    }

    /// Graceful shutdown, then drop the database.
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        if let Some(db) = self.db.take() {
            db.drop_db().await;
        }
    }
}

fn holding(user: &Value, category: &str) -> (u64, u64) {
    let h = user["holdings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["category"] == category)
        .unwrap_or_else(|| panic!("no holding {category} in {user}"));
    (h["total"].as_u64().unwrap(), h["open"].as_u64().unwrap())
}

fn effect<'a>(report: &'a Value, category: &str) -> &'a Value {
    report["effects"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == category)
        .unwrap_or_else(|| panic!("no effect on {category} in {report}"))
}

/// Seed 000 (support-only, t1): admins lock instead of deleting; a delete
/// is escalated to support, who approve it; the cascade is applied then.
async fn walkthrough_000(backend: Backend) {
    let s = Server::start(backend).await;
    let (st, v) = s
        .act(
            "t1",
            "t1-u5",
            json!({"action": "lock", "actor_id": "t1-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["result"], "applied");
    assert_eq!(v["report"]["to_state"], "locked");
    assert_eq!(v["report"]["effects"]["guards"]["sessions"], 2);

    let before = s.user("t1", "t1-u5").await;
    let (contacts, _) = holding(&before, "contacts");
    let (st, v) = s
        .act(
            "t1",
            "t1-u5",
            json!({"action": "delete", "actor_id": "t1-u1", "reason": "left the company"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["result"], "escalated");
    let esc = &v["escalation"];
    assert_eq!(esc["queue"], "support");
    assert_eq!(esc["status"], "pending");
    assert_eq!(esc["from_state"], "locked");
    let esc_id = esc["id"].as_str().unwrap().to_owned();
    let escalating = esc["action_id"].as_str().unwrap().to_owned();
    assert_eq!(s.user("t1", "t1-u5").await["state"], "locked");

    // The tenant sees its queue; support sees every tenant's.
    let (st, v) = s.get("/v1/tenants/t1/escalations", s.key("t1")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["escalations"][0]["id"], esc_id.as_str());
    let (st, v) = s
        .get("/v1/escalations?tenant=t1&status=pending", &s.support)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["escalations"].as_array().unwrap().len(), 1);

    let (st, v) = s
        .post(
            &format!("/v1/escalations/{esc_id}/approve"),
            &s.support,
            json!({"agent": "sam", "note": "confirmed by email"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["escalation"]["status"], "approved");
    assert_eq!(v["escalation"]["decided_by"], "sam");
    assert_eq!(v["report"]["to_state"], "deleted");
    assert_eq!(
        v["report"]["decision"]["rules"],
        json!(["delete.support-cascade"])
    );
    assert_eq!(effect(&v["report"], "contacts")["deleted"], contacts);
    assert!(v["report"]["restore_until"].as_i64().is_some());
    let applied = v["report"]["action_id"].as_str().unwrap().to_owned();

    // Approving twice is a conflict; nothing is applied again.
    let (st, v) = s
        .post(
            &format!("/v1/escalations/{esc_id}/approve"),
            &s.support,
            json!({"agent": "sam"}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "escalation-not-pending");

    let user = s.user("t1", "t1-u5").await;
    assert_eq!(user["state"], "deleted");
    assert_eq!(user["display_name"], "(deleted user)");
    assert_eq!(holding(&user, "contacts").0, 0);
    assert_eq!(s.billing("t1-u5").await, 3);
    assert_eq!(user["history"].as_array().unwrap().len(), 2);

    // The evidence: the escalating decision, the approval step, the applied delete.
    let (st, v) = s
        .get(
            &format!("/v1/tenants/t1/decisions/{escalating}"),
            s.key("t1"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["rules"], json!(["delete.escalate-to-support"]));
    assert_eq!(v["input"]["actor"]["id"], "t1-u1");
    assert_eq!(v["policy_sha256"].as_str().unwrap().len(), 64);
    let (st, v) = s.get("/v1/tenants/t1/audit?user=t1-u5", s.key("t1")).await;
    assert_eq!(st, StatusCode::OK);
    let outcomes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"escalation-approved"), "{outcomes:?}");
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action_id"] == applied.as_str() && e["actor_kind"] == "support"));

    // An escalation whose user changed state since is refused, then rejected.
    let (st, v) = s
        .act(
            "t1",
            "t1-u6",
            json!({"action": "delete", "actor_id": "t1-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let esc2 = v["escalation"]["id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .act(
            "t1",
            "t1-u6",
            json!({"action": "lock", "actor_id": "t1-u2"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = s
        .post(
            &format!("/v1/escalations/{esc2}/approve"),
            &s.support,
            json!({"agent": "sam"}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "subject-changed");
    assert_eq!(s.user("t1", "t1-u6").await["state"], "locked");
    let (st, v) = s
        .post(
            &format!("/v1/escalations/{esc2}/reject"),
            &s.support,
            json!({"agent": "sam", "reason": "user was locked instead"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "rejected");
    s.stop().await;
}

/// Seed 001 (two-stage-erase, t2): delete, restore, delete again, erase by
/// the domain contact; the activity log is pseudonymised, billing kept.
async fn walkthrough_001(backend: Backend) {
    let s = Server::start(backend).await;
    let name = s.user("t2", "t2-u5").await["display_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let del = json!({"action": "delete", "actor_id": "t2-u2"});
    let (st, v) = s.act("t2", "t2-u5", del.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["report"]["to_state"], "deleted");
    let until = v["report"]["restore_until"].as_i64().unwrap();
    assert_eq!(s.user("t2", "t2-u5").await["restore_until"], until);

    let (st, v) = s
        .act(
            "t2",
            "t2-u5",
            json!({"action": "restore", "actor_id": "t2-u2"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["report"]["to_state"], "active");
    assert_eq!(s.user("t2", "t2-u5").await["display_name"], name.as_str());

    let (st, v) = s.act("t2", "t2-u5", del).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // An admin who is not the domain contact may not erase.
    let (st, v) = s
        .act(
            "t2",
            "t2-u5",
            json!({"action": "erase", "actor_id": "t2-u2"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "denied");
    assert_eq!(v["policy_code"], "not-domain-contact");
    let (st, v) = s
        .act(
            "t2",
            "t2-u5",
            json!({"action": "erase", "actor_id": "t2-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["report"]["to_state"], "erased");
    assert!(
        v["report"]["effects"]["references_pseudonymised"]
            .as_u64()
            .unwrap()
            > 0
    );

    let user = s.user("t2", "t2-u5").await;
    assert_eq!(user["state"], "erased");
    assert_eq!(user["email"], Value::Null);
    assert_eq!(s.billing("t2-u5").await, 3);
    let steps: Vec<&str> = user["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["delete", "restore", "delete", "erase"]);
    // The administrator activity log names the user by pseudonym only.
    let lines: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT actor_id, target_id, line FROM admin_activity WHERE tenant_id = 't2'",
    )
    .fetch_all(s.db().pool())
    .await
    .unwrap();
    let pseudonym = lethe::executor::pseudonym_for("t2", "t2-u5");
    assert!(lines
        .iter()
        .any(|(_, target, _)| target.as_deref() == Some(pseudonym.as_str())));
    for (actor, target, line) in &lines {
        assert_ne!(actor, "t2-u5");
        assert_ne!(target.as_deref(), Some("t2-u5"));
        assert!(!line.contains(&name), "{line}");
    }
    s.stop().await;
}

/// Seed 002 (transfer-and-scrub, t3): an active user cannot be deleted; a
/// deactivated one is, open items moving to a new owner, shown as
/// "(deleted user)".
async fn walkthrough_002(backend: Backend) {
    let s = Server::start(backend).await;
    let (st, v) = s
        .act(
            "t3",
            "t3-u5",
            json!({"action": "delete", "actor_id": "t3-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["policy_code"], "user-not-deactivated");

    let subject = s.user("t3", "t3-u3").await;
    assert_eq!(subject["state"], "deactivated");
    let (deals_total, deals_open) = holding(&subject, "deals");
    let target_before = holding(&s.user("t3", "t3-u2").await, "deals").0;
    let (st, v) = s
        .act(
            "t3",
            "t3-u3",
            json!({"action": "delete", "actor_id": "t3-u1", "transfer_to": "t3-u2"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(effect(&v["report"], "deals")["transferred"], deals_open);
    assert_eq!(v["report"]["to_state"], "erased");
    let user = s.user("t3", "t3-u3").await;
    assert_eq!(user["display_name"], "(deleted user)");
    assert_eq!(user["email"], Value::Null);
    // Items stay: the closed deals still belong to the deleted user.
    assert_eq!(holding(&user, "deals").0, deals_total - deals_open);
    assert_eq!(
        holding(&s.user("t3", "t3-u2").await, "deals").0,
        target_before + deals_open
    );
    // A transfer to another tenant's user is invalid input.
    let (st, v) = s
        .act(
            "t3",
            "t3-u12",
            json!({"action": "deactivate", "actor_id": "t3-u1", "transfer_to": "t2-u2"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["code"], "invalid-transfer-target");
    s.stop().await;
}

/// Seed 003 (cohort-cleanup, t4): mentees are deleted for good; a user on
/// several platforms goes to customer success, who remove them.
async fn walkthrough_003(backend: Backend) {
    let s = Server::start(backend).await;
    let (st, v) = s
        .act(
            "t4",
            "t4-u3",
            json!({"action": "delete", "actor_id": "t4-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["report"]["to_state"], "erased");
    let (st, v) = s
        .act(
            "t4",
            "t4-u9",
            json!({"action": "delete", "actor_id": "t4-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["escalation"]["queue"], "customer-success");
    assert!(v["escalation"]["queue_reason"]
        .as_str()
        .unwrap()
        .contains("2 platforms"));
    let id = v["escalation"]["id"].as_str().unwrap().to_owned();
    let (st, v) = s
        .post(
            &format!("/v1/escalations/{id}/approve"),
            &s.support,
            json!({"agent": "cs-kim"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["report"]["to_state"], "erased");
    assert_eq!(s.user("t4", "t4-u9").await["state"], "erased");
    s.stop().await;
}

/// Seed 004 (deactivate-first, t5): deleting an active user is refused;
/// deactivate, then delete.
async fn walkthrough_004(backend: Backend) {
    let s = Server::start(backend).await;
    let (st, v) = s
        .act(
            "t5",
            "t5-u6",
            json!({"action": "delete", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["policy_code"], "user-active");
    assert_eq!(v["rules"], json!(["delete.active-refused"]));
    let (st, v) = s
        .act(
            "t5",
            "t5-u6",
            json!({"action": "deactivate", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["report"]["to_state"], "deactivated");
    // A dry run decides and reports the effects, and writes nothing.
    let (st, v) = s
        .act(
            "t5",
            "t5-u6",
            json!({"action": "delete", "actor_id": "t5-u1", "dry_run": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["result"], "dry_run");
    assert!(
        effect(&v["report"], "contacts")["deleted"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(s.user("t5", "t5-u6").await["state"], "deactivated");
    let (st, v) = s
        .act(
            "t5",
            "t5-u6",
            json!({"action": "delete", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["report"]["to_state"], "erased");
    let user = s.user("t5", "t5-u6").await;
    assert_eq!(holding(&user, "contacts").0, 0);
    assert_eq!(s.billing("t5-u6").await, 3);
    s.stop().await;
}

/// A tenant key reaches nothing of another tenant, on every endpoint, and
/// the answer is the same 404 as for a tenant that does not exist.
async fn isolation(backend: Backend) {
    let s = Server::start(backend).await;
    let (st, v) = s
        .act(
            "t2",
            "t2-u5",
            json!({"action": "lock", "actor_id": "t2-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let t2_decision = v["report"]["action_id"].as_str().unwrap().to_owned();
    let (st, v) = s
        .act(
            "t1",
            "t1-u7",
            json!({"action": "delete", "actor_id": "t1-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let t1_esc = v["escalation"]["id"].as_str().unwrap().to_owned();

    let k1 = s.key("t1").to_owned();
    let (_, nothing) = s.get("/v1/tenants/nope/users", &k1).await;
    assert_eq!(nothing["code"], "not-found");
    let lock = json!({"action": "lock", "actor_id": "t1-u1"});
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/v1/tenants/t2/users".into(), None),
        (Method::GET, "/v1/tenants/t2/users/t2-u5".into(), None),
        (
            Method::POST,
            "/v1/tenants/t2/users/t2-u5/actions".into(),
            Some(json!({"action": "lock", "actor_id": "t2-u1"})),
        ),
        (Method::GET, "/v1/tenants/t2/escalations".into(), None),
        (Method::GET, "/v1/tenants/t2/audit".into(), None),
        (
            Method::GET,
            format!("/v1/tenants/t2/decisions/{t2_decision}"),
            None,
        ),
        // Another tenant's ids under one's own tenant.
        (Method::GET, "/v1/tenants/t1/users/t2-u5".into(), None),
        (
            Method::POST,
            "/v1/tenants/t1/users/t2-u5/actions".into(),
            Some(lock.clone()),
        ),
        (
            Method::GET,
            format!("/v1/tenants/t1/decisions/{t2_decision}"),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let (st, v) = s.call(method.clone(), &path, Some(&k1), body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        assert_eq!(v, nothing, "{method} {path}: the 404 must not differ");
    }
    // Nothing leaked through lists either.
    let (_, v) = s.get("/v1/tenants/t1/audit", &k1).await;
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["subject"].as_str().unwrap().starts_with("t1-")));
    // The tenant's own actor id must be of the tenant too.
    let (st, v) = s
        .act(
            "t1",
            "t1-u8",
            json!({"action": "lock", "actor_id": "t2-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["code"], "unknown-actor");
    // Support endpoints are for support keys; actions for tenant keys.
    for (method, path, body) in [
        (Method::GET, "/v1/escalations".to_owned(), None),
        (Method::GET, format!("/v1/escalations/{t1_esc}"), None),
        (
            Method::POST,
            format!("/v1/escalations/{t1_esc}/approve"),
            Some(json!({"agent": "x"})),
        ),
        (
            Method::POST,
            format!("/v1/escalations/{t1_esc}/reject"),
            Some(json!({"agent": "x", "reason": "y"})),
        ),
    ] {
        let (st, v) = s.call(method.clone(), &path, Some(&k1), body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        assert_eq!(v["code"], "support-key-required");
    }
    let (st, v) = s
        .post("/v1/tenants/t1/users/t1-u8/actions", &s.support, lock)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "tenant-key-required");
    let (st, _) = s.get("/v1/tenants/t1/users/t1-u7", &s.support).await;
    assert_eq!(st, StatusCode::OK);
    s.stop().await;
}

/// Malformed, oversized, unknown and unauthenticated requests get problem
/// details with stable codes, and change nothing.
async fn bad_input(backend: Backend) {
    let s = Server::start(backend).await;
    let url = format!("{}/v1/tenants/t5/users/t5-u5/actions", s.base);
    let raw = |body: String| {
        s.http
            .post(&url)
            .bearer_auth(s.key("t5"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let resp = raw("{\"action\": \"lock\",".into()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "malformed-json");
    assert_eq!(v["status"], 400);
    assert_eq!(v["type"], "urn:lethe:problem:malformed-json");

    let big = format!(
        "{{\"action\":\"lock\",\"actor_id\":\"t5-u1\",\"reason\":\"{}\"}}",
        "x".repeat(BODY_LIMIT + 1)
    );
    let resp = raw(big).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "body-too-large");

    for (body, code) in [
        (
            json!({"action": "obliterate", "actor_id": "t5-u1"}),
            "invalid-input",
        ),
        (json!({"action": "lock"}), "invalid-input"),
        (
            json!({"action": "lock", "actor_id": "t5-u1", "roles": ["admin"]}),
            "invalid-input",
        ),
        (json!({"action": "lock", "actor_id": " "}), "invalid-input"),
        (
            json!({"action": "lock", "actor_id": "t5-u999"}),
            "unknown-actor",
        ),
    ] {
        let (st, v) = s.act("t5", "t5-u5", body.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["code"], code, "{body}: {v}");
    }
    let (st, v) = s
        .act(
            "t5",
            "t5-u999",
            json!({"action": "lock", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = s
        .act(
            "t5",
            "t5-u5",
            json!({"action": "unlock", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "invalid-transition");
    let (st, v) = s.get("/v1/tenants/t5/users?cursor=zz", s.key("t5")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid-cursor");
    let (st, v) = s.get("/v1/tenants/t5/users?limit=-1", s.key("t5")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid-query");
    let (st, v) = s
        .post(
            "/v1/escalations/esc-nope/approve",
            &s.support,
            json!({"agent": "a"}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    // Missing and wrong keys.
    let resp = s
        .http
        .get(format!("{}/v1/tenants/t5/users", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    for key in ["lethe_0000", "", "not a key"] {
        let (st, v) = s.get("/v1/tenants/t5/users", key).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{key:?}: {v}");
        assert_eq!(v["code"], "unauthorized");
    }
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/tenants/t5/users/t5-u5/actions",
            Some("lethe_0"),
            Some(json!({"action": "lock", "actor_id": "t5-u1"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // None of it changed the user.
    let user = s.user("t5", "t5-u5").await;
    assert_eq!(user["state"], "active");
    assert!(user["history"].as_array().unwrap().is_empty());
    s.stop().await;
}

/// Two actions on one user at once: exactly one applies, the other gets a
/// clear 409 (the executor locks the subject row for the whole action).
async fn concurrent_actions(backend: Backend) {
    let s = Server::start(backend).await;
    for user in ["t5-u5", "t5-u7", "t5-u8"] {
        let body = json!({"action": "lock", "actor_id": "t5-u1"});
        let (a, b) = tokio::join!(s.act("t5", user, body.clone()), s.act("t5", user, body));
        let mut statuses = [a.0.as_u16(), b.0.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{user}: {} / {}", a.1, b.1);
        let loser = if a.0 == StatusCode::CONFLICT {
            &a.1
        } else {
            &b.1
        };
        assert_eq!(loser["code"], "invalid-transition");
        let detail = s.user("t5", user).await;
        assert_eq!(detail["state"], "locked");
        assert_eq!(detail["history"].as_array().unwrap().len(), 1);
    }
    s.stop().await;
}

/// Filters and keyset pagination; health, readiness, the OpenAPI document.
async fn listing_and_meta(backend: Backend) {
    let s = Server::start(backend).await;
    let k = s.key("t1").to_owned();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants/t1/users?limit=7&cursor={c}"),
            None => "/v1/tenants/t1/users?limit=7".into(),
        };
        let (st, v) = s.get(&path, &k).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let page = v["users"].as_array().unwrap();
        assert!(page.len() <= 7);
        seen.extend(page.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 40);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages in key order, no duplicates");

    let (_, v) = s
        .get("/v1/tenants/t1/users?state=deactivated&limit=500", &k)
        .await;
    let deactivated = v["users"].as_array().unwrap();
    assert!(!deactivated.is_empty());
    assert!(deactivated.iter().all(|u| u["state"] == "deactivated"));
    let (_, v) = s.get("/v1/tenants/t1/users?role=mentor", &k).await;
    assert!(v["users"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["roles"].as_array().unwrap().contains(&json!("mentor"))));
    let (_, v) = s.get("/v1/tenants/t1/users?role=ment", &k).await;
    assert!(
        v["users"].as_array().unwrap().is_empty(),
        "whole role names only"
    );
    let (_, v) = s.get("/v1/tenants/t1/users?q=ABERNATHY", &k).await;
    assert!(!v["users"].as_array().unwrap().is_empty());
    let (_, v) = s
        .get("/v1/tenants/t1/users?domain=tenant2.example", &k)
        .await;
    assert!(v["users"].as_array().unwrap().is_empty());
    let (_, v) = s.get("/v1/tenants/t1/users?last_login_before=0", &k).await;
    assert!(v["users"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["last_login_at"].is_null()));
    let (_, v) = s.get("/v1/tenants/t1/users?deleted_after=0", &k).await;
    assert!(v["users"].as_array().unwrap().is_empty());

    let (st, v) = s.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((st, v["status"].clone()), (StatusCode::OK, json!("ok")));
    let (st, v) = s.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["tenants"], 5);
    let (st, v) = s.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    for path in [
        "/v1/tenants/{t}/users",
        "/v1/tenants/{t}/users/{id}/actions",
        "/v1/escalations/{id}/approve",
        "/v1/tenants/{t}/decisions/{id}",
    ] {
        assert!(v["paths"][path].is_object(), "{path} missing from OpenAPI");
    }
    assert!(
        v["paths"]["/v1/tenants/{t}/users/{id}/actions"]["post"]["responses"]["202"].is_object()
    );
    s.stop().await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(lethe::db::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(lethe::db::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    walkthrough_000,
    walkthrough_001,
    walkthrough_002,
    walkthrough_003,
    walkthrough_004,
    isolation,
    bad_input,
    concurrent_actions,
    listing_and_meta,
);
