//! Console sessions: a person signs in with an API key and gets a
//! server-side session behind an HttpOnly, SameSite=Strict cookie.
//!
//! The table keeps the sha256 of the cookie's value (a stolen database
//! opens no session) and of the API key (each request asks the key store
//! again, so revoking the key ends its sessions). Every form carries the
//! session's CSRF token; a session idle longer than its limit is over.

use serde::Deserialize;
use sqlx::Row;

use crate::apikeys::{self, constant_time_eq, hash_secret, Principal, StaticKeys};
use crate::db::{Db, DbError};

/// The cookie's name.
pub const COOKIE: &str = "lethe_console";

/// `[console]` in `lethe.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// A session unused this long is over.
    pub idle_minutes: u64,
    /// Mark the cookie `Secure` (serve the console over TLS, directly or
    /// behind a proxy, and set this).
    pub secure_cookie: bool,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            idle_minutes: 30,
            secure_cookie: false,
        }
    }
}

/// Who a session speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A tenant admin: the tenant, and the tenant user they act as.
    Tenant { tenant: String, actor: String },
    /// A support agent, by the name approvals record.
    Support { agent: String },
    /// An operator key's holder, by the key's id (what deployment
    /// records name).
    Operator { key: String },
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    pub csrf: String,
    hash: String,
}

impl Session {
    /// Is `token` this session's CSRF token?
    pub fn csrf_ok(&self, token: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), token.as_bytes())
    }
}

/// The sessions table.
#[derive(Debug, Clone)]
pub struct Sessions {
    db: Db,
    keys: StaticKeys,
    pub settings: ConsoleSettings,
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    pub fn new(db: Db, keys: StaticKeys, settings: ConsoleSettings) -> Sessions {
        Sessions { db, keys, settings }
    }

    /// Open a session for the holder of `key` as `role`, if `key` is
    /// valid and `role` is the key's. Returns the cookie value.
    pub async fn open(&self, key: &str, role: &Role, now: i64) -> Result<String, DbError> {
        let cookie = random_hex();
        let (name, tenant, actor, agent) = match role {
            Role::Tenant { tenant, actor } => ("tenant", Some(tenant), Some(actor), None),
            Role::Support { agent } => ("support", None, None, Some(agent)),
            Role::Operator { key } => ("operator", None, None, Some(key)),
        };
        sqlx::query(
            "INSERT INTO lethe_console_sessions (sha256, key_sha256, role, tenant_id, actor_id, agent, \
             csrf, created_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(hash_secret(&cookie))
        .bind(hash_secret(key))
        .bind(name)
        .bind(tenant.cloned())
        .bind(actor.cloned())
        .bind(agent.cloned())
        .bind(random_hex())
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(cookie)
    }

    /// The session of a cookie value, if it is live: not ended, not idle
    /// too long, and its key still valid for the same role. A live
    /// session's idle clock restarts.
    pub async fn find(&self, cookie: &str, now: i64) -> Result<Option<Session>, DbError> {
        let hash = hash_secret(cookie);
        let idle_limit = now - (self.settings.idle_minutes as i64) * 60;
        let row = sqlx::query(
            "SELECT key_sha256, role, tenant_id, actor_id, agent, csrf FROM lethe_console_sessions \
             WHERE sha256 = $1 AND ended_at IS NULL AND last_seen >= $2",
        )
        .bind(&hash)
        .bind(idle_limit)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let key_hash: String = row.try_get(0)?;
        let role: String = row.try_get(1)?;
        let tenant: Option<String> = row.try_get(2)?;
        let actor: Option<String> = row.try_get(3)?;
        let agent: Option<String> = row.try_get(4)?;
        let principal = apikeys::authenticate_hash(&self.db, &self.keys, &key_hash).await?;
        let role = match (role.as_str(), principal, tenant, actor, agent) {
            ("tenant", Some(Principal::Tenant(t)), Some(tenant), Some(actor), _) if t == tenant => {
                Role::Tenant { tenant, actor }
            }
            ("support", Some(Principal::Support), _, _, Some(agent)) => Role::Support { agent },
            ("operator", Some(Principal::Operator(key)), _, _, _) => Role::Operator { key },
            // Revoked, or no longer the role it was: over.
            _ => {
                self.end(cookie, now).await?;
                return Ok(None);
            }
        };
        sqlx::query("UPDATE lethe_console_sessions SET last_seen = $1 WHERE sha256 = $2")
            .bind(now)
            .bind(&hash)
            .execute(self.db.pool())
            .await?;
        Ok(Some(Session {
            role,
            csrf: row.try_get(5)?,
            hash,
        }))
    }

    /// Sign out.
    pub async fn end(&self, cookie: &str, now: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE lethe_console_sessions SET ended_at = $1 WHERE sha256 = $2")
            .bind(now)
            .bind(hash_secret(cookie))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// End `s` (by its stored hash, when the cookie is not at hand).
    pub async fn end_session(&self, s: &Session, now: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE lethe_console_sessions SET ended_at = $1 WHERE sha256 = $2")
            .bind(now)
            .bind(&s.hash)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The users `s` has selected, in key order.
    pub async fn selection(&self, s: &Session) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT user_id FROM lethe_console_selections WHERE session_sha256 = $1 ORDER BY user_id",
        )
        .bind(&s.hash)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// Select `add` and unselect `remove`, in one transaction.
    pub async fn select(
        &self,
        s: &Session,
        add: &[String],
        remove: &[String],
    ) -> Result<(), DbError> {
        let mut tx = self.db.begin_write().await?;
        for user in remove {
            sqlx::query(
                "DELETE FROM lethe_console_selections WHERE session_sha256 = $1 AND user_id = $2",
            )
            .bind(&s.hash)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        }
        for user in add {
            sqlx::query(
                "INSERT INTO lethe_console_selections (session_sha256, user_id) VALUES ($1, $2) \
                 ON CONFLICT (session_sha256, user_id) DO NOTHING",
            )
            .bind(&s.hash)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Unselect everything.
    pub async fn clear_selection(&self, s: &Session) -> Result<(), DbError> {
        sqlx::query("DELETE FROM lethe_console_selections WHERE session_sha256 = $1")
            .bind(&s.hash)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Who `key` belongs to.
    pub async fn principal(&self, key: &str) -> Result<Option<Principal>, DbError> {
        apikeys::authenticate(&self.db, &self.keys, key).await
    }
}
