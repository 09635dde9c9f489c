//! Cluster leases (`lethe::lease`) on SQLite and PostgreSQL: one holder at
//! a time, a holder may extend its own term, a lapsed term is anybody's,
//! renew and release only by the holder, and of many replicas racing for
//! one lease exactly one wins, round after round. This is what lets three
//! `lethe serve` processes sweep once per interval between them
//! (`tests/replicas.rs` checks that end to end).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, BACKENDS};
use lethe::lease::{Holding, Lease, Leases};

const TERM: Duration = Duration::from_secs(1);
const T0: i64 = 1_800_000_000_000;

#[tokio::test]
async fn one_holder_at_a_time() {
    for backend in BACKENDS {
        let t = TestDb::new(backend).await;
        t.db.migrate().await.unwrap();
        let leases = Leases::new(t.db.clone());
        let ctx = format!("{backend:?}");

        assert_eq!(leases.holding(Lease::Sweep, T0).await.unwrap(), None);
        assert!(
            leases.take(Lease::Sweep, "a", T0, TERM).await.unwrap(),
            "{ctx}"
        );
        assert!(
            !leases.take(Lease::Sweep, "b", T0 + 10, TERM).await.unwrap(),
            "{ctx}: b took a running lease"
        );
        assert_eq!(
            leases.holding(Lease::Sweep, T0 + 10).await.unwrap(),
            Some(Holding {
                holder: "a".into(),
                until_ms: T0 + 1000
            }),
            "{ctx}"
        );
        // The holder takes it again before it lapses: its term is extended.
        assert!(leases
            .take(Lease::Sweep, "a", T0 + 990, TERM)
            .await
            .unwrap());
        assert!(!leases
            .take(Lease::Sweep, "b", T0 + 1500, TERM)
            .await
            .unwrap());
        // A term ends at `until_ms` exactly: then it is anybody's.
        assert!(
            leases
                .take(Lease::Sweep, "b", T0 + 1990, TERM)
                .await
                .unwrap(),
            "{ctx}: b could not take a lapsed lease"
        );
        assert_eq!(
            leases.holding(Lease::Sweep, T0 + 2000).await.unwrap(),
            Some(Holding {
                holder: "b".into(),
                until_ms: T0 + 2990
            })
        );
        assert_eq!(leases.holding(Lease::Sweep, T0 + 2990).await.unwrap(), None);
        // Renew and release are the holder's only.
        assert!(!leases
            .renew(Lease::Sweep, "a", T0 + 2000, TERM)
            .await
            .unwrap());
        assert!(!leases.release(Lease::Sweep, "a").await.unwrap());
        assert!(leases
            .renew(Lease::Sweep, "b", T0 + 2500, TERM)
            .await
            .unwrap());
        assert!(!leases
            .take(Lease::Sweep, "a", T0 + 3000, TERM)
            .await
            .unwrap());
        assert!(leases.release(Lease::Sweep, "b").await.unwrap());
        // Released: free at once, long before the term would have ended.
        assert_eq!(leases.holding(Lease::Sweep, T0 + 3000).await.unwrap(), None);
        assert!(!leases
            .renew(Lease::Sweep, "b", T0 + 3000, TERM)
            .await
            .unwrap());
        assert!(leases
            .take(Lease::Sweep, "a", T0 + 3000, TERM)
            .await
            .unwrap());
        t.drop_db().await;
    }
}

/// Replicas racing for the lease at the same instant, each on its own
/// connection: exactly one wins each round, however the statements
/// interleave.
#[tokio::test]
async fn racing_takers_one_winner() {
    const TAKERS: usize = 6;
    const ROUNDS: i64 = 25;
    for backend in BACKENDS {
        let t = TestDb::new(backend).await;
        t.db.migrate().await.unwrap();
        // A pool per taker, like separate processes.
        let mut takers = Vec::new();
        for _ in 0..TAKERS {
            takers.push(Leases::new(lethe::db::Db::connect(&t.url).await.unwrap()));
        }
        let mut winners = Vec::new();
        for round in 0..ROUNDS {
            // Each round starts after the previous winner's term.
            let now = T0 + round * 1000;
            let start = Arc::new(tokio::sync::Barrier::new(TAKERS));
            let tasks: Vec<_> = takers
                .iter()
                .enumerate()
                .map(|(i, leases)| {
                    let (leases, start) = (leases.clone(), start.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        let me = format!("replica-{i}");
                        leases
                            .take(Lease::Sweep, &me, now, TERM)
                            .await
                            .unwrap()
                            .then_some(me)
                    })
                })
                .collect();
            let mut won = Vec::new();
            for task in tasks {
                if let Some(me) = task.await.unwrap() {
                    won.push(me);
                }
            }
            assert_eq!(won.len(), 1, "{backend:?} round {round}: winners {won:?}");
            let holding = takers[0].holding(Lease::Sweep, now).await.unwrap();
            assert_eq!(holding.map(|h| h.holder).as_ref(), won.first());
            winners.extend(won);
        }
        eprintln!("[{backend:?}] winners: {winners:?}");
        t.drop_db().await;
    }
}
