//! What the bulk-job tests (`bulk_resume.rs`, `replicas.rs`) check after a
//! job was killed, resumed or completed: every user of the job fully applied
//! exactly once or untouched, with its evidence, against a snapshot of the
//! tenant's platform data taken before the job.
//!
//! For the demo data map and the cohort-cleanup policy (erase mentors and
//! mentees for good, escalate multi-platform users, deny everyone else).
//! Not every test uses every helper, hence `dead_code` is allowed.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use lethe::db::Db;
use sqlx::Row;

/// Platform tables and the column naming the user who owns a row: the
/// demo data map's categories (the cohort-cleanup plan cascades them all)
/// and the sessions guard (removed on delete). `mentoring_matches` is
/// checked per match, since erasing one side removes the other's row too.
pub const OWNED: [(&str, &str); 9] = [
    ("contacts", "owner_id"),
    ("campaigns", "owner_id"),
    ("assets", "owner_id"),
    ("deals", "owner_id"),
    ("leads", "owner_id"),
    ("products", "owner_id"),
    ("activities", "owner_id"),
    ("messages", "sender_id"),
    ("sessions", "user_id"),
];

/// What a user looks like in the platform's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub status: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The tenant's platform data, as far as the checks need it.
#[derive(Debug)]
pub struct Snapshot {
    /// The tenant read.
    pub tenant: String,
    pub users: BTreeMap<String, UserRow>,
    /// (table, owner column) → owner → rows.
    pub owned: BTreeMap<&'static str, BTreeMap<String, i64>>,
    /// Mentoring match id → (mentor, mentee).
    pub matches: BTreeMap<String, (String, String)>,
    /// Billing seats per user (a `keep` guard: never touched).
    pub billing: BTreeMap<String, i64>,
}

impl Snapshot {
    pub async fn read(db: &Db, tenant: &str) -> Snapshot {
        let mut users = BTreeMap::new();
        for r in
            sqlx::query("SELECT id, status, name, email, phone FROM users WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_all(db.pool())
                .await
                .unwrap()
        {
            users.insert(
                r.get::<String, _>(0),
                UserRow {
                    status: r.get(1),
                    name: r.get(2),
                    email: r.get(3),
                    phone: r.get(4),
                },
            );
        }
        let mut owned = BTreeMap::new();
        for (table, col) in OWNED {
            owned.insert(table, per_user(db, tenant, table, col).await);
        }
        let mut matches = BTreeMap::new();
        for r in sqlx::query(
            "SELECT id, mentor_id, mentee_id FROM mentoring_matches WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(db.pool())
        .await
        .unwrap()
        {
            matches.insert(r.get::<String, _>(0), (r.get(1), r.get(2)));
        }
        Snapshot {
            tenant: tenant.to_owned(),
            users,
            owned,
            matches,
            billing: per_user(db, tenant, "billing_seats", "user_id").await,
        }
    }

    pub fn owned_by(&self, user: &str) -> BTreeMap<&'static str, i64> {
        self.owned
            .iter()
            .map(|(t, m)| (*t, m.get(user).copied().unwrap_or(0)))
            .collect()
    }

    pub fn matches_of(&self, user: &str) -> usize {
        self.matches
            .values()
            .filter(|(a, b)| a == user || b == user)
            .count()
    }
}

/// Rows of `table` per value of `col`, in the tenant.
pub async fn per_user(db: &Db, tenant: &str, table: &str, col: &str) -> BTreeMap<String, i64> {
    sqlx::query(&format!(
        "SELECT {col}, COUNT(*) FROM {table} WHERE tenant_id = $1 AND {col} IS NOT NULL GROUP BY {col}"
    ))
    .bind(tenant)
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
    .collect()
}

/// user → values of the second column of `sql`'s rows about them.
pub async fn by_user(db: &Db, tenant: &str, sql: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in sqlx::query(sql)
        .bind(tenant)
        .fetch_all(db.pool())
        .await
        .unwrap()
    {
        out.entry(r.get(0)).or_default().push(r.get(1));
    }
    out
}

/// user → their lifecycle history entries (`action:from>to`), oldest first.
pub async fn history(db: &Db, tenant: &str) -> BTreeMap<String, Vec<String>> {
    by_user(
        db,
        tenant,
        "SELECT user_id, action || ':' || from_state || '>' || to_state FROM lethe_lifecycle_history \
         WHERE tenant_id = $1 ORDER BY at, action_id",
    )
    .await
}

/// Check every item of the job against the database: an applied user is
/// fully applied (erased, profile scrubbed, nothing owned, one history
/// entry), every other user untouched since `before` (row, holdings and
/// matches; no history); each done item has exactly one decision (its own
/// action's audit row) and an escalated one exactly one pending
/// customer-success escalation; a pending item has no trace at all; users
/// outside the job are untouched. Returns the items per status.
pub async fn check_items(db: &Db, job_id: &str, before: &Snapshot) -> BTreeMap<String, u64> {
    let items: Vec<(String, String, Option<String>)> = sqlx::query(
        "SELECT user_id, status, action_id FROM lethe_bulk_items WHERE job_id = $1 ORDER BY seq",
    )
    .bind(job_id)
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    let tenant = before.tenant.as_str();
    let now = Snapshot::read(db, tenant).await;
    let history = history(db, tenant).await;
    let since: BTreeMap<String, Vec<String>> = {
        // History written before the snapshot (the sweep's users) is not
        // the job's.
        let job: BTreeSet<&str> = items.iter().map(|(u, _, _)| u.as_str()).collect();
        history
            .iter()
            .filter(|(u, _)| job.contains(u.as_str()))
            .map(|(u, h)| (u.clone(), h.clone()))
            .collect()
    };
    let audit = by_user(
        db,
        tenant,
        "SELECT subject_id, action_id FROM lethe_audit WHERE tenant_id = $1",
    )
    .await;
    let escalations = by_user(
        db,
        tenant,
        "SELECT user_id, queue || ':' || status || ':' || action_id FROM lethe_escalations \
         WHERE tenant_id = $1",
    )
    .await;
    let applied: BTreeSet<&str> = items
        .iter()
        .filter(|(_, s, _)| s == "applied")
        .map(|(u, _, _)| u.as_str())
        .collect();
    let none = Vec::new();
    let mut counts = BTreeMap::new();
    for (user, status, action_id) in &items {
        *counts.entry(status.clone()).or_default() += 1;
        let was = &before.users[user];
        let row = now.users.get(user).expect("users are never removed");
        let hist = since.get(user).unwrap_or(&none);
        let decisions = audit.get(user).unwrap_or(&none);
        let escs = escalations.get(user).unwrap_or(&none);
        let ctx = format!("{user} (item {status})");
        assert_eq!(
            before.billing.get(user),
            now.billing.get(user),
            "{ctx}: billing"
        );
        if status == "applied" {
            assert_eq!(row.status, "erased", "{ctx}: state");
            assert_eq!(row.name.as_deref(), Some("(deleted user)"), "{ctx}: name");
            assert_eq!((&row.email, &row.phone), (&None, &None), "{ctx}: profile");
            assert!(
                now.owned_by(user).values().all(|n| *n == 0),
                "{ctx}: still owns {:?}",
                now.owned_by(user)
            );
            assert_eq!(now.matches_of(user), 0, "{ctx}: mentoring matches left");
            assert_eq!(
                hist,
                &vec![format!("delete:{}>erased", state_name(&was.status))],
                "{ctx}: history"
            );
        } else {
            assert_eq!(row, was, "{ctx}: user row changed");
            assert_eq!(
                now.owned_by(user),
                before.owned_by(user),
                "{ctx}: holdings changed"
            );
            assert!(hist.is_empty(), "{ctx}: history {hist:?}");
        }
        match status.as_str() {
            "pending" => {
                assert!(decisions.is_empty(), "{ctx}: decided {decisions:?}");
                assert!(escs.is_empty(), "{ctx}: escalated {escs:?}");
                assert_eq!(action_id, &None, "{ctx}: action id");
            }
            "applied" | "escalated" | "denied" => {
                let id = action_id.as_ref().expect("a done item names its action");
                assert_eq!(decisions, &vec![id.clone()], "{ctx}: decisions");
                if status == "escalated" {
                    assert_eq!(
                        escs,
                        &vec![format!("customer-success:pending:{id}")],
                        "{ctx}: escalations"
                    );
                } else {
                    assert!(escs.is_empty(), "{ctx}: escalated {escs:?}");
                }
            }
            other => panic!("{ctx}: unexpected item status `{other}`"),
        }
    }
    // A match survives exactly when neither side was erased by the job.
    for (id, (mentor, mentee)) in &before.matches {
        let gone = applied.contains(mentor.as_str()) || applied.contains(mentee.as_str());
        assert_eq!(
            now.matches.contains_key(id),
            !gone,
            "match {id} ({mentor} → {mentee})"
        );
    }
    // Nobody outside the job was touched.
    let in_job: BTreeSet<&str> = items.iter().map(|(u, _, _)| u.as_str()).collect();
    for (user, was) in &before.users {
        if !in_job.contains(user.as_str()) {
            assert_eq!(&now.users[user], was, "{user} (not in the job)");
            assert_eq!(
                now.owned_by(user),
                before.owned_by(user),
                "{user} (not in the job): holdings"
            );
        }
    }
    counts
}

/// The lifecycle state a seeded `users.status` value stands for.
pub fn state_name(status: &str) -> &str {
    match status {
        "inactive" => "deactivated",
        other => other,
    }
}
