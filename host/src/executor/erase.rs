//! Erase: the end of a user's personal data.
//!
//! The restore log is purged, references are pseudonymised (if the plan
//! says so) with a stable per-person pseudonym, what is left of the
//! subject's own rows loses its personal columns, and the profile is
//! scrubbed. Billing (keep-guarded) rows stay, so counts stay.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::effects::Apply;
use super::{CategoryEffect, ExecError};
use crate::contract::{LifecycleState, Plan, ProfilePlan, References};
use crate::platform::restore_log::LoggedOp;

impl Apply<'_> {
    /// Erase the subject. `log` is the delete whose restore log is still
    /// kept (a user has at most one: restore consumes it, erase purges it).
    pub async fn erase(
        &mut self,
        plan: &Plan,
        identity: &[String],
        log: Option<&str>,
    ) -> Result<(), ExecError> {
        self.log = None;
        if let Some(action_id) = log {
            let n = sqlx::query("DELETE FROM lethe_restore_log WHERE action_id = $1")
                .bind(action_id)
                .execute(&mut *self.conn)
                .await?
                .rows_affected();
            tracing::debug!(rows = n, "restore log purged");
        }
        let p = self.p;
        if plan.references == References::Pseudonymise && !p.map().references.is_empty() {
            let pseudonym = self.pseudonym().await?;
            self.effects.references_pseudonymised += p
                .pseudonymise_references(self.conn, self.owner, &pseudonym, identity)
                .await?;
        }
        // What is left of the subject's own rows loses its personal columns.
        for c in &p.map().categories {
            if c.personal.is_empty() || p.map().is_kept(&c.table) {
                continue;
            }
            let n = self.anonymise(c).await?;
            if n == 0 {
                continue;
            }
            let effects = &mut self.effects.categories;
            match effects.iter_mut().find(|e| e.category == c.name) {
                Some(e) => e.anonymised += n,
                None => effects.push(CategoryEffect {
                    category: c.name.clone(),
                    disposition: None,
                    anonymised: n,
                    ..Default::default()
                }),
            }
        }
        let u = &p.map().users;
        let name = match &plan.profile {
            ProfilePlan::Scrub(s) => s.clone(),
            ProfilePlan::Keep => u
                .personal
                .iter()
                .find(|p| p.column == u.display_name)
                .and_then(|p| p.scrub.clone())
                .unwrap_or_else(|| "(erased user)".into()),
        };
        self.scrub_profile(&name).await?;
        self.set_state(LifecycleState::Erased).await?;
        Ok(())
    }

    /// The strings that identify the subject (name, email, phone… as they
    /// are now and as the restore log of delete `log` remembers them), to
    /// be removed from references on erase. Scrub values are not identity.
    pub async fn identity(
        &mut self,
        plan: &Plan,
        log: Option<&str>,
    ) -> Result<Vec<String>, ExecError> {
        let u = &self.p.map().users;
        let mut cols: Vec<&str> = u.personal.iter().map(|p| p.column.as_str()).collect();
        if !cols.contains(&u.display_name.as_str()) {
            cols.push(&u.display_name);
        }
        let mut not_identity: Vec<String> =
            u.personal.iter().filter_map(|p| p.scrub.clone()).collect();
        if let ProfilePlan::Scrub(s) = &plan.profile {
            not_identity.push(s.clone());
        }
        let mut values: Vec<String> = self
            .p
            .user_columns(self.conn, self.owner.tenant, self.owner.user, &cols)
            .await?
            .into_iter()
            .flatten()
            .collect();
        if let Some(action_id) = log {
            let logged = sqlx::query(
                "SELECT data FROM lethe_restore_log WHERE action_id = $1 AND table_name = $2 \
                 AND row_key = $3 AND op = $4",
            )
            .bind(action_id)
            .bind(&u.table)
            .bind(self.owner.user)
            .bind(LoggedOp::Update.as_str())
            .fetch_all(&mut *self.conn)
            .await?;
            for row in logged {
                let data: String = row.try_get(0)?;
                let v: serde_json::Value = serde_json::from_str(&data)
                    .map_err(|e| ExecError::Corrupt(format!("restore log data: {e}")))?;
                for c in &cols {
                    if let Some(s) = v.get(*c).and_then(|x| x.as_str()) {
                        values.push(s.to_owned());
                    }
                }
            }
        }
        values.retain(|v| v.chars().count() >= 3 && !not_identity.contains(v));
        values.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        values.dedup();
        Ok(values)
    }

    /// The subject's stable pseudonym: derived from tenant and id (so the
    /// same person always gets the same one) and registered under a UNIQUE
    /// constraint (so two people can never share one).
    async fn pseudonym(&mut self) -> Result<String, ExecError> {
        let (tenant, user) = (self.owner.tenant, self.owner.user);
        let existing = sqlx::query(
            "SELECT pseudonym FROM lethe_pseudonyms WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant)
        .bind(user)
        .fetch_optional(&mut *self.conn)
        .await?;
        if let Some(row) = existing {
            return Ok(row.try_get(0)?);
        }
        let p = pseudonym_for(tenant, user);
        sqlx::query(
            "INSERT INTO lethe_pseudonyms (tenant_id, user_id, pseudonym) VALUES ($1, $2, $3)",
        )
        .bind(tenant)
        .bind(user)
        .bind(&p)
        .execute(&mut *self.conn)
        .await?;
        Ok(p)
    }
}

/// `erased-` and 80 bits of sha256(tenant, user): stable per person. The
/// UNIQUE constraint on `lethe_pseudonyms` turns the (astronomically
/// unlikely) collision into an error instead of merging two people.
pub fn pseudonym_for(tenant: &str, user: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(user.as_bytes());
    let digest = h.finalize();
    format!("erased-{}", hex::encode(&digest[..10]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_and_distinct() {
        assert_eq!(pseudonym_for("t1", "u1"), pseudonym_for("t1", "u1"));
        assert_ne!(pseudonym_for("t1", "u1"), pseudonym_for("t1", "u2"));
        assert_ne!(pseudonym_for("t1", "u1"), pseudonym_for("t2", "u1"));
        // The separator keeps ("t1","1u") and ("t11","u") apart.
        assert_ne!(pseudonym_for("t1", "1u"), pseudonym_for("t11", "u"));
    }
}
