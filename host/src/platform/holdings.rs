//! Holdings: per category, how many rows a user owns and how many are open.
//!
//! One query for one owner (an action, a user's detail page) and for many
//! (a bulk batch): a `UNION ALL` over the categories' tables, grouped by
//! owner for a batch and turned into one row per owner, one round trip per
//! chunk of owners.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::sql::{quote_ident, Sql};
use super::users::CHUNK;
use super::{BoundIds, Platform, PlatformError};
use crate::contract::Holding;
use crate::datamap::DataMap;

/// Zero holdings in every category, in data-map order.
pub fn no_holdings(map: &DataMap) -> Vec<Holding> {
    map.categories
        .iter()
        .map(|c| Holding {
            category: c.name.clone(),
            total: 0,
            open: 0,
        })
        .collect()
}

/// Whether a holdings query counts per owner (a batch) or for the one
/// owner it names (an action: no `GROUP BY`, which every action pays for).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grouping {
    PerOwner,
    OneOwner,
}

impl Platform {
    /// The holdings of one user of `tenant` (zeros when it owns nothing).
    pub async fn holdings_of(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        owner: &str,
    ) -> Result<Vec<Holding>, PlatformError> {
        let mut out = no_holdings(self.map());
        if out.is_empty() {
            return Ok(out);
        }
        let mut q = Sql::new();
        let owners = [owner];
        let union = self.holdings_query(&mut q, tenant, &owners, Grouping::OneOwner);
        q.push(&union);
        for row in q.fetch_all(conn).await? {
            let (i, total, open) = counts(&row)?;
            if let Some(h) = out.get_mut(i) {
                h.total = total;
                h.open = open;
            }
        }
        Ok(out)
    }

    /// The holdings of each of `owners` that owns anything, in data-map
    /// category order; owners holding nothing are absent (see
    /// [`no_holdings`]).
    pub async fn holdings<S: AsRef<str>>(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        owners: &[S],
    ) -> Result<HashMap<String, Vec<Holding>>, PlatformError> {
        let map = self.map();
        let mut out: HashMap<String, Vec<Holding>> = HashMap::new();
        if map.categories.is_empty() {
            return Ok(out);
        }
        // One row per owner, with a (total, open) pair per category: the
        // union's row per owner and category, turned into columns. sqlx
        // hands each row over on its own (on SQLite through a channel from
        // the connection's thread), so a batch of 100 owners in ten
        // categories costs 100 rows instead of 1,000.
        let pairs: Vec<String> = (0..map.categories.len())
            .map(|i| {
                format!(
                    "CAST(SUM(CASE WHEN h.c = {i} THEN h.t ELSE 0 END) AS BIGINT), \
                     CAST(SUM(CASE WHEN h.c = {i} THEN h.o ELSE 0 END) AS BIGINT)"
                )
            })
            .collect();
        for chunk in owners.chunks(CHUNK) {
            let mut q = Sql::new();
            let union = self.holdings_query(&mut q, tenant, chunk, Grouping::PerOwner);
            q.push(&format!(
                "SELECT h.w, {} FROM ({union}) h GROUP BY h.w",
                pairs.join(", ")
            ));
            for row in q.fetch_all(&mut *conn).await? {
                let owner: String = row.try_get(0)?;
                let mut held = no_holdings(map);
                for (i, h) in held.iter_mut().enumerate() {
                    h.total = count(&row, 1 + 2 * i)?;
                    h.open = count(&row, 2 + 2 * i)?;
                }
                out.insert(owner, held);
            }
        }
        Ok(out)
    }

    /// One `UNION ALL` over the categories' tables: per category its index
    /// `c`, total `t` and open `o` counts (and, per owner, the owner `w`).
    /// Binds its values in `q`; returns the text.
    fn holdings_query<S: AsRef<str>>(
        &self,
        q: &mut Sql,
        tenant: &str,
        owners: &[S],
        grouping: Grouping,
    ) -> String {
        let t = q.text(tenant);
        let mut owned_by = BoundIds::new(owners);
        let parts: Vec<String> = self
            .map()
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let owned = owned_by.cond(self, q, &c.table, "x", &c.owner);
                let open = match &c.open {
                    Some(o) => format!(
                        "COALESCE(SUM(CASE WHEN x.{} IN ({}) THEN 1 ELSE 0 END), 0)",
                        quote_ident(&o.column),
                        q.texts(o.values.iter().map(String::as_str))
                    ),
                    None => "COUNT(*)".into(),
                };
                let (owner, group) = match grouping {
                    Grouping::PerOwner => {
                        let owner = self.text_expr(&c.table, "x", &c.owner);
                        (format!(", {owner} AS w"), format!(" GROUP BY {owner}"))
                    }
                    Grouping::OneOwner => (String::new(), String::new()),
                };
                format!(
                    "SELECT CAST({i} AS BIGINT) AS c, CAST(COUNT(*) AS BIGINT) AS t, CAST({open} AS BIGINT) AS o{owner} \
                     FROM {} x WHERE x.{} = {t} AND {owned}{group}",
                    quote_ident(&c.table),
                    quote_ident(&c.tenant),
                )
            })
            .collect();
        parts.join(" UNION ALL ")
    }
}

/// `(category index, total, open)` of a holdings row.
fn counts(row: &sqlx::any::AnyRow) -> Result<(usize, u64, u64), PlatformError> {
    let i: i64 = row.try_get(0)?;
    Ok((
        usize::try_from(i).unwrap_or(usize::MAX),
        count(row, 1)?,
        count(row, 2)?,
    ))
}

/// The count in column `col` of a holdings row.
fn count(row: &sqlx::any::AnyRow, col: usize) -> Result<u64, PlatformError> {
    let n: i64 = row.try_get(col)?;
    Ok(u64::try_from(n).unwrap_or(0))
}
