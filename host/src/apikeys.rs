//! Bearer API keys: who may call the HTTP API, and for which tenant.
//!
//! A key is a random secret printed once by `lethe keys create`; only its
//! sha256 is stored (in `lethe_api_keys`, shared by every host on the
//! database, or as a hash in the config file). A presented key is hashed and
//! compared in constant time, so neither the table nor the timing of a
//! failed attempt tells an attacker anything about a valid secret.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{Db, DbError};

/// Who a valid key speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A tenant's integration: sees and acts on that tenant only.
    Tenant(String),
    /// The platform's support staff: works the escalation queue of every
    /// tenant.
    Support,
    /// A platform operator: manages tenants and deploys their policies.
    /// Holds the key's id (or `lethe.toml` for a configured hash), which
    /// deployment records name as who did it.
    Operator(String),
}

/// A freshly created key. `secret` exists only here; it is never stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub secret: String,
    pub principal: Principal,
}

/// `lethe_api_keys.role` of an operator key.
const OPERATOR_ROLE: &str = "operator";

/// The prefix makes a leaked secret recognisable by secret scanners.
const SECRET_PREFIX: &str = "lethe_";

/// sha256 of a secret, as lowercase hex: what the table and the config hold.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Byte-wise comparison whose time does not depend on where the inputs
/// first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Create a key for `principal` and store its hash.
pub async fn create(
    db: &Db,
    principal: Principal,
    label: Option<&str>,
    now: i64,
) -> Result<NewKey, DbError> {
    let secret = format!("{SECRET_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
    let id = format!("key-{}", hex::encode(rand::random::<[u8; 8]>()));
    let (tenant, role) = match &principal {
        Principal::Tenant(t) => (Some(t.clone()), None),
        Principal::Support => (None, None),
        Principal::Operator(_) => (None, Some(OPERATOR_ROLE)),
    };
    let principal = match principal {
        Principal::Operator(_) => Principal::Operator(id.clone()),
        other => other,
    };
    sqlx::query(
        "INSERT INTO lethe_api_keys (id, sha256, tenant_id, label, created_at, role) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(hash_secret(&secret))
    .bind(tenant)
    .bind(label.map(str::to_owned))
    .bind(now)
    .bind(role)
    .execute(db.pool())
    .await?;
    Ok(NewKey {
        id,
        secret,
        principal,
    })
}

/// Hashes accepted from the config file, besides the table.
#[derive(Debug, Clone, Default)]
pub struct StaticKeys {
    entries: Vec<(Vec<u8>, Principal)>,
}

impl StaticKeys {
    pub fn new(config: &crate::config::Config) -> StaticKeys {
        let mut entries = Vec::new();
        for h in &config.support_key_sha256 {
            entries.push((
                h.trim().to_ascii_lowercase().into_bytes(),
                Principal::Support,
            ));
        }
        for h in &config.operator_key_sha256 {
            entries.push((
                h.trim().to_ascii_lowercase().into_bytes(),
                Principal::Operator("lethe.toml".into()),
            ));
        }
        for t in &config.tenants {
            for h in &t.api_key_sha256 {
                entries.push((
                    h.trim().to_ascii_lowercase().into_bytes(),
                    Principal::Tenant(t.id.clone()),
                ));
            }
        }
        StaticKeys { entries }
    }

    /// Compares against every entry, without stopping at a match.
    fn find(&self, hash: &str) -> Option<Principal> {
        let mut found = None;
        for (h, p) in &self.entries {
            if constant_time_eq(h, hash.as_bytes()) && found.is_none() {
                found = Some(p.clone());
            }
        }
        found
    }
}

/// Who `secret` belongs to, or `None` for an unknown or revoked key.
pub async fn authenticate(
    db: &Db,
    statics: &StaticKeys,
    secret: &str,
) -> Result<Option<Principal>, DbError> {
    authenticate_hash(db, statics, &hash_secret(secret)).await
}

/// Who the key whose sha256 is `hash` belongs to, or `None` for an unknown
/// or revoked key. A console session keeps only its key's hash and asks
/// again at every request, so revoking the key ends the session.
pub async fn authenticate_hash(
    db: &Db,
    statics: &StaticKeys,
    hash: &str,
) -> Result<Option<Principal>, DbError> {
    let hash = hash.to_owned();
    if let Some(p) = statics.find(&hash) {
        return Ok(Some(p));
    }
    // The lookup is by hash: the index reveals nothing about the secret,
    // and the stored hash is compared again in constant time.
    let row = sqlx::query(
        "SELECT sha256, tenant_id, role, id FROM lethe_api_keys WHERE sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(&hash)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored: String = row.try_get(0)?;
    if !constant_time_eq(stored.as_bytes(), hash.as_bytes()) {
        return Ok(None);
    }
    let tenant: Option<String> = row.try_get(1)?;
    let role: Option<String> = row.try_get(2)?;
    Ok(Some(match (tenant, role.as_deref()) {
        (None, Some(OPERATOR_ROLE)) => Principal::Operator(row.try_get(3)?),
        (Some(t), _) => Principal::Tenant(t),
        (None, _) => Principal::Support,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn static_keys_map_hashes_to_principals() {
        let cfg: crate::config::Config = toml::from_str(&format!(
            "database_url = \"sqlite::memory:\"\ndatamap = \"d\"\nsupport_key_sha256 = [\"{}\"]\n\
             [[tenant]]\nid = \"t1\"\npolicy = \"p\"\napi_key_sha256 = [\"{}\"]\n",
            hash_secret("s"),
            hash_secret("t").to_uppercase()
        ))
        .unwrap();
        let keys = StaticKeys::new(&cfg);
        assert_eq!(keys.find(&hash_secret("s")), Some(Principal::Support));
        assert_eq!(
            keys.find(&hash_secret("t")),
            Some(Principal::Tenant("t1".into()))
        );
        assert_eq!(keys.find(&hash_secret("x")), None);
    }
}
