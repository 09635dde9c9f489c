//! Idempotency keys: a retried action with the same key (per tenant)
//! applies once and returns the first result. The key and the result are
//! stored in the action's own transaction, so a crash loses both or
//! neither.

use sqlx::{AnyConnection, Row};

use super::{ActionInput, ActionReport, ExecError};

/// The first result of `input`'s idempotency key, marked `replayed`.
pub(super) async fn first_result(
    conn: &mut AnyConnection,
    input: &ActionInput,
) -> Result<Option<ActionReport>, ExecError> {
    let Some(key) = &input.idempotency_key else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT response_json FROM lethe_idempotency WHERE tenant_id = $1 AND idem_key = $2",
    )
    .bind(&input.tenant)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
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
        "INSERT INTO lethe_idempotency (tenant_id, idem_key, action_id, response_json) VALUES ($1, $2, $3, $4)",
    )
    .bind(&input.tenant)
    .bind(key)
    .bind(&report.action_id)
    .bind(&json)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
