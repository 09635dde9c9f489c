//! The users table as an identity provider sees it over SCIM: the profile
//! columns of the data map's `[users.scim]` section, read, searched,
//! inserted and updated.
//!
//! This is the one place Lethe writes a user's profile (a lifecycle change
//! is the executor's, through the policy, never here). The state column is
//! read to answer `active`, and written only when a user is created. Erased
//! users are not shown: for SCIM they no longer exist.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::mutation::{Change, Mutation, Owner, Rows};
use super::sql::{quote_ident, Sql};
use super::{Platform, PlatformError};
use crate::contract::LifecycleState;
use crate::datamap::ScimColumns;
use crate::db::RowLock;

/// A user's SCIM profile: every value SCIM reads and writes besides
/// `active`. `None` is a NULL column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub user_name: String,
    pub external_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

/// A user as SCIM shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedUser {
    pub id: String,
    pub state: LifecycleState,
    pub profile: Profile,
    pub created_at: i64,
}

/// One condition of a SCIM search; conditions are combined with AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `userName eq "…"`, case-insensitive (RFC 7643: `caseExact: false`).
    UserName(String),
    /// `externalId eq "…"`, exact.
    ExternalId(String),
    /// `active eq true|false`: active, or any other state but erased.
    Active(bool),
}

/// One page of a search, with the number of all matches.
#[derive(Debug, Clone)]
pub struct Found {
    pub total: i64,
    pub users: Vec<ProvisionedUser>,
}

impl Platform {
    /// The SCIM columns, or why this platform does not provision.
    pub fn scim_columns(&self) -> Result<&ScimColumns, PlatformError> {
        self.map()
            .users
            .scim
            .as_ref()
            .ok_or(PlatformError::NotProvisioned)
    }

    /// `SELECT key, state, created, profile… FROM users x WHERE tenant = $t
    /// AND state <> erased`; callers append `AND …`.
    fn provisioned_select(&self, q: &mut Sql, tenant: &str) -> Result<String, PlatformError> {
        let u = &self.map().users;
        let s = self.scim_columns()?;
        let opt = |c: &Option<String>| match c {
            Some(c) => format!("CAST(x.{} AS TEXT)", quote_ident(c)),
            None => "CAST(NULL AS TEXT)".to_owned(),
        };
        let t = q.text(tenant);
        let erased = q.text(u.state.erased.as_str());
        Ok(format!(
            "SELECT {key}, x.{state}, x.{created}, CAST(x.{un} AS TEXT), {ext}, {given}, {family}, \
             CAST(x.{name} AS TEXT), CAST(x.{email} AS TEXT) FROM {tbl} x \
             WHERE x.{tc} = {t} AND x.{state} <> {erased}",
            key = self.text_expr(&u.table, "x", &u.key),
            state = quote_ident(&u.state.column),
            created = quote_ident(&u.created),
            un = quote_ident(&s.user_name),
            ext = opt(&s.external_id),
            given = opt(&s.given_name),
            family = opt(&s.family_name),
            name = quote_ident(&u.display_name),
            email = quote_ident(&u.email),
            tbl = quote_ident(&u.table),
            tc = quote_ident(&u.tenant),
        ))
    }

    fn decode_provisioned(&self, row: &AnyRow) -> Result<ProvisionedUser, PlatformError> {
        let id: String = row.try_get(0)?;
        let value: String = row.try_get(1)?;
        let state =
            self.map()
                .users
                .state
                .state(&value)
                .ok_or_else(|| PlatformError::UndeclaredState {
                    key: id.clone(),
                    value,
                })?;
        Ok(ProvisionedUser {
            id,
            state,
            created_at: row.try_get(2)?,
            profile: Profile {
                user_name: row.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                external_id: row.try_get(4)?,
                given_name: row.try_get(5)?,
                family_name: row.try_get(6)?,
                display_name: row.try_get(7)?,
                email: row.try_get(8)?,
            },
        })
    }

    /// One user of `tenant` that is not erased; with `lock`, its row stays
    /// locked until the transaction ends.
    pub async fn provisioned(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        id: &str,
        lock: RowLock,
    ) -> Result<Option<ProvisionedUser>, PlatformError> {
        let u = &self.map().users;
        let mut q = Sql::new();
        let select = self.provisioned_select(&mut q, tenant)?;
        let key = self.id_eq(&mut q, &u.table, "x", &u.key, id);
        q.push(&format!(
            "{select} AND {key}{}",
            self.backend().row_lock_of(lock, "x")
        ));
        match q.fetch_optional(conn).await? {
            Some(row) => Ok(Some(self.decode_provisioned(&row)?)),
            None => Ok(None),
        }
    }

    /// The users of `tenant` matching every condition, in key order, from
    /// the `offset`-th (0-based), at most `limit`; users whose state the map
    /// does not declare are skipped.
    pub async fn provisioned_page(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        matches: &[Match],
        offset: i64,
        limit: i64,
    ) -> Result<Found, PlatformError> {
        let u = &self.map().users;
        let mut q = Sql::new();
        let select = self.provisioned_select(&mut q, tenant)?;
        let cond = self.match_cond(&mut q, matches)?;
        let key = self.text_expr(&u.table, "x", &u.key);
        q.push(&format!("SELECT COUNT(*) FROM ({select}{cond}) m"));
        let total: i64 = q
            .fetch_optional(conn)
            .await?
            .map_or(Ok(0), |r| r.try_get(0))?;

        let mut q = Sql::new();
        let select = self.provisioned_select(&mut q, tenant)?;
        let cond = self.match_cond(&mut q, matches)?;
        let (lim, off) = (q.int(limit), q.int(offset));
        q.push(&format!(
            "{select}{cond} ORDER BY {key} LIMIT {lim} OFFSET {off}"
        ));
        let mut users = Vec::new();
        for row in q.fetch_all(conn).await? {
            match self.decode_provisioned(&row) {
                Ok(user) => users.push(user),
                Err(PlatformError::UndeclaredState { key, value }) => {
                    tracing::warn!(user = %key, %value, "user with an undeclared state value");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Found { total, users })
    }

    /// ` AND …` for `matches`.
    fn match_cond(&self, q: &mut Sql, matches: &[Match]) -> Result<String, PlatformError> {
        let u = &self.map().users;
        let s = self.scim_columns()?;
        let state = quote_ident(&u.state.column);
        let mut sql = String::new();
        for m in matches {
            match m {
                Match::UserName(v) => sql.push_str(&format!(
                    " AND LOWER(CAST(x.{} AS TEXT)) = {}",
                    quote_ident(&s.user_name),
                    q.text(v.to_lowercase())
                )),
                Match::ExternalId(v) => match &s.external_id {
                    Some(c) => sql.push_str(&format!(" AND x.{} = {}", quote_ident(c), q.text(v))),
                    None => sql.push_str(" AND 1 = 0"),
                },
                Match::Active(true) => sql.push_str(&format!(
                    " AND x.{state} = {}",
                    q.text(u.state.active.as_str())
                )),
                Match::Active(false) => sql.push_str(&format!(
                    " AND x.{state} <> {}",
                    q.text(u.state.active.as_str())
                )),
            }
        }
        Ok(sql)
    }

    /// Another user of `tenant` (not erased, not `except`) whose userName
    /// is `user_name`, compared without case.
    pub async fn user_name_holder(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        user_name: &str,
        except: Option<&str>,
    ) -> Result<Option<String>, PlatformError> {
        let u = &self.map().users;
        let mut q = Sql::new();
        let select = self.provisioned_select(&mut q, tenant)?;
        let cond = self.match_cond(&mut q, &[Match::UserName(user_name.to_owned())])?;
        let key = self.text_expr(&u.table, "x", &u.key);
        let other = match except {
            Some(id) => format!(" AND {key} <> {}", q.text(id)),
            None => String::new(),
        };
        q.push(&format!("{select}{cond}{other} ORDER BY 1"));
        match q.fetch_optional(conn).await? {
            Some(row) => Ok(Some(row.try_get(0)?)),
            None => Ok(None),
        }
    }

    /// The columns `profile` is written to, with their values.
    fn profile_columns(
        &self,
        profile: &Profile,
    ) -> Result<Vec<(&str, Option<String>)>, PlatformError> {
        let u = &self.map().users;
        let s = self.scim_columns()?;
        let mut cols: Vec<(&str, Option<String>)> = vec![
            (s.user_name.as_str(), Some(profile.user_name.clone())),
            (u.display_name.as_str(), profile.display_name.clone()),
            (u.email.as_str(), profile.email.clone()),
        ];
        let optional = [
            (&s.external_id, &profile.external_id),
            (&s.given_name, &profile.given_name),
            (&s.family_name, &profile.family_name),
        ];
        for (col, value) in optional {
            if let Some(col) = col {
                cols.push((col.as_str(), value.clone()));
            }
        }
        Ok(cols)
    }

    /// Insert a user of `tenant` with key `id`, in `state`, created `now`:
    /// the profile, the map's SCIM defaults and, when the map has a domain
    /// column the defaults do not set, the email's domain.
    pub async fn insert_provisioned(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        id: &str,
        profile: &Profile,
        state: LifecycleState,
        now: i64,
    ) -> Result<(), PlatformError> {
        let u = &self.map().users;
        let s = self.scim_columns()?;
        let mut cols: Vec<(&str, Option<String>)> = vec![
            (u.key.as_str(), Some(id.to_owned())),
            (u.tenant.as_str(), Some(tenant.to_owned())),
            (
                u.state.column.as_str(),
                Some(u.state.value(state).to_owned()),
            ),
            (u.created.as_str(), Some(now.to_string())),
        ];
        cols.extend(self.profile_columns(profile)?);
        for (col, value) in &s.defaults {
            if !cols.iter().any(|(c, _)| c == col) {
                cols.push((col.as_str(), Some(value.clone())));
            }
        }
        if let Some(domain) = &u.domain {
            if !cols.iter().any(|(c, _)| c == domain) {
                let of_email = profile
                    .email
                    .as_deref()
                    .and_then(|e| e.rsplit_once('@'))
                    .map(|(_, d)| d.to_ascii_lowercase());
                cols.push((domain.as_str(), Some(of_email.unwrap_or_default())));
            }
        }
        let mut q = Sql::new();
        let values: Vec<String> = cols
            .iter()
            .map(|(c, v)| self.value_for(&mut q, &u.table, c, v.as_deref()))
            .collect();
        let names: Vec<String> = cols.iter().map(|(c, _)| quote_ident(c)).collect();
        q.push(&format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote_ident(&u.table),
            names.join(", "),
            values.join(", ")
        ));
        q.execute(conn).await?;
        Ok(())
    }

    /// Write `profile` over user `id`'s profile columns.
    pub async fn update_profile(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        id: &str,
        profile: &Profile,
    ) -> Result<(), PlatformError> {
        let u = &self.map().users;
        let change = Mutation {
            rows: Rows::user(u),
            change: Change::Set(self.profile_columns(profile)?),
            expect: None,
        };
        let owner = Owner { tenant, user: id };
        self.mutate(conn, owner, &change, None).await?;
        Ok(())
    }
}
