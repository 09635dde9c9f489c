//! Every statement against the platform's own tables.
//!
//! The platform database belongs to the operator; the data map
//! (`crate::datamap`) says where users, their data and references live.
//! [`Platform`] is built once from that map and the introspected schema,
//! and is the only code that turns them into SQL:
//! - `users`: the one user `SELECT` and its decoding into a [`UserRecord`]
//!   (the executor's subject, actor and transfer target; the directory's
//!   list and detail; bulk selections), and the few user lookups restore
//!   and erase need;
//! - `holdings`: rows per category for one owner or many, one
//!   implementation, so the counts a console shows are by construction the
//!   counts a policy saw;
//! - `mutation`: a change to a set of rows with its restore-log capture, as
//!   one call, so each disposition is a few lines in the executor;
//! - `provisioning`: the profile columns SCIM reads and writes (the one
//!   place Lethe writes a profile; lifecycle changes stay the executor's);
//! - `restore_log`: replaying and checking logged changes; `references`:
//!   pseudonymising rows that name an erased user;
//! - `sql`: the statement builder.
//!
//! Lethe's own `lethe_*` tables are not here: each capability (executor,
//! bulk, escalation, evidence) owns its own. Nothing here knows HTTP or
//! WebAssembly.

pub mod holdings;
pub mod mutation;
pub mod provisioning;
pub mod references;
pub mod restore_log;
pub mod sql;
pub mod users;

use std::sync::Arc;

use crate::datamap::{DataMap, DataMapError, Edge};
use crate::db::{quote_ident, Backend, ColumnKind, Db, DbError, Schema};

pub use holdings::no_holdings;
pub use mutation::{Capture, Change, Mutation, Owners, Rows};
pub use sql::Sql;
pub use users::{UserQuery, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    DataMap(#[from] DataMapError),
    /// A user row whose state column holds a value the map does not declare:
    /// not Lethe's to act on or show.
    #[error("user `{key}` has state value `{value}`, which the data map does not declare")]
    UndeclaredState { key: String, value: String },
    /// The data map has no `[users.scim]` section.
    #[error("the data map declares no SCIM columns (`[users.scim]`)")]
    NotProvisioned,
    /// A value Lethe wrote that no longer reads back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for PlatformError {
    fn from(e: sqlx::Error) -> Self {
        PlatformError::Db(DbError::Sql(e))
    }
}

/// The platform database as the data map describes it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    map: DataMap,
    schema: Schema,
}

impl Platform {
    /// Introspect the database and validate the map against it: the host
    /// refuses to start on a map that does not match.
    pub async fn new(db: Db, map: DataMap) -> Result<Platform, PlatformError> {
        let schema = db.introspect().await?;
        map.validate(&schema)?;
        Ok(Platform {
            inner: Arc::new(Inner { db, map, schema }),
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn map(&self) -> &DataMap {
        &self.inner.map
    }

    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    pub fn backend(&self) -> Backend {
        self.inner.db.backend()
    }

    fn kind(&self, table: &str, col: &str) -> Option<ColumnKind> {
        self.inner
            .schema
            .tables
            .get(table)
            .and_then(|t| t.columns.get(col))
            .map(|c| c.kind)
    }

    /// `alias.col` as text, cast only when the column is not text, for
    /// selecting ids and joining them to Lethe's text ids.
    pub(crate) fn text_expr(&self, table: &str, alias: &str, col: &str) -> String {
        if self.kind(table, col) == Some(ColumnKind::Text) {
            format!("{alias}.{}", quote_ident(col))
        } else {
            format!("CAST({alias}.{} AS TEXT)", quote_ident(col))
        }
    }

    /// `alias.col = $id` for a user id given as text, written so the
    /// column's index stays usable on both backends: the column is never
    /// wrapped in a cast when it is text or an integer (an integer column
    /// is compared with the id bound as an integer; an id that is not a
    /// number then matches nothing, as it could not be stored there).
    pub(crate) fn id_eq(
        &self,
        q: &mut Sql,
        table: &str,
        alias: &str,
        col: &str,
        id: &str,
    ) -> String {
        self.id_in(q, table, alias, col, std::slice::from_ref(&id))
    }

    /// `alias.col IN (…)` for ids given as text; see [`Platform::id_eq`].
    pub(crate) fn id_in<S: AsRef<str>>(
        &self,
        q: &mut Sql,
        table: &str,
        alias: &str,
        col: &str,
        ids: &[S],
    ) -> String {
        BoundIds::new(ids).cond(self, q, table, alias, col)
    }

    /// A value to store in `table.col`, given as text (a user id, a scrub
    /// value; `None`: NULL), typed like the column: PostgreSQL refuses text
    /// in an integer or boolean column, so it is cast to the column's
    /// declared type there; SQLite stores integers as integers.
    pub(crate) fn value_for(&self, q: &mut Sql, table: &str, col: &str, v: Option<&str>) -> String {
        let Some(v) = v else {
            return "NULL".into();
        };
        let info = self
            .inner
            .schema
            .tables
            .get(table)
            .and_then(|t| t.columns.get(col));
        match (info, self.backend()) {
            (None, _) => q.text(v),
            (Some(c), _) if c.kind == ColumnKind::Text => q.text(v),
            // information_schema names user-defined types and arrays only
            // generically; those are left to PostgreSQL's own coercion.
            (Some(c), Backend::Postgres)
                if matches!(c.decl_type.as_str(), "USER-DEFINED" | "ARRAY") =>
            {
                q.text(v)
            }
            (Some(c), Backend::Postgres) => format!("CAST({} AS {})", q.text(v), c.decl_type),
            (Some(c), Backend::Sqlite) => match v.parse::<i64>() {
                Ok(i) if c.kind == ColumnKind::Integer => q.int(i),
                _ => q.text(v),
            },
        }
    }

    /// The key column the data map declares for `table` (users, a
    /// category, a guard, or a child table of a category).
    pub(crate) fn key_of(&self, table: &str) -> &str {
        let m = &self.inner.map;
        if m.users.table == table {
            return &m.users.key;
        }
        fn in_edges<'a>(edges: &'a [Edge], table: &str) -> Option<&'a str> {
            edges.iter().find_map(|e| {
                if e.table == table {
                    Some(e.key.as_str())
                } else {
                    in_edges(&e.children, table)
                }
            })
        }
        m.categories
            .iter()
            .find(|c| c.table == table)
            .map(|c| c.key.as_str())
            .or_else(|| {
                m.guards
                    .iter()
                    .find(|g| g.table == table)
                    .map(|g| g.key.as_str())
            })
            .or_else(|| {
                m.categories
                    .iter()
                    .find_map(|c| in_edges(&c.children, table))
            })
            .unwrap_or("id")
    }

    /// Columns of `table` in declaration order.
    pub(crate) fn columns(&self, table: &str) -> &[String] {
        self.inner
            .schema
            .tables
            .get(table)
            .map(|t| t.order.as_slice())
            .unwrap_or_default()
    }
}

/// Ids bound once per statement and matched against many columns (a
/// holdings query names the same owners in every category): each id is
/// bound once as text and, if a column needs it, once as an integer.
pub(crate) struct BoundIds<'a, S> {
    ids: &'a [S],
    text: Option<Vec<String>>,
    int: Option<Vec<String>>,
}

impl<'a, S: AsRef<str>> BoundIds<'a, S> {
    pub(crate) fn new(ids: &'a [S]) -> BoundIds<'a, S> {
        BoundIds {
            ids,
            text: None,
            int: None,
        }
    }

    /// `alias.col IN (…)` (or `=`), written so the column's index stays
    /// usable; see [`Platform::id_eq`].
    pub(crate) fn cond(
        &mut self,
        p: &Platform,
        q: &mut Sql,
        table: &str,
        alias: &str,
        col: &str,
    ) -> String {
        let ids = self.ids;
        let column = format!("{alias}.{}", quote_ident(col));
        let (column, placeholders) = match p.kind(table, col) {
            Some(ColumnKind::Integer) => (
                column,
                self.int.get_or_insert_with(|| {
                    ids.iter()
                        .filter_map(|i| i.as_ref().parse::<i64>().ok())
                        .map(|i| q.int(i))
                        .collect()
                }),
            ),
            kind => {
                let text = self
                    .text
                    .get_or_insert_with(|| ids.iter().map(|i| q.text(i.as_ref())).collect());
                match kind {
                    Some(ColumnKind::Text) => (column, text),
                    // Anything else (uuid, numeric…) is compared as text.
                    _ => (format!("CAST({column} AS TEXT)"), text),
                }
            }
        };
        match placeholders.as_slice() {
            [] => "1 = 0".into(),
            [one] => format!("{column} = {one}"),
            many => format!("{column} IN ({})", many.join(", ")),
        }
    }
}
