//! Idempotency keys: a retried action with the same key (per tenant)
//! applies once and returns the first result, marked `replayed`. The key,
//! a fingerprint of the request and the result are stored in the action's
//! own transaction, so a crash loses all or none. The same key with another
//! request (another action, subject, actor or option) is refused, naming
//! the first action: answering it with the first result would tell the
//! caller that something happened which did not.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use super::{ActionInput, ActionReport, ActorRef, ExecError};

/// sha256 of what makes two requests the same request (not `now`: a retry
/// is later by definition).
fn fingerprint(input: &ActionInput) -> String {
    let actor = match &input.actor {
        ActorRef::TenantUser(id) => format!("user:{id}"),
        ActorRef::Support(id) => format!("support:{id}"),
        ActorRef::System | ActorRef::IdentityProvider(_) => input.actor.id(),
    };
    let canonical = serde_json::json!([
        input.action,
        input.subject,
        actor,
        input.transfer_to,
        input.reason,
        input.dry_run,
        input.bulk,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// The first result of `input`'s idempotency key, marked `replayed`; an
/// error if the key was first used for another request.
pub(super) async fn first_result(
    conn: &mut AnyConnection,
    input: &ActionInput,
) -> Result<Option<ActionReport>, ExecError> {
    let Some(key) = &input.idempotency_key else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT response_json, request_sha256, action_id FROM lethe_idempotency WHERE tenant_id = $1 AND idem_key = $2",
    )
    .bind(&input.tenant)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let first: Option<String> = row.try_get(1)?;
    if first.is_some_and(|f| f != fingerprint(input)) {
        return Err(ExecError::IdempotencyKeyReused {
            key: key.clone(),
            action_id: row.try_get(2)?,
        });
    }
    let json: String = row.try_get(0)?;
    let mut report: ActionReport = serde_json::from_str(&json)
        .map_err(|e| ExecError::Corrupt(format!("idempotent response: {e}")))?;
    report.replayed = true;
    Ok(Some(report))
}

/// Remember `report` as the result of `input`'s idempotency key, if any.
pub(super) async fn remember(
    conn: &mut AnyConnection,
    input: &ActionInput,
    report: &ActionReport,
) -> Result<(), ExecError> {
    let Some(key) = &input.idempotency_key else {
        return Ok(());
    };
    let json = serde_json::to_string(report).map_err(|source| ExecError::Encode {
        what: "the action report",
        source,
    })?;
    sqlx::query(
        "INSERT INTO lethe_idempotency (tenant_id, idem_key, action_id, response_json, request_sha256) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&input.tenant)
    .bind(key)
    .bind(&report.action_id)
    .bind(&json)
    .bind(fingerprint(input))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
