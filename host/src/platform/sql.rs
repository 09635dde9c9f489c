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

    /// The statement as sent to `conn`. On PostgreSQL the text is sent as
    /// built. On SQLite every `$n` becomes an anonymous `?` with its value
    /// bound again at each place it appears: sqlx binds a named SQLite
    /// parameter by asking SQLite for its name, a linear scan of the
    /// statement's parameter list, so binding n named parameters costs n²
    /// (perf of a 1,000-user bulk job: a fifth of all its CPU went to
    /// `sqlite3_bind_parameter_name` for the batch's 1,100-value inserts).
    /// Anonymous parameters have no names to scan.
    fn query<'q>(
        &'q self,
        conn: &AnyConnection,
        text: &'q mut String,
    ) -> sqlx::query::Query<'q, Any, AnyArguments<'q>> {
        let order: Vec<&Arg> = if conn.backend_name() == SQLITE {
            let (positional, order) = positional(&self.text, &self.args);
            *text = positional;
            order
        } else {
            text.clone_from(&self.text);
            self.args.iter().collect()
        };
        let mut q = sqlx::query(text.as_str());
        for a in order {
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
        let mut text = String::new();
        let q = self.query(conn, &mut text);
        Ok(q.execute(conn).await?.rows_affected())
    }

    pub async fn fetch_all(&self, conn: &mut AnyConnection) -> Result<Vec<AnyRow>, sqlx::Error> {
        tracing::trace!(sql = %self.text, "fetch");
        let mut text = String::new();
        let q = self.query(conn, &mut text);
        q.fetch_all(conn).await
    }

    pub async fn fetch_optional(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        tracing::trace!(sql = %self.text, "fetch");
        let mut text = String::new();
        let q = self.query(conn, &mut text);
        q.fetch_optional(conn).await
    }
}

/// `sqlx`'s name for the SQLite backend of an `AnyConnection`.
const SQLITE: &str = "SQLite";

/// `text` with each `$n` placeholder replaced by `?`, and the values in the
/// order their placeholders appear (a value used twice is listed twice).
/// Quoted identifiers (`"…"`, how [`quote_ident`] writes every one) and
/// string literals (`'…'`) are copied as they are; a `$` in them is not a
/// placeholder. A `$n` with no value is left as written, so SQLite refuses
/// the statement instead of binding the wrong value.
fn positional<'a>(text: &str, args: &'a [Arg]) -> (String, Vec<&'a Arg>) {
    let mut out = String::with_capacity(text.len());
    let mut order = Vec::with_capacity(args.len());
    let mut chars = text.char_indices();
    let mut quote: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            // A doubled quote inside a quoted run stays in it; the next
            // iteration sees the second one and re-enters.
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '$') => {
                let digits = text[i + 1..].bytes().take_while(u8::is_ascii_digit).count();
                let arg = text[i + 1..i + 1 + digits]
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|n| args.get(n));
                if let Some(arg) = arg {
                    out.push('?');
                    order.push(arg);
                    for _ in 0..digits {
                        chars.next();
                    }
                    continue;
                }
            }
            (None, _) => {}
        }
        out.push(c);
    }
    (out, order)
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

    fn shown(order: &[&Arg]) -> Vec<String> {
        order
            .iter()
            .map(|a| match a {
                Arg::Text(v) => v.clone().unwrap_or_else(|| "NULL".into()),
                Arg::Int(v) => v.map_or_else(|| "NULL".into(), |n| n.to_string()),
            })
            .collect()
    }

    #[test]
    fn sqlite_text_binds_each_use_in_order() {
        let mut q = Sql::new();
        let t = q.text("t1");
        let ids = q.texts(["u1", "u2"]);
        let n = q.int(12);
        q.push(&format!(
            "SELECT {n} FROM \"a$1\" WHERE tenant = {t} AND x = 'cost $2' AND id IN ({ids}) AND t2 = {t}"
        ));
        let (text, order) = positional(q.as_str(), &q.args);
        assert_eq!(
            text,
            "SELECT ? FROM \"a$1\" WHERE tenant = ? AND x = 'cost $2' AND id IN (?, ?) AND t2 = ?"
        );
        assert_eq!(shown(&order), ["12", "t1", "u1", "u2", "t1"]);
    }

    #[test]
    fn sqlite_text_keeps_doubled_quotes_and_unknown_placeholders() {
        let mut q = Sql::new();
        let a = q.text("a");
        q.push(&format!(
            "SELECT 'it''s $1', \"we\"\"ird$1\", {a}, $9, $ WHERE s || '' = {a}"
        ));
        let (text, order) = positional(q.as_str(), &q.args);
        assert_eq!(
            text,
            "SELECT 'it''s $1', \"we\"\"ird$1\", ?, $9, $ WHERE s || '' = ?"
        );
        assert_eq!(shown(&order), ["a", "a"]);
    }
}
