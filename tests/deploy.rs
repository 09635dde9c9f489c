//! Operators deploy tenants' policies at runtime, over real HTTP against
//! real `lethe serve` processes, on SQLite and on PostgreSQL.
//!
//! - The config's tenant is imported at start as version 1 (bootstrap).
//! - The operator API refuses tenant keys (404), support keys (403) and
//!   anonymous callers (401).
//! - Each gate rejects: not a component, a core module, a forbidden import,
//!   a wrong world, a failing case, a case over its fuel ceiling, and a
//!   component over the upload limit (413). Rejected versions are stored
//!   with their report and can never be activated; nothing is activated.
//! - A changed policy (deactivate-first instead of two-stage-erase) is
//!   uploaded with its cases, activated, and decided by at once: the same
//!   request is allowed before and denied after, and the records name the
//!   version. Rollback returns to version 1.
//! - Before activating, the changed policy is replayed on the recorded
//!   traffic: every delete version 1 allowed becomes a denial.
//! - `lethe decisions verify` re-decides every record with its own version
//!   and flags one whose stored decision was edited.
//! - A shadow version decides beside the active one on both servers, off
//!   the request path; its disagreements are counted and recorded.
//! - A version whose stored bytes were altered loads nowhere: both servers
//!   stay on the previous version and report the error in the status.
//! - A second server on the same database serves each activation; the time
//!   it takes is printed. During 20 activations a loop of decisions on
//!   both servers sees no error, and every decision (and every record,
//!   from real denied actions) names a version whose sha256 is the one that
//!   version stored.
//!
//! Needs the components in `policies/dist/` (`bash policies/build.sh`) and
//! PostgreSQL at `LETHE_TEST_PG` (default postgres://postgres@127.0.0.1:5432).

#[path = "../host/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::serve::{free_port, Server};
use common::{call, policy_component, root, seed_demo, write_config, TestDb};
use lethe::apikeys::{self, Principal};
use lethe::db::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TENANT: &str = "t2";
/// An admin of t2 and a member: two-stage-erase lets the admin delete the
/// active member; deactivate-first denies it (only deactivated users).
const ADMIN: &str = "t2-u2";
const MEMBER: &str = "t2-u5";
/// Another active member, whom MEMBER may not delete under either policy.
const OTHER: &str = "t2-u6";
/// The operator's upload limit in these servers.
const UPLOAD_LIMIT: usize = 4 << 20;
const LOG: &str = "warn,lethe::tenancy=info,lethe::deploy=info";

fn server_config(dir: &Path, url: &str, port: u16) -> std::path::PathBuf {
    let sub = dir.join(format!("s{port}"));
    std::fs::create_dir_all(&sub).unwrap();
    let rest = format!(
        "listen = \"127.0.0.1:{port}\"\n\
         sweep_interval_secs = 0\n\
         policy_upload_limit_bytes = {UPLOAD_LIMIT}\n\
         \n\
         [[tenant]]\n\
         id = \"{TENANT}\"\n\
         policy = \"{}\"\n",
        policy_component("two-stage-erase").display()
    );
    write_config(&sub, url, &rest)
}

struct Keys {
    operator: String,
    tenant: String,
    support: String,
}

async fn keys(db: &lethe::db::Db) -> Keys {
    let create = |p| async move { apikeys::create(db, p, None, 0).await.unwrap().secret };
    Keys {
        operator: create(Principal::Operator(String::new())).await,
        tenant: create(Principal::Tenant(TENANT.into())).await,
        support: create(Principal::Support).await,
    }
}

/// An upload: the component as the body, or multipart with cases.
async fn upload(
    http: &reqwest::Client,
    s: &Server,
    key: &str,
    component: Vec<u8>,
    cases: Option<String>,
) -> (StatusCode, Value) {
    let url = s.url(&format!("/v1/admin/tenants/{TENANT}/versions"));
    let req = http.post(url).bearer_auth(key);
    let req = match cases {
        None => req
            .header("content-type", "application/wasm")
            .query(&[("message", "a test upload")])
            .body(component),
        Some(cases) => {
            let form = reqwest::multipart::Form::new()
                .part(
                    "component",
                    reqwest::multipart::Part::bytes(component).file_name("policy.wasm"),
                )
                .text("cases", cases)
                .text("message", "with cases");
            req.multipart(form)
        }
    };
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn component(name: &str) -> Vec<u8> {
    std::fs::read(policy_component(name)).unwrap()
}

fn cases(policy: &str) -> String {
    std::fs::read_to_string(root().join(format!("policies/{policy}/cases.toml"))).unwrap()
}

/// The failed checks of a rejection, by name.
fn failed_checks(problem: &Value) -> Vec<String> {
    problem["version"]["report"]["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no report in {problem}"))
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| c["check"].as_str().unwrap().to_owned())
        .collect()
}

/// A dry-run delete of MEMBER by ADMIN: `(allowed, version, sha256)`.
async fn probe(
    http: &reqwest::Client,
    base: &str,
    key: &str,
) -> Result<(bool, i64, String), String> {
    let (status, v) = call(
        http,
        Method::POST,
        &format!("{base}/v1/tenants/{TENANT}/users/{MEMBER}/actions"),
        Some(key),
        Some(json!({"action": "delete", "actor_id": ADMIN, "dry_run": true})),
    )
    .await;
    let (allowed, named) = match status {
        // A dry run answers 200 with the decision, whatever it is.
        StatusCode::OK => (v["report"]["decision"]["outcome"] == "allow", &v["report"]),
        other => return Err(format!("{other}: {v}")),
    };
    let version = named["policy_version"]
        .as_i64()
        .ok_or_else(|| format!("no policy_version in {v}"))?;
    let sha = named["policy_sha256"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((allowed, version, sha))
}

/// A real action both versions deny (a member may not delete anyone), so
/// a decision record is written: `(version, sha256)` its denial names.
async fn denied_and_recorded(
    http: &reqwest::Client,
    base: &str,
    key: &str,
) -> Result<(i64, String), String> {
    let (status, v) = call(
        http,
        Method::POST,
        &format!("{base}/v1/tenants/{TENANT}/users/{OTHER}/actions"),
        Some(key),
        Some(json!({"action": "delete", "actor_id": MEMBER})),
    )
    .await;
    if status != StatusCode::FORBIDDEN || v["code"] != "denied" {
        return Err(format!("{status}: {v}"));
    }
    let version = v["policy_version"]
        .as_i64()
        .ok_or_else(|| format!("no policy_version in {v}"))?;
    Ok((
        version,
        v["policy_sha256"].as_str().unwrap_or_default().to_owned(),
    ))
}

async fn activate(http: &reqwest::Client, s: &Server, key: &str, version: i64) -> Value {
    let (status, v) = call(
        http,
        Method::POST,
        &s.url(&format!("/v1/admin/tenants/{TENANT}/activate")),
        Some(key),
        Some(json!({"version": version, "reason": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// Waits until `s` decides with `version`; the time it took.
async fn served_by(http: &reqwest::Client, s: &Server, key: &str, version: i64) -> Duration {
    let start = Instant::now();
    loop {
        let (_, v, _) = probe(http, &s.base, key).await.unwrap();
        if v == version {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "version {version} not served after 10 s (still {v}):\n{}",
            s.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn operator_flow(backend: Backend) {
    let t = TestDb::new(backend).await;
    // The API walkthroughs' data: t2-u5 is an active member t2-u2 may delete.
    seed_demo(&t.db, 5, 40, 6, 1).await;
    let keys = keys(&t.db).await;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let (pa, pb) = (free_port(), free_port());
    let mut a = Server::spawn(
        &server_config(dir.path(), &t.url, pa),
        pa,
        &dir.path().join("a.log"),
        LOG,
    );
    a.wait_healthy(&http).await;
    let mut b = Server::spawn(
        &server_config(dir.path(), &t.url, pb),
        pb,
        &dir.path().join("b.log"),
        LOG,
    );
    b.wait_healthy(&http).await;
    let op = keys.operator.as_str();
    let get = |s: &Server, path: &str, key: &str| {
        let url = s.url(path);
        let http = http.clone();
        let key = key.to_owned();
        async move { call(&http, Method::GET, &url, Some(&key), None).await }
    };

    // Bootstrap: the config's component is version 1, active, imported once
    // although two servers started.
    let (st, status) = get(&a, &format!("/v1/admin/tenants/{TENANT}/policy"), op).await;
    assert_eq!(st, StatusCode::OK, "{status}");
    assert_eq!(status["active"]["version"], 1, "{status}");
    assert_eq!(status["active"]["policy"]["name"], "two-stage-erase");
    assert_eq!(status["activations"][0]["kind"], "bootstrap");
    let (_, list) = get(&a, &format!("/v1/admin/tenants/{TENANT}/versions"), op).await;
    assert_eq!(list["versions"].as_array().unwrap().len(), 1, "{list}");
    let (allowed, v1, sha1) = probe(&http, &a.base, &keys.tenant).await.unwrap();
    assert!(allowed);
    assert_eq!(v1, 1);

    // Only operators.
    for (key, want) in [
        (Some(keys.tenant.as_str()), StatusCode::NOT_FOUND),
        (Some(keys.support.as_str()), StatusCode::FORBIDDEN),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        for path in ["/v1/admin/tenants", "/v1/admin/tenants/t2/policy"] {
            let (st, v) = call(&http, Method::GET, &a.url(path), key, None).await;
            assert_eq!(st, want, "{path}: {v}");
        }
        let (st, v) = call(
            &http,
            Method::POST,
            &a.url("/v1/admin/tenants/t2/activate"),
            key,
            Some(json!({"version": 1})),
        )
        .await;
        assert_eq!(st, want, "{v}");
        if let Some(key) = key {
            // Refused before the body is read: the server then closes the
            // connection, so it gets a client of its own.
            let once = reqwest::Client::new();
            let (st, _) = upload(&once, &a, key, component("deactivate-first"), None).await;
            assert_eq!(st, want);
        }
    }

    // Every gate refuses, naming its check; each rejection is stored.
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let mut failing_case = cases("deactivate-first");
    failing_case.push_str(
        "\n[[case]]\nname = \"deliberately wrong\"\nexpect = { outcome = \"escalate\" }\n",
    );
    let mut fuel_case = cases("deactivate-first");
    fuel_case.push_str(
        "\n[[case]]\nname = \"fuel ceiling\"\nexpect = { outcome = \"allow\", max_fuel = 1 }\n",
    );
    // (what, component, cases, the check that fails, what its failure says)
    type Rejection<'a> = (&'a str, Vec<u8>, Option<String>, &'a str, &'a str);
    let rejections: Vec<Rejection> = vec![
        (
            "text",
            b"not wasm".to_vec(),
            None,
            "component",
            "not WebAssembly",
        ),
        (
            "core module",
            core_module,
            None,
            "component",
            "core WebAssembly module",
        ),
        (
            "forbidden import",
            component("hostile-forbidden-import"),
            None,
            "imports",
            "evil:net/exfiltrate",
        ),
        (
            "wrong world",
            component("hostile-wrong-world"),
            None,
            "contract",
            "",
        ),
        (
            "describe loops",
            component("hostile-describe-loop"),
            None,
            "describe",
            "",
        ),
        (
            "failing case",
            component("deactivate-first"),
            Some(failing_case),
            "cases",
            "deliberately wrong",
        ),
        (
            "fuel ceiling",
            component("deactivate-first"),
            Some(fuel_case),
            "cases",
            "ceiling 1",
        ),
    ];
    let mut rejected = Vec::new();
    for (what, bytes, cases, check, says) in rejections {
        let (st, v) = upload(&http, &a, op, bytes, cases).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
        assert_eq!(v["code"], "policy-rejected", "{what}: {v}");
        assert_eq!(failed_checks(&v), vec![check.to_owned()], "{what}: {v}");
        assert!(
            v["failures"].to_string().contains(says),
            "{what}: `{says}` not in {}",
            v["failures"]
        );
        assert_eq!(v["version"]["status"], "rejected");
        rejected.push(v["version"]["version"].as_i64().unwrap());
    }
    let too_large = vec![0u8; UPLOAD_LIMIT + 1];
    let (st, v) = upload(&http, &a, op, too_large, None).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["code"], "body-too-large");
    for n in &rejected {
        let (st, v) = call(
            &http,
            Method::POST,
            &a.url(&format!("/v1/admin/tenants/{TENANT}/activate")),
            Some(op),
            Some(json!({"version": n})),
        )
        .await;
        assert_eq!(st, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["code"], "version-rejected");
    }
    let (_, list) = get(&a, &format!("/v1/admin/tenants/{TENANT}/versions"), op).await;
    assert_eq!(
        list["versions"].as_array().unwrap().len(),
        1 + rejected.len()
    );
    let (_, status) = get(&a, &format!("/v1/admin/tenants/{TENANT}/policy"), op).await;
    assert_eq!(
        status["active"]["version"], 1,
        "nothing activated: {status}"
    );
    assert_eq!(probe(&http, &b.base, &keys.tenant).await.unwrap().1, 1);

    // Recorded traffic under version 1: the admin deletes active members
    // (two-stage-erase allows it, with a restore window).
    let (_, page) = get(
        &a,
        &format!("/v1/tenants/{TENANT}/users?state=active&limit=40"),
        &keys.tenant,
    )
    .await;
    let members: Vec<String> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["roles"].as_array().unwrap().iter().all(|r| r != "admin"))
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .filter(|id| ![MEMBER, ADMIN, OTHER].contains(&id.as_str()))
        .take(6)
        .collect();
    assert_eq!(members.len(), 6, "{page}");
    let mut allowed_deletes = 0;
    for m in &members {
        let (st, v) = call(
            &http,
            Method::POST,
            &a.url(&format!("/v1/tenants/{TENANT}/users/{m}/actions")),
            Some(&keys.tenant),
            Some(json!({"action": "delete", "actor_id": ADMIN})),
        )
        .await;
        assert!(
            st == StatusCode::OK || st == StatusCode::FORBIDDEN,
            "{st}: {v}"
        );
        if st == StatusCode::OK {
            assert_eq!(v["report"]["policy_version"], 1, "{v}");
            allowed_deletes += 1;
        }
    }
    assert!(allowed_deletes > 0);

    // A changed policy with its cases: accepted, replayed on the recorded
    // traffic, then activated on A and served by B.
    let (st, v2) = upload(
        &http,
        &a,
        op,
        component("deactivate-first"),
        Some(cases("deactivate-first")),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["status"], "accepted");
    assert!(v2["report"]["cases"].as_array().unwrap().len() > 3);
    let n2 = v2["version"].as_i64().unwrap();
    let sha2 = v2["sha256"].as_str().unwrap().to_owned();
    let (st, replay) = call(
        &http,
        Method::POST,
        &a.url(&format!("/v1/admin/tenants/{TENANT}/versions/{n2}/replay")),
        Some(op),
        Some(json!({"last": 100})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{replay}");
    assert_eq!(replay["requests"], members.len(), "{replay}");
    assert_eq!(replay["faults"], 0, "{replay}");
    // Every delete of an active user it allowed is denied by the new one.
    assert_eq!(
        replay["transitions"],
        json!([{"from": "allow", "to": "deny", "count": allowed_deletes}]),
        "{replay}"
    );
    let example = &replay["examples"][0];
    assert_eq!(
        example["to_rules"],
        json!(["delete.active-refused"]),
        "{replay}"
    );
    eprintln!(
        "[{backend:?}] replay: {} recorded decisions at {:.0}/s",
        replay["requests"], replay["per_second"]
    );
    let (st, kept) = get(
        &a,
        &format!(
            "/v1/admin/tenants/{TENANT}/replays/{}",
            replay["id"].as_str().unwrap()
        ),
        op,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{kept}");
    assert_eq!(kept, replay);
    let (st, _) = call(
        &http,
        Method::POST,
        &a.url(&format!(
            "/v1/admin/tenants/{TENANT}/versions/{}/replay",
            rejected[0]
        )),
        Some(op),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a rejected version is not replayed"
    );
    let activation = activate(&http, &a, op, n2).await;
    assert_eq!(activation["from_version"], 1);
    assert_eq!(activation["to_version"], n2);
    let (allowed, v, sha) = probe(&http, &a.base, &keys.tenant).await.unwrap();
    assert_eq!((allowed, v, sha.as_str()), (false, n2, sha2.as_str()));
    let propagation = served_by(&http, &b, &keys.tenant, n2).await;
    eprintln!("[{backend:?}] activation served by the other server after {propagation:?}");

    // A real (denied) action: its decision record names the version.
    let (st, denied) = call(
        &http,
        Method::POST,
        &b.url(&format!("/v1/tenants/{TENANT}/users/{MEMBER}/actions")),
        Some(&keys.tenant),
        Some(json!({"action": "delete", "actor_id": ADMIN})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{denied}");
    let (st, record) = get(
        &a,
        &format!(
            "/v1/tenants/{TENANT}/decisions/{}",
            denied["action_id"].as_str().unwrap()
        ),
        &keys.tenant,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{record}");
    assert_eq!(record["policy_version"], n2);
    assert_eq!(record["policy_sha256"], sha2.as_str());

    // Rollback (to the version before) and back on both servers.
    let (st, back) = call(
        &http,
        Method::POST,
        &a.url(&format!("/v1/admin/tenants/{TENANT}/rollback")),
        Some(op),
        Some(json!({"reason": "too strict"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{back}");
    assert_eq!(
        (back["kind"].clone(), back["to_version"].clone()),
        (json!("rollback"), json!(1))
    );
    served_by(&http, &b, &keys.tenant, 1).await;
    let (allowed, v, sha) = probe(&http, &a.base, &keys.tenant).await.unwrap();
    assert_eq!((allowed, v, sha), (true, 1, sha1.clone()));

    // Both replicas report what they serve.
    let (_, status) = get(&a, &format!("/v1/admin/tenants/{TENANT}/policy"), op).await;
    let replicas = status["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{status}");
    assert!(
        replicas
            .iter()
            .all(|r| r["serving"] == 1 && r["error"].is_null()),
        "{status}"
    );

    // Shadow: version n2 decides beside version 1 on live requests, on both
    // servers; every one of these decisions disagrees (v1 allows, n2 denies).
    let (st, shadow) = call(
        &http,
        Method::PUT,
        &a.url(&format!("/v1/admin/tenants/{TENANT}/shadow")),
        Some(op),
        Some(json!({"version": n2})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{shadow}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    for s in [&a, &b] {
        for _ in 0..10 {
            let (allowed, v, _) = probe(&http, &s.base, &keys.tenant).await.unwrap();
            assert_eq!((allowed, v), (true, 1), "the shadow never decides live");
        }
    }
    let shadow_path = format!("/v1/admin/tenants/{TENANT}/shadow");
    let started = Instant::now();
    let shadow = loop {
        let (st, shadow) = get(&a, &shadow_path, op).await;
        assert_eq!(st, StatusCode::OK, "{shadow}");
        if shadow["evaluated"].as_i64() >= Some(20) {
            break shadow;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "shadow counts: {shadow}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shadow["evaluated"], 20, "{shadow}");
    assert_eq!(shadow["disagreed"], 20, "{shadow}");
    assert_eq!(
        (shadow["faults"].clone(), shadow["dropped"].clone()),
        (json!(0), json!(0))
    );
    let d = &shadow["disagreements"][0];
    assert_eq!(
        (d["version"].clone(), d["live_version"].clone()),
        (json!(n2), json!(1)),
        "{d}"
    );
    assert_eq!(
        (d["live"]["outcome"].clone(), d["shadow"]["outcome"].clone()),
        (json!("allow"), json!("deny")),
        "{d}"
    );
    assert_eq!(d["subject"], MEMBER);
    let (st, _) = call(&http, Method::DELETE, &a.url(&shadow_path), Some(op), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = get(&a, &shadow_path, op).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A version whose stored bytes were altered after upload is activated:
    // no server loads it; both stay on version 1 and say why.
    let (st, v3) = upload(&http, &a, op, component("support-only"), None).await;
    assert_eq!(st, StatusCode::CREATED, "{v3}");
    let n3 = v3["version"].as_i64().unwrap();
    sqlx::query("UPDATE lethe_policy_blobs SET bytes = $1 WHERE sha256 = $2")
        .bind(component("deactivate-first"))
        .bind(v3["sha256"].as_str().unwrap())
        .execute(t.db.pool())
        .await
        .unwrap();
    activate(&http, &a, op, n3).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for s in [&a, &b] {
        assert_eq!(probe(&http, &s.base, &keys.tenant).await.unwrap().1, 1);
    }
    let (_, status) = get(&a, &format!("/v1/admin/tenants/{TENANT}/policy"), op).await;
    assert_eq!(status["active"]["version"], n3, "{status}");
    for r in status["replicas"].as_array().unwrap() {
        assert_eq!(
            (r["serving"].as_i64(), r["wanted"].as_i64()),
            (Some(1), Some(n3)),
            "{status}"
        );
        assert!(
            r["error"].as_str().unwrap_or_default().contains("altered"),
            "{status}"
        );
    }
    activate(&http, &a, op, 1).await;

    // 20 activations while both servers decide in a loop.
    let stop = Arc::new(AtomicBool::new(false));
    let shas = BTreeMap::from([(1, sha1.clone()), (n2, sha2.clone())]);
    let mut loops = Vec::new();
    for s in [&a, &b] {
        let (http, stop, key) = (http.clone(), stop.clone(), keys.tenant.clone());
        let base = s.base.clone();
        loops.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut recorded = Vec::new();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                seen.push(probe(&http, &base, &key).await);
                recorded.push(denied_and_recorded(&http, &base, &key).await);
            }
            (seen, recorded)
        }));
    }
    let mut flips = Vec::new();
    for i in 0..20 {
        let to = if i % 2 == 0 { n2 } else { 1 };
        activate(&http, &a, op, to).await;
        flips.push(served_by(&http, &b, &keys.tenant, to).await);
    }
    stop.store(true, Ordering::Relaxed);
    let (mut decided, mut records) = (0, 0);
    for l in loops {
        let (seen, recorded) = l.await.unwrap();
        for result in recorded {
            let (version, sha) = result.expect("no action fails during activations");
            assert_eq!(sha, shas[&version], "record of version {version}");
            records += 1;
        }
        for result in seen {
            let (allowed, version, sha) = result.expect("no decision fails during activations");
            assert_eq!(
                sha, shas[&version],
                "version {version} names its own component"
            );
            assert_eq!(
                allowed,
                version == 1,
                "version {version} decides as its policy does"
            );
            decided += 1;
        }
    }
    flips.sort();
    eprintln!(
        "[{backend:?}] 20 activations, {decided} decisions meanwhile, 0 errors; \
         served by the other server after median {:?}, max {:?}",
        flips[flips.len() / 2],
        flips[flips.len() - 1]
    );
    assert!(
        decided > 20 && records > 20,
        "the loops ran ({decided}, {records})"
    );
    // Every decision record of the tenant names a version, and that
    // version's component; `decisions verify` below re-decides each with it.
    let unnamed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM lethe_decisions d LEFT JOIN lethe_policy_versions v \
         ON v.tenant_id = d.tenant_id AND v.version = d.policy_version \
         WHERE d.tenant_id = $1 AND (v.sha256 IS NULL OR v.sha256 <> d.policy_sha256)",
    )
    .bind(TENANT)
    .fetch_one(t.db.pool())
    .await
    .unwrap();
    assert_eq!(
        unnamed, 0,
        "records naming no version, or another's component"
    );

    a.terminate().await;
    b.terminate().await;

    // The evidence re-checks: every record re-decided by its own version.
    let config = server_config(dir.path(), &t.url, pa);
    let verify = |tenant: &str| {
        common::lethe_cmd()
            .args([
                "decisions",
                "verify",
                "--tenant",
                tenant,
                "--json",
                "--config",
            ])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = verify(TENANT);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report}");
    assert!(
        report["checked"].as_u64().unwrap() > members.len() as u64,
        "{report}"
    );
    assert_eq!(report["checked"], report["reproduced"], "{report}");
    // A record edited after the fact (its rules) is flagged.
    let forged: String = sqlx::query_scalar(
        "SELECT action_id FROM lethe_decisions WHERE tenant_id = $1 AND policy_version = 1 \
         AND decision_json LIKE '%delete.soft%' ORDER BY action_id LIMIT 1",
    )
    .bind(TENANT)
    .fetch_one(t.db.pool())
    .await
    .unwrap();
    sqlx::query(
        "UPDATE lethe_decisions SET decision_json = REPLACE(decision_json, 'delete.soft', 'delete.forged') \
         WHERE action_id = $1",
    )
    .bind(&forged)
    .execute(t.db.pool())
    .await
    .unwrap();
    let out = verify(TENANT);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(
        report["mismatches"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert_eq!(report["mismatches"][0]["action_id"], forged.as_str());
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_flow_sqlite() {
    operator_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_flow_postgres() {
    operator_flow(Backend::Postgres).await;
}
