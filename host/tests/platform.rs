//! The platform-SQL layer on a platform whose ids are integers, on SQLite
//! and PostgreSQL.
//!
//! The sample platform uses text ids; an operator's may not. User ids
//! reach Lethe as text (URLs, JSON), and the layer compares them with an
//! integer key column without casting the column (so its index is used):
//! this checks that lookups, holdings, a logged cascade, a transfer and the
//! restore that undoes them all work on such a schema, and that an id that
//! is not a number is simply no user rather than a database error.

mod common;

use common::{cat, input, platform_dump, scalar, FnDecider, TestDb, BACKENDS};
use lethe::contract::{
    Action, Disposition, LifecycleState, Outcome, Plan, ProfilePlan, References, Request,
    TransferTarget,
};
use lethe::datamap::DataMap;
use lethe::db::RowLock;
use lethe::executor::{ActorRef, ExecError, Executor};

const SCHEMA: &[&str] = &[
    "CREATE TABLE members (id BIGINT PRIMARY KEY, org TEXT NOT NULL, status TEXT NOT NULL, \
     name TEXT NOT NULL, email TEXT, role TEXT NOT NULL, created BIGINT NOT NULL)",
    "CREATE TABLE notes (id BIGINT PRIMARY KEY, org TEXT NOT NULL, \
     author BIGINT NOT NULL REFERENCES members (id), state TEXT NOT NULL, body TEXT)",
    "CREATE TABLE tasks (id BIGINT PRIMARY KEY, org TEXT NOT NULL, \
     assignee BIGINT NOT NULL REFERENCES members (id), title TEXT NOT NULL)",
];

const MAP: &str = r#"
[users]
table = "members"
tenant = "org"
email = "email"
display_name = "name"
roles = "role"
created = "created"
state = { column = "status", active = "on", locked = "locked", deactivated = "off", deleted = "deleted", erased = "erased" }
personal = [{ column = "email" }, { column = "name", scrub = "(deleted)" }]

[[category]]
name = "notes"
table = "notes"
tenant = "org"
owner = "author"
open = { column = "state", values = ["draft"] }
personal = [{ column = "body" }]

[[category]]
name = "tasks"
table = "tasks"
tenant = "org"
owner = "assignee"
"#;

#[tokio::test]
async fn integer_keys_are_matched_without_casts_and_restore_round_trips() {
    for backend in BACKENDS {
        let t = TestDb::new(backend).await;
        t.db.migrate().await.unwrap();
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(t.db.pool()).await.unwrap();
        }
        for (id, org, role) in [
            (1, "o1", "admin"),
            (2, "o1", "member"),
            (3, "o1", "lead"),
            (4, "o2", "member"),
        ] {
            sqlx::query(
                "INSERT INTO members (id, org, status, name, email, role, created) VALUES ($1, $2, 'on', $3, $4, $5, 100)",
            )
            .bind(id as i64)
            .bind(org)
            .bind(format!("Member {id}"))
            .bind(format!("m{id}@example.test"))
            .bind(role)
            .execute(t.db.pool())
            .await
            .unwrap();
        }
        for (id, author, state) in [
            (10, 2, "draft"),
            (11, 2, "done"),
            (12, 1, "draft"),
            (13, 4, "draft"),
        ] {
            sqlx::query("INSERT INTO notes (id, org, author, state, body) VALUES ($1, $2, $3, $4, 'about Member 2')")
                .bind(id as i64)
                .bind(if author == 4 { "o2" } else { "o1" })
                .bind(author as i64)
                .bind(state)
                .execute(t.db.pool())
                .await
                .unwrap();
        }
        for (id, assignee) in [(20, 2), (21, 2), (22, 3)] {
            sqlx::query(
                "INSERT INTO tasks (id, org, assignee, title) VALUES ($1, 'o1', $2, 'task')",
            )
            .bind(id as i64)
            .bind(assignee as i64)
            .execute(t.db.pool())
            .await
            .unwrap();
        }
        let ex = Executor::new(t.db.clone(), DataMap::parse(MAP).unwrap())
            .await
            .unwrap();
        let p = ex.platform();
        let mut conn = t.db.pool().acquire().await.unwrap();

        // Lookups: by text id, not across tenants, and a non-number is no one.
        let m2 = p
            .user(&mut conn, "o1", "2", RowLock::None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m2.subject.id, "2", "{backend:?}");
        assert_eq!(m2.subject.roles, ["member"]);
        assert!(p
            .user(&mut conn, "o2", "2", RowLock::None)
            .await
            .unwrap()
            .is_none());
        assert!(p
            .user(&mut conn, "o1", "two", RowLock::None)
            .await
            .unwrap()
            .is_none());
        let some = p
            .users(
                &mut conn,
                "o1",
                &["3".into(), "x".into(), "1".into(), "4".into()],
                RowLock::None,
            )
            .await
            .unwrap();
        let ids: Vec<String> = some.into_iter().map(|u| u.unwrap().subject.id).collect();
        assert_eq!(ids, ["1", "3"], "{backend:?}");

        // Holdings, one owner and many, count the same rows.
        let h = p.holdings_of(&mut conn, "o1", "2").await.unwrap();
        assert_eq!(
            (h[0].total, h[0].open, h[1].total),
            (2, 1, 2),
            "{backend:?}"
        );
        let many = p
            .holdings(&mut conn, "o1", &["2", "3", "nope"])
            .await
            .unwrap();
        assert_eq!(many["2"], h);
        assert_eq!(many["3"][1].total, 1);
        assert!(!many.contains_key("nope"));
        // The role rule: exact names only.
        let leads = p
            .with_role(&mut conn, "o1", "lead", LifecycleState::Active)
            .await
            .unwrap();
        assert_eq!(leads, ["3"]);
        drop(conn);

        // Delete member 2: notes cascade, tasks go to whoever leads.
        let before = platform_dump(&t.db).await;
        let decider = FnDecider(|r: &Request| {
            Ok(Outcome::Allow {
                plan: match r.action {
                    Action::Delete => Plan {
                        categories: vec![
                            cat("notes", Disposition::Cascade, false),
                            cat("tasks", Disposition::Transfer, false),
                        ],
                        transfer_target: Some(TransferTarget::Role("lead".into())),
                        profile: ProfilePlan::Scrub("(deleted)".into()),
                        restore_window_days: 30,
                        references: References::Pseudonymise,
                        notify: vec![],
                    },
                    _ => common::empty_plan(),
                },
            })
        });
        let mut del = input("o1", "2", Action::Delete, 1_000);
        del.actor = ActorRef::TenantUser("1".into());
        let report = ex.act(&decider, &del).await.unwrap();
        assert_eq!(
            report.to_state,
            Some(LifecycleState::Deleted),
            "{backend:?}"
        );
        assert_eq!(report.effects.transfer_target.as_deref(), Some("3"));
        let notes: i64 = scalar(&t.db, "SELECT COUNT(*) FROM notes WHERE author = 2").await;
        let tasks: i64 = scalar(&t.db, "SELECT COUNT(*) FROM tasks WHERE assignee = 3").await;
        assert_eq!((notes, tasks), (0, 3), "{backend:?}");

        // A non-numeric subject is not found, and changes nothing.
        let mut ghost = del.clone();
        ghost.subject = "2x".into();
        let err = ex.act(&decider, &ghost).await.unwrap_err();
        assert!(matches!(err, ExecError::UnknownSubject { .. }), "{err}");

        // Restore puts every row back as it was.
        let mut restore = del.clone();
        restore.action = Action::Restore;
        restore.now = 2_000;
        ex.act(&decider, &restore).await.unwrap();
        assert_eq!(platform_dump(&t.db).await, before, "{backend:?}");
        t.drop_db().await;
    }
}
