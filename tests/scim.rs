//! SCIM 2.0 end to end, on SQLite and PostgreSQL: a real `lethe serve`,
//! driven with the request sequences Okta and Entra ID document for
//! provisioning and deprovisioning, through real seed policies.
//!
//! - Okta on a deactivate-first tenant (seed 004): look up by userName,
//!   create (password, groups and locale ignored), `active=false` without a
//!   `path` becomes a deactivation through the policy (the decision names
//!   `scim:okta` and rule `actor.identity-provider`), the same PATCH again
//!   changes nothing, the user stays readable with `active: false`, and
//!   `active=true` reactivates with the seed's welcome mail.
//! - Entra on the same tenant: `"op":"Replace"` with `"False"` deactivates,
//!   a later DELETE deletes (erased at once under this policy: 404 after).
//! - A policy denial is a 403 carrying the policy's code; nothing changes.
//! - A support-only tenant (seed 000) deprovisions by lock; its DELETE is
//!   escalated (202, the user still readable), a retried DELETE joins the
//!   same escalation, and support's approval deletes.
//! - A tenant's token reads no other tenant's users; a malformed body is
//!   a SCIM 400 that changes nothing; no token, a revoked token: 401.
//! - Every request is in the tenant's SCIM request log.
//!
//! Needs the components in `policies/dist/` and PostgreSQL at
//! `LETHE_TEST_PG` (default postgres://postgres@127.0.0.1:5432).

#[path = "../host/tests/common/mod.rs"]
mod common;

use std::path::Path;

use common::serve::{free_port, Server};
use common::{
    call, platform_dump, policy_component, scalar, seed_demo, text, write_config, TestDb,
};
use lethe::apikeys::{self, Principal};
use lethe::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

fn config(dir: &Path, url: &str, port: u16) -> std::path::PathBuf {
    let rest = format!(
        "listen = \"127.0.0.1:{port}\"\n\
         sweep_interval_secs = 0\n\
         \n\
         [[tenant]]\n\
         id = \"t5\"\n\
         policy = \"{}\"\n\
         \n\
         [[tenant]]\n\
         id = \"t1\"\n\
         policy = \"{}\"\n",
        policy_component("deactivate-first").display(),
        policy_component("support-only").display(),
    );
    write_config(dir, url, &rest)
}

/// A SCIM exchange: the status, the body (`Null` when empty) and the
/// content type.
struct Reply {
    status: StatusCode,
    body: Value,
    content_type: String,
}

struct Scim<'a> {
    http: &'a reqwest::Client,
    base: String,
}

impl Scim<'_> {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            // What Okta and Entra send.
            req = req
                .header("content-type", "application/scim+json; charset=utf-8")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            body,
            content_type,
        }
    }

    /// A request that must answer `want`, in SCIM JSON.
    async fn expect(
        &self,
        want: StatusCode,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let what = format!("{method} {path}");
        let r = self.send(method, path, Some(token), body).await;
        assert_eq!(r.status, want, "{what}: {}", r.body);
        if want != StatusCode::NO_CONTENT {
            assert!(
                r.content_type.starts_with("application/scim+json"),
                "{what}: {}",
                r.content_type
            );
        }
        r.body
    }
}

/// The SCIM error of a refused request: its scimType (if any) and detail.
fn scim_error(body: &Value, status: u16) -> (Option<String>, String) {
    assert_eq!(body["schemas"], json!([ERROR]), "{body}");
    assert_eq!(body["status"], json!(status.to_string()), "{body}");
    (
        body["scimType"].as_str().map(str::to_owned),
        body["detail"].as_str().unwrap().to_owned(),
    )
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

async fn scim(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed_demo(&t.db, 5, 40, 6, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), &t.url, port);
    let db = &t.db;
    let create = |p| async move { apikeys::create(db, p, None, 0).await.unwrap().secret };
    let operator = create(Principal::Operator(String::new())).await;
    let support = create(Principal::Support).await;
    let t5_key = create(Principal::Tenant("t5".into())).await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Server::spawn(&cfg, port, &dir.path().join("serve.log"), "warn");
    server.wait_healthy(&http).await;
    let api = |method, path: &str, key: &str, body| {
        let (http, url, key) = (&http, format!("{base}{path}"), key.to_owned());
        async move { call(http, method, &url, Some(&key), body).await }
    };

    // The operator sets the tenants up: a token each, and lock as seed
    // 000's way to deprovision.
    let (st, v) = api(
        Method::PUT,
        "/v1/admin/tenants/t1/scim",
        &operator,
        Some(json!({"deprovision": "lock"})),
    )
    .await;
    assert_eq!((st, &v), (StatusCode::OK, &json!({"deprovision": "lock"})));
    let (st, v) = api(Method::GET, "/v1/admin/tenants/t5/scim", &operator, None).await;
    assert_eq!(
        (st, v),
        (StatusCode::OK, json!({"deprovision": "deactivate"}))
    );
    let token = |t: &'static str, label: &'static str| {
        let api = &api;
        let operator = operator.clone();
        async move {
            let (st, v) = api(
                Method::POST,
                &format!("/v1/admin/tenants/{t}/scim/tokens"),
                &operator,
                Some(json!({"label": label})),
            )
            .await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
            (
                v["token"].as_str().unwrap().to_owned(),
                v["id"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (okta, _) = token("t5", "okta").await;
    let (entra, _) = token("t1", "entra").await;
    let (spare, spare_id) = token("t5", "spare").await;
    let (st, v) = api(
        Method::GET,
        "/v1/admin/tenants/t5/scim/tokens",
        &operator,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["tokens"].as_array().unwrap().len(), 2);
    assert!(
        !v.to_string().contains(&okta),
        "a listed token shows no secret"
    );
    // A tenant key is not an operator's.
    let (st, _) = api(
        Method::GET,
        "/v1/admin/tenants/t5/scim/tokens",
        &t5_key,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let s = Scim {
        http: &http,
        base: base.clone(),
    };
    let t5 = "/scim/v2/t5";
    let t1 = "/scim/v2/t1";

    // Okta, "Create a user" then "Deactivate a user" (developer.okta.com,
    // SCIM 2.0 reference): a lookup by userName, a POST, a GET, and a PATCH
    // without a path.
    let user_name = "dana.okta@example.com";
    let found = s
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{t5}/Users?filter=userName%20eq%20%22{user_name}%22&startIndex=1&count=100"),
            &okta,
            None,
        )
        .await;
    assert_eq!(found["totalResults"], json!(0));
    let okta_user = json!({
        "schemas": [USER], "userName": user_name,
        "name": {"givenName": "Dana", "familyName": "Ito"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Dana Ito", "locale": "en-US", "externalId": "00u1okta",
        "groups": [], "password": {"value": "t1meMa$heen"}, "active": true
    });
    let created = s
        .expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("{t5}/Users"),
            &okta,
            Some(okta_user.clone()),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["active"], json!(true));
    assert_eq!(
        created["name"],
        json!({"givenName": "Dana", "familyName": "Ito"})
    );
    assert_eq!(created["emails"], json!([{"value": user_name}]));
    assert_eq!(created["externalId"], json!("00u1okta"));
    assert!(created.get("password").is_none() && created.get("locale").is_none());
    assert_eq!(
        text(db, &format!("SELECT domain FROM users WHERE id = '{id}'"))
            .await
            .as_deref(),
        Some("example.com"),
        "the domain is the email's"
    );
    assert_eq!(
        text(db, &format!("SELECT role FROM users WHERE id = '{id}'"))
            .await
            .as_deref(),
        Some("member"),
        "the data map's default role"
    );
    // userName is unique (without case).
    let mut twin = okta_user.clone();
    twin["userName"] = json!("DANA.OKTA@example.com");
    let r = s
        .send(
            Method::POST,
            &format!("{t5}/Users"),
            Some(&okta),
            Some(twin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(scim_error(&r.body, 409).0.as_deref(), Some("uniqueness"));
    // Found by userName and by externalId now.
    for filter in [
        format!("userName%20eq%20%22{}%22", user_name.to_uppercase()),
        "externalId%20eq%20%2200u1okta%22".to_owned(),
    ] {
        let v = s
            .expect(
                StatusCode::OK,
                Method::GET,
                &format!("{t5}/Users?filter={filter}"),
                &okta,
                None,
            )
            .await;
        assert_eq!(v["totalResults"], json!(1), "{filter}");
        assert_eq!(v["Resources"][0]["id"], json!(id));
    }

    let deactivate = patch(json!([{"op": "replace", "value": {"active": false}}]));
    let v = s
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &format!("{t5}/Users/{id}"),
            &okta,
            Some(deactivate.clone()),
        )
        .await;
    assert_eq!(v["active"], json!(false));
    assert_eq!(
        text(db, &format!("SELECT status FROM users WHERE id = '{id}'"))
            .await
            .as_deref(),
        Some("inactive"),
        "active=false deactivates on this tenant"
    );
    let decided = |user: String| async move {
        scalar(
            db,
            &format!("SELECT COUNT(*) FROM lethe_decisions WHERE subject_id = '{user}'"),
        )
        .await
    };
    assert_eq!(decided(id.clone()).await, 1);
    let request = text(
        db,
        &format!("SELECT request_json FROM lethe_decisions WHERE subject_id = '{id}'"),
    )
    .await
    .unwrap();
    let request: Value = serde_json::from_str(&request).unwrap();
    assert_eq!(request["actor"]["kind"], json!("system"));
    assert_eq!(request["actor"]["id"], json!("scim:okta"));
    let rules = text(
        db,
        &format!("SELECT rules FROM lethe_decisions WHERE subject_id = '{id}'"),
    )
    .await
    .unwrap();
    assert!(rules.contains("actor.identity-provider"), "{rules}");
    // The same PATCH again (Okta retries) changes nothing.
    let v = s
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &format!("{t5}/Users/{id}"),
            &okta,
            Some(deactivate),
        )
        .await;
    assert_eq!(v["active"], json!(false));
    assert_eq!(decided(id.clone()).await, 1, "no second action");
    // Still readable, and listed among the inactive.
    let v = s
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{t5}/Users/{id}"),
            &okta,
            None,
        )
        .await;
    assert_eq!(v["active"], json!(false));
    let v = s
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{t5}/Users?filter=active%20eq%20false&count=1000"),
            &okta,
            None,
        )
        .await;
    assert!(v["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["id"] == json!(id)));
    // Back: reactivation, with seed 004's welcome mail (never logged in).
    let v = s
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &format!("{t5}/Users/{id}"),
            &okta,
            Some(patch(json!([{"op": "replace", "value": {"active": true}}]))),
        )
        .await;
    assert_eq!(v["active"], json!(true));
    let (st, events) = api(
        Method::GET,
        &format!("/v1/tenants/t5/events?user={id}"),
        &t5_key,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["user.reactivated", "user.deactivated"],
        "events, newest first"
    );
    assert_eq!(events["events"][0]["data"]["notify"], json!(["welcome"]));
    assert_eq!(
        events["events"][0]["data"]["actor"],
        json!({"kind": "system", "id": "scim:okta"}),
        "the event names the identity provider"
    );

    // Entra ID, "unassign then delete": a seeded active member of t5.
    let members = s
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{t5}/Users?filter=active%20eq%20true&count=1000"),
            &okta,
            None,
        )
        .await;
    let entra_id = members["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .find(|u| u.starts_with("t5-u") && u != "t5-u1" && u != "t5-u2")
        .unwrap();
    let v = s
        .expect(
            StatusCode::OK,
            Method::PATCH,
            &format!("{t5}/Users/{entra_id}"),
            &okta,
            Some(patch(
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
            )),
        )
        .await;
    assert_eq!(v["active"], json!(false));
    s.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("{t5}/Users/{entra_id}"),
        &okta,
        None,
    )
    .await;
    assert_eq!(
        text(
            db,
            &format!("SELECT status FROM users WHERE id = '{entra_id}'")
        )
        .await
        .as_deref(),
        Some("erased"),
        "seed 004 deletes permanently"
    );
    let r = s
        .send(
            Method::GET,
            &format!("{t5}/Users/{entra_id}"),
            Some(&okta),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    scim_error(&r.body, 404);

    // A denial: seed 004 deletes only deactivated users, and a locked one
    // is not. 403 with the policy's code; the user is as it was.
    let locked = scalar(
        db,
        "SELECT COUNT(*) FROM users WHERE id = 't5-u4' AND status = 'locked'",
    )
    .await;
    assert_eq!(locked, 1, "t5-u4 is seeded locked");
    let before = platform_dump(db).await;
    let r = s
        .send(
            Method::DELETE,
            &format!("{t5}/Users/t5-u4"),
            Some(&okta),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let (_, detail) = scim_error(&r.body, 403);
    assert!(detail.contains("user-not-deactivated"), "{detail}");
    assert_eq!(platform_dump(db).await, before, "a denial changes nothing");

    // Seed 000 on t1: the identity provider locks, and its DELETE waits
    // for support.
    let t1_member = "t1-u5";
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM users WHERE id = 't1-u5' AND status = 'active'"
        )
        .await,
        1
    );
    let v = s
        .expect(
            StatusCode::ACCEPTED,
            Method::DELETE,
            &format!("{t1}/Users/{t1_member}"),
            &entra,
            None,
        )
        .await;
    assert_eq!(
        v["active"],
        json!(false),
        "202 with the user, deprovisioned"
    );
    assert_eq!(
        text(db, "SELECT status FROM users WHERE id = 't1-u5'")
            .await
            .as_deref(),
        Some("locked")
    );
    let v = s
        .expect(
            StatusCode::ACCEPTED,
            Method::DELETE,
            &format!("{t1}/Users/{t1_member}"),
            &entra,
            None,
        )
        .await;
    assert_eq!(v["id"], json!(t1_member));
    let (st, queue) = api(
        Method::GET,
        "/v1/escalations?tenant=t1&status=pending",
        &support,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let waiting: Vec<&Value> = queue["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["user"] == json!(t1_member))
        .collect();
    assert_eq!(
        waiting.len(),
        1,
        "a retried DELETE joins the escalation: {queue}"
    );
    assert_eq!(waiting[0]["actor_id"], json!("scim:entra"));
    assert_eq!(waiting[0]["action"], json!("delete"));
    let v = s
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{t1}/Users/{t1_member}"),
            &entra,
            None,
        )
        .await;
    assert_eq!(
        v["active"],
        json!(false),
        "still readable while support decides"
    );
    let esc = waiting[0]["id"].as_str().unwrap();
    let (st, v) = api(
        Method::POST,
        &format!("/v1/escalations/{esc}/approve"),
        &support,
        Some(json!({"agent": "sam"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let v = s
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{t1}/Users/{t1_member}"),
            &entra,
            None,
        )
        .await;
    assert_eq!(v["active"], json!(false), "deleted, readable until erased");
    assert_eq!(
        text(db, "SELECT status FROM users WHERE id = 't1-u5'")
            .await
            .as_deref(),
        Some("deleted")
    );
    // active=true on a deleted user is not the identity provider's to undo.
    let r = s
        .send(
            Method::PATCH,
            &format!("{t1}/Users/{t1_member}"),
            Some(&entra),
            Some(patch(
                json!([{"op": "replace", "path": "active", "value": true}]),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    // Tenants stay apart: t1's token reads nothing of t5.
    for path in [
        format!("{t1}/Users/{id}"),
        format!("{t5}/Users/{id}"),
        format!("{t5}/Users"),
    ] {
        let r = s.send(Method::GET, &path, Some(&entra), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        scim_error(&r.body, 404);
    }
    let v = s
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{t1}/Users?count=1000"),
            &entra,
            None,
        )
        .await;
    assert!(v["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["id"].as_str().unwrap().starts_with("t1-")));

    // Bad input: a SCIM 400 that changes nothing.
    let before = platform_dump(db).await;
    for (body, scim_type) in [
        (Value::String("{not json".into()), "invalidSyntax"),
        (
            patch(json!([{"op": "replace", "path": "active", "value": "maybe"}])),
            "invalidValue",
        ),
        (
            patch(json!([{"op": "add", "path": "shoeSize", "value": 44}])),
            "invalidPath",
        ),
        (
            patch(json!([{"op": "remove", "path": "userName"}])),
            "mutability",
        ),
        (
            patch(json!([{"op": "move", "path": "displayName"}])),
            "invalidSyntax",
        ),
    ] {
        let raw = match &body {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let r = s
            .http
            .patch(format!("{base}{t5}/Users/{id}"))
            .bearer_auth(&okta)
            .header("content-type", "application/scim+json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: Value = r.json().await.unwrap();
        assert_eq!(scim_error(&v, 400).0.as_deref(), Some(scim_type), "{v}");
    }
    let r = s
        .send(
            Method::GET,
            &format!("{t5}/Users?filter=title%20co%20%22x%22"),
            Some(&okta),
            None,
        )
        .await;
    assert_eq!(scim_error(&r.body, 400).0.as_deref(), Some("invalidFilter"));
    let r = s
        .send(
            Method::POST,
            &format!("{t5}/Users"),
            Some(&okta),
            Some(json!({"schemas": [USER], "displayName": "no name"})),
        )
        .await;
    assert_eq!(scim_error(&r.body, 400).0.as_deref(), Some("invalidValue"));
    assert_eq!(platform_dump(db).await, before, "bad input changes nothing");

    // No token, a revoked one: 401.
    let r = s
        .send(Method::GET, &format!("{t5}/Users"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    scim_error(&r.body, 401);
    s.expect(
        StatusCode::OK,
        Method::GET,
        &format!("{t5}/ServiceProviderConfig"),
        &spare,
        None,
    )
    .await;
    let (st, _) = api(
        Method::DELETE,
        &format!("/v1/admin/tenants/t5/scim/tokens/{spare_id}"),
        &operator,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let r = s
        .send(
            Method::GET,
            &format!("{t5}/ServiceProviderConfig"),
            Some(&spare),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Every request is logged with its identity provider.
    let (st, log) = api(
        Method::GET,
        "/v1/tenants/t5/scim/requests?limit=1000",
        &t5_key,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let entries = log["requests"].as_array().unwrap();
    let outcomes: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| e["actor"] == json!("scim:okta"))
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    for want in [
        "read",
        "created",
        "deprovisioned",
        "unchanged",
        "reprovisioned",
        "deleted",
        "denied",
        "refused",
    ] {
        assert!(outcomes.contains(want), "{want} in {outcomes:?}");
    }
    let denied = entries
        .iter()
        .find(|e| e["outcome"] == json!("denied"))
        .unwrap();
    assert_eq!(
        (denied["status"].clone(), denied["user_id"].clone()),
        (json!(403), json!("t5-u4"))
    );
    assert!(
        denied["action_id"].is_string(),
        "the denial's decision is linked"
    );

    server.terminate().await;
    t.drop_db().await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scim() {
        super::scim(lethe::db::Backend::Sqlite).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scim() {
        super::scim(lethe::db::Backend::Postgres).await;
    }
}
