//! The `lethe` binary's data commands, end to end on SQLite (the seed
//! articles with real policies are in `tests/seed_articles.rs`).

mod common;

use common::{lethe, lethe_json, lethe_ok, write_config};

#[tokio::test]
async fn seed_check_and_act_without_a_policy_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let url = format!("sqlite:{}", db.display());
    let report = lethe_json(&[
        "seed",
        "--database",
        &url,
        "--tenants",
        "1",
        "--users",
        "6",
        "--items",
        "2",
        "--seed",
        "4",
    ]);
    assert_eq!(report["rows"]["users"], 6);
    assert_eq!(report["rows"]["deals"], 12);

    let datamap = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/demo/datamap.toml");
    let config = write_config(dir.path(), "sqlite:demo.db", "")
        .display()
        .to_string();
    let out = lethe_ok(&["datamap", "check", "--config", &config]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));

    // A map naming a missing column fails, naming table and column.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(datamap)
            .unwrap()
            .replace("owner = \"sender_id\"", "owner = \"from_id\""),
    )
    .unwrap();
    let bad_config = dir.path().join("bad-lethe.toml");
    std::fs::write(
        &bad_config,
        format!(
            "database_url = \"sqlite:demo.db\"\ndatamap = \"{}\"\n",
            bad.display()
        ),
    )
    .unwrap();
    let out = lethe(&[
        "datamap",
        "check",
        "--config",
        &bad_config.display().to_string(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("messages.from_id: no such column"));

    // A tenant with no policy deployed gets a policy fault, and nothing is
    // written.
    let before = {
        let d = lethe::db::Db::connect(&url).await.unwrap();
        let dump = common::full_dump(&d).await;
        d.close().await;
        dump
    };
    let out = lethe(&[
        "act", "--config", &config, "--tenant", "t1", "--user", "t1-u5", "--action", "delete",
        "--actor", "t1-u1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy fault"));
    let d = lethe::db::Db::connect(&url).await.unwrap();
    assert_eq!(common::full_dump(&d).await, before);
    d.close().await;
}

/// `--log-format json` writes one JSON object per line on stderr (stdout
/// stays the command's output); a seed of 2,500 users no longer pours
/// sqlx's slow-statement warnings (whole multi-row INSERTs) into it.
#[test]
fn json_logs_and_quiet_slow_statements() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("big.db").display());
    let out = lethe_ok(&[
        "--log-format",
        "json",
        "--log",
        "info",
        "seed",
        "--database",
        &url,
        "--tenants",
        "1",
        "--users",
        "2500",
        "--items",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        assert!(line.len() < 4096, "a log line of {} bytes", line.len());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows"]["users"], 2500);
}
