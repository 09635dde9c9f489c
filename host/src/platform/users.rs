//! The platform's users table: one `SELECT`, one decoding, and the lookups
//! built on them.
//!
//! Every reader of users (the executor's subject, actor and transfer
//! target, bulk contexts, the directory's list and detail) goes through
//! [`UserSelect`], so a user looks the same to a policy and to a person.
//! The select joins Lethe's `lethe_user_lifecycle` row (when and from which
//! state the user was deleted, the restore window, the delete's restore
//! log), because a subject is not complete without it.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::sql::{quote_ident, Sql};
use super::{Platform, PlatformError};
use crate::contract::{LifecycleState, Subject};
use crate::db::{ColumnKind, RowLock};
use crate::lifecycle::Standing;

/// Users per statement when reading many by id: well under every
/// backend's bind-parameter limit.
pub const CHUNK: usize = 500;

/// A user as stored: the subject a policy sees, with its lifecycle facts.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// `deleted_at` is set only while deleted or erased.
    pub subject: Subject,
    /// State, and while deleted the restore window and the state a
    /// restore returns to.
    pub standing: Standing,
    /// The delete whose restore log can undo it (while deleted).
    pub delete_action_id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// A decoded row, or the key and value of a row whose state the map does
/// not declare (readers skip it or refuse, as fits them).
pub type Decoded = Result<UserRecord, PlatformError>;

/// Which users of a tenant to list; every filter optional, combined with
/// AND, in key order.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserQuery<'a> {
    pub state: Option<LifecycleState>,
    /// Holds this role (an exact name in the comma-separated list).
    pub role: Option<&'a str>,
    /// Case-insensitive substring of the display name or the email.
    pub text: Option<&'a str>,
    pub domain: Option<&'a str>,
    /// Never logged in, or last logged in strictly before.
    pub last_login_before: Option<i64>,
    pub deleted_after: Option<i64>,
    pub deleted_before: Option<i64>,
    /// Keyset pagination: keys strictly after this one.
    pub after_key: Option<&'a str>,
    pub limit: Option<u32>,
}

/// Fixed columns of the select, before the attributes.
const FIXED: usize = 13;

/// The one user select: `SELECT … FROM users x LEFT JOIN
/// lethe_user_lifecycle l … WHERE x.tenant = $t`; callers append `AND …`.
struct UserSelect;

/// The columns of Lethe's lifecycle row read beside each user.
const LIFECYCLE: [&str; 4] = [
    "previous_state",
    "deleted_at",
    "restore_until",
    "delete_action_id",
];

/// How the lifecycle row is read beside each user.
#[derive(Clone, Copy)]
enum LifecycleRead {
    /// Joined: for lists, whose filters name `l.`.
    Joined,
    /// Looked up by primary key per user, for users read by id. Lethe's
    /// tables are often never analyzed, and PostgreSQL's plan for the join
    /// then reads every lifecycle row of the tenant to join a batch of
    /// users (auto_explain during a 10,000-user bulk job: 9,900 rows
    /// filtered, 34 ms, growing with every user deleted).
    ByKey,
}

impl UserSelect {
    fn start(p: &Platform, q: &mut Sql, tenant: &str, lifecycle: LifecycleRead) {
        let u = &p.map().users;
        let col = |c: &Option<String>| match c {
            Some(c) => format!("CAST(x.{} AS TEXT)", quote_ident(c)),
            None => "CAST(NULL AS TEXT)".to_owned(),
        };
        let key = p.text_expr(&u.table, "x", &u.key);
        let mut sql = format!(
            "SELECT {key}, x.{state}, {roles}, {perms}, {domain}, x.{created}, {last_login}, \
             CAST(x.{name} AS TEXT), CAST(x.{email} AS TEXT), {lifecycle_columns}",
            state = quote_ident(&u.state.column),
            roles = col(&u.roles),
            perms = col(&u.permissions),
            domain = col(&u.domain),
            created = quote_ident(&u.created),
            last_login = match &u.last_login {
                Some(c) => format!("x.{}", quote_ident(c)),
                None => "CAST(NULL AS BIGINT)".into(),
            },
            name = quote_ident(&u.display_name),
            email = quote_ident(&u.email),
            lifecycle_columns = LIFECYCLE
                .iter()
                .map(|c| match lifecycle {
                    LifecycleRead::Joined => format!("l.{c}"),
                    LifecycleRead::ByKey => format!(
                        "(SELECT l.{c} FROM lethe_user_lifecycle l WHERE l.tenant_id = x.{tc} AND l.user_id = {key})",
                        tc = quote_ident(&u.tenant),
                    ),
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        for a in &u.attributes {
            sql.push_str(&format!(", CAST(x.{} AS TEXT)", quote_ident(a)));
        }
        let t = q.text(tenant);
        let from = match lifecycle {
            LifecycleRead::Joined => format!(
                " FROM {users} x LEFT JOIN lethe_user_lifecycle l ON l.tenant_id = x.{tc} AND l.user_id = {key}",
                users = quote_ident(&u.table),
                tc = quote_ident(&u.tenant),
            ),
            LifecycleRead::ByKey => format!(" FROM {} x", quote_ident(&u.table)),
        };
        sql.push_str(&format!("{from} WHERE x.{} = {t}", quote_ident(&u.tenant)));
        q.push(&sql);
    }

    fn decode(p: &Platform, row: &AnyRow) -> Result<Decoded, sqlx::Error> {
        let u = &p.map().users;
        let key: String = row.try_get(0)?;
        let value: String = row.try_get(1)?;
        let Some(state) = u.state.state(&value) else {
            return Ok(Err(PlatformError::UndeclaredState { key, value }));
        };
        let mut attributes = BTreeMap::new();
        for (i, a) in u.attributes.iter().enumerate() {
            if let Some(v) = row.try_get::<Option<String>, _>(FIXED + i)? {
                // Booleans read as 1/0 on SQLite and true/false on
                // PostgreSQL; policies see "true"/"false" either way.
                let v = if p.kind(&u.table, a) == Some(ColumnKind::Boolean) {
                    let truthy = matches!(v.as_str(), "1" | "t" | "true" | "TRUE");
                    (if truthy { "true" } else { "false" }).to_owned()
                } else {
                    v
                };
                attributes.insert(a.clone(), v);
            }
        }
        let previous: Option<String> = row.try_get(9)?;
        let previous_state = match previous.map(|s| s.parse::<LifecycleState>()).transpose() {
            Ok(p) => p,
            Err(e) => return Ok(Err(PlatformError::Corrupt(format!("previous_state: {e}")))),
        };
        let deleted_at: Option<i64> = row.try_get(10)?;
        let restore_until: Option<i64> = row.try_get(11)?;
        let gone = matches!(state, LifecycleState::Deleted | LifecycleState::Erased);
        let deleted = state == LifecycleState::Deleted;
        Ok(Ok(UserRecord {
            subject: Subject {
                id: key,
                state,
                roles: split_list(row.try_get(2)?),
                permissions: split_list(row.try_get(3)?),
                domain: row.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
                created_at: row.try_get(5)?,
                last_login_at: row.try_get(6)?,
                deleted_at: if gone { deleted_at } else { None },
                attributes,
            },
            standing: Standing {
                state,
                restore_until: if deleted { restore_until } else { None },
                previous_state,
            },
            delete_action_id: row.try_get(12)?,
            display_name: row.try_get(7)?,
            email: row.try_get(8)?,
        }))
    }
}

/// A comma-separated list (roles, permissions) as policies see it.
pub fn split_list(s: Option<String>) -> Vec<String> {
    s.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Escape `%`, `_` and the escape character itself for `LIKE … ESCAPE '\'`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

impl Platform {
    /// `AND` the user has `role`: the one rule for "holds a role", an exact
    /// name in the comma-separated list (spaces around commas ignored), as
    /// [`split_list`] reads it for policies.
    fn role_cond(&self, q: &mut Sql, role: &str) -> String {
        match &self.map().users.roles {
            Some(col) => format!(
                " AND (',' || REPLACE(REPLACE(TRIM(CAST(x.{} AS TEXT)), ', ', ','), ' ,', ',') || ',') \
                 LIKE {} ESCAPE '\\'",
                quote_ident(col),
                q.text(format!("%,{},%", like_escape(role.trim())))
            ),
            None => " AND 1 = 0".into(),
        }
    }

    /// One user of `tenant`, or `None`; with `lock`, its row stays locked
    /// until the transaction ends.
    pub async fn user(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        id: &str,
        lock: RowLock,
    ) -> Result<Option<UserRecord>, PlatformError> {
        let u = &self.map().users;
        let mut q = Sql::new();
        UserSelect::start(self, &mut q, tenant, LifecycleRead::ByKey);
        let key = self.id_eq(&mut q, &u.table, "x", &u.key, id);
        q.push(&format!(
            " AND {key}{}",
            self.backend().row_lock_of(lock, "x")
        ));
        match q.fetch_optional(conn).await? {
            Some(row) => Ok(Some(UserSelect::decode(self, &row)??)),
            None => Ok(None),
        }
    }

    /// The users of `tenant` among `ids`, in key order; ids the tenant does
    /// not have are simply absent. With `lock`, their rows stay locked
    /// until the transaction ends (taken in key order, so two batches
    /// locking overlapping users cannot deadlock).
    pub async fn users(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        ids: &[String],
        lock: RowLock,
    ) -> Result<Vec<Decoded>, PlatformError> {
        let u = &self.map().users;
        let key = self.text_expr(&u.table, "x", &u.key);
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let mut q = Sql::new();
            UserSelect::start(self, &mut q, tenant, LifecycleRead::ByKey);
            let cond = self.id_in(&mut q, &u.table, "x", &u.key, chunk);
            q.push(&format!(
                " AND {cond} ORDER BY {key}{}",
                self.backend().row_lock_of(lock, "x")
            ));
            for row in q.fetch_all(conn).await? {
                out.push(UserSelect::decode(self, &row)?);
            }
        }
        Ok(out)
    }

    /// The tenant's users matching `f`, in key order, at most `f.limit`.
    pub async fn matching(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        f: &UserQuery<'_>,
    ) -> Result<Vec<Decoded>, PlatformError> {
        let u = &self.map().users;
        let mut q = Sql::new();
        UserSelect::start(self, &mut q, tenant, LifecycleRead::Joined);
        let key = self.text_expr(&u.table, "x", &u.key);
        let mut sql = String::new();
        if let Some(state) = f.state {
            sql.push_str(&format!(
                " AND x.{} = {}",
                quote_ident(&u.state.column),
                q.text(u.state.value(state))
            ));
        }
        if let Some(role) = f.role {
            sql.push_str(&self.role_cond(&mut q, role));
        }
        if let Some(text) = f.text {
            let pat = q.text(format!("%{}%", like_escape(&text.to_lowercase())));
            sql.push_str(&format!(
                " AND (LOWER(CAST(x.{n} AS TEXT)) LIKE {pat} ESCAPE '\\' OR LOWER(CAST(x.{e} AS TEXT)) LIKE {pat} ESCAPE '\\')",
                n = quote_ident(&u.display_name),
                e = quote_ident(&u.email),
            ));
        }
        if let Some(domain) = f.domain {
            match &u.domain {
                Some(col) => {
                    sql.push_str(&format!(" AND x.{} = {}", quote_ident(col), q.text(domain)))
                }
                None => sql.push_str(" AND 1 = 0"),
            }
        }
        if let (Some(before), Some(col)) = (f.last_login_before, &u.last_login) {
            sql.push_str(&format!(
                " AND (x.{c} IS NULL OR x.{c} < {})",
                q.int(before),
                c = quote_ident(col)
            ));
        }
        if f.deleted_after.is_some() || f.deleted_before.is_some() {
            let gone = q.texts([u.state.deleted.as_str(), u.state.erased.as_str()]);
            sql.push_str(&format!(
                " AND x.{} IN ({gone})",
                quote_ident(&u.state.column)
            ));
        }
        if let Some(after) = f.deleted_after {
            sql.push_str(&format!(" AND l.deleted_at >= {}", q.int(after)));
        }
        if let Some(before) = f.deleted_before {
            sql.push_str(&format!(" AND l.deleted_at < {}", q.int(before)));
        }
        if let Some(after) = f.after_key {
            sql.push_str(&format!(" AND {key} > {}", q.text(after)));
        }
        sql.push_str(&format!(" ORDER BY {key}"));
        if let Some(limit) = f.limit {
            sql.push_str(&format!(" LIMIT {}", q.int(i64::from(limit))));
        }
        q.push(&sql);
        let rows = q.fetch_all(conn).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(UserSelect::decode(self, row)?);
        }
        Ok(out)
    }

    /// Ids of the tenant's users in `state` holding `role`, in key order
    /// (a transfer to "whoever has this role").
    pub async fn with_role(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        role: &str,
        state: LifecycleState,
    ) -> Result<Vec<String>, PlatformError> {
        let u = &self.map().users;
        let mut q = Sql::new();
        let key = self.text_expr(&u.table, "x", &u.key);
        let t = q.text(tenant);
        let s = q.text(u.state.value(state));
        let role = self.role_cond(&mut q, role);
        q.push(&format!(
            "SELECT {key} FROM {tbl} x WHERE x.{tc} = {t} AND x.{sc} = {s}{role} ORDER BY 1",
            tbl = quote_ident(&u.table),
            tc = quote_ident(&u.tenant),
            sc = quote_ident(&u.state.column),
        ));
        let rows = q.fetch_all(conn).await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// Another live (not deleted, not erased) user of the tenant whose
    /// email is `email`: a restore would give it to two people.
    pub async fn email_holder(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        email: &str,
        except: &str,
    ) -> Result<Option<String>, PlatformError> {
        let u = &self.map().users;
        let mut q = Sql::new();
        let t = q.text(tenant);
        let e = q.text(email);
        let me = q.text(except);
        let gone = q.texts([u.state.deleted.as_str(), u.state.erased.as_str()]);
        let key = self.text_expr(&u.table, "x", &u.key);
        q.push(&format!(
            "SELECT {key} FROM {tbl} x WHERE x.{tc} = {t} AND x.{ec} = {e} AND {key} <> {me} \
             AND x.{sc} NOT IN ({gone}) ORDER BY 1",
            tbl = quote_ident(&u.table),
            tc = quote_ident(&u.tenant),
            ec = quote_ident(&u.email),
            sc = quote_ident(&u.state.column),
        ));
        match q.fetch_optional(conn).await? {
            Some(row) => Ok(Some(row.try_get(0)?)),
            None => Ok(None),
        }
    }

    /// [`Platform::user_columns`] for many users of `tenant` in one query:
    /// each user's values in `ids` order (absent user: all `None`).
    pub async fn users_columns(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        ids: &[&str],
        columns: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>, PlatformError> {
        let u = &self.map().users;
        let mut out = vec![vec![None; columns.len()]; ids.len()];
        for (n, chunk) in ids.chunks(CHUNK).enumerate() {
            let mut q = Sql::new();
            let mut sel = vec![self.text_expr(&u.table, "x", &u.key)];
            sel.extend(
                columns
                    .iter()
                    .map(|c| format!("CAST(x.{} AS TEXT)", quote_ident(c))),
            );
            let t = q.text(tenant);
            let keys = self.id_in(&mut q, &u.table, "x", &u.key, chunk);
            q.push(&format!(
                "SELECT {} FROM {} x WHERE x.{} = {t} AND {keys}",
                sel.join(", "),
                quote_ident(&u.table),
                quote_ident(&u.tenant),
            ));
            for row in q.fetch_all(&mut *conn).await? {
                let id: Option<String> = row.try_get(0)?;
                let Some(i) = id.and_then(|id| chunk.iter().position(|c| *c == id)) else {
                    continue;
                };
                let values = (0..columns.len())
                    .map(|c| row.try_get::<Option<String>, _>(c + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                out[n * CHUNK + i] = values;
            }
        }
        Ok(out)
    }

    /// The current values of `columns` of one user's row, as text (absent
    /// user or NULL: `None`).
    pub async fn user_columns(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        id: &str,
        columns: &[&str],
    ) -> Result<Vec<Option<String>>, PlatformError> {
        let u = &self.map().users;
        let mut q = Sql::new();
        let sel: Vec<String> = columns
            .iter()
            .map(|c| format!("CAST(x.{} AS TEXT)", quote_ident(c)))
            .collect();
        let t = q.text(tenant);
        let key = self.id_eq(&mut q, &u.table, "x", &u.key, id);
        q.push(&format!(
            "SELECT {} FROM {} x WHERE x.{} = {t} AND {key}",
            sel.join(", "),
            quote_ident(&u.table),
            quote_ident(&u.tenant),
        ));
        let Some(row) = q.fetch_optional(conn).await? else {
            return Ok(vec![None; columns.len()]);
        };
        (0..columns.len())
            .map(|i| row.try_get::<Option<String>, _>(i).map_err(Into::into))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape("a%b_c\\"), "a\\%b\\_c\\\\");
    }

    #[test]
    fn lists_split_on_commas_and_trim() {
        assert_eq!(
            split_list(Some(" admin, sales lead ,,member".into())),
            ["admin", "sales lead", "member"]
        );
        assert!(split_list(None).is_empty());
    }
}
