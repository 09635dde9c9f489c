//! The user directory: read-only views of a tenant's users for the API
//! (list with filters and keyset pagination, one user's detail with
//! holdings and lifecycle history).
//!
//! Reads only, over the pool, never inside an action's transaction: a view
//! may be a moment stale, an action never is (the executor re-reads and
//! locks the subject). Queries are built from the data map, like the
//! executor's, so the directory works on any platform schema the map
//! describes.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::contract::{Holding, LifecycleState};
use crate::datamap::DataMap;
use crate::db::{quote_ident, Db, DbError};

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("invalid cursor")]
    BadCursor,
}

impl From<sqlx::Error> for DirectoryError {
    fn from(e: sqlx::Error) -> Self {
        DirectoryError::Db(DbError::Sql(e))
    }
}

/// Filters of `GET /v1/tenants/{t}/users`; all optional, combined with AND.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    /// Lifecycle state: active, locked, deactivated, deleted, erased.
    #[param(value_type = Option<String>)]
    pub state: Option<LifecycleState>,
    /// Users holding this role (exact name).
    pub role: Option<String>,
    /// Case-insensitive substring of the display name or email.
    pub q: Option<String>,
    pub domain: Option<String>,
    /// Last login strictly before this unix time (never-logged-in users
    /// are included).
    pub last_login_before: Option<i64>,
    /// Deleted at or after this unix time.
    pub deleted_after: Option<i64>,
    /// Deleted strictly before this unix time.
    pub deleted_before: Option<i64>,
    /// Page size, 1..=500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One user in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserSummary {
    pub id: String,
    #[schema(value_type = String, example = "active")]
    pub state: LifecycleState,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub domain: Option<String>,
    pub last_login_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

/// One page of users, in key order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One row of the lifecycle history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub action_id: String,
    pub action: String,
    pub from_state: String,
    pub to_state: String,
    pub at: i64,
}

/// Everything the API shows about one user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub summary: UserSummary,
    pub permissions: Vec<String>,
    pub created_at: Option<i64>,
    /// Until when a restore is possible (deleted users with a window).
    pub restore_until: Option<i64>,
    /// Per data-map category: rows owned, and how many are open.
    #[schema(value_type = Vec<Object>)]
    pub holdings: Vec<Holding>,
    pub history: Vec<HistoryEntry>,
}

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// Cursors are the last key of a page, hex-encoded so clients treat them as
/// opaque and any key (spaces, unicode) survives a query string.
fn encode_cursor(key: &str) -> String {
    hex::encode(key.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, DirectoryError> {
    let bytes = hex::decode(cursor).map_err(|_| DirectoryError::BadCursor)?;
    String::from_utf8(bytes).map_err(|_| DirectoryError::BadCursor)
}

fn split(s: Option<String>) -> Vec<String> {
    s.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Read-only user queries over one database and data map.
#[derive(Debug, Clone)]
pub struct Directory {
    db: Db,
    map: DataMap,
}

/// Positional arguments for a query under construction.
enum Arg {
    Text(String),
    Int(i64),
}

impl Directory {
    pub fn new(db: Db, map: DataMap) -> Directory {
        Directory { db, map }
    }

    /// `SELECT` list shared by list and detail: key, state, name, email,
    /// roles, domain, last login, deleted_at (from Lethe's lifecycle table).
    fn select(&self) -> String {
        let u = &self.map.users;
        let opt = |c: &Option<String>| match c {
            Some(c) => format!("CAST(x.{} AS TEXT)", quote_ident(c)),
            None => "CAST(NULL AS TEXT)".into(),
        };
        format!(
            "SELECT CAST(x.{key} AS TEXT), x.{state}, CAST(x.{name} AS TEXT), CAST(x.{email} AS TEXT), {roles}, \
             {domain}, {last_login}, l.deleted_at, l.restore_until, {perms}, x.{created} \
             FROM {table} x LEFT JOIN lethe_user_lifecycle l \
             ON l.tenant_id = x.{tenant} AND l.user_id = CAST(x.{key} AS TEXT)",
            key = quote_ident(&u.key),
            state = quote_ident(&u.state.column),
            name = quote_ident(&u.display_name),
            email = quote_ident(&u.email),
            roles = opt(&u.roles),
            domain = opt(&u.domain),
            last_login = match &u.last_login {
                Some(c) => format!("x.{}", quote_ident(c)),
                None => "CAST(NULL AS BIGINT)".into(),
            },
            perms = opt(&u.permissions),
            created = quote_ident(&u.created),
            table = quote_ident(&u.table),
            tenant = quote_ident(&u.tenant),
        )
    }

    fn summary(&self, row: &AnyRow) -> Result<Option<(UserSummary, AnyRowRest)>, DirectoryError> {
        let state_value: String = row.try_get(1)?;
        let Some(state) = self.map.users.state.state(&state_value) else {
            // A state the map does not declare: not Lethe's to show.
            tracing::warn!(value = %state_value, "user with an undeclared state value");
            return Ok(None);
        };
        let deleted_at: Option<i64> = row.try_get(7)?;
        let gone = matches!(state, LifecycleState::Deleted | LifecycleState::Erased);
        Ok(Some((
            UserSummary {
                id: row.try_get(0)?,
                state,
                display_name: row.try_get(2)?,
                email: row.try_get(3)?,
                roles: split(row.try_get(4)?),
                domain: row.try_get(5)?,
                last_login_at: row.try_get(6)?,
                deleted_at: if gone { deleted_at } else { None },
            },
            AnyRowRest {
                restore_until: if state == LifecycleState::Deleted {
                    row.try_get(8)?
                } else {
                    None
                },
                permissions: split(row.try_get(9)?),
                created_at: row.try_get(10)?,
            },
        )))
    }

    /// One page of the tenant's users matching `f`, in key order.
    pub async fn list(&self, tenant: &str, f: &UserFilter) -> Result<UserPage, DirectoryError> {
        let limit = f.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        // One extra row tells whether there is a next page.
        let rows = self.rows(tenant, f, Some(i64::from(limit) + 1)).await?;
        let more = rows.len() > limit as usize;
        let mut users = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last_key = None;
        for row in rows.iter().take(limit as usize) {
            last_key = Some(row.try_get::<String, _>(0)?);
            if let Some((s, _)) = self.summary(row)? {
                users.push(s);
            }
        }
        Ok(UserPage {
            users,
            next_cursor: if more {
                last_key.as_deref().map(encode_cursor)
            } else {
                None
            },
        })
    }

    /// Every user of the tenant matching `f` (its `limit` and `cursor`
    /// ignored), in key order: the selection of a bulk action.
    pub async fn matching(
        &self,
        tenant: &str,
        f: &UserFilter,
    ) -> Result<Vec<UserSummary>, DirectoryError> {
        let f = UserFilter {
            cursor: None,
            ..f.clone()
        };
        let rows = self.rows(tenant, &f, None).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some((s, _)) = self.summary(row)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The tenant's users among `ids`, in key order.
    pub async fn some(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<Vec<UserSummary>, DirectoryError> {
        let u = &self.map.users;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut sql = self.select();
            sql.push_str(&format!(
                " WHERE x.{} = $1 AND CAST(x.{} AS TEXT) IN (",
                quote_ident(&u.tenant),
                quote_ident(&u.key)
            ));
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            sql.push_str(&list.join(", "));
            sql.push_str(&format!(
                ") ORDER BY CAST(x.{} AS TEXT)",
                quote_ident(&u.key)
            ));
            let mut query = sqlx::query(&sql).bind(tenant.to_owned());
            for id in chunk {
                query = query.bind(id.clone());
            }
            for row in query.fetch_all(self.db.pool()).await? {
                if let Some((s, _)) = self.summary(&row)? {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// The rows of [`Directory::select`] matching `f`, in key order, at most
    /// `limit`.
    async fn rows(
        &self,
        tenant: &str,
        f: &UserFilter,
        limit: Option<i64>,
    ) -> Result<Vec<AnyRow>, DirectoryError> {
        let u = &self.map.users;
        let mut args: Vec<Arg> = Vec::new();
        let mut p = |a: Arg| {
            args.push(a);
            format!("${}", args.len())
        };
        let mut sql = self.select();
        sql.push_str(&format!(
            " WHERE x.{} = {}",
            quote_ident(&u.tenant),
            p(Arg::Text(tenant.to_owned()))
        ));
        let key = format!("CAST(x.{} AS TEXT)", quote_ident(&u.key));
        if let Some(state) = f.state {
            sql.push_str(&format!(
                " AND x.{} = {}",
                quote_ident(&u.state.column),
                p(Arg::Text(u.state.value(state).to_owned()))
            ));
        }
        if let (Some(role), Some(col)) = (&f.role, &u.roles) {
            // Roles are stored comma-separated: match whole names only.
            sql.push_str(&format!(
                " AND (',' || REPLACE(CAST(x.{} AS TEXT), ' ', '') || ',') LIKE {}",
                quote_ident(col),
                p(Arg::Text(format!("%,{},%", like_escape(role))))
            ));
            sql.push_str(" ESCAPE '\\'");
        } else if f.role.is_some() {
            sql.push_str(" AND 1 = 0");
        }
        if let Some(q) = &f.q {
            let pat = p(Arg::Text(format!("%{}%", like_escape(&q.to_lowercase()))));
            sql.push_str(&format!(
                " AND (LOWER(CAST(x.{n} AS TEXT)) LIKE {pat} ESCAPE '\\' OR LOWER(CAST(x.{e} AS TEXT)) LIKE {pat} ESCAPE '\\')",
                n = quote_ident(&u.display_name),
                e = quote_ident(&u.email),
            ));
        }
        if let Some(domain) = &f.domain {
            match &u.domain {
                Some(col) => sql.push_str(&format!(
                    " AND x.{} = {}",
                    quote_ident(col),
                    p(Arg::Text(domain.clone()))
                )),
                None => sql.push_str(" AND 1 = 0"),
            }
        }
        if let Some(before) = f.last_login_before {
            if let Some(col) = &u.last_login {
                sql.push_str(&format!(
                    " AND (x.{c} IS NULL OR x.{c} < {})",
                    p(Arg::Int(before)),
                    c = quote_ident(col)
                ));
            }
        }
        let deleted = format!(
            "x.{} IN ({}, {})",
            quote_ident(&u.state.column),
            p(Arg::Text(u.state.deleted.clone())),
            p(Arg::Text(u.state.erased.clone()))
        );
        if let Some(after) = f.deleted_after {
            sql.push_str(&format!(
                " AND {deleted} AND l.deleted_at >= {}",
                p(Arg::Int(after))
            ));
        }
        if let Some(before) = f.deleted_before {
            sql.push_str(&format!(
                " AND {deleted} AND l.deleted_at < {}",
                p(Arg::Int(before))
            ));
        }
        if let Some(cursor) = &f.cursor {
            sql.push_str(&format!(
                " AND {key} > {}",
                p(Arg::Text(decode_cursor(cursor)?))
            ));
        }
        sql.push_str(&format!(" ORDER BY {key}"));
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {}", p(Arg::Int(limit))));
        }
        let mut query = sqlx::query(&sql);
        for a in &args {
            query = match a {
                Arg::Text(s) => query.bind(s.clone()),
                Arg::Int(i) => query.bind(*i),
            };
        }
        Ok(query.fetch_all(self.db.pool()).await?)
    }

    /// One user of the tenant, or `None` (also for another tenant's user).
    pub async fn detail(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Option<UserDetail>, DirectoryError> {
        let u = &self.map.users;
        let sql = format!(
            "{} WHERE x.{} = $1 AND CAST(x.{} AS TEXT) = $2",
            self.select(),
            quote_ident(&u.tenant),
            quote_ident(&u.key)
        );
        let row = sqlx::query(&sql)
            .bind(tenant)
            .bind(user)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let Some((summary, rest)) = self.summary(&row)? else {
            return Ok(None);
        };
        let holdings = self.holdings(tenant, user).await?;
        let history = sqlx::query(
            "SELECT action_id, action, from_state, to_state, at FROM lethe_lifecycle_history \
             WHERE tenant_id = $1 AND user_id = $2 ORDER BY at, action_id",
        )
        .bind(tenant)
        .bind(user)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(HistoryEntry {
                action_id: r.try_get(0)?,
                action: r.try_get(1)?,
                from_state: r.try_get(2)?,
                to_state: r.try_get(3)?,
                at: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let history = chain_order(history, summary.state);
        Ok(Some(UserDetail {
            summary,
            permissions: rest.permissions,
            created_at: rest.created_at,
            restore_until: rest.restore_until,
            holdings,
            history,
        }))
    }

    /// The subject's state as stored now, `None` if there is no such user.
    pub async fn state(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Option<LifecycleState>, DirectoryError> {
        let u = &self.map.users;
        let sql = format!(
            "SELECT x.{} FROM {} x WHERE x.{} = $1 AND CAST(x.{} AS TEXT) = $2",
            quote_ident(&u.state.column),
            quote_ident(&u.table),
            quote_ident(&u.tenant),
            quote_ident(&u.key)
        );
        let row = sqlx::query(&sql)
            .bind(tenant)
            .bind(user)
            .fetch_optional(self.db.pool())
            .await?;
        match row {
            Some(r) => Ok(u.state.state(&r.try_get::<String, _>(0)?)),
            None => Ok(None),
        }
    }

    /// Rows per category the user owns, and how many are open; the same
    /// counts the executor shows the policy.
    async fn holdings(&self, tenant: &str, user: &str) -> Result<Vec<Holding>, DirectoryError> {
        let mut out = Vec::with_capacity(self.map.categories.len());
        for c in &self.map.categories {
            let open = match &c.open {
                Some(o) => {
                    let values: Vec<String> =
                        (0..o.values.len()).map(|i| format!("${}", i + 3)).collect();
                    format!(
                        "COALESCE(SUM(CASE WHEN x.{} IN ({}) THEN 1 ELSE 0 END), 0)",
                        quote_ident(&o.column),
                        values.join(", ")
                    )
                }
                None => "COUNT(*)".into(),
            };
            let sql = format!(
                "SELECT COUNT(*), {open} FROM {} x WHERE x.{} = $1 AND CAST(x.{} AS TEXT) = $2",
                quote_ident(&c.table),
                quote_ident(&c.tenant),
                quote_ident(&c.owner)
            );
            let mut q = sqlx::query(&sql).bind(tenant).bind(user);
            if let Some(o) = &c.open {
                for v in &o.values {
                    q = q.bind(v.clone());
                }
            }
            let row = q.fetch_one(self.db.pool()).await?;
            let (total, open): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            out.push(Holding {
                category: c.name.clone(),
                total: total.max(0) as u64,
                open: open.max(0) as u64,
            });
        }
        Ok(out)
    }
}

/// History in the order it happened. Entries are stamped in seconds, and
/// several steps can share one second (delete, restore, delete again); the
/// history table has no sequence column, so ties are ordered by following
/// the states: each step starts where the previous one ended, and the last
/// ends in the user's current state. A small depth-first search that only
/// ever picks among the earliest remaining timestamp; if no such chain
/// exists (or the search runs long), the stored order is kept.
fn chain_order(mut entries: Vec<HistoryEntry>, current: LifecycleState) -> Vec<HistoryEntry> {
    entries.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.action_id.cmp(&b.action_id)));
    let mut used = vec![false; entries.len()];
    let mut path = Vec::with_capacity(entries.len());
    let mut budget = 20_000u32;
    if chain(
        &entries,
        None,
        current.as_str(),
        &mut used,
        &mut path,
        &mut budget,
    ) {
        path.into_iter().map(|k| entries[k].clone()).collect()
    } else {
        entries
    }
}

/// Extend `path` to an order of all `entries` (sorted by time) that starts
/// at `from` and ends at `end`; false when there is none.
fn chain(
    entries: &[HistoryEntry],
    from: Option<&str>,
    end: &str,
    used: &mut [bool],
    path: &mut Vec<usize>,
    budget: &mut u32,
) -> bool {
    if path.len() == entries.len() {
        return from.is_none_or(|f| f == end);
    }
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let Some(first) = (0..entries.len()).find(|&k| !used[k]) else {
        return false;
    };
    let at = entries[first].at;
    for k in first..entries.len() {
        if entries[k].at != at {
            break;
        }
        if used[k] || from.is_some_and(|f| f != entries[k].from_state) {
            continue;
        }
        used[k] = true;
        path.push(k);
        if chain(entries, Some(&entries[k].to_state), end, used, path, budget) {
            return true;
        }
        path.pop();
        used[k] = false;
    }
    false
}

/// Detail columns read with the summary.
struct AnyRowRest {
    restore_until: Option<i64>,
    permissions: Vec<String>,
    created_at: Option<i64>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor("t1-u 7/é");
        assert_eq!(decode_cursor(&c).unwrap(), "t1-u 7/é");
        assert!(decode_cursor("zz").is_err());
    }

    fn step(id: &str, action: &str, from: &str, to: &str, at: i64) -> HistoryEntry {
        HistoryEntry {
            action_id: id.into(),
            action: action.into(),
            from_state: from.into(),
            to_state: to.into(),
            at,
        }
    }

    #[test]
    fn history_in_one_second_follows_the_states() {
        let h = vec![
            step("a", "erase", "deleted", "erased", 5),
            step("b", "restore", "deleted", "active", 5),
            step("c", "delete", "active", "deleted", 5),
            step("d", "delete", "active", "deleted", 5),
            step("e", "lock", "active", "locked", 4),
            step("f", "unlock", "locked", "active", 4),
        ];
        let order: Vec<String> = chain_order(h, LifecycleState::Erased)
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            order,
            ["lock", "unlock", "delete", "restore", "delete", "erase"]
        );
        // A tie at the start must leave the chain able to go on: restore
        // before delete would fit the first second alone, not the next.
        let h = vec![
            step("a", "restore", "deleted", "active", 1),
            step("b", "delete", "active", "deleted", 1),
            step("c", "erase", "deleted", "erased", 2),
            step("d", "delete", "active", "deleted", 2),
        ];
        let order: Vec<String> = chain_order(h, LifecycleState::Erased)
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(order, ["delete", "restore", "delete", "erase"]);
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape("a%b_c\\"), "a\\%b\\_c\\\\");
    }
}
