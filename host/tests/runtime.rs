//! The policy runtime with real seed components: compile cache, sessions,
//! determinism, limits configuration.
//!
//! Needs the components in `policies/dist/` (`bash policies/build.sh`).

mod common;

use std::path::PathBuf;

use common::{policy_component, root};
use lethe::contract::{Outcome, Request};
use lethe::policy::{CacheOutcome, Limits, Policy, PolicyFault, Runtime, RuntimeConfig};

fn runtime(cache_dir: Option<PathBuf>) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir,
        ..Default::default()
    })
    .expect("runtime")
}

fn request() -> Request {
    let text =
        std::fs::read_to_string(root().join("examples/requests/delete-active-by-admin.json"))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(rt: &Runtime, name: &str) -> Policy {
    rt.load_file(&policy_component(name)).expect("load")
}

#[test]
fn compile_cache_hits_and_recovers_from_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(Some(dir.path().to_owned()));
    let first = load(&rt, "deactivate-first");
    assert_eq!(first.cache_outcome(), CacheOutcome::Compiled);
    let expected = first.decide(&request()).unwrap();

    let second = load(&rt, "deactivate-first");
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    assert_eq!(second.decide(&request()).unwrap().outcome, expected.outcome);

    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one entry per component and engine: {entries:?}"
    );
    let entry = &entries[0];
    assert!(entry
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with(first.sha256()));

    // Flip one byte in the middle of the compiled code: the digest catches it.
    let mut bytes = std::fs::read(entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(entry, &bytes).unwrap();
    let third = load(&rt, "deactivate-first");
    assert_eq!(third.cache_outcome(), CacheOutcome::Replaced);
    assert_eq!(third.decide(&request()).unwrap().outcome, expected.outcome);

    // Truncated entry: also recompiled, and the rewritten entry is good again.
    std::fs::write(entry, &bytes[..100]).unwrap();
    assert_eq!(
        load(&rt, "deactivate-first").cache_outcome(),
        CacheOutcome::Replaced
    );
    assert_eq!(
        load(&rt, "deactivate-first").cache_outcome(),
        CacheOutcome::Hit
    );
}

/// An entry whose digest is right but which the engine refuses (compiled by
/// another wasmtime, or for other settings) is recompiled, not trusted.
#[test]
fn an_entry_the_engine_refuses_is_recompiled() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(Some(dir.path().to_owned()));
    let policy = load(&rt, "support-only");
    let entry = lethe::policy::cache::CompileCache::new(Some(dir.path().to_owned()))
        .entry_path(rt.engine(), policy.sha256())
        .unwrap();
    assert!(entry.exists());
    let payload = b"\x7fELF not really compiled code".to_vec();
    let mut bytes = b"LETHECW1".to_vec();
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&payload);
    std::fs::write(&entry, &bytes).unwrap();
    let again = load(&rt, "support-only");
    assert_eq!(again.cache_outcome(), CacheOutcome::Replaced);
    assert!(again.decide(&request()).is_ok());
    assert_eq!(load(&rt, "support-only").cache_outcome(), CacheOutcome::Hit);
}

#[test]
fn fuel_is_deterministic_and_sessions_agree_with_fresh_instances() {
    let rt = runtime(None);
    for name in ["support-only", "deactivate-first", "cohort-cleanup"] {
        let policy = load(&rt, name);
        let a = policy.decide(&request()).unwrap();
        let b = policy.decide(&request()).unwrap();
        assert_eq!(a.fuel_used, b.fuel_used, "{name}: same request, same fuel");
        assert!(a.fuel_used > 0);
        let mut session = policy.session();
        for _ in 0..3 {
            let s = session.decide(&request()).unwrap();
            assert_eq!(
                s.outcome, a.outcome,
                "{name}: session decides as fresh instances do"
            );
            assert_eq!(s.rules, a.rules);
            assert!(
                s.fuel_used <= a.fuel_used,
                "{name}: a reused instance skips instantiation ({} > {})",
                s.fuel_used,
                a.fuel_used
            );
        }
    }
}

#[test]
fn a_fuel_budget_too_small_for_the_policy_is_a_fault_not_a_decision() {
    let rt = runtime(None);
    let wasm = std::fs::read(policy_component("deactivate-first")).unwrap();
    let probe = rt.load(&wasm).unwrap().decide(&request()).unwrap();
    // Enough to load and describe, not enough to decide this request twice over.
    let tight = Limits {
        fuel: probe.fuel_used / 2,
        ..Limits::default()
    };
    match rt.load_with_limits(&wasm, tight) {
        Ok(policy) => assert_eq!(
            policy.decide(&request()),
            Err(PolicyFault::OutOfFuel { budget: tight.fuel })
        ),
        Err(e) => assert_eq!(e.code(), "describe-failed", "{e}"),
    }
}

#[test]
fn python_and_javascript_policies_decide_like_the_rust_ones() {
    let rt = runtime(Some(root().join("target/lethe-cache")));
    let py = load(&rt, "transfer-and-scrub");
    assert_eq!(py.info().name, "transfer-and-scrub");
    match py.decide(&request()).unwrap().outcome {
        Outcome::Deny { code, .. } => assert_eq!(code, "user-not-deactivated"),
        other => panic!("transfer-and-scrub: {other:?}"),
    }
    let js = load(&rt, "cohort-cleanup");
    assert_eq!(js.imports(), ["lethe:policy/host@0.1.0"]);
    match js.decide(&request()).unwrap().outcome {
        Outcome::Escalate { queue, reason } => {
            assert_eq!(queue, "customer-success");
            assert!(reason.contains("platform"), "{reason}");
        }
        other => panic!("cohort-cleanup: {other:?}"),
    }
}
