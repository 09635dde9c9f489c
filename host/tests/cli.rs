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
