//! A change to a user's rows, with its restore-log capture, as one call.
//!
//! A delete with a restore window must be undoable: before each change the
//! rows it is about to touch are copied into `lethe_restore_log` with
//! `INSERT … SELECT` (whole rows before a `DELETE`, the old values of the
//! changed columns before an `UPDATE`), in the same transaction. Keeping
//! the capture and the change in one function means no disposition can
//! change rows without logging them, and each disposition in the executor
//! is a few lines describing *which* rows and *what* change.

use sqlx::{AnyConnection, Row};

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

/// The users whose rows one mutation changes together: the users of a bulk
/// batch that share one plan (see `executor::batch`). One statement changes
/// all their rows; each row is attributed to its owner so every user's
/// effects and restore log stay their own.
#[derive(Debug, Clone, Copy)]
pub struct Owners<'a> {
    pub tenant: &'a str,
    pub users: &'a [&'a str],
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

/// The restore logs of deletes being written, one per owner (each under
/// its own action id): each mutation is one step, replayed last-first by a
/// restore of that owner.
#[derive(Debug)]
pub struct Capture {
    /// The action id of each owner, in [`Owners::users`] order.
    action_ids: Vec<String>,
    step: i64,
    /// Rows logged so far, per owner.
    pub rows: Vec<u64>,
}

impl Capture {
    /// One log per owner; `action_ids` in the owners' order.
    pub fn new<S: AsRef<str>>(action_ids: &[S]) -> Capture {
        Capture {
            action_ids: action_ids.iter().map(|a| a.as_ref().to_owned()).collect(),
            step: 0,
            rows: vec![0; action_ids.len()],
        }
    }
}

/// How the rows of one mutation are joined to the owner they belong to,
/// for a mutation of many owners.
struct Attributed {
    /// Joined after `FROM table x`.
    join: String,
    /// The owner's id as text.
    owner: String,
    cond: String,
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
        let users = [owner.user];
        let owners = Owners {
            tenant: owner.tenant,
            users: &users,
        };
        Ok(self.mutate_each(conn, owners, m, log).await?.iter().sum())
    }

    /// Apply `m` to the rows of every one of `owners` in one statement,
    /// logging them first into `log` (one log per owner) when given.
    /// Returns the rows changed per owner, in `owners.users` order.
    ///
    /// With more than one owner each changed row is attributed to its
    /// owner: a change of rows the owner column names returns that column
    /// (`RETURNING`, one statement); rows below a category, and a change
    /// of the owner column itself, are counted per owner first (a row below
    /// two owners' rows goes to the first by id), and if the change then
    /// touches another number of rows than was counted nothing is trusted:
    /// the error rolls the caller's transaction back.
    pub async fn mutate_each(
        &self,
        conn: &mut AnyConnection,
        owners: Owners<'_>,
        m: &Mutation<'_>,
        log: Option<&mut Capture>,
    ) -> Result<Vec<u64>, PlatformError> {
        let (table, key) = m.rows.table();
        let tbl = quote_ident(table);
        let n = owners.users.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        // How the rows are attributed with many owners: the owner column
        // returned by the change itself, or a count first.
        let returning = match (&m.rows, &m.change) {
            _ if n == 1 => None,
            (Rows::Owned { owner, .. }, Change::Set(sets))
                if sets.iter().any(|(c, _)| c == owner) =>
            {
                None
            }
            (Rows::Owned { owner, .. }, _) => Some(self.text_expr(table, &tbl, owner)),
            (Rows::Below { .. }, _) => None,
        };
        let counted = if n > 1 && returning.is_none() {
            Some(self.count_each(conn, owners, &m.rows).await?)
        } else {
            None
        };
        let mut logged_rows: Option<&mut Vec<u64>> = None;
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
            let (from, action_id, user) = if n == 1 {
                let cond = self.rows_cond(&mut q, owners, &m.rows, "x");
                let action_id = q.text(log.action_ids.first().map_or("", String::as_str));
                let user = q.text(owners.users[0]);
                (format!("{tbl} x WHERE {cond}"), action_id, user)
            } else {
                let a = self.attributed(&mut q, owners, &m.rows, "w");
                // (owner, action id) pairs as a VALUES table: both backends
                // name its columns column1, column2.
                let pairs: Vec<String> = owners
                    .users
                    .iter()
                    .zip(&log.action_ids)
                    .map(|(u, id)| {
                        format!(
                            "(CAST({} AS TEXT), CAST({} AS TEXT))",
                            q.text(*u),
                            q.text(id.as_str())
                        )
                    })
                    .collect();
                (
                    format!(
                        "{tbl} x{} JOIN (VALUES {}) m ON m.column1 = {} WHERE {}",
                        a.join,
                        pairs.join(", "),
                        a.owner,
                        a.cond
                    ),
                    "m.column2".to_owned(),
                    "m.column1".to_owned(),
                )
            };
            let values = [
                action_id,
                q.text(owners.tenant),
                user,
                q.int(log.step),
                q.text(table),
                q.text(op.as_str()),
                self.text_expr(table, "x", key),
                self.backend().json_object("x", &columns),
                q.opt_text(m.expect),
            ];
            q.push(&format!(
                "INSERT INTO lethe_restore_log (action_id, tenant_id, user_id, step, table_name, op, row_key, data, expect) \
                 SELECT {} FROM {from}",
                values.join(", ")
            ));
            let logged = q.execute(conn).await?;
            match &counted {
                Some(each) => {
                    for (r, c) in log.rows.iter_mut().zip(each) {
                        *r += c;
                    }
                }
                // The rows logged are the rows the change returns.
                None if returning.is_some() => logged_rows = Some(&mut log.rows),
                None => {
                    if let Some(r) = log.rows.first_mut() {
                        *r += logged;
                    }
                }
            }
        }
        // UPDATE and DELETE cannot alias their target portably: conditions
        // name the table.
        let mut q = Sql::new();
        let cond = self.rows_cond(&mut q, owners, &m.rows, &tbl);
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
        if let Some(owner) = &returning {
            q.push(&format!(" RETURNING {owner}"));
            let mut each = vec![0; n];
            for row in q.fetch_all(conn).await? {
                let o: Option<String> = row.try_get(0)?;
                match o.and_then(|o| owners.users.iter().position(|u| *u == o)) {
                    Some(i) => each[i] += 1,
                    None => {
                        return Err(PlatformError::Corrupt(format!(
                            "{table}: a changed row names none of its owners"
                        )))
                    }
                }
            }
            if let Some(rows) = logged_rows {
                for (r, c) in rows.iter_mut().zip(&each) {
                    *r += c;
                }
            }
            return Ok(each);
        }
        let changed = q.execute(conn).await?;
        match counted {
            None => Ok(vec![changed]),
            Some(each) => {
                let attributed: u64 = each.iter().sum();
                if attributed != changed {
                    return Err(PlatformError::Corrupt(format!(
                        "{table}: {changed} rows changed where {attributed} were counted for their owners"
                    )));
                }
                Ok(each)
            }
        }
    }

    /// The rows of `rows` per owner, in `owners.users` order.
    async fn count_each(
        &self,
        conn: &mut AnyConnection,
        owners: Owners<'_>,
        rows: &Rows<'_>,
    ) -> Result<Vec<u64>, PlatformError> {
        let (table, _) = rows.table();
        let mut q = Sql::new();
        let a = self.attributed(&mut q, owners, rows, "w");
        q.push(&format!(
            "SELECT {o}, COUNT(*) FROM {} x{} WHERE {} GROUP BY {o}",
            quote_ident(table),
            a.join,
            a.cond,
            o = a.owner,
        ));
        let mut out = vec![0; owners.users.len()];
        for row in q.fetch_all(conn).await? {
            let owner: Option<String> = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            if let Some(i) = owner.and_then(|o| owners.users.iter().position(|u| *u == o)) {
                out[i] = u64::try_from(count).unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// Pairs of distinct owners among `owners` whose rows overlap: a row of
    /// the table that `a` reaches from one owner and `b` from another (two
    /// categories on one table, a category's rows that are also children
    /// of another category's rows). Changing both owners' rows with the
    /// same statements would interleave their changes to that row, so the
    /// batch path applies such owners one after the other.
    pub async fn shared_rows(
        &self,
        conn: &mut AnyConnection,
        owners: Owners<'_>,
        a: &Rows<'_>,
        b: &Rows<'_>,
    ) -> Result<Vec<(String, String)>, PlatformError> {
        let (table, _) = a.table();
        if owners.users.len() < 2 || b.table().0 != table {
            return Ok(Vec::new());
        }
        let mut q = Sql::new();
        let one = self.attributed(&mut q, owners, a, "w1");
        let two = self.attributed(&mut q, owners, b, "w2");
        q.push(&format!(
            "SELECT DISTINCT {o1}, {o2} FROM {} x{}{} WHERE {} AND {} AND {o1} <> {o2}",
            quote_ident(table),
            one.join,
            two.join,
            one.cond,
            two.cond,
            o1 = one.owner,
            o2 = two.owner,
        ));
        let mut out = Vec::new();
        for row in q.fetch_all(conn).await? {
            let (x, y): (Option<String>, Option<String>) = (row.try_get(0)?, row.try_get(1)?);
            if let (Some(x), Some(y)) = (x, y) {
                out.push((x, y));
            }
        }
        Ok(out)
    }

    /// `rows` of `owners` (as `x`), each joined to the owner it belongs to
    /// (through a subquery aliased `w` when the rows are below a category).
    fn attributed(&self, q: &mut Sql, owners: Owners<'_>, rows: &Rows<'_>, w: &str) -> Attributed {
        match *rows {
            Rows::Owned {
                table, owner: col, ..
            } => Attributed {
                join: String::new(),
                owner: self.text_expr(table, "x", col),
                cond: self.rows_cond(q, owners, rows, "x"),
            },
            Rows::Below { category, path } => {
                let Some((edge, parents)) = path.split_last() else {
                    return self.attributed(q, owners, &Rows::category(category), w);
                };
                let cond = self.rows_cond(q, owners, &Rows::category(category), "p0");
                let mut from = format!("{} p0", quote_ident(&category.table));
                let mut last = ("p0".to_owned(), category.key.as_str());
                for (i, e) in parents.iter().enumerate() {
                    let a = format!("p{}", i + 1);
                    from.push_str(&format!(
                        " JOIN {} {a} ON {a}.{} = {}.{}",
                        quote_ident(&e.table),
                        quote_ident(&e.fk),
                        last.0,
                        quote_ident(last.1)
                    ));
                    last = (a, e.key.as_str());
                }
                let owner = self.text_expr(&category.table, "p0", &category.owner);
                Attributed {
                    join: format!(
                        " JOIN (SELECT {k} AS k, MIN({owner}) AS o FROM {from} WHERE {cond} GROUP BY {k}) {w} \
                         ON x.{} = {w}.k",
                        quote_ident(&edge.fk),
                        k = format!("{}.{}", last.0, quote_ident(last.1)),
                    ),
                    owner: format!("{w}.o"),
                    cond: "1 = 1".into(),
                }
            }
        }
    }

    /// `WHERE` selecting `rows` of `owners`, with the table aliased `alias`.
    fn rows_cond(&self, q: &mut Sql, owners: Owners<'_>, rows: &Rows<'_>, alias: &str) -> String {
        match *rows {
            Rows::Owned {
                table,
                tenant,
                owner: col,
                open,
                ..
            } => {
                let t = q.text(owners.tenant);
                let mut cond = format!(
                    "{alias}.{} = {t} AND {}",
                    quote_ident(tenant),
                    self.id_in(q, table, alias, col, owners.users)
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
                    return self.rows_cond(q, owners, &Rows::category(category), alias);
                };
                let keys = self.parent_keys(q, owners, category, parents);
                format!("{alias}.{} IN ({keys})", quote_ident(&edge.fk))
            }
        }
    }

    /// `SELECT key FROM …` of the rows at the end of `path` below the
    /// category's rows owned by `owners` (those rows when `path` is empty).
    fn parent_keys(&self, q: &mut Sql, owners: Owners<'_>, c: &Category, path: &[&Edge]) -> String {
        let cond = self.rows_cond(q, owners, &Rows::category(c), "p0");
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
