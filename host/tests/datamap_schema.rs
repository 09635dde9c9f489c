//! The data map against live schemas, on SQLite and PostgreSQL.

mod common;

use common::{TestDb, BACKENDS};
use lethe::datamap::{DataMap, DataMapError};
use lethe::seed::{seed, SeedOptions};

const DEMO: &str = include_str!("../../examples/demo/datamap.toml");

fn problems(err: DataMapError) -> Vec<String> {
    match err {
        DataMapError::Invalid(p) => p.iter().map(|p| p.to_string()).collect(),
        other => panic!("expected validation problems, got {other}"),
    }
}

#[tokio::test]
async fn demo_map_matches_the_sample_platform() {
    for backend in BACKENDS {
        let t = TestDb::new(backend).await;
        seed(
            &t.db,
            &SeedOptions {
                tenants: 1,
                users: 3,
                items: 1,
                seed: 7,
            },
        )
        .await
        .unwrap();
        let schema = t.db.introspect().await.unwrap();
        let users = &schema.tables["users"];
        assert_eq!(users.primary_key, ["id"], "{backend:?}");
        assert!(schema.tables["assets"]
            .foreign_keys
            .iter()
            .any(|fk| fk.column == "campaign_id" && fk.ref_table == "campaigns"));
        DataMap::parse(DEMO).unwrap().validate(&schema).unwrap();
        t.drop_db().await;
    }
}

#[tokio::test]
async fn errors_name_table_and_column() {
    for backend in BACKENDS {
        let t = TestDb::new(backend).await;
        seed(
            &t.db,
            &SeedOptions {
                tenants: 1,
                users: 2,
                items: 0,
                seed: 1,
            },
        )
        .await
        .unwrap();
        let schema = t.db.introspect().await.unwrap();

        // A misspelt column.
        let map =
            DataMap::parse(&DEMO.replace("owner = \"sender_id\"", "owner = \"sendr_id\"")).unwrap();
        let p = problems(map.validate(&schema).unwrap_err());
        assert!(
            p.iter()
                .any(|p| p.contains("messages.sendr_id: no such column")),
            "{backend:?}: {p:?}"
        );
        // …which also leaves messages.sender_id uncovered.
        assert!(
            p.iter()
                .any(|p| p.starts_with("coverage: messages.sender_id")),
            "{p:?}"
        );

        // SCIM columns are checked like the others: a misspelt one, and a
        // default for a column that does not exist.
        let map = DataMap::parse(
            &DEMO
                .replace("user_name = \"username\"", "user_name = \"usrname\"")
                .replace("role = \"member\"", "rank = \"member\""),
        )
        .unwrap();
        let p = problems(map.validate(&schema).unwrap_err());
        for column in ["users.usrname", "users.rank"] {
            assert!(
                p.iter()
                    .any(|p| p.contains(&format!("users.scim: {column}: no such column"))),
                "{backend:?}: {p:?}"
            );
        }

        // A missing table.
        let map =
            DataMap::parse(&DEMO.replace("table = \"products\"", "table = \"prodcts\"")).unwrap();
        let p = problems(map.validate(&schema).unwrap_err());
        assert!(
            p.iter()
                .any(|p| p.contains("category products: prodcts: no such table")),
            "{p:?}"
        );

        // Dropping the sessions guard leaves sessions.user_id uncovered.
        let cut = DEMO.find("[[guard]]\ntable = \"sessions\"").unwrap();
        let map = DataMap::parse(&DEMO[..cut]).unwrap();
        let p = problems(map.validate(&schema).unwrap_err());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("sessions.user_id") && p[0].contains("no category, reference or guard")
        );

        // Coverage through a covered parent: without the deep edge,
        // campaign_recipients (which has no foreign key to users) escapes.
        let map = DataMap::parse(&DEMO.replace(
            "    [[category.child]]\n    table = \"campaign_recipients\"\n    fk = \"campaign_id\"\n    edge = \"deep\"\n",
            "",
        ))
        .unwrap();
        let p = problems(map.validate(&schema).unwrap_err());
        assert!(
            p.iter()
                .any(|p| p.contains("campaign_recipients.campaign_id")
                    && p.contains("covered table campaigns")),
            "{p:?}"
        );

        // A type mismatch: the open column must be text.
        let map = DataMap::parse(&DEMO.replace(
            "open = { column = \"status\", values = [\"open\"] }\npersonal = [{ column = \"contact_name\" }]",
            "open = { column = \"value_cents\", values = [\"1\"] }\npersonal = [{ column = \"contact_name\" }]",
        ))
        .unwrap();
        let p = problems(map.validate(&schema).unwrap_err());
        assert!(
            p.iter()
                .any(|p| p.contains("deals.value_cents: expected a Text column")),
            "{p:?}"
        );
        t.drop_db().await;
    }
}

#[tokio::test]
async fn seed_is_deterministic_and_identical_across_backends() {
    let mut dumps = Vec::new();
    for backend in BACKENDS {
        let t = TestDb::new(backend).await;
        let opts = SeedOptions {
            tenants: 2,
            users: 6,
            items: 3,
            seed: 42,
        };
        seed(&t.db, &opts).await.unwrap();
        let dump =
            t.db.dump(|name| !name.starts_with("lethe_") && !name.starts_with("_sqlx"))
                .await
                .unwrap();
        dumps.push(dump);
        t.drop_db().await;
    }
    // Booleans print differently (1 vs true); everything else is equal.
    let normalise = |d: &std::collections::BTreeMap<String, Vec<Vec<Option<String>>>>| {
        let mut d = d.clone();
        for rows in d.values_mut() {
            for row in rows.iter_mut() {
                for v in row.iter_mut() {
                    match v.as_deref() {
                        Some("true") => *v = Some("1".into()),
                        Some("false") => *v = Some("0".into()),
                        _ => {}
                    }
                }
            }
        }
        d
    };
    assert_eq!(normalise(&dumps[0]), normalise(&dumps[1]));
    assert_eq!(dumps[0]["users"].len(), 12);
    assert!(dumps[0]["deals"].len() == 36);
}
