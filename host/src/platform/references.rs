//! References: rows that name a user without being owned by them (activity
//! logs). On erase they are kept, but pseudonymised: the user's id becomes
//! a stable pseudonym, and free-text columns lose the strings that spelled
//! the user out (name, email…).

use sqlx::{AnyConnection, Row};

use super::sql::{quote_ident, Sql};
use super::{Platform, PlatformError};

/// An erased user as references name them: their id, the pseudonym that
/// replaces it, and the strings that spelled them out.
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub user: &'a str,
    pub pseudonym: &'a str,
    pub identity: &'a [String],
}

impl Platform {
    /// Pseudonymise every reference to each of `named` (one user, or the
    /// users of a bulk batch at once): in each reference table, each
    /// user's `identity` strings in the text columns of rows naming them
    /// become their pseudonym, then each id column naming them does.
    /// Returns the id cells rewritten per user, in `named` order.
    pub async fn pseudonymise_references(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        named: &[Named<'_>],
    ) -> Result<Vec<u64>, PlatformError> {
        let mut rewritten = vec![0; named.len()];
        if named.is_empty() {
            return Ok(rewritten);
        }
        let users: Vec<&str> = named.iter().map(|n| n.user).collect();
        for r in &self.map().references {
            let tbl = quote_ident(&r.table);
            // One UPDATE per id column rather than `a = $u OR b = $u`:
            // SQLite cannot use an index for the OR and would read the
            // tenant's whole log once per erased user (bench_bulk: per-user
            // cost 2x at 10k users). A row naming the user in two columns is
            // rewritten twice, which changes nothing the second time.
            if !r.text.is_empty() {
                for c in &r.ids {
                    let mut q = Sql::new();
                    let sets: Vec<String> = r
                        .text
                        .iter()
                        .map(|col| {
                            let branches: Vec<String> = named
                                .iter()
                                .map(|n| {
                                    let p = q.text(n.pseudonym);
                                    let mut expr = quote_ident(col);
                                    for s in n.identity {
                                        expr =
                                            format!("REPLACE({expr}, {}, {p})", q.text(s.as_str()));
                                    }
                                    let is = self.id_eq(&mut q, &r.table, &tbl, c, n.user);
                                    format!("WHEN {is} THEN {expr}")
                                })
                                .collect();
                            format!(
                                "{} = CASE {} ELSE {} END",
                                quote_ident(col),
                                branches.join(" "),
                                quote_ident(col)
                            )
                        })
                        .collect();
                    let t = q.text(tenant);
                    let named_in = self.id_in(&mut q, &r.table, &tbl, c, &users);
                    q.push(&format!(
                        "UPDATE {tbl} SET {} WHERE {tbl}.{} = {t} AND {named_in}",
                        sets.join(", "),
                        quote_ident(&r.tenant),
                    ));
                    q.execute(conn).await?;
                }
            }
            for c in &r.ids {
                // With many users, who was named how often is counted
                // first: the UPDATE only says how many cells in all.
                if named.len() > 1 {
                    let mut q = Sql::new();
                    let t = q.text(tenant);
                    let named_in = self.id_in(&mut q, &r.table, "x", c, &users);
                    let id = self.text_expr(&r.table, "x", c);
                    q.push(&format!(
                        "SELECT {id}, COUNT(*) FROM {tbl} x WHERE x.{} = {t} AND {named_in} GROUP BY {id}",
                        quote_ident(&r.tenant)
                    ));
                    for row in q.fetch_all(&mut *conn).await? {
                        let user: Option<String> = row.try_get(0)?;
                        let n: i64 = row.try_get(1)?;
                        if let Some(i) = user.and_then(|u| users.iter().position(|x| *x == u)) {
                            rewritten[i] += u64::try_from(n).unwrap_or(0);
                        }
                    }
                }
                let mut q = Sql::new();
                let branches: Vec<String> = named
                    .iter()
                    .map(|n| {
                        let is = self.id_eq(&mut q, &r.table, &tbl, c, n.user);
                        let p = q.text(n.pseudonym);
                        format!("WHEN {is} THEN {p}")
                    })
                    .collect();
                let t = q.text(tenant);
                let named_in = self.id_in(&mut q, &r.table, &tbl, c, &users);
                q.push(&format!(
                    "UPDATE {tbl} SET {c} = CASE {} ELSE {c} END WHERE {tbl}.{} = {t} AND {named_in}",
                    branches.join(" "),
                    quote_ident(&r.tenant),
                    c = quote_ident(c),
                ));
                let n = q.execute(conn).await?;
                if named.len() == 1 {
                    rewritten[0] += n;
                }
            }
        }
        Ok(rewritten)
    }
}
