//! Cluster leases: periodic work that several replicas could do, done by one.
//!
//! Several `lethe serve` processes share one database and are
//! interchangeable, so anything they do on a timer runs once per replica
//! unless they agree who does it. Bulk jobs and webhook deliveries carry a
//! lease on their own rows; work with no row of its own (the window-expiry
//! sweep) takes a named lease in `lethe_leases` (migration `0011`) instead.
//!
//! A lease is a name, a holder and a deadline (`until_ms`, unix ms). Taking
//! it is one conditional upsert, `INSERT … ON CONFLICT (name) DO UPDATE …
//! WHERE until_ms <= now OR holder = me RETURNING holder`: the row is
//! written, and a row comes back, only when the lease is new, lapsed or
//! already the taker's. PostgreSQL locks the conflicting row and evaluates
//! the condition on its latest version, SQLite serialises writers, so of
//! any number of replicas racing for one lease exactly one wins until it
//! lapses. No separate lock service, nothing to install: the same database
//! that holds everything else.
//!
//! A holder keeps its lease by taking it again before it lapses, so the
//! work stays on one replica while that replica lives; a killed holder's
//! lease lapses after at most one term and the next replica to ask takes
//! it. Deadlines are each replica's wall clock ([`crate::clock::unix_millis`]),
//! like bulk job leases: replicas whose clocks disagree by more than a
//! small part of a term could overlap by that much.

use std::time::Duration;

use sqlx::Row;

use crate::db::{Db, DbError};

/// What a lease is for; one row of `lethe_leases` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// The window-expiry sweep. Held for one sweep interval: the replica
    /// that takes it sweeps, the others skip that tick, so the cluster
    /// sweeps once per interval however many replicas run.
    Sweep,
}

impl Lease {
    /// The lease's name in `lethe_leases`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lease::Sweep => "sweep",
        }
    }
}

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub holder: String,
    /// Unix milliseconds.
    pub until_ms: i64,
}

/// The leases of one database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Leases {
    db: Db,
}

/// A term as milliseconds, saturating (a term of centuries is still "long").
fn millis(term: Duration) -> i64 {
    i64::try_from(term.as_millis()).unwrap_or(i64::MAX)
}

impl Leases {
    pub fn new(db: Db) -> Leases {
        Leases { db }
    }

    /// Take `lease` for `holder` for `term` from `now_ms`, when nobody
    /// holds it, its term has passed, or `holder` already holds it (which
    /// extends it). `true` when `holder` holds it now; `false` when another
    /// holder's term is still running.
    pub async fn take(
        &self,
        lease: Lease,
        holder: &str,
        now_ms: i64,
        term: Duration,
    ) -> Result<bool, DbError> {
        let won = sqlx::query(
            "INSERT INTO lethe_leases (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE lethe_leases.until_ms <= $4 OR lethe_leases.holder = excluded.holder \
             RETURNING holder",
        )
        .bind(lease.as_str())
        .bind(holder)
        .bind(now_ms.saturating_add(millis(term)))
        .bind(now_ms)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(won.is_some())
    }

    /// Extend `holder`'s lease to `now_ms + term` while the work it guards
    /// is still running. `false` when another holder has taken it since
    /// (or it was released): the caller no longer holds it.
    pub async fn renew(
        &self,
        lease: Lease,
        holder: &str,
        now_ms: i64,
        term: Duration,
    ) -> Result<bool, DbError> {
        let done =
            sqlx::query("UPDATE lethe_leases SET until_ms = $3 WHERE name = $1 AND holder = $2")
                .bind(lease.as_str())
                .bind(holder)
                .bind(now_ms.saturating_add(millis(term)))
                .execute(self.db.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Give `holder`'s lease up before its term ends, so the next taker
    /// need not wait for it to lapse. `false` when `holder` did not hold
    /// it. The sweep never calls this: its lease stands for an interval,
    /// not for a sweep in progress, and releasing it would let another
    /// replica sweep again within the same interval.
    pub async fn release(&self, lease: Lease, holder: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM lethe_leases WHERE name = $1 AND holder = $2")
            .bind(lease.as_str())
            .bind(holder)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Who holds `lease` at `now_ms`, if anybody (a lapsed term is nobody).
    pub async fn holding(&self, lease: Lease, now_ms: i64) -> Result<Option<Holding>, DbError> {
        let row = sqlx::query(
            "SELECT holder, until_ms FROM lethe_leases WHERE name = $1 AND until_ms > $2",
        )
        .bind(lease.as_str())
        .bind(now_ms)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| {
            Ok(Holding {
                holder: r.try_get(0)?,
                until_ms: r.try_get(1)?,
            })
        })
        .transpose()
    }
}
