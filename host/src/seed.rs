//! Deterministic demo data for the sample platform.
//!
//! `lethe seed` fills the sample schema with tenants, users and the rows
//! they own, from a seed, so demos, tests and benchmarks on SQLite and
//! PostgreSQL start from exactly the same data. The generated users cover
//! the seed articles' cases: domain contacts with the erase permission,
//! admins, mentors and mentees, locked and deactivated users, users on
//! several platforms and users who never logged in.
//!
//! Personal strings are built so that no user's name, email or phone is a
//! substring of any other generated text: the erase tests rely on finding
//! none of them afterwards.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::db::{quote_ident, Db, DbError};

#[derive(Debug, Clone, Copy)]
pub struct SeedOptions {
    pub tenants: u32,
    pub users: u32,
    /// Rows per user and main category (other categories get fractions).
    pub items: u32,
    pub seed: u64,
}

/// Rows written per table.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SeedReport {
    pub rows: std::collections::BTreeMap<String, u64>,
}

/// The time the demo data is generated "at": users were created before it.
pub const EPOCH: i64 = 1_790_000_000;

const FIRST: [&str; 20] = [
    "Ada", "Bruno", "Chiara", "Dmitri", "Esme", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kaito",
    "Leila", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Soren", "Tamsin",
];
const LAST: [&str; 20] = [
    "Abernathy",
    "Brightwater",
    "Castellano",
    "Drummond",
    "Eriksen",
    "Fairweather",
    "Galloway",
    "Hargreaves",
    "Ishikawa",
    "Jablonski",
    "Kowalczyk",
    "Lindqvist",
    "Montgomery",
    "Nakamura",
    "Okonkwo",
    "Pemberton",
    "Quartermaine",
    "Rasmussen",
    "Szczepanski",
    "Thistlewood",
];
const CONTACT_FIRST: [&str; 8] = [
    "Alex", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jordan",
];
const CONTACT_LAST: [&str; 8] = [
    "Cole", "Dunn", "Frost", "Grey", "Hale", "Lowe", "Marsh", "Reed",
];
const COMPANIES: [&str; 6] = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
];
const SENTENCES: [&str; 6] = [
    "Following up on the proposal.",
    "Can we move the call to Thursday?",
    "Attached the latest figures.",
    "Thanks for the quick turnaround.",
    "Let us sync before the review.",
    "The contract is ready for signature.",
];

/// A value to insert, typed so NULLs carry the right SQL type on PostgreSQL.
#[derive(Debug, Clone)]
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
}

fn t(s: impl Into<String>) -> Value {
    Value::Text(Some(s.into()))
}
fn i(v: i64) -> Value {
    Value::Int(Some(v))
}

/// Rows for one table, flushed in multi-row INSERTs.
struct Batch {
    table: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Value>>,
    written: u64,
}

impl Batch {
    fn new(table: &'static str, columns: &'static [&'static str]) -> Batch {
        Batch {
            table,
            columns,
            rows: Vec::new(),
            written: 0,
        }
    }

    fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    async fn flush(&mut self, conn: &mut sqlx::AnyConnection) -> Result<(), DbError> {
        // About 1,000 bound values per statement. sqlx binds each SQLite
        // parameter by its name, a lookup in the statement's parameter list,
        // so a statement's cost grows with the square of its parameters:
        // at 20,000 that lookup was 87 % of `lethe seed` (perf), at 1,000
        // it is gone, and PostgreSQL sees one round trip per 1,000 values.
        let per_stmt = (1_000 / self.columns.len()).max(1);
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        for chunk in self.rows.chunks(per_stmt) {
            let mut sql = format!(
                "INSERT INTO {} ({}) VALUES ",
                quote_ident(self.table),
                cols.join(", ")
            );
            let mut n = 0;
            for (r, _) in chunk.iter().enumerate() {
                if r > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for c in 0..self.columns.len() {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    n += 1;
                    sql.push_str(&format!("${n}"));
                }
                sql.push(')');
            }
            let mut q = sqlx::query(&sql);
            for row in chunk {
                for v in row {
                    q = match v {
                        Value::Text(s) => q.bind(s.clone()),
                        Value::Int(x) => q.bind(*x),
                        Value::Bool(b) => q.bind(*b),
                    };
                }
            }
            q.execute(&mut *conn).await?;
        }
        self.written += self.rows.len() as u64;
        self.rows.clear();
        Ok(())
    }
}

/// The display name of the `g`-th user of the whole database. With more
/// users than name combinations every name gets a fixed-width number, so
/// that no name is a prefix of another.
pub fn user_name(g: u64, total: u64) -> String {
    let combos = (FIRST.len() * LAST.len()) as u64;
    let first = FIRST[(g % FIRST.len() as u64) as usize];
    let last = LAST[((g / FIRST.len() as u64) % LAST.len() as u64) as usize];
    if total <= combos {
        format!("{first} {last}")
    } else {
        format!("{first} {last} #{g:07}")
    }
}

/// Fill the database: creates the platform schema and Lethe's tables when
/// missing, then inserts the generated rows in one transaction.
pub async fn seed(db: &Db, opts: &SeedOptions) -> Result<SeedReport, DbError> {
    db.ensure_platform_schema().await?;
    db.migrate().await?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut users = Batch::new(
        "users",
        &[
            "id",
            "tenant_id",
            "email",
            "username",
            "name",
            "given_name",
            "family_name",
            "phone",
            "avatar_url",
            "role",
            "permissions",
            "domain",
            "is_domain_contact",
            "platform_count",
            "status",
            "last_login_at",
            "created_at",
        ],
    );
    let mut contacts = Batch::new(
        "contacts",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "email",
            "phone",
            "company",
            "created_at",
        ],
    );
    let mut campaigns = Batch::new(
        "campaigns",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "status",
            "created_at",
        ],
    );
    let mut recipients = Batch::new(
        "campaign_recipients",
        &["id", "tenant_id", "campaign_id", "email", "name"],
    );
    let mut assets = Batch::new(
        "assets",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "campaign_id",
            "title",
            "url",
            "created_at",
        ],
    );
    let mut deals = Batch::new(
        "deals",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "title",
            "value_cents",
            "status",
            "contact_name",
            "created_at",
        ],
    );
    let mut leads = Batch::new(
        "leads",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "email",
            "phone",
            "status",
            "created_at",
        ],
    );
    let mut products = Batch::new(
        "products",
        &[
            "id",
            "tenant_id",
            "owner_id",
            "name",
            "price_cents",
            "created_at",
        ],
    );
    let mut activities = Batch::new(
        "activities",
        &["id", "tenant_id", "owner_id", "subject", "status", "due_at"],
    );
    let mut matches = Batch::new(
        "mentoring_matches",
        &[
            "id",
            "tenant_id",
            "mentor_id",
            "mentee_id",
            "status",
            "goal",
            "created_at",
        ],
    );
    let mut messages = Batch::new(
        "messages",
        &["id", "tenant_id", "sender_id", "body", "sent_at"],
    );
    let mut sessions = Batch::new(
        "sessions",
        &["id", "tenant_id", "user_id", "token_hash", "created_at"],
    );
    let mut admin = Batch::new(
        "admin_activity",
        &["id", "tenant_id", "actor_id", "target_id", "line", "at"],
    );
    let mut billing = Batch::new("billing_seats", &["id", "tenant_id", "user_id", "month"]);

    let total_users = u64::from(opts.tenants) * u64::from(opts.users);
    let k = opts.items;
    let mut contact_seq: u64 = 0;
    for tn in 1..=opts.tenants {
        let tenant = format!("t{tn}");
        let domain = format!("tenant{tn}.example");
        let names: Vec<String> = (1..=opts.users)
            .map(|u| {
                user_name(
                    u64::from(tn - 1) * u64::from(opts.users) + u64::from(u - 1),
                    total_users,
                )
            })
            .collect();
        for u in 1..=opts.users {
            let g = u64::from(tn - 1) * u64::from(opts.users) + u64::from(u - 1);
            let uid = format!("{tenant}-u{u}");
            let name = &names[(u - 1) as usize];
            let email = format!(
                "{}.{g:06}@{domain}",
                name.split(' ')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(".")
                    .to_lowercase()
            );
            let (role, perms, contact) = match u {
                1 => (
                    "admin".to_string(),
                    "account_settings,erase_deleted_users",
                    true,
                ),
                2 => ("admin".to_string(), "account_settings", false),
                _ => {
                    let mut r = vec!["member"];
                    if u % 5 == 0 {
                        r.push("mentor");
                    }
                    if u % 3 == 0 {
                        r.push("mentee");
                    }
                    (r.join(","), "", false)
                }
            };
            let status = if u > 2 && u % 7 == 3 {
                "inactive"
            } else if u > 2 && u % 11 == 4 {
                "locked"
            } else {
                "active"
            };
            let created = EPOCH - 400 * 86_400 + rng.random_range(0..86_400 * 100);
            let last_login = if u > 2 && u % 4 == 2 {
                None
            } else {
                Some(EPOCH - rng.random_range(0..86_400 * 60))
            };
            // The login name is the email, as most platforms (and Okta's
            // default profile) have it.
            let mut parts = name.splitn(2, ' ');
            let (given, family) = (parts.next(), parts.next());
            users.push(vec![
                t(&uid),
                t(&tenant),
                t(&email),
                t(email),
                t(name),
                Value::Text(given.map(str::to_owned)),
                Value::Text(family.map(str::to_owned)),
                t(format!("+1-555-{g:07}")),
                if u % 2 == 0 {
                    t(format!("https://cdn.example/avatars/{uid}.png"))
                } else {
                    Value::Text(None)
                },
                t(role),
                t(perms),
                t(&domain),
                Value::Bool(contact),
                i(if u % 5 == 4 { 2 } else { 1 }),
                t(status),
                Value::Int(last_login),
                i(created),
            ]);
            admin.push(vec![
                t(format!("{uid}-adm0")),
                t(&tenant),
                t(format!("{tenant}-u1")),
                t(&uid),
                t(format!("{} invited {}", names[0], name)),
                i(created),
            ]);
            if u % 3 == 0 {
                admin.push(vec![
                    t(format!("{uid}-adm1")),
                    t(&tenant),
                    t(&uid),
                    Value::Text(None),
                    t(format!("{name} exported the contact list")),
                    i(created + 3600),
                ]);
            }
            for s in 0..2 {
                sessions.push(vec![
                    t(format!("{uid}-s{s}")),
                    t(&tenant),
                    t(&uid),
                    t(format!("{:016x}", rng.random::<u64>())),
                    i(EPOCH - rng.random_range(0..86_400)),
                ]);
            }
            for m in 0..3 {
                billing.push(vec![
                    t(format!("{uid}-b{m}")),
                    t(&tenant),
                    t(&uid),
                    t(format!("2026-{:02}", 8 + m)),
                ]);
            }
            for n in 0..k {
                contact_seq += 1;
                let cf = CONTACT_FIRST[rng.random_range(0..CONTACT_FIRST.len())];
                let cl = CONTACT_LAST[rng.random_range(0..CONTACT_LAST.len())];
                contacts.push(vec![
                    t(format!("{uid}-c{n}")),
                    t(&tenant),
                    t(&uid),
                    t(format!("{cf} {cl}")),
                    t(format!(
                        "{}.{}.{contact_seq}@client.example",
                        cf.to_lowercase(),
                        cl.to_lowercase()
                    )),
                    t(format!("+1-556-{contact_seq:07}")),
                    t(COMPANIES[rng.random_range(0..COMPANIES.len())]),
                    i(created + i64::from(n)),
                ]);
            }
            let n_campaigns = k.div_ceil(4);
            for n in 0..n_campaigns {
                let cid = format!("{uid}-cmp{n}");
                campaigns.push(vec![
                    t(&cid),
                    t(&tenant),
                    t(&uid),
                    t(format!("Campaign {n}")),
                    t(["draft", "running", "done"][rng.random_range(0..3)]),
                    i(created + i64::from(n)),
                ]);
                for r in 0..3 {
                    let cf = CONTACT_FIRST[rng.random_range(0..CONTACT_FIRST.len())];
                    recipients.push(vec![
                        t(format!("{cid}-r{r}")),
                        t(&tenant),
                        t(&cid),
                        t(format!("{}.{r}@audience.example", cf.to_lowercase())),
                        t(cf),
                    ]);
                }
            }
            for n in 0..k / 2 {
                let campaign = if n_campaigns > 0 && rng.random_bool(0.5) {
                    Value::Text(Some(format!(
                        "{uid}-cmp{}",
                        rng.random_range(0..n_campaigns)
                    )))
                } else {
                    Value::Text(None)
                };
                assets.push(vec![
                    t(format!("{uid}-a{n}")),
                    t(&tenant),
                    t(&uid),
                    campaign,
                    t(format!("Brochure {n}")),
                    t(format!("https://cdn.example/assets/{uid}/{n}.pdf")),
                    i(created + i64::from(n)),
                ]);
            }
            for n in 0..k {
                let cf = CONTACT_FIRST[rng.random_range(0..CONTACT_FIRST.len())];
                let cl = CONTACT_LAST[rng.random_range(0..CONTACT_LAST.len())];
                deals.push(vec![
                    t(format!("{uid}-d{n}")),
                    t(&tenant),
                    t(&uid),
                    t(format!(
                        "Deal {n} with {}",
                        COMPANIES[rng.random_range(0..COMPANIES.len())]
                    )),
                    i(rng.random_range(1_000..10_000_000)),
                    t(["open", "open", "won", "lost"][rng.random_range(0..4)]),
                    t(format!("{cf} {cl}")),
                    i(created + i64::from(n)),
                ]);
            }
            for n in 0..k / 2 {
                contact_seq += 1;
                let cf = CONTACT_FIRST[rng.random_range(0..CONTACT_FIRST.len())];
                let cl = CONTACT_LAST[rng.random_range(0..CONTACT_LAST.len())];
                leads.push(vec![
                    t(format!("{uid}-l{n}")),
                    t(&tenant),
                    t(&uid),
                    t(format!("{cf} {cl}")),
                    t(format!(
                        "{}.{contact_seq}@prospect.example",
                        cf.to_lowercase()
                    )),
                    t(format!("+1-557-{contact_seq:07}")),
                    t(["open", "converted", "lost"][rng.random_range(0..3)]),
                    i(created + i64::from(n)),
                ]);
            }
            for n in 0..k / 4 {
                products.push(vec![
                    t(format!("{uid}-p{n}")),
                    t(&tenant),
                    t(&uid),
                    t(format!("Product {n}")),
                    i(rng.random_range(100..100_000)),
                    i(created + i64::from(n)),
                ]);
            }
            for n in 0..k {
                activities.push(vec![
                    t(format!("{uid}-act{n}")),
                    t(&tenant),
                    t(&uid),
                    t(format!("Call about deal {n}")),
                    t(if rng.random_bool(0.5) {
                        "done"
                    } else {
                        "undone"
                    }),
                    i(EPOCH + i64::from(n) * 3600),
                ]);
            }
            for n in 0..k {
                messages.push(vec![
                    t(format!("{uid}-m{n}")),
                    t(&tenant),
                    t(&uid),
                    t(SENTENCES[rng.random_range(0..SENTENCES.len())]),
                    i(EPOCH - i64::from(n) * 60),
                ]);
            }
            if u % 5 == 0 && opts.users > 1 {
                for n in 0..k.div_ceil(4) {
                    let mut mentee = rng.random_range(1..=opts.users);
                    if mentee == u {
                        mentee = if u == opts.users { 1 } else { u + 1 };
                    }
                    matches.push(vec![
                        t(format!("{uid}-mm{n}")),
                        t(&tenant),
                        t(&uid),
                        t(format!("{tenant}-u{mentee}")),
                        t(if rng.random_bool(0.7) {
                            "active"
                        } else {
                            "ended"
                        }),
                        t(format!("Goal {n}: grow in leadership")),
                        i(created + i64::from(n)),
                    ]);
                }
            }
        }
    }

    let mut tx = db.pool().begin().await?;
    let mut report = SeedReport::default();
    // Parents before children, for the foreign keys.
    for batch in [
        &mut users,
        &mut contacts,
        &mut campaigns,
        &mut recipients,
        &mut assets,
        &mut deals,
        &mut leads,
        &mut products,
        &mut activities,
        &mut matches,
        &mut messages,
        &mut sessions,
        &mut admin,
        &mut billing,
    ] {
        batch.flush(&mut tx).await?;
        report.rows.insert(batch.table.to_owned(), batch.written);
    }
    tx.commit().await?;
    tracing::info!(?report.rows, "seeded");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_unique_and_never_contain_each_other() {
        for total in [50u64, 400, 450] {
            let names: Vec<String> = (0..total).map(|g| user_name(g, total)).collect();
            for (a, na) in names.iter().enumerate() {
                for (b, nb) in names.iter().enumerate() {
                    if a != b {
                        assert!(!nb.contains(na.as_str()), "{na} inside {nb}");
                    }
                }
                for c in CONTACT_FIRST
                    .iter()
                    .chain(CONTACT_LAST.iter())
                    .chain(COMPANIES.iter())
                {
                    assert!(!c.contains(na.as_str()));
                }
            }
        }
    }
}
