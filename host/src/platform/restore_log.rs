//! Reading a delete's restore log back into the platform's tables.
//!
//! `mutation` writes the log; this replays it. Each logged step is either
//! whole rows that were removed (re-inserted) or old column values that
//! were overwritten (written back), decoded from JSON typed like the
//! table on PostgreSQL and by `json_extract` on SQLite (see
//! [`crate::db::Backend::replay_from`]).

use std::fmt;
use std::str::FromStr;

use sqlx::{AnyConnection, Row};

use super::sql::{quote_ident, Sql};
use super::{Platform, PlatformError};

/// What a restore does with a logged step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedOp {
    /// The rows were deleted: insert them again.
    Insert,
    /// Columns were overwritten: write the old values back.
    Update,
}

impl LoggedOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LoggedOp::Insert => "insert",
            LoggedOp::Update => "update",
        }
    }
}

impl fmt::Display for LoggedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LoggedOp {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<LoggedOp, PlatformError> {
        match s {
            "insert" => Ok(LoggedOp::Insert),
            "update" => Ok(LoggedOp::Update),
            other => Err(PlatformError::Corrupt(format!("restore log op `{other}`"))),
        }
    }
}

/// One step of a restore log, as the replay needs it.
#[derive(Debug, Clone)]
pub struct LoggedStep {
    pub step: i64,
    pub table: String,
    pub op: LoggedOp,
    /// For [`LoggedOp::Update`]: the columns to write back, the first
    /// being the one a transfer's `expect` refers to.
    pub columns: Vec<String>,
}

impl Platform {
    /// The first row of a transfer step that no longer has the owner the
    /// transfer gave it (moved again, or removed): restoring it would take
    /// a row from someone who has it now.
    pub async fn moved_since(
        &self,
        conn: &mut AnyConnection,
        action_id: &str,
        s: &LoggedStep,
    ) -> Result<Option<String>, PlatformError> {
        let Some(owner) = s.columns.first() else {
            return Ok(None);
        };
        let key = self.key_of(&s.table);
        let mut q = Sql::new();
        let a = q.text(action_id);
        let st = q.int(s.step);
        let key_expr = self.text_expr(&s.table, "x", key);
        let owner_expr = self.text_expr(&s.table, "x", owner);
        q.push(&format!(
            "SELECT r.row_key FROM lethe_restore_log r LEFT JOIN {tbl} x ON {key_expr} = r.row_key \
             WHERE r.action_id = {a} AND r.step = {st} AND (x.{k} IS NULL OR {owner_expr} IS NULL OR {owner_expr} <> r.expect) \
             ORDER BY 1",
            tbl = quote_ident(&s.table),
            k = quote_ident(key),
        ));
        match q.fetch_optional(conn).await? {
            Some(row) => Ok(Some(row.try_get(0)?)),
            None => Ok(None),
        }
    }

    /// Replay one logged step into its table. Returns the rows restored.
    pub async fn replay(
        &self,
        conn: &mut AnyConnection,
        action_id: &str,
        s: &LoggedStep,
    ) -> Result<u64, PlatformError> {
        let backend = self.backend();
        let tbl = quote_ident(&s.table);
        let from = backend.replay_from(&s.table);
        let mut q = Sql::new();
        let a = q.text(action_id);
        let st = q.int(s.step);
        match s.op {
            LoggedOp::Insert => {
                let cols = self.columns(&s.table);
                let names: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
                let values: Vec<String> = cols.iter().map(|c| backend.logged_field(c)).collect();
                q.push(&format!(
                    "INSERT INTO {tbl} ({}) SELECT {} FROM {from} WHERE r.action_id = {a} AND r.step = {st}",
                    names.join(", "),
                    values.join(", ")
                ));
            }
            LoggedOp::Update => {
                let sets: Vec<String> = s
                    .columns
                    .iter()
                    .map(|c| format!("{} = {}", quote_ident(c), backend.logged_field(c)))
                    .collect();
                let key_expr = self.text_expr(&s.table, &tbl, self.key_of(&s.table));
                q.push(&format!(
                    "UPDATE {tbl} SET {} FROM {from} WHERE r.action_id = {a} AND r.step = {st} AND {key_expr} = r.row_key",
                    sets.join(", ")
                ));
            }
        }
        Ok(q.execute(conn).await?)
    }
}
