//! The batch path: the users of one bulk batch in one transaction, with
//! set-based statements.
//!
//! ```text
//! lock every user of the batch (one SELECT … FOR UPDATE, key order)
//!   → the state machine per user → the actor once → holdings (one query)
//!   → one policy session for the batch → plans validated and transfer
//!     targets resolved (a user refused here is left out before any write)
//!   → each group of users with an identical plan applied together
//!     (`effects::apply`: one statement per disposition for the group);
//!     users whose rows overlap one another's go in successive waves
//!   → decision records, audit, history, events and the caller's epilogue
//!     for every user in a few multi-row statements → commit
//! ```
//!
//! It writes what [`Executor::act_with`] writes for each user, no more and
//! no less: per user one action id, one decision record, one audit row,
//! one history entry and one event when applied, its own restore log. The
//! difference is the number of statements and commits: a few per batch
//! instead of a dozen and a commit per user.
//!
//! When a batch cannot be applied this way ([`Batched::PerUser`]: a restore,
//! a transfer to a user of the same batch, an actor who cannot act) nothing
//! is written and the caller applies its users one transaction each. When
//! anything fails once writing has begun, the transaction is dropped (rolled
//! back) and the error returned: the caller then also falls back to one
//! transaction per user, so one bad user cannot stall the rest.

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use sqlx::AnyConnection;

use super::effects::{self, Group, Member};
use super::{context, ActionReport, Applied, Ask, ExecError, Executor};
use crate::audit::{self, Evidence};
use crate::contract::{Action, LifecycleState, Outcome, Plan, Request};
use crate::datamap::{Category, Edge, Guard};
use crate::db::RowLock;
use crate::decision::{Decider, Verdict};
use crate::events::{Event, EventActor};
use crate::lifecycle;
use crate::plan;
use crate::platform::{no_holdings, Owners, Rows};

/// Writes that must commit with a batch (a bulk job's item statuses, the
/// escalations it opens): the batch counterpart of
/// [`super::Epilogue`]. An error rolls the whole batch back.
pub trait BatchEpilogue: Sync {
    /// `reports`: the users decided (applied, escalated or denied);
    /// `refused`: the users left out before any write, and why.
    fn write(
        &self,
        conn: &mut AnyConnection,
        reports: &[ActionReport],
        refused: &[(String, ExecError)],
    ) -> impl Future<Output = Result<(), ExecError>> + Send;
}

/// What [`Executor::act_batch`] did.
#[derive(Debug)]
pub enum Batched {
    /// Committed: every user of the batch is either in `reports` or in
    /// `refused`.
    Done {
        reports: Vec<ActionReport>,
        refused: Vec<(String, ExecError)>,
    },
    /// Nothing written: apply these users one transaction each.
    PerUser(&'static str),
}

/// A user of the batch as read under lock, with their request.
struct Read {
    user: String,
    record: crate::platform::UserRecord,
    to: LifecycleState,
    request: Request,
}

/// A decided user, with what is to be applied to them.
struct Decided {
    read: Read,
    verdict: Verdict,
    action_id: String,
    /// The resolved transfer target, when the plan allows.
    target: Option<String>,
}

/// A group of users whose plans are identical: the plan, the resolved
/// transfer target, the state they end in, and indices into the decided.
type PlanGroup<'d> = (&'d Plan, Option<&'d str>, LifecycleState, Vec<usize>);

impl Executor {
    /// The wave each decided user is applied in (indices as `decided`).
    /// Users whose rows overlap (a mentoring match between two of them, an
    /// asset one owns below another's campaign) must not be changed by the
    /// same statements: the later of two such users (in batch order) goes
    /// in a later wave, so the batch changes and logs each shared row as one
    /// transaction per user in batch order would.
    async fn waves(
        &self,
        conn: &mut AnyConnection,
        ask: &Ask,
        decided: &[Decided],
        groups: &[PlanGroup<'_>],
    ) -> Result<Vec<usize>, ExecError> {
        let p = self.platform();
        let mut waves = vec![0; decided.len()];
        let users: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.3.iter().map(|&i| decided[i].read.user.as_str()))
            .collect();
        if users.len() < 2 {
            return Ok(waves);
        }
        let mut categories = Vec::new();
        let mut guards = Vec::new();
        for (plan, ..) in groups {
            let (c, g) = effects::touched(p.map(), ask.action, plan);
            for route in c {
                if !categories
                    .iter()
                    .any(|(c, path): &(&Category, Vec<&Edge>)| {
                        c.name == route.0.name
                            && path.len() == route.1.len()
                            && path
                                .iter()
                                .zip(&route.1)
                                .all(|(a, b)| a.table == b.table && a.fk == b.fk)
                    })
                {
                    categories.push(route);
                }
            }
            for g in g {
                if !guards
                    .iter()
                    .any(|x: &&Guard| x.table == g.table && x.column == g.column)
                {
                    guards.push(g);
                }
            }
        }
        let mut rows: Vec<Rows<'_>> = categories
            .iter()
            .map(|(c, path)| {
                if path.is_empty() {
                    Rows::category(c)
                } else {
                    Rows::Below { category: c, path }
                }
            })
            .collect();
        rows.extend(guards.iter().map(|g| Rows::guard(g)));
        let owners = Owners {
            tenant: &ask.tenant,
            users: &users,
        };
        let mut linked: HashMap<&str, Vec<String>> = HashMap::new();
        for (i, a) in rows.iter().enumerate() {
            for b in &rows[i + 1..] {
                for (x, y) in p.shared_rows(conn, owners, a, b).await? {
                    for (from, to) in [(&x, &y), (&y, &x)] {
                        if let Some(u) = users.iter().find(|u| **u == from.as_str()) {
                            linked.entry(u).or_default().push(to.clone());
                        }
                    }
                }
            }
        }
        if linked.is_empty() {
            return Ok(waves);
        }
        let index: HashMap<&str, usize> = decided
            .iter()
            .enumerate()
            .map(|(i, d)| (d.read.user.as_str(), i))
            .collect();
        // Batch order is `decided` order: each user one wave after the
        // latest earlier user they share rows with.
        for (i, d) in decided.iter().enumerate() {
            let Some(others) = linked.get(d.read.user.as_str()) else {
                continue;
            };
            let after = others
                .iter()
                .filter_map(|o| index.get(o.as_str()).copied())
                .filter(|&j| j < i)
                .map(|j| waves[j] + 1)
                .max();
            if let Some(w) = after {
                waves[i] = w;
            }
        }
        tracing::debug!(
            users = linked.len(),
            waves = waves.iter().max().copied().unwrap_or(0) + 1,
            "users sharing rows applied in waves"
        );
        Ok(waves)
    }

    /// Decide and apply `ask` for every one of `users` in one transaction;
    /// see the module documentation. `users` must be distinct.
    #[tracing::instrument(name = "executor.batch", skip_all, fields(tenant = %ask.tenant, action = %ask.action, users = users.len()))]
    pub async fn act_batch<D: Decider, E: BatchEpilogue>(
        &self,
        decider: &D,
        ask: &Ask,
        users: &[String],
        epilogue: &E,
    ) -> Result<Batched, ExecError> {
        if ask.action == Action::Restore {
            return Ok(Batched::PerUser("restores replay one log each"));
        }
        let p = self.platform();
        let started = Instant::now();
        let mut tx = p.db().begin_write().await?;
        if let Some(serial) = p.backend().serial_transaction() {
            sqlx::query(serial).execute(&mut *tx).await?;
        }

        // Context: every user locked, then the facts, set-based.
        let mut records = HashMap::with_capacity(users.len());
        for chunk in users.chunks(super::CONTEXT_CHUNK) {
            for record in p
                .users(&mut tx, &ask.tenant, chunk, RowLock::Update)
                .await?
            {
                let record = record?;
                records.insert(record.subject.id.clone(), record);
            }
        }
        let actor = match context::actor(p, &mut tx, &ask.tenant, &ask.actor).await {
            Ok(actor) => actor,
            Err(_) => return Ok(Batched::PerUser("the actor cannot act")),
        };
        let mut holdings = p.holdings(&mut tx, &ask.tenant, users).await?;
        let mut refused: Vec<(String, ExecError)> = Vec::new();
        let mut reads = Vec::with_capacity(users.len());
        for user in users {
            let Some(record) = records.remove(user) else {
                refused.push((
                    user.clone(),
                    ExecError::UnknownSubject {
                        tenant: ask.tenant.clone(),
                        user: user.clone(),
                    },
                ));
                continue;
            };
            match lifecycle::check(ask.action, record.standing, ask.now) {
                Err(e) => refused.push((user.clone(), e.into())),
                Ok(to) => {
                    let request = Request {
                        action: ask.action,
                        now: ask.now,
                        subject: record.subject.clone(),
                        actor: actor.clone(),
                        holdings: holdings
                            .remove(user)
                            .unwrap_or_else(|| no_holdings(p.map())),
                        transfer_to: ask.transfer_to.clone(),
                        reason: ask.reason.clone(),
                        bulk: true,
                    };
                    reads.push(Read {
                        user: user.clone(),
                        record,
                        to,
                        request,
                    });
                }
            }
        }
        let context_us = started.elapsed().as_micros();

        // Decisions: one policy session for the batch.
        let requests: Vec<Request> = reads.iter().map(|r| r.request.clone()).collect();
        let verdicts = decider.decide_batch(&ask.tenant, &requests).await;
        let decided_us = started.elapsed().as_micros();
        let mut decided = Vec::with_capacity(reads.len());
        let mut roles = HashMap::new();
        for (read, verdict) in reads.into_iter().zip(verdicts) {
            let verdict = match verdict {
                Ok(v) => v,
                Err(fault) => {
                    refused.push((read.user, fault.into()));
                    continue;
                }
            };
            let mut target = None;
            if let Outcome::Allow { plan } = &verdict.decision.outcome {
                if let Err(e) = plan::check(p.map(), ask.action, plan) {
                    refused.push((read.user, e.into()));
                    continue;
                }
                target = match effects::transfer_target(
                    p,
                    &mut tx,
                    &ask.tenant,
                    &read.user,
                    plan,
                    &ask.actor,
                    &mut roles,
                )
                .await
                {
                    Ok(t) => t,
                    Err(e @ ExecError::PlanRefused(_)) => {
                        refused.push((read.user, e));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            }
            decided.push(Decided {
                read,
                verdict,
                action_id: format!("act-{:032x}", rand::random::<u128>()),
                target,
            });
        }
        // A transfer to a user whom this batch changes would depend on the
        // order users are applied in: one at a time, it is well defined.
        let applying: std::collections::HashSet<&str> = decided
            .iter()
            .filter(|d| matches!(d.verdict.decision.outcome, Outcome::Allow { .. }))
            .map(|d| d.read.user.as_str())
            .collect();
        if decided
            .iter()
            .any(|d| d.target.as_deref().is_some_and(|t| applying.contains(t)))
        {
            return Ok(Batched::PerUser("a transfer target is a user of the batch"));
        }

        // Effects: each group of identical plans applied together.
        let mut groups: Vec<PlanGroup<'_>> = Vec::new();
        for (i, d) in decided.iter().enumerate() {
            let Outcome::Allow { plan } = &d.verdict.decision.outcome else {
                continue;
            };
            let key = (plan, d.target.as_deref(), d.read.to);
            match groups
                .iter_mut()
                .find(|g| g.0 == key.0 && g.1 == key.1 && g.2 == key.2)
            {
                Some(g) => g.3.push(i),
                None => groups.push((key.0, key.1, key.2, vec![i])),
            }
        }
        let waves = self.waves(&mut tx, ask, &decided, &groups).await?;
        let mut applied: Vec<Option<Applied>> = (0..decided.len()).map(|_| None).collect();
        for wave in 0..=waves.iter().copied().max().unwrap_or(0) {
            for (plan, target, to, indices) in &groups {
                let indices: Vec<usize> = indices
                    .iter()
                    .copied()
                    .filter(|&i| waves[i] == wave)
                    .collect();
                if indices.is_empty() {
                    continue;
                }
                let members: Vec<Member<'_>> = indices
                    .iter()
                    .map(|&i| {
                        let d = &decided[i];
                        Member::of(&d.read.user, &d.read.record, &d.action_id)
                    })
                    .collect();
                let group = Group {
                    tenant: &ask.tenant,
                    action: ask.action,
                    now: ask.now,
                    to: *to,
                    target: target.map(str::to_owned),
                };
                let done = effects::apply(p, &mut tx, &group, &members, plan).await?;
                for (&i, a) in indices.iter().zip(done) {
                    applied[i] = Some(a);
                }
            }
        }
        let applied_us = started.elapsed().as_micros();

        // Evidence, events and the epilogue, in the same transaction.
        let mut reports = Vec::with_capacity(decided.len());
        for (d, applied) in decided.iter().zip(applied) {
            reports.push(Applied::report(
                applied,
                d.action_id.clone(),
                &ask.tenant,
                &d.read.user,
                ask.action,
                d.verdict.clone(),
                d.read.record.standing.state,
            ));
        }
        let evidence = decided
            .iter()
            .zip(&reports)
            .map(|(d, r)| Evidence::of(&d.read.request, r, ask.now))
            .collect::<Result<Vec<_>, _>>()?;
        audit::record_many(&mut tx, &evidence).await?;
        let recorded_us = started.elapsed().as_micros();
        epilogue.write(&mut tx, &reports, &refused).await?;
        let epilogue_us = started.elapsed().as_micros();
        let mut events = Vec::new();
        for (d, r) in decided.iter().zip(&reports) {
            let actor = EventActor {
                kind: d.read.request.actor.kind,
                id: d.read.request.actor.id.clone(),
            };
            if let Some(event) = Event::applied(r, actor, true, ask.now)? {
                events.push(event);
            }
        }
        crate::events::record_many(&mut tx, &events).await?;
        let events_us = started.elapsed().as_micros();
        tx.commit().await?;
        let took = started.elapsed();
        for r in &reports {
            crate::telemetry::acted(r, took / u32::try_from(reports.len()).unwrap_or(1).max(1));
        }
        tracing::info!(
            decided = reports.len(),
            refused = refused.len(),
            groups = groups.len(),
            context_us,
            decide_us = decided_us - context_us,
            apply_us = applied_us - decided_us,
            evidence_us = took.as_micros() - applied_us,
            record_us = recorded_us - applied_us,
            epilogue_us = epilogue_us - recorded_us,
            events_us = events_us - epilogue_us,
            commit_us = took.as_micros() - events_us,
            "batch applied"
        );
        Ok(Batched::Done { reports, refused })
    }
}
