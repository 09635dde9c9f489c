//! Lethe's own SCIM tables: identity providers' tokens, each tenant's
//! deprovision setting, and the log of every SCIM request.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::apikeys::{constant_time_eq, hash_secret};
use crate::contract::Action;
use crate::db::{Db, DbError};

/// The prefix makes a leaked token recognisable by secret scanners.
const TOKEN_PREFIX: &str = "lethe_scim_";

/// A value Lethe wrote that no longer reads back.
fn corrupt(what: String) -> DbError {
    DbError::Sql(sqlx::Error::Decode(what.into()))
}

/// An identity provider, as its token authenticates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    pub token_id: String,
    pub tenant: String,
    /// Names it in actions (`scim:<label>`), the audit and the log.
    pub label: String,
}

/// A token as listed (never the secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    #[schema(example = "scim-3f9c2a7d1e5b8c40")]
    pub id: String,
    #[schema(example = "okta")]
    pub label: String,
    pub created_at: i64,
    /// The operator key that created it.
    pub created_by: String,
    pub revoked_at: Option<i64>,
}

/// A new token: `token` exists only in this answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer token to give the identity provider; shown once.
    #[schema(example = "lethe_scim_4b1e…")]
    pub token: String,
}

/// What `active: false` does to a tenant's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Deprovision {
    /// Deactivate (the default): reactivate undoes it.
    #[default]
    Deactivate,
    /// Lock: unlock undoes it.
    Lock,
}

impl Deprovision {
    pub fn as_str(self) -> &'static str {
        match self {
            Deprovision::Deactivate => "deactivate",
            Deprovision::Lock => "lock",
        }
    }

    fn parse(s: &str) -> Option<Deprovision> {
        [Deprovision::Deactivate, Deprovision::Lock]
            .into_iter()
            .find(|d| d.as_str() == s)
    }

    /// The lifecycle action `active: false` asks for.
    pub fn action(self) -> Action {
        match self {
            Deprovision::Deactivate => Action::Deactivate,
            Deprovision::Lock => Action::Lock,
        }
    }
}

/// A tenant's SCIM settings.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimSettings {
    /// What `active: false` runs through the policy.
    pub deprovision: Deprovision,
}

/// What became of a SCIM request, as logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    Read,
    Created,
    Updated,
    /// The profile and state were already as asked (a retried PATCH).
    Unchanged,
    Deprovisioned,
    Reprovisioned,
    Deleted,
    /// Queued for support; the identity provider was told 202.
    Escalated,
    /// The policy denied the action.
    Denied,
    /// Refused before anything ran (bad input, unknown user, a fault).
    Refused,
}

impl RequestOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Read => "read",
            RequestOutcome::Created => "created",
            RequestOutcome::Updated => "updated",
            RequestOutcome::Unchanged => "unchanged",
            RequestOutcome::Deprovisioned => "deprovisioned",
            RequestOutcome::Reprovisioned => "reprovisioned",
            RequestOutcome::Deleted => "deleted",
            RequestOutcome::Escalated => "escalated",
            RequestOutcome::Denied => "denied",
            RequestOutcome::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Option<RequestOutcome> {
        use RequestOutcome as O;
        [
            O::Read,
            O::Created,
            O::Updated,
            O::Unchanged,
            O::Deprovisioned,
            O::Reprovisioned,
            O::Deleted,
            O::Escalated,
            O::Denied,
            O::Refused,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One logged SCIM request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RequestEntry {
    pub id: String,
    /// `scim:<label>`.
    pub actor: String,
    pub token_id: String,
    pub method: String,
    pub path: String,
    pub user_id: Option<String>,
    pub status: u16,
    pub outcome: RequestOutcome,
    /// The lifecycle action it ran (see the audit and decision records).
    pub action_id: Option<String>,
    pub at: i64,
}

/// A request to log.
#[derive(Debug, Clone)]
pub struct Logged<'a> {
    pub idp: &'a IdentityProvider,
    pub method: &'a str,
    pub path: &'a str,
    pub user_id: Option<&'a str>,
    pub status: u16,
    pub outcome: RequestOutcome,
    pub action_id: Option<&'a str>,
    pub now_ms: i64,
}

/// Lethe's SCIM tables.
#[derive(Debug, Clone)]
pub struct ScimStore {
    db: Db,
}

impl ScimStore {
    pub fn new(db: Db) -> ScimStore {
        ScimStore { db }
    }

    /// Create a token for `tenant`'s identity provider `label`.
    pub async fn create_token(
        &self,
        tenant: &str,
        label: &str,
        by: &str,
        now: i64,
    ) -> Result<NewToken, DbError> {
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        let id = format!("scim-{}", hex::encode(rand::random::<[u8; 8]>()));
        sqlx::query(
            "INSERT INTO lethe_scim_tokens (id, tenant_id, sha256, label, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(hash_secret(&token))
        .bind(label)
        .bind(now)
        .bind(by)
        .execute(self.db.pool())
        .await?;
        Ok(NewToken {
            info: TokenInfo {
                id,
                label: label.to_owned(),
                created_at: now,
                created_by: by.to_owned(),
                revoked_at: None,
            },
            token,
        })
    }

    /// The identity provider `token` belongs to, or `None` for an unknown
    /// or revoked token. Looked up by hash, compared again in constant
    /// time (as API keys are).
    pub async fn authenticate(&self, token: &str) -> Result<Option<IdentityProvider>, DbError> {
        let hash = hash_secret(token);
        let row = sqlx::query(
            "SELECT sha256, id, tenant_id, label FROM lethe_scim_tokens \
             WHERE sha256 = $1 AND revoked_at IS NULL",
        )
        .bind(&hash)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = row.try_get(0)?;
        if !constant_time_eq(stored.as_bytes(), hash.as_bytes()) {
            return Ok(None);
        }
        Ok(Some(IdentityProvider {
            token_id: row.try_get(1)?,
            tenant: row.try_get(2)?,
            label: row.try_get(3)?,
        }))
    }

    /// The tenant's tokens, newest first, revoked ones included.
    pub async fn tokens(&self, tenant: &str) -> Result<Vec<TokenInfo>, DbError> {
        let rows = sqlx::query(
            "SELECT id, label, created_at, created_by, revoked_at FROM lethe_scim_tokens \
             WHERE tenant_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(tenant)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.try_get(0)?,
                    label: r.try_get(1)?,
                    created_at: r.try_get(2)?,
                    created_by: r.try_get(3)?,
                    revoked_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Revoke a token of `tenant`; `false` if it has no such live token.
    pub async fn revoke_token(&self, tenant: &str, id: &str, now: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE lethe_scim_tokens SET revoked_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(tenant)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn settings(&self, tenant: &str) -> Result<ScimSettings, DbError> {
        let row = sqlx::query("SELECT deprovision FROM lethe_scim_settings WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(self.db.pool())
            .await?;
        let deprovision = match row {
            Some(r) => {
                let s: String = r.try_get(0)?;
                Deprovision::parse(&s)
                    .ok_or_else(|| corrupt(format!("deprovision setting `{s}`")))?
            }
            None => Deprovision::default(),
        };
        Ok(ScimSettings { deprovision })
    }

    pub async fn set_settings(
        &self,
        tenant: &str,
        s: &ScimSettings,
        by: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO lethe_scim_settings (tenant_id, deprovision, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET \
             deprovision = excluded.deprovision, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
        )
        .bind(tenant)
        .bind(s.deprovision.as_str())
        .bind(now)
        .bind(by)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Log one request. A failure to log is reported, not raised: the
    /// request has been answered (and any change committed) already.
    pub async fn log(&self, e: &Logged<'_>) {
        crate::telemetry::scim_request(&e.idp.tenant, &e.idp.label, e.outcome.as_str());
        let id = format!("scimreq-{}", hex::encode(rand::random::<[u8; 12]>()));
        let done = sqlx::query(
            "INSERT INTO lethe_scim_requests (id, tenant_id, token_id, actor, method, path, user_id, \
             status, outcome, action_id, at, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(&e.idp.tenant)
        .bind(&e.idp.token_id)
        .bind(format!("scim:{}", e.idp.label))
        .bind(e.method)
        .bind(e.path)
        .bind(e.user_id.map(str::to_owned))
        .bind(i64::from(e.status))
        .bind(e.outcome.as_str())
        .bind(e.action_id.map(str::to_owned))
        .bind(e.now_ms / 1000)
        .bind(e.now_ms)
        .execute(self.db.pool())
        .await;
        if let Err(err) = done {
            tracing::error!(error = %err, method = e.method, path = e.path, "cannot log a SCIM request");
        }
    }

    /// The tenant's logged requests, newest first.
    pub async fn requests(&self, tenant: &str, limit: i64) -> Result<Vec<RequestEntry>, DbError> {
        let rows = sqlx::query(
            "SELECT id, actor, token_id, method, path, user_id, status, outcome, action_id, at \
             FROM lethe_scim_requests WHERE tenant_id = $1 ORDER BY created_ms DESC, id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let outcome: String = r.try_get(7)?;
                let status: i64 = r.try_get(6)?;
                Ok(RequestEntry {
                    id: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    token_id: r.try_get(2)?,
                    method: r.try_get(3)?,
                    path: r.try_get(4)?,
                    user_id: r.try_get(5)?,
                    status: u16::try_from(status).unwrap_or(0),
                    outcome: RequestOutcome::parse(&outcome)
                        .ok_or_else(|| corrupt(format!("request outcome `{outcome}`")))?,
                    action_id: r.try_get(8)?,
                    at: r.try_get(9)?,
                })
            })
            .collect()
    }
}
