//! End to end through the `lethe` binary, on SQLite and PostgreSQL: `lethe
//! seed` builds the demo platform, then `lethe act` with the five real seed
//! policy components reproduces what each help-centre article describes.
//!
//! Needs the components in `policies/dist/` (`bash policies/build.sh`) and
//! PostgreSQL at `LETHE_TEST_PG` (default postgres://postgres@127.0.0.1:5432).

#[path = "../host/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::{lethe_json, root, scalar, text, write_config, TestDb, BACKENDS};
use serde_json::Value;

const NOW: &str = "1795000000";

/// A config for `url` with the demo data map and the demo tenants' policies.
fn config(dir: &Path, url: &str) -> PathBuf {
    let demo = std::fs::read_to_string(root().join("examples/demo/lethe.toml")).unwrap();
    let demo_dir = root().join("examples/demo");
    // Keep the [[tenant]] tables, with their policy paths made absolute.
    let mut rest = String::new();
    let tenants = &demo[demo.find("[[tenant]]").unwrap()..];
    for line in tenants.lines() {
        match line.strip_prefix("policy = \"") {
            Some(rel) => {
                let rel = rel.trim_end_matches('"');
                let wasm = demo_dir.join(rel);
                assert!(
                    wasm.exists(),
                    "{} is missing: run `bash policies/build.sh` first",
                    wasm.display()
                );
                rest.push_str(&format!("policy = \"{}\"\n", wasm.display()));
            }
            None => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    write_config(dir, url, &rest)
}

struct Platform {
    config: PathBuf,
}

impl Platform {
    /// `lethe act … --now NOW`, returning the report.
    fn act(&self, tenant: &str, user: &str, action: &str, actor: &str, extra: &[&str]) -> Value {
        let config = self.config.to_str().unwrap();
        let mut args = vec![
            "act", "--config", config, "--tenant", tenant, "--user", user, "--action", action,
            "--actor", actor, "--now", NOW,
        ];
        args.extend_from_slice(extra);
        lethe_json(&args)
    }
}

fn outcome(r: &Value) -> (&str, &str, &str) {
    let d = &r["decision"];
    (
        d["outcome"].as_str().unwrap_or_default(),
        d["code"]
            .as_str()
            .or(d["queue"].as_str())
            .unwrap_or_default(),
        r["to_state"].as_str().unwrap_or("-"),
    )
}

fn effect(r: &Value, category: &str, field: &str) -> u64 {
    r["effects"]["categories"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["category"] == category))
        .and_then(|c| c[field].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn lethe_act_reproduces_the_five_seed_articles() {
    for backend in BACKENDS {
        let t = TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let p = Platform {
            config: config(dir.path(), &t.url),
        };
        let seeded = lethe_json(&[
            "seed",
            "--database",
            &t.url,
            "--tenants",
            "5",
            "--users",
            "40",
            "--items",
            "6",
        ]);
        assert_eq!(seeded["rows"]["users"], 200, "{backend:?}");

        // 000 support-only (t1): admins lock; deletion goes to support,
        // who deletes with the cascade of contacts, campaigns and assets.
        let r = p.act("t1", "t1-u5", "delete", "t1-u1", &[]);
        assert_eq!(outcome(&r), ("escalate", "support", "-"), "{backend:?}");
        let r = p.act("t1", "t1-u5", "lock", "t1-u1", &[]);
        assert_eq!(outcome(&r), ("allow", "", "locked"));
        let r = p.act("t1", "t1-u5", "delete", "support:agent-7", &[]);
        assert_eq!(outcome(&r), ("allow", "", "deleted"));
        assert!(effect(&r, "contacts", "deleted") > 0, "{r}");
        assert!(effect(&r, "campaigns", "deleted") > 0, "{r}");
        assert_eq!(r["restore_until"], 1795000000 + 30 * 86400);

        // 001 two-stage-erase (t2): delete, restore, delete, erase only by a
        // primary domain contact with the permission.
        let billing_before = scalar(
            &t.db,
            "SELECT COUNT(*) FROM billing_seats WHERE user_id = 't2-u6'",
        )
        .await;
        let email = text(&t.db, "SELECT email FROM users WHERE id = 't2-u6'")
            .await
            .unwrap();
        assert_eq!(
            outcome(&p.act("t2", "t2-u6", "delete", "t2-u1", &[])),
            ("allow", "", "deleted")
        );
        assert_eq!(
            outcome(&p.act("t2", "t2-u6", "restore", "t2-u1", &[])),
            ("allow", "", "active")
        );
        assert_eq!(
            text(&t.db, "SELECT email FROM users WHERE id = 't2-u6'").await,
            Some(email.clone())
        );
        assert_eq!(
            outcome(&p.act("t2", "t2-u6", "delete", "t2-u1", &[])),
            ("allow", "", "deleted")
        );
        let r = p.act("t2", "t2-u6", "erase", "t2-u2", &[]);
        assert_eq!(outcome(&r), ("deny", "not-domain-contact", "-"));
        let r = p.act("t2", "t2-u6", "erase", "t2-u1", &[]);
        assert_eq!(outcome(&r), ("allow", "", "erased"));
        assert!(
            r["effects"]["references_pseudonymised"].as_u64().unwrap() > 0,
            "{r}"
        );
        assert_eq!(
            scalar(&t.db, "SELECT COUNT(*) FROM admin_activity WHERE actor_id = 't2-u6' OR target_id = 't2-u6'").await,
            0,
            "activity log references are pseudonymised"
        );
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM billing_seats WHERE user_id = 't2-u6'"
            )
            .await,
            billing_before,
            "billing kept"
        );
        assert!(billing_before > 0);
        let after = scalar(
            &t.db,
            &format!("SELECT COUNT(*) FROM users WHERE email = '{email}'"),
        )
        .await;
        assert_eq!(after, 0);

        // 002 transfer-and-scrub (t3): active users cannot be deleted; a
        // deactivated one is, open items moving to the new owner, the name
        // becoming "(deleted user)".
        assert_eq!(
            outcome(&p.act("t3", "t3-u5", "delete", "t3-u2", &[])),
            ("deny", "user-not-deactivated", "-")
        );
        let open_deals = scalar(
            &t.db,
            "SELECT COUNT(*) FROM deals WHERE owner_id = 't3-u3' AND status = 'open'",
        )
        .await;
        let r = p.act(
            "t3",
            "t3-u3",
            "delete",
            "t3-u2",
            &["--transfer-to", "t3-u1"],
        );
        assert_eq!(outcome(&r).0, "allow", "{r}");
        assert_eq!(effect(&r, "deals", "transferred"), open_deals as u64);
        assert_eq!(
            text(&t.db, "SELECT name FROM users WHERE id = 't3-u3'")
                .await
                .as_deref(),
            Some("(deleted user)")
        );
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM deals WHERE owner_id = 't3-u3' AND status = 'open'"
            )
            .await,
            0
        );

        // 003 cohort-cleanup (t4): a user on two platforms goes to customer
        // success; a mentee on one platform is removed for good.
        assert_eq!(
            outcome(&p.act("t4", "t4-u9", "delete", "t4-u1", &[])),
            ("escalate", "customer-success", "-")
        );
        let r = p.act("t4", "t4-u6", "delete", "t4-u1", &[]);
        assert_eq!(outcome(&r), ("allow", "", "erased"));
        assert_eq!(
            r["effects"]["restore_log_rows"], 0,
            "irreversible: no restore log"
        );
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM contacts WHERE owner_id = 't4-u6'"
            )
            .await,
            0
        );

        // 004 deactivate-first (t5): an active user cannot be deleted;
        // deactivate, then delete permanently; reactivation hints an email.
        assert_eq!(
            outcome(&p.act("t5", "t5-u5", "delete", "t5-u1", &[])),
            ("deny", "user-active", "-")
        );
        assert_eq!(
            outcome(&p.act("t5", "t5-u5", "deactivate", "t5-u1", &[])),
            ("allow", "", "deactivated")
        );
        assert_eq!(
            outcome(&p.act("t5", "t5-u5", "delete", "t5-u1", &[])),
            ("allow", "", "erased")
        );
        let r = p.act("t5", "t5-u10", "reactivate", "t5-u1", &[]);
        assert_eq!(outcome(&r), ("allow", "", "active"));
        assert_eq!(r["notify"].as_array().map(Vec::len), Some(1), "{r}");

        // A dry run decides and computes effects but writes nothing.
        let before = scalar(
            &t.db,
            "SELECT COUNT(*) FROM contacts WHERE owner_id = 't4-u7'",
        )
        .await;
        let r = p.act("t4", "t4-u7", "delete", "t4-u1", &["--dry-run"]);
        assert_eq!(r["dry_run"], true);
        assert_eq!(
            scalar(
                &t.db,
                "SELECT COUNT(*) FROM contacts WHERE owner_id = 't4-u7'"
            )
            .await,
            before
        );

        t.drop_db().await;
    }
}
