//! Holdings: per category, how many rows a user owns and how many are open.
//!
//! One implementation for one owner (an action, a user's detail page) and
//! for many (a bulk batch): one `UNION ALL` over the categories' tables,
//! grouped by owner, one round trip per chunk of owners.

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

impl Platform {
    /// The holdings of one user of `tenant` (zeros when it owns nothing).
    pub async fn holdings_of(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        owner: &str,
    ) -> Result<Vec<Holding>, PlatformError> {
        let mut all = self
            .holdings(conn, tenant, std::slice::from_ref(&owner))
            .await?;
        Ok(all.remove(owner).unwrap_or_else(|| no_holdings(self.map())))
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
        for chunk in owners.chunks(CHUNK) {
            let mut q = Sql::new();
            let t = q.text(tenant);
            let mut parts = Vec::with_capacity(map.categories.len());
            let mut owners = BoundIds::new(chunk);
            for (i, c) in map.categories.iter().enumerate() {
                let owner = self.text_expr(&c.table, "x", &c.owner);
                let owned = owners.cond(self, &mut q, &c.table, "x", &c.owner);
                let open = match &c.open {
                    Some(o) => format!(
                        "COALESCE(SUM(CASE WHEN x.{} IN ({}) THEN 1 ELSE 0 END), 0)",
                        quote_ident(&o.column),
                        q.texts(o.values.iter().map(String::as_str))
                    ),
                    None => "COUNT(*)".into(),
                };
                parts.push(format!(
                    "SELECT CAST({i} AS BIGINT), {owner}, CAST(COUNT(*) AS BIGINT), CAST({open} AS BIGINT) \
                     FROM {} x WHERE x.{} = {t} AND {owned} GROUP BY {owner}",
                    quote_ident(&c.table),
                    quote_ident(&c.tenant),
                ));
            }
            q.push(&parts.join(" UNION ALL "));
            for row in q.fetch_all(conn).await? {
                let i: i64 = row.try_get(0)?;
                let owner: String = row.try_get(1)?;
                let total: i64 = row.try_get(2)?;
                let open: i64 = row.try_get(3)?;
                let entry = out.entry(owner).or_insert_with(|| no_holdings(map));
                if let Some(h) = usize::try_from(i).ok().and_then(|i| entry.get_mut(i)) {
                    h.total = u64::try_from(total).unwrap_or(0);
                    h.open = u64::try_from(open).unwrap_or(0);
                }
            }
        }
        Ok(out)
    }
}
