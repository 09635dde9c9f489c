//! A change to a user's rows, with its restore-log capture, as one call.
//!
//! A delete with a restore window must be undoable: before each change the
//! rows it is about to touch are copied into `lethe_restore_log` with
//! `INSERT … SELECT` (whole rows before a `DELETE`, the old values of the
//! changed columns before an `UPDATE`), in the same transaction. Keeping
//! the capture and the change in one function means no disposition can
//! change rows without logging them, and each disposition in the executor
//! is a few lines describing *which* rows and *what* change.

use sqlx::AnyConnection;

use super::restore_log::LoggedOp;
use super::sql::{quote_ident, Sql};
use super::{Platform, PlatformError};
use crate::datamap::{Category, Edge, Guard, OpenRule, UsersMap};

/// The user whose rows are changed.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub tenant: &'a str,
    pub user: &'a str,
}

/// Which rows of which table.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// Rows of `table` whose `owner` column names the user (and, with
    /// `open`, only the open ones).
    Owned {
        table: &'a str,
        key: &'a str,
        tenant: &'a str,
        owner: &'a str,
        open: Option<&'a OpenRule>,
    },
    /// The rows at the end of `path`: children (and grandchildren…) of the
    /// category's rows owned by the user.
    Below {
        category: &'a Category,
        path: &'a [&'a Edge],
    },
}

impl<'a> Rows<'a> {
    /// A category's rows owned by the user.
    pub fn category(c: &'a Category) -> Rows<'a> {
        Rows::Owned {
            table: &c.table,
            key: &c.key,
            tenant: &c.tenant,
            owner: &c.owner,
            open: None,
        }
    }

    /// Only the open ones, when `open` is given.
    pub fn category_open(c: &'a Category, open: Option<&'a OpenRule>) -> Rows<'a> {
        match Rows::category(c) {
            Rows::Owned {
                table,
                key,
                tenant,
                owner,
                ..
            } => Rows::Owned {
                table,
                key,
                tenant,
                owner,
                open,
            },
            below => below,
        }
    }

    /// A guarded table's rows naming the user.
    pub fn guard(g: &'a Guard) -> Rows<'a> {
        Rows::Owned {
            table: &g.table,
            key: &g.key,
            tenant: &g.tenant,
            owner: &g.column,
            open: None,
        }
    }

    /// The user's own row of the users table.
    pub fn user(u: &'a UsersMap) -> Rows<'a> {
        Rows::Owned {
            table: &u.table,
            key: &u.key,
            tenant: &u.tenant,
            owner: &u.key,
            open: None,
        }
    }

    /// (table, key column) of the rows.
    fn table(&self) -> (&'a str, &'a str) {
        match *self {
            Rows::Owned { table, key, .. } => (table, key),
            Rows::Below { category, path } => match path.last() {
                Some(e) => (&e.table, &e.key),
                None => (&category.table, &category.key),
            },
        }
    }
}

/// What happens to the rows.
#[derive(Debug, Clone)]
pub enum Change<'a> {
    /// Removed; the log keeps whole rows.
    Delete,
    /// These columns set to these values (`None`: NULL); the log keeps the
    /// old values of exactly these columns.
    Set(Vec<(&'a str, Option<String>)>),
}

/// One logged change.
#[derive(Debug, Clone)]
pub struct Mutation<'a> {
    pub rows: Rows<'a>,
    pub change: Change<'a>,
    /// For transfers: what the first changed column must still hold when a
    /// restore puts the old value back (else the row moved since).
    pub expect: Option<&'a str>,
}

/// The restore log of one delete, being written: each mutation is one
/// step, replayed last-first by a restore.
#[derive(Debug)]
pub struct Capture {
    action_id: String,
    step: i64,
    /// Rows logged so far.
    pub rows: u64,
}

impl Capture {
    pub fn new(action_id: &str) -> Capture {
        Capture {
            action_id: action_id.to_owned(),
            step: 0,
            rows: 0,
        }
    }
}

impl Platform {
    /// Apply `m` to `owner`'s rows, logging them first into `log` when
    /// given. Returns the rows changed.
    pub async fn mutate(
        &self,
        conn: &mut AnyConnection,
        owner: Owner<'_>,
        m: &Mutation<'_>,
        log: Option<&mut Capture>,
    ) -> Result<u64, PlatformError> {
        let (table, key) = m.rows.table();
        let tbl = quote_ident(table);
        if let Some(log) = log {
            log.step += 1;
            let columns: Vec<&str> = match &m.change {
                Change::Delete => self.columns(table).iter().map(String::as_str).collect(),
                Change::Set(sets) => sets.iter().map(|(c, _)| *c).collect(),
            };
            let op = match m.change {
                Change::Delete => LoggedOp::Insert,
                Change::Set(_) => LoggedOp::Update,
            };
            let mut q = Sql::new();
            let cond = self.rows_cond(&mut q, owner, &m.rows, "x");
            let values = [
                q.text(log.action_id.as_str()),
                q.text(owner.tenant),
                q.text(owner.user),
                q.int(log.step),
                q.text(table),
                q.text(op.as_str()),
                self.text_expr(table, "x", key),
                self.backend().json_object("x", &columns),
                q.opt_text(m.expect),
            ];
            q.push(&format!(
                "INSERT INTO lethe_restore_log (action_id, tenant_id, user_id, step, table_name, op, row_key, data, expect) \
                 SELECT {} FROM {tbl} x WHERE {cond}",
                values.join(", ")
            ));
            log.rows += q.execute(conn).await?;
        }
        // UPDATE and DELETE cannot alias their target portably: conditions
        // name the table.
        let mut q = Sql::new();
        let cond = self.rows_cond(&mut q, owner, &m.rows, &tbl);
        match &m.change {
            Change::Delete => q.push(&format!("DELETE FROM {tbl} WHERE {cond}")),
            Change::Set(sets) => {
                let sets: Vec<String> = sets
                    .iter()
                    .map(|(c, v)| {
                        let v = self.value_for(&mut q, table, c, v.as_deref());
                        format!("{} = {v}", quote_ident(c))
                    })
                    .collect();
                q.push(&format!(
                    "UPDATE {tbl} SET {} WHERE {cond}",
                    sets.join(", ")
                ))
            }
        };
        Ok(q.execute(conn).await?)
    }

    /// `WHERE` selecting `rows` of `owner`, with the table aliased `alias`.
    fn rows_cond(&self, q: &mut Sql, owner: Owner<'_>, rows: &Rows<'_>, alias: &str) -> String {
        match *rows {
            Rows::Owned {
                table,
                tenant,
                owner: col,
                open,
                ..
            } => {
                let t = q.text(owner.tenant);
                let mut cond = format!(
                    "{alias}.{} = {t} AND {}",
                    quote_ident(tenant),
                    self.id_eq(q, table, alias, col, owner.user)
                );
                if let Some(open) = open {
                    cond.push_str(&format!(
                        " AND {alias}.{} IN ({})",
                        quote_ident(&open.column),
                        q.texts(open.values.iter().map(String::as_str))
                    ));
                }
                cond
            }
            Rows::Below { category, path } => {
                let Some((edge, parents)) = path.split_last() else {
                    return self.rows_cond(q, owner, &Rows::category(category), alias);
                };
                let keys = self.parent_keys(q, owner, category, parents);
                format!("{alias}.{} IN ({keys})", quote_ident(&edge.fk))
            }
        }
    }

    /// `SELECT key FROM …` of the rows at the end of `path` below the
    /// category's rows owned by `owner` (those rows when `path` is empty).
    fn parent_keys(&self, q: &mut Sql, owner: Owner<'_>, c: &Category, path: &[&Edge]) -> String {
        let cond = self.rows_cond(q, owner, &Rows::category(c), "p0");
        let mut sql = format!(
            "SELECT p0.{} FROM {} p0 WHERE {cond}",
            quote_ident(&c.key),
            quote_ident(&c.table)
        );
        for (i, e) in path.iter().enumerate() {
            let a = format!("p{}", i + 1);
            sql = format!(
                "SELECT {a}.{} FROM {} {a} WHERE {a}.{} IN ({sql})",
                quote_ident(&e.key),
                quote_ident(&e.table),
                quote_ident(&e.fk)
            );
        }
        sql
    }
}
