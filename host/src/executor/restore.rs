//! Restore: undo a delete inside its window from its restore log.
//!
//! Conflicts are checked first and change nothing (the transaction is
//! dropped): the email the user would get back now belongs to another live
//! user, or a transferred row changed owner or vanished since. Then the
//! steps are replayed last-first and the log is consumed.

use sqlx::Row;

use super::effects::Apply;
use super::{ExecError, RestoreConflict};
use crate::platform::restore_log::{LoggedOp, LoggedStep};

/// A logged step as summarised for planning the replay.
struct Planned {
    step: LoggedStep,
    /// The step is a transfer (its rows carry an `expect`).
    transfer: bool,
}

impl Apply<'_> {
    /// Undo the delete `action_id`.
    pub async fn restore(&mut self, action_id: &str) -> Result<(), ExecError> {
        let plan = self.replay_plan(action_id).await?;
        if plan.is_empty() {
            return Err(RestoreConflict::NoRestoreLog.into());
        }
        self.check_email(action_id, &plan).await?;
        for s in plan.iter().filter(|s| s.transfer) {
            if let Some(row) = self.p.moved_since(self.conn, action_id, &s.step).await? {
                return Err(RestoreConflict::TransferredRowMoved {
                    table: s.step.table.clone(),
                    row,
                }
                .into());
            }
        }
        for s in &plan {
            let n = self.p.replay(self.conn, action_id, &s.step).await?;
            for e in &mut self.effects {
                e.rows_restored += n;
            }
        }
        sqlx::query("DELETE FROM lethe_restore_log WHERE action_id = $1")
            .bind(action_id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// The log's steps, last first, each with the columns it saved (read
    /// from one sample row).
    async fn replay_plan(&mut self, action_id: &str) -> Result<Vec<Planned>, ExecError> {
        let steps = sqlx::query(
            "SELECT step, table_name, op, MIN(data), COUNT(expect) FROM lethe_restore_log WHERE action_id = $1 \
             GROUP BY step, table_name, op ORDER BY step DESC",
        )
        .bind(action_id)
        .fetch_all(&mut *self.conn)
        .await?;
        let mut plan = Vec::with_capacity(steps.len());
        for row in steps {
            let sample: String = row.try_get(3)?;
            let v: serde_json::Value = serde_json::from_str(&sample)
                .map_err(|e| ExecError::Corrupt(format!("restore log data: {e}")))?;
            let columns = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            let op: String = row.try_get(2)?;
            plan.push(Planned {
                step: LoggedStep {
                    step: row.try_get(0)?,
                    table: row.try_get(1)?,
                    op: op.parse::<LoggedOp>()?,
                    columns,
                },
                transfer: row.try_get::<i64, _>(4)? > 0,
            });
        }
        Ok(plan)
    }

    /// Refuse when the email the user would get back (as the log
    /// remembers it, or as it is now) belongs to another live user.
    async fn check_email(&mut self, action_id: &str, plan: &[Planned]) -> Result<(), ExecError> {
        let p = self.p;
        let u = &p.map().users;
        let (tenant, user) = (self.tenant, self.only()?.user);
        let mut email: Option<String> = None;
        for s in plan
            .iter()
            .filter(|s| s.step.table == u.table && s.step.columns.contains(&u.email))
        {
            let row = sqlx::query(
                "SELECT data FROM lethe_restore_log WHERE action_id = $1 AND step = $2 AND row_key = $3",
            )
            .bind(action_id)
            .bind(s.step.step)
            .bind(user)
            .fetch_optional(&mut *self.conn)
            .await?;
            if let Some(row) = row {
                let data: String = row.try_get(0)?;
                let v: serde_json::Value = serde_json::from_str(&data)
                    .map_err(|e| ExecError::Corrupt(format!("restore log data: {e}")))?;
                email = v.get(&u.email).and_then(|e| e.as_str()).map(str::to_owned);
            }
        }
        if email.is_none() {
            email = p
                .user_columns(self.conn, tenant, user, &[u.email.as_str()])
                .await?
                .into_iter()
                .next()
                .flatten();
        }
        if let Some(email) = email {
            if let Some(other) = p.email_holder(self.conn, tenant, &email, user).await? {
                return Err(RestoreConflict::EmailTaken { other }.into());
            }
        }
        Ok(())
    }
}
