//! The one statement builder for SQL against the platform's tables.
//!
//! Identifiers come from the data map (validated against the live schema and
//! always quoted); values are always bound, as `$n` placeholders that
//! `sqlx::Any` understands on both backends. Placeholders are numbered in
//! the order values are bound, not in the order they appear in the text, so
//! a fragment can be built before the statement around it.
//!
//! Why not a general query builder (`sea-query` with `sea-query-binder`)?
//! Most of what Lethe writes is dialect-specific on purpose and already
//! isolated in [`crate::db::Backend`] (`json_build_object(..)::text`,
//! `jsonb_populate_record` in a `LATERAL` join, `UPDATE … FROM` replays,
//! `INSERT … SELECT` into the restore log, `FOR UPDATE OF x`). Those would be
//! custom expressions in any builder; what is left is string assembly over
//! identifiers that a builder would quote exactly as [`quote_ident`] does.
//! This file stays small, and every statement still reads as SQL.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection};

pub use crate::db::quote_ident;

/// A bound value.
#[derive(Debug, Clone)]
enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
}

/// A statement under construction.
#[derive(Debug, Default)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new() -> Sql {
        Sql::default()
    }

    /// Append SQL text.
    pub fn push(&mut self, s: &str) -> &mut Sql {
        self.text.push_str(s);
        self
    }

    /// Bind a text value; returns its placeholder.
    pub fn text(&mut self, v: impl Into<String>) -> String {
        self.bind(Arg::Text(Some(v.into())))
    }

    /// Bind a text value or NULL.
    pub fn opt_text(&mut self, v: Option<&str>) -> String {
        self.bind(Arg::Text(v.map(str::to_owned)))
    }

    /// Bind an integer.
    pub fn int(&mut self, v: i64) -> String {
        self.bind(Arg::Int(Some(v)))
    }

    /// Bind each value; returns `$a, $b, …` for an `IN (…)` list.
    pub fn texts<'v>(&mut self, values: impl IntoIterator<Item = &'v str>) -> String {
        values
            .into_iter()
            .map(|v| self.text(v))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn bind(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn query(&self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Int(v) => q.bind(*v),
            };
        }
        q
    }

    /// Run it; the number of rows affected.
    pub async fn execute(&self, conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
        tracing::trace!(sql = %self.text, "execute");
        Ok(self.query().execute(conn).await?.rows_affected())
    }

    pub async fn fetch_all(&self, conn: &mut AnyConnection) -> Result<Vec<AnyRow>, sqlx::Error> {
        tracing::trace!(sql = %self.text, "fetch");
        self.query().fetch_all(conn).await
    }

    pub async fn fetch_optional(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        tracing::trace!(sql = %self.text, "fetch");
        self.query().fetch_optional(conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_binding_order() {
        let mut q = Sql::new();
        let a = q.text("a");
        let list = q.texts(["b", "c"]);
        let n = q.int(7);
        q.push(&format!("SELECT {n}, {a} WHERE x IN ({list})"));
        assert_eq!(q.as_str(), "SELECT $4, $1 WHERE x IN ($2, $3)");
        assert_eq!(q.args.len(), 4);
    }
}
