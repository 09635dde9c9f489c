//! Shadow evaluation on this replica: when a tenant has a shadow version,
//! every live decision is offered to a bounded queue after it is made, and
//! one background task decides the same request with the shadow, compares
//! ([`crate::deploy::replay::compare`]) and counts; disagreements are
//! recorded. A full queue drops the offer and counts the drop: a real
//! decision never waits for its shadow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Store;
use crate::clock::unix_now;
use crate::contract::{Decision, Request};
use crate::deploy::replay::{compare, Difference};
use crate::deploy::shadow::{Disagreement, ShadowAnswer, ShadowCounts};
use crate::deploy::store;
use crate::policy::Policy;

/// Offers waiting for the shadow, across tenants.
pub const QUEUE: usize = 1024;
/// Disagreements recorded per tenant and shadow version on one replica;
/// the counts go on beyond.
pub const RECORDED: usize = 100;
/// How often the counts are written for operators.
const FLUSH: Duration = Duration::from_secs(1);

/// A tenant's shadow version on this replica, loaded on its first offer.
pub(super) struct ShadowSlot {
    pub(super) version: i64,
    pub(super) sha256: String,
    policy: tokio::sync::OnceCell<Policy>,
}

impl ShadowSlot {
    pub(super) fn new(version: i64, sha256: String) -> ShadowSlot {
        ShadowSlot {
            version,
            sha256,
            policy: tokio::sync::OnceCell::new(),
        }
    }
}

/// One live decision, offered to the shadow.
pub(super) struct Offer {
    pub(super) tenant: String,
    pub(super) slot: Arc<ShadowSlot>,
    pub(super) live_version: Option<i64>,
    pub(super) request: Request,
    pub(super) live: Decision,
}

type Counts = Arc<Mutex<HashMap<(String, i64), ShadowCounts>>>;

/// The queue and the counts; the task is spawned by [`Shadowing::start`]
/// and ends when the queue's sender (this) is dropped.
pub(super) struct Shadowing {
    tx: mpsc::Sender<Offer>,
    counts: Counts,
    changed: Arc<AtomicBool>,
}

impl Shadowing {
    pub(super) fn start(store: Store) -> Shadowing {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counts: Counts = Arc::default();
        let changed = Arc::new(AtomicBool::new(false));
        tokio::spawn(run(rx, store, counts.clone(), changed.clone()));
        Shadowing {
            tx,
            counts,
            changed,
        }
    }

    /// Never waits: a full queue counts a drop.
    pub(super) fn offer(&self, offer: Offer) {
        if let Err(mpsc::error::TrySendError::Full(offer)) = self.tx.try_send(offer) {
            bump(&self.counts, &offer.tenant, offer.slot.version, |c| {
                c.dropped += 1
            });
            self.changed.store(true, Ordering::Relaxed);
        }
    }
}

fn bump(counts: &Counts, tenant: &str, version: i64, f: impl FnOnce(&mut ShadowCounts)) {
    let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
    f(counts.entry((tenant.to_owned(), version)).or_default());
}

async fn run(
    mut rx: mpsc::Receiver<Offer>,
    store: Store,
    counts: Counts,
    changed: Arc<AtomicBool>,
) {
    let mut recorded: HashMap<(String, i64), usize> = HashMap::new();
    let mut flush = tokio::time::interval(FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            offer = rx.recv() => match offer {
                Some(offer) => {
                    evaluate(&store, &counts, &mut recorded, offer).await;
                    changed.store(true, Ordering::Relaxed);
                }
                None => {
                    write_counts(&store, &counts).await;
                    return;
                }
            },
            _ = flush.tick() => {
                if changed.swap(false, Ordering::Relaxed) {
                    write_counts(&store, &counts).await;
                }
            }
        }
    }
}

#[tracing::instrument(name = "policy.shadow", skip_all, fields(tenant = %offer.tenant, version = offer.slot.version))]
async fn evaluate(
    store: &Store,
    counts: &Counts,
    recorded: &mut HashMap<(String, i64), usize>,
    offer: Offer,
) {
    let version = offer.slot.version;
    let policy = offer
        .slot
        .policy
        .get_or_try_init(|| store.load(&offer.slot.sha256))
        .await
        .cloned();
    let request = offer.request;
    let shadow = match policy {
        Ok(policy) => tokio::task::spawn_blocking(move || {
            let decided = policy.decide(&request);
            (request, decided)
        })
        .await
        .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let (request, decided) = match shadow {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "shadow version does not load");
            bump(counts, &offer.tenant, version, |c| {
                c.evaluated += 1;
                c.faults += 1;
            });
            return;
        }
    };
    let difference = compare(&offer.live, &decided);
    bump(counts, &offer.tenant, version, |c| {
        c.evaluated += 1;
        match difference {
            Difference::Same => c.agreed += 1,
            Difference::Changed { .. } => c.disagreed += 1,
            Difference::Fault(_) => c.faults += 1,
        }
    });
    if difference == Difference::Same {
        return;
    }
    let kept = recorded.entry((offer.tenant.clone(), version)).or_default();
    if *kept >= RECORDED {
        return;
    }
    *kept += 1;
    let shadow = serde_json::to_value(match &decided {
        Ok(d) => ShadowAnswer::Decided(d.clone()),
        Err(f) => ShadowAnswer::Fault {
            fault: f.code().to_string(),
            message: f.to_string(),
        },
    });
    let (Ok(request_json), Ok(live), Ok(shadow)) = (
        serde_json::to_value(&request),
        serde_json::to_value(&offer.live),
        shadow,
    ) else {
        return;
    };
    let d = Disagreement {
        id: format!("dis-{}", hex::encode(rand::random::<[u8; 8]>())),
        tenant: offer.tenant.clone(),
        version,
        live_version: offer.live_version,
        subject: request.subject.id.clone(),
        action: request.action.to_string(),
        request: request_json,
        live,
        shadow,
        at: unix_now(),
    };
    if let Err(e) = store::insert_disagreement(&store.db, &d).await {
        tracing::warn!(error = %e, "cannot record a shadow disagreement");
    }
}

async fn write_counts(store: &Store, counts: &Counts) {
    let snapshot: Vec<((String, i64), ShadowCounts)> = counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let now = unix_now();
    for ((tenant, version), c) in snapshot {
        if let Err(e) =
            store::flush_shadow_counts(&store.db, &store.replica, &tenant, version, &c, now).await
        {
            tracing::warn!(error = %e, "cannot write shadow counts");
        }
    }
}
