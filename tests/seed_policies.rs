//! End to end through the `lethe` binary: every seed policy passes its own
//! cases file, the five policies answer the same requests the way their seed
//! articles say, and a wrong expectation makes `lethe policy test` fail.
//!
//! Needs the components in `policies/dist/` (`bash policies/build.sh`).

#[path = "../host/tests/common/mod.rs"]
mod common;

use common::{lethe, lethe_json, policy_component, root};

const POLICIES: [&str; 5] = [
    "support-only",
    "two-stage-erase",
    "transfer-and-scrub",
    "cohort-cleanup",
    "deactivate-first",
];

#[test]
fn every_seed_policy_passes_its_cases() {
    for name in POLICIES {
        let wasm = policy_component(name);
        let cases = root().join("policies").join(name).join("cases.toml");
        let out = lethe(&[
            "policy",
            "test",
            wasm.to_str().unwrap(),
            cases.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: cases failed\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = stdout.lines().last().unwrap_or_default();
        let passed: usize = summary
            .split(", ")
            .find_map(|part| part.strip_suffix(" passed"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            passed >= 15 && summary.ends_with(" 0 failed"),
            "{name}: {summary}"
        );
    }
}

/// Runs one example request through one policy; returns the decision JSON.
fn decide(policy: &str, request: &str) -> serde_json::Value {
    let wasm = policy_component(policy);
    let input = root().join("examples/requests").join(request);
    lethe_json(&[
        "policy",
        "run",
        wasm.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ])
}

#[test]
fn the_same_request_meets_five_different_platforms() {
    // An admin deletes an active mentee linked to two platforms.
    let req = "delete-active-by-admin.json";
    let d = decide("support-only", req);
    assert_eq!(
        (d["outcome"].as_str(), d["queue"].as_str()),
        (Some("escalate"), Some("support"))
    );
    let reason = d["reason"].as_str().unwrap_or_default();
    for category in ["contacts", "campaigns", "assets"] {
        assert!(
            reason.contains(category),
            "support-only reason names {category}: {reason}"
        );
    }
    let d = decide("two-stage-erase", req);
    assert_eq!(d["outcome"], "allow");
    assert_eq!(d["plan"]["restore_window_days"], 30);
    let d = decide("transfer-and-scrub", req);
    assert_eq!(
        (d["outcome"].as_str(), d["code"].as_str()),
        (Some("deny"), Some("user-not-deactivated"))
    );
    let d = decide("cohort-cleanup", req);
    assert_eq!(
        (d["outcome"].as_str(), d["queue"].as_str()),
        (Some("escalate"), Some("customer-success"))
    );
    let d = decide("deactivate-first", req);
    assert_eq!(
        (d["outcome"].as_str(), d["code"].as_str()),
        (Some("deny"), Some("user-active"))
    );
    assert!(
        d["fuel_used"].as_u64().unwrap_or(0) > 0,
        "fuel is reported: {d}"
    );
}

#[test]
fn deleting_a_deactivated_user_transfers_and_scrubs() {
    let d = decide(
        "transfer-and-scrub",
        "delete-deactivated-with-transfer.json",
    );
    assert_eq!(d["outcome"], "allow", "{d}");
    let plan = &d["plan"];
    assert_eq!(plan["profile"]["scrub"], "(deleted user)");
    assert_eq!(plan["transfer_target"]["user"], "u-7");
    assert_eq!(plan["restore_window_days"], 0);
    let deals = plan["categories"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["category"] == "deals"))
        .unwrap_or_else(|| panic!("deals in plan: {plan}"));
    assert_eq!(deals["disposition"], "transfer");
    assert_eq!(deals["only_open"], true);
}

#[test]
fn a_wrong_expectation_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.toml");
    let good =
        std::fs::read_to_string(root().join("policies/deactivate-first/cases.toml")).unwrap();
    // Same cases, one expectation flipped: the command must notice.
    let bad = good.replacen("code = \"user-active\"", "code = \"user-is-active\"", 1);
    assert_ne!(
        good, bad,
        "deactivate-first's cases expect the user-active code"
    );
    std::fs::write(&cases, bad).unwrap();
    let wasm = policy_component("deactivate-first");
    let out = lethe(&[
        "policy",
        "test",
        wasm.to_str().unwrap(),
        cases.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("expected user-is-active"), "{stdout}");
}

#[test]
fn inspect_lists_describe_imports_and_exports() {
    let wasm = policy_component("cohort-cleanup");
    let v = lethe_json(&["policy", "inspect", wasm.to_str().unwrap()]);
    assert_eq!(v["describe"]["name"], "cohort-cleanup");
    assert_eq!(v["contract"], "0.1.0");
    assert_eq!(v["imports"], serde_json::json!(["lethe:policy/host@0.1.0"]));
    assert!(v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "lethe:policy/policy@0.1.0"));
    assert_eq!(v["sha256"].as_str().map(str::len), Some(64));
}
