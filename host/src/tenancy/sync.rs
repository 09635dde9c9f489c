//! Following the database's active versions, so an activation on any
//! replica is served by all of them.
//!
//! Every activation bumps one counter (`lethe_policy_generation`) in its
//! transaction. Each replica reads that one row every [`POLL`] and re-reads
//! the active set only when it moved: a sub-millisecond query five times a
//! second, the same on SQLite and PostgreSQL, and nothing to lose when a
//! connection drops (a missed LISTEN/NOTIFY message would need exactly this
//! poll as its fallback). Propagation is bounded by `POLL` plus the time to
//! load the new version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shadow::ShadowSlot;
use super::{Slot, TenantPolicies};
use crate::clock::unix_now;
use crate::db::DbError;
use crate::deploy::store;

/// How often a replica checks for activations.
pub const POLL: Duration = Duration::from_millis(200);
/// How often a replica tells operators it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Re-reads the active versions and swaps the slots that changed. A
/// tenant that already had a version on this replica gets the new one
/// loaded before the swap, and keeps the old one if it does not load; a
/// tenant new to this replica loads on first use.
pub async fn sync(policies: &TenantPolicies) -> Result<(), DbError> {
    let Some(st) = &policies.inner.store else {
        return Ok(());
    };
    let _one_at_a_time = policies.inner.syncing.lock().await;
    let active = store::active_set(&st.db).await?;
    let shadows = store::shadow_set(&st.db).await?;
    let current = policies.read().clone();
    let mut next = HashMap::with_capacity(active.len());
    for (tenant, version) in active {
        let old = current.get(&tenant).cloned().flatten();
        let slot = match (old, version) {
            (_, None) => None,
            (Some(old), Some((v, _))) if old.version == Some(v) => Some(old),
            (old, Some((v, sha256))) => {
                let slot = Arc::new(Slot {
                    tenant: tenant.clone(),
                    version: Some(v),
                    sha256,
                    policy: tokio::sync::OnceCell::new(),
                });
                match old {
                    None => Some(slot),
                    Some(old) => match policies.loaded(&slot).await {
                        Ok(_) => {
                            tracing::info!(%tenant, from = ?old.version, to = v, "policy version switched");
                            Some(slot)
                        }
                        Err(fault) => {
                            tracing::error!(%tenant, version = v, %fault, "staying on the previous version");
                            Some(old)
                        }
                    },
                }
            }
        };
        next.insert(tenant, slot);
    }
    *policies
        .inner
        .tenants
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = next;
    let mut shadow_slots = policies
        .inner
        .shadows
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let kept = std::mem::take(&mut *shadow_slots);
    for (tenant, version, sha256) in shadows {
        let slot = match kept.get(&tenant) {
            Some(s) if s.version == version && s.sha256 == sha256 => s.clone(),
            _ => Arc::new(ShadowSlot::new(version, sha256)),
        };
        shadow_slots.insert(tenant, slot);
    }
    Ok(())
}

/// Follows activations and sends heartbeats until `stop` turns true.
pub async fn follow(policies: TenantPolicies, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(st) = &policies.inner.store else {
        return;
    };
    let started = unix_now();
    let mut seen = None;
    let mut last_beat: Option<Instant> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if last_beat.is_none_or(|at| at.elapsed() >= HEARTBEAT) {
            let now_ms = unix_now().saturating_mul(1000);
            match store::heartbeat(&st.db, &st.replica, started, now_ms).await {
                Ok(()) => last_beat = Some(Instant::now()),
                Err(e) => tracing::warn!(error = %e, "replica heartbeat failed"),
            }
        }
        let generation = match store::generation(&st.db).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the policy generation");
                continue;
            }
        };
        if seen == Some(generation) {
            continue;
        }
        match sync(&policies).await {
            Ok(()) => seen = Some(generation),
            Err(e) => tracing::warn!(error = %e, "cannot read the active policy versions"),
        }
    }
}

/// Loads every tenant's active version now rather than on first use, one
/// at a time (compiling is CPU-bound), so that the first decisions after a
/// start do not pay for it.
pub async fn warm_up(policies: TenantPolicies) {
    let start = Instant::now();
    let slots: Vec<Arc<Slot>> = policies.read().values().flatten().cloned().collect();
    let mut failed = 0;
    for slot in &slots {
        if policies.loaded(slot).await.is_err() {
            failed += 1;
        }
    }
    tracing::info!(
        tenants = slots.len(),
        failed,
        elapsed_ms = start.elapsed().as_millis() as u64,
        "policies warmed up"
    );
}
