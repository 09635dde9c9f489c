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
use std::sync::OnceLock;

use common::{policy_component, root, seed_demo, TestDb};
use lethe::api::{self, AppState, ServeOptions};
use lethe::apikeys::{self, Principal, StaticKeys};
use lethe::bulk::BulkSettings;
use lethe::config::TenantConfig;
use lethe::db::Backend;
use lethe::deploy::Deployments;
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

/// The five seed policies, loaded once per test binary (the runtime and
/// its engine are shared, like in the server).
fn policies() -> &'static (Runtime, TenantPolicies) {
    static POLICIES: OnceLock<(Runtime, TenantPolicies)> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(root().join("target/lethe-cache")),
            ..Default::default()
        })
        .expect("runtime");
        let tenants: Vec<TenantConfig> = TENANTS
            .iter()
            .map(|(t, p)| TenantConfig {
                id: (*t).into(),
                policy: policy_component(p),
                api_key_sha256: vec![],
            })
            .collect();
        let policies = TenantPolicies::load(&runtime, &tenants).expect("policies load");
        (runtime, policies)
    })
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
        Server::start_with(backend, 40).await
    }

    /// A server over `users` users per tenant. Its bulk worker runs small
    /// batches and polls often, so tests see jobs move.
    async fn start_with(backend: Backend, users: u32) -> Server {
        let t = TestDb::new(backend).await;
        seed_demo(&t.db, 5, users, 6, 1).await;
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
            policies().1.clone(),
            Deployments::new(t.db.clone(), policies().0.clone()),
            StaticKeys::default(),
            TENANTS.iter().map(|(t, _)| (*t).to_owned()).collect(),
            lethe::api::Settings {
                bulk: BulkSettings {
                    batch_size: 8,
                    poll_ms: 50,
                    ..BulkSettings::default()
                },
                ..lethe::api::Settings::default()
            },
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
                upload_limit_bytes: 1 << 20,
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
        let url = format!("{}{path}", self.base);
        common::call(&self.http, method, &url, key, body).await
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
    // Every 404 is the same document, but for the request's own id.
    let without_id = |mut v: Value| {
        v.as_object_mut().map(|o| o.remove("request_id"));
        v
    };
    let (_, nothing) = s.get("/v1/tenants/nope/users", &k1).await;
    assert_eq!(nothing["code"], "not-found");
    let nothing = without_id(nothing);
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
        assert_eq!(
            without_id(v),
            nothing,
            "{method} {path}: the 404 must not differ"
        );
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
    // An idempotency key: a retry of the same request is answered with the
    // first result, marked replayed; the key with another request is
    // refused, naming the first action, and changes nothing.
    let lock = json!({"action": "lock", "actor_id": "t5-u1", "idempotency_key": "k-1"});
    let (st, first) = s.act("t5", "t5-u8", lock.clone()).await;
    assert_eq!(st, StatusCode::OK, "{first}");
    let (st, again) = s.act("t5", "t5-u8", lock).await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_eq!(again["report"]["action_id"], first["report"]["action_id"]);
    assert_eq!(again["report"]["replayed"], true);
    for other in [
        json!({"action": "unlock", "actor_id": "t5-u1", "idempotency_key": "k-1"}),
        json!({"action": "lock", "actor_id": "t5-u2", "idempotency_key": "k-1"}),
        json!({"action": "lock", "actor_id": "t5-u1", "reason": "x", "idempotency_key": "k-1"}),
    ] {
        let (st, v) = s.act("t5", "t5-u8", other).await;
        assert_eq!(st, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["code"], "idempotency-key-reused", "{v}");
        assert_eq!(v["action_id"], first["report"]["action_id"], "{v}");
    }
    assert_eq!(
        s.user("t5", "t5-u8").await["state"],
        "locked",
        "the unlock did not happen"
    );

    // An unknown filter value is refused, not read as "no match".
    for (path, key) in [
        ("/v1/escalations?status=bogus", s.support.as_str()),
        ("/v1/tenants/t5/escalations?status=bogus", s.key("t5")),
        ("/v1/tenants/t5/users?state=bogus", s.key("t5")),
        ("/v1/tenants/t5/audit?action=bogus", s.key("t5")),
        // Page sizes out of range are refused, not clamped (Schemathesis
        // found them accepted): the client learns it would not get them all.
        ("/v1/tenants/t5/users?limit=501", s.key("t5")),
        ("/v1/tenants/t5/users?limit=0", s.key("t5")),
        ("/v1/tenants/t5/audit?limit=1001", s.key("t5")),
        ("/v1/tenants/t5/escalations?limit=2147483648", s.key("t5")),
        ("/v1/escalations?limit=1001", s.support.as_str()),
        ("/v1/tenants/t5/jobs?limit=201", s.key("t5")),
    ] {
        let (st, v) = s.get(path, key).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["code"], "invalid-query", "{path}: {v}");
    }
    let (st, v) = s.get("/v1/tenants/t5/users?limit=500", s.key("t5")).await;
    assert_eq!(st, StatusCode::OK, "the largest page size is accepted: {v}");
    // A jobs cursor that is not one was 422 `invalid-selection`; it is a
    // bad query. A users cursor is any even run of hex digits ("after this
    // key"), as the document says, so a well-formed one is never refused.
    let (st, v) = s.get("/v1/tenants/t5/jobs?cursor=zz", s.key("t5")).await;
    assert_eq!(
        (st, v["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid-cursor")),
        "{v}"
    );
    let (st, v) = s.get("/v1/tenants/t5/users?cursor=ff", s.key("t5")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v["users"].as_array().unwrap().is_empty(),
        "nothing sorts after 0xff: {v}"
    );

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
    // Serde reads a struct from an array of its fields in order; a body
    // that is not a JSON object is refused before the handler runs (the
    // event does not exist: an accepted body would be a 404).
    for body in [json!([null]), json!([]), json!("x"), json!(null)] {
        let (st, v) = s
            .post(
                "/v1/tenants/t5/events/evt-nope/redeliver",
                s.key("t5"),
                body.clone(),
            )
            .await;
        assert_eq!(
            (st, v["code"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!("invalid-input")),
            "{body}: {v}"
        );
    }
    let (st, v) = s
        .post(
            "/v1/tenants/t5/events/evt-nope/redeliver",
            s.key("t5"),
            json!({}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "an object body reaches the handler: {v}"
    );
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
    let act = &v["paths"]["/v1/tenants/{t}/users/{id}/actions"]["post"];
    for status in [
        "200", "202", "400", "401", "403", "404", "409", "413", "415", "422", "500", "503",
    ] {
        assert!(
            act["responses"][status].is_object(),
            "act does not declare {status}"
        );
    }
    assert_eq!(act["security"], json!([{"bearer": []}]));
    assert_eq!(
        v["paths"]["/healthz"]["get"]["security"],
        json!([]),
        "health is public"
    );
    assert_eq!(
        v["components"]["schemas"]["ActionRequest"]["properties"]["action"]["$ref"],
        "#/components/schemas/Action"
    );
    // The bulk statuses are spelled as on the wire (the document once said
    // `Pending`, and Schemathesis's schema-valid `?status=Pending` got 400).
    assert_eq!(
        v["components"]["schemas"]["ItemStatus"]["enum"],
        json!([
            "pending",
            "applied",
            "escalated",
            "denied",
            "failed",
            "cancelled"
        ])
    );
    // Links in OpenAPI's spelling (utoipa writes `operation_id`).
    let link = &v["paths"]["/v1/tenants/{t}/users"]["get"]["responses"]["200"]["links"]["act"];
    assert_eq!(link["operationId"], "act", "{link}");
    let codes = v["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(codes.len(), lethe::error_code::ErrorCode::ALL.len());
    assert_contract_unchanged(&v);
    s.stop().await;
}

/// The served OpenAPI document is the reviewed copy, `host/openapi.json`,
/// so a change to the API's contract shows in review as a change to it.
fn assert_contract_unchanged(served: &Value) {
    let reviewed = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let reviewed: Value =
        serde_json::from_str(&std::fs::read_to_string(reviewed).unwrap()).unwrap();
    if *served != reviewed {
        let out = concat!(env!("CARGO_TARGET_TMPDIR"), "/openapi.served.json");
        std::fs::write(out, serde_json::to_string_pretty(served).unwrap()).unwrap();
        panic!(
            "/openapi.json differs from host/openapi.json: review `diff host/openapi.json {out}`, \
             then `cargo run -q -p lethe -- openapi > host/openapi.json`"
        );
    }
}

/// Request ids (echoed, generated, in problem bodies) and the Prometheus
/// series an operator scrapes, after a little traffic of each kind. The
/// recorder is shared by every server of this test binary, so counts are
/// checked as present and positive, not exact.
async fn observability(backend: Backend) {
    let s = Server::start(backend).await;
    let url = format!("{}/v1/tenants/t5/users/nobody", s.base);
    let resp = s
        .http
        .get(&url)
        .bearer_auth(s.key("t5"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["request_id"], "trace-me-42", "{v}");
    let resp = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        generated.starts_with("req-") && generated.len() > 10,
        "{generated}"
    );
    // An id that is not sane (too long) is replaced, not echoed.
    let resp = s
        .http
        .get(format!("{}/healthz", s.base))
        .header("x-request-id", "x".repeat(200))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req-"));

    // Traffic: a denial, an applied delete with effects, an escalation, a
    // small bulk job.
    let (st, _) = s
        .act(
            "t5",
            "t5-u5",
            json!({"action": "delete", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    for action in ["deactivate", "delete"] {
        let (st, v) = s
            .act(
                "t5",
                "t5-u5",
                json!({"action": action, "actor_id": "t5-u1"}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, _) = s
        .act(
            "t1",
            "t1-u5",
            json!({"action": "delete", "actor_id": "t1-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let (st, p) = s
        .post(
            "/v1/tenants/t2/bulk/preview",
            s.key("t2"),
            json!({"action": "lock", "actor_id": "t2-u2", "user_ids": ["t2-u6", "t2-u7"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    let (st, job) = s
        .post(
            &format!(
                "/v1/tenants/t2/bulk/{}/execute",
                p["preview_id"].as_str().unwrap()
            ),
            s.key("t2"),
            json!({"confirm_count": p["confirm_count"]}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    follow(&s, "t2", job["job_id"].as_str().unwrap()).await;

    let resp = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for (series, why) in [
        (
            r#"lethe_decisions_total{tenant="t5",policy_version="file",outcome="deny"}"#,
            "a denial",
        ),
        (
            r#"lethe_decisions_total{tenant="t5",policy_version="file",outcome="allow"}"#,
            "two allows",
        ),
        (
            r#"lethe_decision_seconds_bucket{tenant="t5""#,
            "decision latency",
        ),
        (r#"lethe_decision_fuel_bucket{tenant="t5""#, "decision fuel"),
        (
            r#"lethe_actions_total{tenant="t5",action="delete",outcome="allow",dry_run="false"}"#,
            "the delete",
        ),
        (
            r#"lethe_executor_transaction_seconds_count{action="delete""#,
            "transaction time",
        ),
        (
            r#"lethe_effect_rows_total{tenant="t5""#,
            "rows the delete changed",
        ),
        (
            r#"lethe_escalations_pending{queue="support"}"#,
            "t1's escalation",
        ),
        (
            r#"lethe_bulk_items_total{status="applied"}"#,
            "the bulk items",
        ),
        (
            r#"lethe_bulk_jobs_total{status="completed"}"#,
            "the bulk job",
        ),
        (
            r#"lethe_http_requests_total{route="/v1/tenants/{t}/users/{id}/actions",method="POST",status="200"}"#,
            "HTTP by route template",
        ),
        (
            r#"lethe_http_request_seconds_bucket{route="/v1/tenants/{t}/users/{id}""#,
            "HTTP latency",
        ),
    ] {
        assert!(value(series) > 0.0, "{why}: no {series} in\n{text}");
    }
    // No raw path or user id in any label.
    assert!(
        !text.contains("t5-u5") && !text.contains("/users/nobody"),
        "{text}"
    );
    s.stop().await;
}

/// Read a job's progress stream to its end: (progress events, final job).
async fn follow(s: &Server, t: &str, job: &str) -> (usize, Value) {
    let resp = s
        .http
        .get(format!("{}/v1/tenants/{t}/jobs/{job}/events", s.base))
        .bearer_auth(s.key(t))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = tokio::time::timeout(std::time::Duration::from_secs(300), resp.text())
        .await
        .expect("the job ends")
        .unwrap();
    let mut progress = 0;
    let mut end = None;
    for block in text.split("\n\n") {
        let event = block.lines().find_map(|l| l.strip_prefix("event: "));
        let data: String = block
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        match event {
            Some("progress") => {
                let v: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(v["job_id"], job);
                progress += 1;
            }
            Some("end") => end = Some(serde_json::from_str(&data).unwrap()),
            Some(other) => panic!("unexpected event {other}: {data}"),
            None => {}
        }
    }
    (progress, end.expect("an `end` event closes the stream"))
}

/// Every user of a tenant and their state, from the directory (every page).
async fn states(s: &Server, t: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants/{t}/users?limit=500&cursor={c}"),
            None => format!("/v1/tenants/{t}/users?limit=500"),
        };
        let (st, v) = s.get(&path, s.key(t)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        for u in v["users"].as_array().unwrap() {
            out.insert(
                u["id"].as_str().unwrap().to_owned(),
                u["state"].as_str().unwrap().to_owned(),
            );
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("more than 100 pages of users");
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn audit_rows(s: &Server, t: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM lethe_audit WHERE tenant_id = $1")
        .bind(t)
        .fetch_one(s.db().pool())
        .await
        .unwrap()
}

/// Seed 003 in bulk (cohort-cleanup, t4): filter mentees by last login,
/// preview (nothing written), a wrong typed count, the right one, the job
/// run to its end over the progress stream; users on several platforms
/// are listed as not applied and queued for customer success.
async fn bulk_003(backend: Backend) {
    let s = Server::start(backend).await;
    let cutoff = lethe::seed::EPOCH - 1_000_000;
    let (st, listed) = s
        .get(
            &format!("/v1/tenants/t4/users?role=mentee&last_login_before={cutoff}&limit=500"),
            s.key("t4"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{listed}");
    let listed = ids(&listed["users"]);
    let multi: Vec<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = 't4' AND platform_count > 1")
            .fetch_all(s.db().pool())
            .await
            .unwrap();
    let escalate: Vec<&String> = listed.iter().filter(|u| multi.contains(u)).collect();
    let allow: Vec<&String> = listed.iter().filter(|u| !multi.contains(u)).collect();
    assert!(allow.len() >= 3 && !escalate.is_empty(), "{listed:?}");
    let before = states(&s, "t4").await;

    let (st, p) = s
        .post(
            "/v1/tenants/t4/bulk/preview",
            s.key("t4"),
            json!({"action": "delete", "actor_id": "t4-u1", "reason": "cohort cleanup",
                   "filter": {"role": "mentee", "last_login_before": cutoff}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["matched"], listed.len());
    assert_eq!(p["outcomes"]["allow"], allow.len());
    assert_eq!(p["outcomes"]["escalate"], escalate.len());
    assert_eq!(p["outcomes"]["deny"], 0);
    assert_eq!(p["confirm_count"], allow.len());
    assert!(p["reasons"].as_array().unwrap().contains(
        &json!({"outcome": "escalate", "code": "customer-success", "count": escalate.len()})
    ));
    assert!(p["effects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["disposition"] == "cascade" && e["rows"].as_u64().unwrap() > 0));
    let sample = p["sample"].as_array().unwrap();
    assert_eq!(sample.len(), listed.len().min(20));
    assert_eq!(sample[0]["user_id"], listed[0].as_str());
    assert!(p["expires_at"].as_i64().unwrap() > p["created_at"].as_i64().unwrap());
    // A preview writes nothing.
    assert_eq!(states(&s, "t4").await, before);
    assert_eq!(audit_rows(&s, "t4").await, 0);

    let preview = p["preview_id"].as_str().unwrap().to_owned();
    let execute = format!("/v1/tenants/t4/bulk/{preview}/execute");
    let (st, v) = s
        .post(
            &execute,
            s.key("t4"),
            json!({"confirm_count": allow.len() + 1}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["code"], "confirm-count-mismatch");
    assert_eq!(v["expected"], allow.len());
    assert_eq!(audit_rows(&s, "t4").await, 0);

    let (st, job) = s
        .post(&execute, s.key("t4"), json!({"confirm_count": allow.len()}))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["total"], listed.len());
    let id = job["job_id"].as_str().unwrap().to_owned();
    let (_, done) = follow(&s, "t4", &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["applied"], allow.len());
    assert_eq!(done["escalated"], escalate.len());
    assert_eq!(
        (done["denied"].as_u64(), done["failed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(done["done"], done["total"]);
    assert_eq!(done["pending"], 0);
    // Who did not apply, and why.
    let not_applied = done["not_applied"].as_array().unwrap();
    assert_eq!(not_applied.len(), escalate.len());
    for item in not_applied {
        assert_eq!(item["status"], "escalated");
        assert_eq!(item["code"], "customer-success");
        assert!(item["detail"].as_str().unwrap().contains("platforms"));
        assert!(item["escalation_id"].as_str().unwrap().starts_with("esc-"));
    }
    let after = states(&s, "t4").await;
    for u in &allow {
        assert_eq!(after[*u], "erased", "{u}");
    }
    for u in &escalate {
        assert_eq!(after[*u], before[*u], "{u}");
    }
    for (u, state) in &before {
        if !listed.contains(u) {
            assert_eq!(&after[u], state, "{u} was not selected");
        }
    }
    // Escalated users are in customer success's queue.
    let (_, q) = s
        .get("/v1/tenants/t4/escalations?status=pending", s.key("t4"))
        .await;
    let queued: Vec<&str> = q["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["queue"] == "customer-success")
        .map(|e| e["user"].as_str().unwrap())
        .collect();
    for u in &escalate {
        assert!(queued.contains(&u.as_str()), "{u} not queued: {q}");
    }
    // One decision per user, each in the audit log.
    assert_eq!(audit_rows(&s, "t4").await, listed.len() as i64);
    let (st, items) = s
        .get(
            &format!("/v1/tenants/t4/jobs/{id}/items?status=applied&limit=1000"),
            s.key("t4"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{items}");
    assert_eq!(items["items"].as_array().unwrap().len(), allow.len());
    let (_, jobs) = s.get("/v1/tenants/t4/jobs", s.key("t4")).await;
    assert_eq!(jobs["jobs"][0]["job_id"], id.as_str());
    // A preview runs once.
    let (st, v) = s
        .post(&execute, s.key("t4"), json!({"confirm_count": allow.len()}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "preview-used");
    assert_eq!(v["job_id"], id.as_str());
    s.stop().await;
}

/// Seed 001 in bulk (two-stage-erase, t2): delete users, then find the
/// deleted ones by date and domain and erase them; only the domain contact
/// with the erase permission may; billing is kept.
async fn bulk_001(backend: Backend) {
    let s = Server::start(backend).await;
    let chosen: Vec<String> = (10..=16).map(|i| format!("t2-u{i}")).collect();
    let t0 = super_now();
    let (st, p) = s
        .post(
            "/v1/tenants/t2/bulk/preview",
            s.key("t2"),
            json!({"action": "delete", "actor_id": "t2-u2", "user_ids": chosen}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    let n = p["confirm_count"].as_u64().unwrap();
    assert!(n >= 3, "{p}");
    let (st, job) = s
        .post(
            &format!(
                "/v1/tenants/t2/bulk/{}/execute",
                p["preview_id"].as_str().unwrap()
            ),
            s.key("t2"),
            json!({"confirm_count": n}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let (_, done) = follow(&s, "t2", job["job_id"].as_str().unwrap()).await;
    assert_eq!(done["applied"], n, "{done}");
    let deleted: Vec<String> = states(&s, "t2")
        .await
        .into_iter()
        .filter(|(_, st)| st == "deleted")
        .map(|(u, _)| u)
        .collect();
    assert_eq!(deleted.len() as u64, n);
    let mut seats = BTreeMap::new();
    for u in &deleted {
        seats.insert(u.clone(), s.billing(u).await);
    }

    let filter = json!({"state": "deleted", "deleted_after": t0 - 60, "domain": "tenant2.example"});
    // Deleted before an hour ago: none.
    let (_, none) = s
        .post(
            "/v1/tenants/t2/bulk/preview",
            s.key("t2"),
            json!({"action": "erase", "actor_id": "t2-u1", "filter": {"state": "deleted", "deleted_before": t0 - 3600}}),
        )
        .await;
    assert_eq!(none["matched"], 0, "{none}");
    // An admin who is not the domain contact: every erase is denied.
    let (st, p) = s
        .post(
            "/v1/tenants/t2/bulk/preview",
            s.key("t2"),
            json!({"action": "erase", "actor_id": "t2-u2", "filter": filter}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["matched"], n);
    assert_eq!(p["confirm_count"], 0);
    assert_eq!(
        p["reasons"],
        json!([{"outcome": "deny", "code": "not-domain-contact", "count": n}])
    );
    // The domain contact holding "Erase deleted users".
    let (st, p) = s
        .post(
            "/v1/tenants/t2/bulk/preview",
            s.key("t2"),
            json!({"action": "erase", "actor_id": "t2-u1", "filter": filter}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["confirm_count"], n, "{p}");
    let (st, job) = s
        .post(
            &format!(
                "/v1/tenants/t2/bulk/{}/execute",
                p["preview_id"].as_str().unwrap()
            ),
            s.key("t2"),
            json!({"confirm_count": n}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let (_, done) = follow(&s, "t2", job["job_id"].as_str().unwrap()).await;
    assert_eq!(done["applied"], n, "{done}");
    for u in &deleted {
        let user = s.user("t2", u).await;
        assert_eq!(user["state"], "erased");
        assert_eq!(user["email"], Value::Null);
        assert_eq!(s.billing(u).await, seats[u], "billing of {u} is kept");
    }
    s.stop().await;
}

fn super_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A preview whose users changed is refused with the fresh counts; bulk
/// endpoints never reach another tenant's users or jobs; bad selections.
async fn bulk_stale_isolation_and_bad_input(backend: Backend) {
    let s = Server::start(backend).await;
    let select =
        json!({"action": "delete", "actor_id": "t5-u1", "filter": {"state": "deactivated"}});
    let (st, p) = s
        .post("/v1/tenants/t5/bulk/preview", s.key("t5"), select.clone())
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    let matched = p["matched"].as_u64().unwrap();
    assert!(matched > 0, "{p}");
    // One more user becomes deactivated after the preview.
    let (st, v) = s
        .act(
            "t5",
            "t5-u6",
            json!({"action": "deactivate", "actor_id": "t5-u1"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let stale = format!(
        "/v1/tenants/t5/bulk/{}/execute",
        p["preview_id"].as_str().unwrap()
    );
    let (st, v) = s
        .post(
            &stale,
            s.key("t5"),
            json!({"confirm_count": p["confirm_count"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "preview-stale");
    assert_eq!(v["preview"]["matched"], matched + 1);
    let fresh = v["preview"].clone();
    assert_ne!(fresh["preview_id"], p["preview_id"]);

    // Another tenant's users are unknown here, and so are its previews
    // and jobs.
    let (st, v) = s
        .post(
            "/v1/tenants/t1/bulk/preview",
            s.key("t1"),
            json!({"action": "lock", "actor_id": "t1-u1", "user_ids": ["t5-u6", "t5-u7"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["matched"].as_u64(), v["confirm_count"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(v["unknown_user_ids"], json!(["t5-u6", "t5-u7"]));
    let fresh_id = fresh["preview_id"].as_str().unwrap();
    let (st, _) = s
        .post(
            &format!("/v1/tenants/t1/bulk/{fresh_id}/execute"),
            s.key("t1"),
            json!({"confirm_count": fresh["confirm_count"]}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, job) = s
        .post(
            &format!("/v1/tenants/t5/bulk/{fresh_id}/execute"),
            s.key("t5"),
            json!({"confirm_count": fresh["confirm_count"]}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    let k1 = s.key("t1").to_owned();
    for (method, path) in [
        (Method::GET, format!("/v1/tenants/t5/jobs/{job_id}")),
        (Method::GET, format!("/v1/tenants/t1/jobs/{job_id}")),
        (Method::GET, format!("/v1/tenants/t1/jobs/{job_id}/items")),
        (Method::GET, format!("/v1/tenants/t1/jobs/{job_id}/events")),
        (Method::POST, format!("/v1/tenants/t1/jobs/{job_id}/cancel")),
        (Method::GET, "/v1/tenants/t5/jobs".to_owned()),
    ] {
        let (st, v) = s.call(method, &path, Some(&k1), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["code"], "not-found");
    }
    let (_, mine) = s.get("/v1/tenants/t1/jobs", &k1).await;
    assert_eq!(mine["jobs"], json!([]));
    let (_, done) = follow(&s, "t5", &job_id).await;
    assert_eq!(done["applied"], fresh["confirm_count"], "{done}");
    assert_eq!(done["total"], matched + 1);

    // Bad selections change nothing and say why.
    let audit = audit_rows(&s, "t5").await;
    for (body, status, code) in [
        (
            json!({"action": "delete", "actor_id": "t5-u1", "filter": {}, "user_ids": ["t5-u2"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-selection",
        ),
        (
            json!({"action": "delete", "actor_id": "t5-u1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-selection",
        ),
        (
            json!({"action": "delete", "actor_id": "t5-u1", "user_ids": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-selection",
        ),
        (
            json!({"action": "delete", "actor_id": "t5-u1", "filter": {"state": "gone"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-selection",
        ),
        (
            json!({"action": "delete", "actor_id": "nobody", "filter": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-actor",
        ),
        (
            // Deleted by the job above: a deleted user acts no more.
            json!({"action": "delete", "actor_id": "t5-u6", "filter": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "actor-not-active",
        ),
        (
            json!({"action": "vanish", "actor_id": "t5-u1", "filter": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
        ),
    ] {
        let (st, v) = s
            .post("/v1/tenants/t5/bulk/preview", s.key("t5"), body.clone())
            .await;
        assert_eq!(st, status, "{body}: {v}");
        assert_eq!(v["code"], code, "{body}: {v}");
    }
    let (st, v) = s
        .post("/v1/tenants/t5/bulk/preview", &s.support, select)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = s
        .post(
            "/v1/tenants/t5/bulk/bp-nope/execute",
            s.key("t5"),
            json!({"confirm_count": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(audit_rows(&s, "t5").await, audit);
    s.stop().await;
}

/// Cancel mid-run: users done stay done, the rest are left untouched and
/// counted as cancelled.
async fn bulk_cancel(backend: Backend) {
    // Enough mentees (about a third of 2,000 users) that the job is still
    // running when the cancel arrives: a batch of 8 is one transaction and
    // takes milliseconds, so 300 users' job could finish first.
    let s = Server::start_with(backend, 2000).await;
    let before = states(&s, "t4").await;
    let (st, p) = s
        .post(
            "/v1/tenants/t4/bulk/preview",
            s.key("t4"),
            json!({"action": "delete", "actor_id": "t4-u1", "filter": {"role": "mentee"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    let (st, job) = s
        .post(
            &format!(
                "/v1/tenants/t4/bulk/{}/execute",
                p["preview_id"].as_str().unwrap()
            ),
            s.key("t4"),
            json!({"confirm_count": p["confirm_count"]}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let id = job["job_id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    loop {
        let (_, j) = s
            .get(&format!("/v1/tenants/t4/jobs/{id}"), s.key("t4"))
            .await;
        if j["done"].as_u64().unwrap() > 0 {
            assert_eq!(j["status"], "running", "the job must still be running: {j}");
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the job never started: {j}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (st, v) = s
        .post(
            &format!("/v1/tenants/t4/jobs/{id}/cancel"),
            s.key("t4"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["cancel_requested"], true);
    let (_, done) = follow(&s, "t4", &id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    let cancelled = done["cancelled"].as_u64().unwrap();
    assert!(
        cancelled > 0 && done["applied"].as_u64().unwrap() > 0,
        "{done}"
    );
    assert_eq!(done["done"], done["total"]);
    let after = states(&s, "t4").await;
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants/t4/jobs/{id}/items?limit=100&cursor={c}"),
            None => format!("/v1/tenants/t4/jobs/{id}/items?limit=100"),
        };
        let (_, page) = s.get(&path, s.key("t4")).await;
        for item in page["items"].as_array().unwrap() {
            seen += 1;
            let u = item["user_id"].as_str().unwrap();
            match item["status"].as_str().unwrap() {
                "applied" => assert_eq!(after[u], "erased", "{u}"),
                "cancelled" | "escalated" => assert_eq!(after[u], before[u], "{u} untouched"),
                other => panic!("{u}: {other}"),
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, done["total"].as_u64().unwrap());
    let (st, v) = s
        .post(
            &format!("/v1/tenants/t4/jobs/{id}/cancel"),
            s.key("t4"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "job-finished");
    s.stop().await;
}

/// `lethe bulk` against the server: preview (JSON), a wrong typed count
/// (exit 1, the problem code named), execute following the progress stream
/// to the end, status.
async fn bulk_cli(backend: Backend) {
    let s = Server::start(backend).await;
    let lethe = |args: &[&str]| {
        let mut cmd = tokio::process::Command::from(common::lethe_cmd());
        cmd.arg("bulk")
            .args(args)
            .args(["--server", &s.base, "--tenant", "t4"])
            .env("LETHE_KEY", s.key("t4"));
        async move {
            let out = cmd.output().await.unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, out, err) = lethe(&[
        "preview", "--action", "delete", "--actor", "t4-u1", "--role", "mentee", "--json",
    ])
    .await;
    assert_eq!(code, Some(0), "{err}");
    let p: Value = serde_json::from_str(&out).unwrap();
    let id = p["preview_id"].as_str().unwrap().to_owned();
    let n = p["confirm_count"].as_u64().unwrap();
    assert!(
        n > 0 && p["outcomes"]["escalate"].as_u64().unwrap() > 0,
        "{p}"
    );
    let (code, out, _) = lethe(&[
        "preview", "--action", "delete", "--actor", "t4-u1", "--role", "mentee",
    ])
    .await;
    assert_eq!(code, Some(0));
    assert!(out.contains(&format!("--confirm {n}")), "{out}");

    let wrong = (n + 1).to_string();
    let (code, _, err) = lethe(&["execute", &id, "--confirm", &wrong]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("confirm-count-mismatch"), "{err}");

    let (code, out, err) = lethe(&["execute", &id, "--confirm", &n.to_string(), "--json"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let job: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["applied"], n);
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    let (code, out, _) = lethe(&["status", &job_id]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("customer-success"),
        "the escalated users are listed: {out}"
    );
    let (code, _, err) = lethe(&["cancel", &job_id]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("job-finished"), "{err}");
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
    bulk_003,
    bulk_001,
    bulk_stale_isolation_and_bad_input,
    bulk_cancel,
    bulk_cli,
    observability,
);
