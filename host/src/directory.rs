//! The user directory: read-only views of a tenant's users for the API
//! (list with filters and keyset pagination, one user's detail with
//! holdings and lifecycle history).
//!
//! Reads only, over the pool, never inside an action's transaction: a view
//! may be a moment stale, an action never is (the executor re-reads and
//! locks the subject). Every statement against the platform's tables is
//! the platform layer's ([`Platform::matching`], [`Platform::holdings_of`]),
//! the same the executor reads a subject with, so a user's detail shows
//! exactly the facts and the holdings a policy saw.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::contract::{Action, Holding, LifecycleState, UnknownName};
use crate::db::{DbError, RowLock};
use crate::page::Limit;
use crate::platform::users::Decoded;
use crate::platform::{Platform, PlatformError, UserQuery, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("invalid cursor")]
    BadCursor,
    #[error(transparent)]
    Platform(PlatformError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<PlatformError> for DirectoryError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Db(e) => DirectoryError::Db(e),
            other => DirectoryError::Platform(other),
        }
    }
}

impl From<sqlx::Error> for DirectoryError {
    fn from(e: sqlx::Error) -> Self {
        DirectoryError::Db(DbError::Sql(e))
    }
}

/// Filters of `GET /v1/tenants/{t}/users`; all optional, combined with AND.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    /// Lifecycle state: active, locked, deactivated, deleted, erased.
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
    /// Page size (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<Limit<MAX_LIMIT>>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([0-9a-fA-F]{2})*$")]
    pub cursor: Option<String>,
}

/// One user in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserSummary {
    pub id: String,
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
    pub action: Action,
    pub from_state: LifecycleState,
    pub to_state: LifecycleState,
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
    pub holdings: Vec<Holding>,
    pub history: Vec<HistoryEntry>,
}

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// Cursors are the last key of a page, hex-encoded so clients treat them as
/// opaque and any key (spaces, unicode) survives a query string. Any even
/// run of hex digits is a cursor (bytes that are not UTF-8 are read
/// lossily): it means "after this key", so no well-formed cursor is refused.
fn encode_cursor(key: &str) -> String {
    hex::encode(key.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, DirectoryError> {
    let bytes = hex::decode(cursor).map_err(|_| DirectoryError::BadCursor)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Read-only user queries over the platform layer.
#[derive(Debug, Clone)]
pub struct Directory {
    platform: Platform,
}

impl UserFilter {
    /// The platform query for this filter (without pagination).
    fn query(&self) -> UserQuery<'_> {
        UserQuery {
            state: self.state,
            role: self.role.as_deref(),
            text: self.q.as_deref(),
            domain: self.domain.as_deref(),
            last_login_before: self.last_login_before,
            deleted_after: self.deleted_after,
            deleted_before: self.deleted_before,
            after_key: None,
            limit: None,
        }
    }
}

/// Users whose state the map does not declare are not Lethe's to show.
fn shown(d: Decoded) -> Result<Option<UserRecord>, DirectoryError> {
    match d {
        Ok(u) => Ok(Some(u)),
        Err(PlatformError::UndeclaredState { key, value }) => {
            tracing::warn!(user = %key, %value, "user with an undeclared state value");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// [`shown`] for a lookup of one user.
fn shown_one(
    found: Result<Option<UserRecord>, PlatformError>,
) -> Result<Option<UserRecord>, DirectoryError> {
    match found {
        Ok(u) => Ok(u),
        Err(e) => shown(Err(e)),
    }
}

impl Directory {
    pub fn new(platform: Platform) -> Directory {
        Directory { platform }
    }

    fn summary(&self, u: &UserRecord) -> UserSummary {
        let s = &u.subject;
        UserSummary {
            id: s.id.clone(),
            state: s.state,
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            roles: s.roles.clone(),
            // `null` when the data map declares no domain column.
            domain: self
                .platform
                .map()
                .users
                .domain
                .as_ref()
                .map(|_| s.domain.clone()),
            last_login_at: s.last_login_at,
            deleted_at: s.deleted_at,
        }
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, DirectoryError> {
        Ok(self.platform.db().pool().acquire().await?)
    }

    /// The summaries of the rows that are shown.
    fn summaries(&self, rows: Vec<Decoded>) -> Result<Vec<UserSummary>, DirectoryError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(u) = shown(row)? {
                out.push(self.summary(&u));
            }
        }
        Ok(out)
    }

    /// One page of the tenant's users matching `f`, in key order.
    pub async fn list(&self, tenant: &str, f: &UserFilter) -> Result<UserPage, DirectoryError> {
        let limit = Limit::or(f.limit, DEFAULT_LIMIT);
        let after = f.cursor.as_deref().map(decode_cursor).transpose()?;
        // One extra row tells whether there is a next page.
        let q = UserQuery {
            after_key: after.as_deref(),
            limit: Some(limit + 1),
            ..f.query()
        };
        let rows = self
            .platform
            .matching(&mut *self.conn().await?, tenant, &q)
            .await?;
        let more = rows.len() > limit as usize;
        let mut users = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last_key = None;
        for row in rows.into_iter().take(limit as usize) {
            last_key = Some(match &row {
                Ok(u) => u.subject.id.clone(),
                Err(PlatformError::UndeclaredState { key, .. }) => key.clone(),
                Err(_) => String::new(),
            });
            if let Some(u) = shown(row)? {
                users.push(self.summary(&u));
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
        let rows = self
            .platform
            .matching(&mut *self.conn().await?, tenant, &f.query())
            .await?;
        self.summaries(rows)
    }

    /// The tenant's users among `ids`, in key order.
    pub async fn some(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<Vec<UserSummary>, DirectoryError> {
        let rows = self
            .platform
            .users(&mut *self.conn().await?, tenant, ids, RowLock::None)
            .await?;
        self.summaries(rows)
    }

    /// One user of the tenant, or `None` (also for another tenant's user).
    pub async fn detail(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Option<UserDetail>, DirectoryError> {
        let mut conn = self.conn().await?;
        let found = self
            .platform
            .user(&mut conn, tenant, user, RowLock::None)
            .await;
        let Some(u) = shown_one(found)? else {
            return Ok(None);
        };
        let holdings = self
            .platform
            .holdings_of(&mut conn, tenant, &u.subject.id)
            .await?;
        let history = sqlx::query(
            "SELECT action_id, action, from_state, to_state, at FROM lethe_lifecycle_history \
             WHERE tenant_id = $1 AND user_id = $2 ORDER BY at, action_id",
        )
        .bind(tenant)
        .bind(&u.subject.id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(history_entry)
        .collect::<Result<Vec<_>, DirectoryError>>()?;
        let history = chain_order(history, u.subject.state);
        Ok(Some(UserDetail {
            summary: self.summary(&u),
            permissions: u.subject.permissions.clone(),
            created_at: Some(u.subject.created_at),
            restore_until: u.standing.restore_until,
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
        let found = self
            .platform
            .user(&mut *self.conn().await?, tenant, user, RowLock::None)
            .await;
        Ok(shown_one(found)?.map(|u| u.subject.state))
    }
}

/// A `lethe_lifecycle_history` row.
fn history_entry(r: &sqlx::any::AnyRow) -> Result<HistoryEntry, DirectoryError> {
    let named = |i: usize| -> Result<String, DirectoryError> { Ok(r.try_get::<String, _>(i)?) };
    let corrupt = |e: UnknownName| DirectoryError::Corrupt(e.to_string());
    Ok(HistoryEntry {
        action_id: r.try_get(0)?,
        action: named(1)?.parse().map_err(corrupt)?,
        from_state: named(2)?.parse().map_err(corrupt)?,
        to_state: named(3)?.parse().map_err(corrupt)?,
        at: r.try_get(4)?,
    })
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
    if chain(&entries, None, current, &mut used, &mut path, &mut budget) {
        path.into_iter().map(|k| entries[k].clone()).collect()
    } else {
        entries
    }
}

/// Extend `path` to an order of all `entries` (sorted by time) that starts
/// at `from` and ends at `end`; false when there is none.
fn chain(
    entries: &[HistoryEntry],
    from: Option<LifecycleState>,
    end: LifecycleState,
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
        if chain(entries, Some(entries[k].to_state), end, used, path, budget) {
            return true;
        }
        path.pop();
        used[k] = false;
    }
    false
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
            action: action.parse().unwrap(),
            from_state: from.parse().unwrap(),
            to_state: to.parse().unwrap(),
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
            .map(|e| e.action.to_string())
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
            .map(|e| e.action.to_string())
            .collect();
        assert_eq!(order, ["delete", "restore", "delete", "erase"]);
    }
}
