//! References: rows that name a user without being owned by them (activity
//! logs). On erase they are kept, but pseudonymised: the user's id becomes
//! a stable pseudonym, and free-text columns lose the strings that spelled
//! the user out (name, email…).

use sqlx::AnyConnection;

use super::mutation::Owner;
use super::sql::{quote_ident, Sql};
use super::{Platform, PlatformError};

impl Platform {
    /// Pseudonymise every reference to `owner`: in each reference table,
    /// `identity` strings in the text columns of rows naming the user become
    /// `pseudonym`, then each id column naming the user does. Returns the
    /// id cells rewritten.
    pub async fn pseudonymise_references(
        &self,
        conn: &mut AnyConnection,
        owner: Owner<'_>,
        pseudonym: &str,
        identity: &[String],
    ) -> Result<u64, PlatformError> {
        let mut rewritten = 0;
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
                    let p = q.text(pseudonym);
                    let sets: Vec<String> = r
                        .text
                        .iter()
                        .map(|col| {
                            let mut expr = quote_ident(col);
                            for s in identity {
                                expr = format!("REPLACE({expr}, {}, {p})", q.text(s.as_str()));
                            }
                            format!("{} = {expr}", quote_ident(col))
                        })
                        .collect();
                    let t = q.text(owner.tenant);
                    let named = self.id_eq(&mut q, &r.table, &tbl, c, owner.user);
                    q.push(&format!(
                        "UPDATE {tbl} SET {} WHERE {tbl}.{} = {t} AND {named}",
                        sets.join(", "),
                        quote_ident(&r.tenant),
                    ));
                    q.execute(conn).await?;
                }
            }
            for c in &r.ids {
                let mut q = Sql::new();
                let p = q.text(pseudonym);
                let t = q.text(owner.tenant);
                let named = self.id_eq(&mut q, &r.table, &tbl, c, owner.user);
                q.push(&format!(
                    "UPDATE {tbl} SET {} = {p} WHERE {tbl}.{} = {t} AND {named}",
                    quote_ident(c),
                    quote_ident(&r.tenant)
                ));
                rewritten += q.execute(conn).await?;
            }
        }
        Ok(rewritten)
    }
}
