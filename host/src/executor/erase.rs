//! Erase: the end of a user's personal data.
//!
//! The restore log is purged, references are pseudonymised (if the plan
//! says so) with a stable per-person pseudonym, what is left of the
//! subject's own rows loses its personal columns, and the profile is
//! scrubbed. Billing (keep-guarded) rows stay, so counts stay. Every step
//! is one statement for all the users of a group.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::effects::Apply;
use super::{CategoryEffect, ExecError};
use crate::contract::{LifecycleState, Plan, ProfilePlan, References};
use crate::platform::references::Named;
use crate::platform::restore_log::LoggedOp;
use crate::platform::Sql;

impl Apply<'_> {
    /// Erase the members. Each member's `delete_action_id` is the delete
    /// whose restore log is still kept (a user has at most one: restore
    /// consumes it, erase purges it). `identities` are each member's
    /// identifying strings ([`Apply::identities`]), in member order.
    pub async fn erase(
        &mut self,
        plan: &Plan,
        identities: &[Vec<String>],
    ) -> Result<(), ExecError> {
        self.log = None;
        let logs: Vec<&str> = self
            .members
            .iter()
            .filter_map(|m| m.delete_action_id)
            .collect();
        if !logs.is_empty() {
            let mut q = Sql::new();
            let ids = q.texts(logs.iter().copied());
            q.push(&format!(
                "DELETE FROM lethe_restore_log WHERE action_id IN ({ids})"
            ));
            let n = q.execute(self.conn).await?;
            tracing::debug!(rows = n, "restore log purged");
        }
        let p = self.p;
        if plan.references == References::Pseudonymise && !p.map().references.is_empty() {
            let pseudonyms = self.pseudonyms().await?;
            let named: Vec<Named<'_>> = self
                .members
                .iter()
                .zip(&pseudonyms)
                .zip(identities)
                .map(|((m, pseudonym), identity)| Named {
                    user: m.user,
                    pseudonym,
                    identity,
                })
                .collect();
            let rewritten = p
                .pseudonymise_references(self.conn, self.tenant, &named)
                .await?;
            for (e, n) in self.effects.iter_mut().zip(rewritten) {
                e.references_pseudonymised += n;
            }
        }
        // What is left of the members' own rows loses its personal columns.
        for c in &p.map().categories {
            if c.personal.is_empty() || p.map().is_kept(&c.table) {
                continue;
            }
            let each = self.anonymise(c).await?;
            for (effects, n) in self.effects.iter_mut().zip(each) {
                if n == 0 {
                    continue;
                }
                match effects.categories.iter_mut().find(|e| e.category == c.name) {
                    Some(e) => e.anonymised += n,
                    None => effects.categories.push(CategoryEffect {
                        category: c.name.clone(),
                        disposition: None,
                        anonymised: n,
                        ..Default::default()
                    }),
                }
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

    /// Each member's identifying strings (name, email, phone… as they are
    /// now and as the restore log of their kept delete remembers them), to
    /// be removed from references on erase. Scrub values are not identity.
    pub async fn identities(&mut self, plan: &Plan) -> Result<Vec<Vec<String>>, ExecError> {
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
        // The profiles now, all members in one query; what the restore
        // logs of their kept deletes remember, in one more.
        let mut current = self
            .p
            .users_columns(self.conn, self.tenant, &self.users, &cols)
            .await?
            .into_iter();
        let logs: Vec<&str> = self
            .members
            .iter()
            .filter_map(|m| m.delete_action_id)
            .collect();
        let mut remembered: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        if !logs.is_empty() {
            let mut q = Sql::new();
            let ids = q.texts(logs.iter().copied());
            let table = q.text(u.table.as_str());
            let op = q.text(LoggedOp::Update.as_str());
            q.push(&format!(
                "SELECT user_id, row_key, data FROM lethe_restore_log WHERE action_id IN ({ids}) \
                 AND table_name = {table} AND op = {op}"
            ));
            for row in q.fetch_all(self.conn).await? {
                let (user, key, data): (String, String, String) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                if user != key {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&data)
                    .map_err(|e| ExecError::Corrupt(format!("restore log data: {e}")))?;
                let values = remembered.entry(user).or_default();
                for c in &cols {
                    if let Some(s) = v.get(*c).and_then(|x| x.as_str()) {
                        values.push(s.to_owned());
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(self.members.len());
        for m in self.members {
            let mut values: Vec<String> = current
                .next()
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect();
            if m.delete_action_id.is_some() {
                values.extend(remembered.remove(m.user).unwrap_or_default());
            }
            values.retain(|v| v.chars().count() >= 3 && !not_identity.contains(v));
            values.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            values.dedup();
            out.push(values);
        }
        Ok(out)
    }

    /// Each member's stable pseudonym, in member order: derived from tenant
    /// and id (so the same person always gets the same one) and registered
    /// under a UNIQUE constraint (so two people can never share one). One
    /// read for those already registered, one insert for the rest.
    async fn pseudonyms(&mut self) -> Result<Vec<String>, ExecError> {
        let tenant = self.tenant;
        let mut q = Sql::new();
        let t = q.text(tenant);
        let ids = q.texts(self.users.iter().copied());
        q.push(&format!(
            "SELECT user_id, pseudonym FROM lethe_pseudonyms WHERE tenant_id = {t} AND user_id IN ({ids})"
        ));
        let mut known = std::collections::HashMap::new();
        for row in q.fetch_all(self.conn).await? {
            known.insert(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
        }
        let mut out = Vec::with_capacity(self.members.len());
        let mut q = Sql::new();
        let mut fresh = Vec::new();
        for m in self.members {
            match known.get(m.user) {
                Some(p) => out.push(p.clone()),
                None => {
                    let p = pseudonym_for(tenant, m.user);
                    fresh.push(format!(
                        "({}, {}, {})",
                        q.text(tenant),
                        q.text(m.user),
                        q.text(p.as_str())
                    ));
                    out.push(p);
                }
            }
        }
        if !fresh.is_empty() {
            q.push(&format!(
                "INSERT INTO lethe_pseudonyms (tenant_id, user_id, pseudonym) VALUES {}",
                fresh.join(", ")
            ));
            q.execute(self.conn).await?;
        }
        Ok(out)
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
