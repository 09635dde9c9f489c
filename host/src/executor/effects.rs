//! Effects: a validated plan applied to the platform's rows.
//!
//! Each disposition and guard is one [`Mutation`] of the platform layer,
//! which captures the restore log (while a delete with a window is being
//! applied) and changes the rows in one call. What each action does, in
//! order, is [`apply`]; the lifecycle row Lethe keeps beside the user is
//! written last.
//!
//! One plan is applied to one user (an action) or to the users of a bulk
//! batch whose plans are identical (a [`Group`]): every statement then
//! changes all their rows at once, and the platform layer attributes each
//! row to its owner so every user's effects and restore log are their own.

use std::collections::HashMap;

use sqlx::AnyConnection;

use super::{ActorRef, Applied, CategoryEffect, Effects, ExecError, RestoreConflict};
use crate::contract::{Action, Disposition, LifecycleState, Plan, ProfilePlan, TransferTarget};
use crate::datamap::{cascade_order, Category, DataMap, Edge, EdgeKind, Guard, GuardRule};
use crate::db::RowLock;
use crate::plan::{self, PlanError, TargetFacts};
use crate::platform::{Capture, Change, Mutation, Owners, Platform, Rows, UserRecord};

/// What one plan is applied to: the users that share it, and what they
/// share.
pub(super) struct Group<'a> {
    pub tenant: &'a str,
    pub action: Action,
    pub now: i64,
    /// The state the state machine says the action ends in.
    pub to: LifecycleState,
    /// The plan's transfer target, resolved ([`transfer_target`]).
    pub target: Option<String>,
}

/// One user a plan is applied to.
pub(super) struct Member<'a> {
    pub user: &'a str,
    pub action_id: &'a str,
    /// The user's state before the action.
    pub from: LifecycleState,
    /// When the user was deleted, if they are (erase keeps it).
    pub deleted_at: Option<i64>,
    /// The delete whose restore log is still kept, if any: a restore
    /// replays it, an erase purges it.
    pub delete_action_id: Option<&'a str>,
}

impl<'a> Member<'a> {
    /// The subject `user` of an action, as read (and locked) for it.
    pub fn of(user: &'a str, subject: &'a UserRecord, action_id: &'a str) -> Member<'a> {
        Member {
            user,
            action_id,
            from: subject.standing.state,
            deleted_at: subject.subject.deleted_at,
            delete_action_id: subject.delete_action_id.as_deref(),
        }
    }
}

/// How Lethe's lifecycle row for each user ends an action.
enum Mark {
    /// Deleted with a window: restorable until `restore_until` from the
    /// restore log of this action.
    Restorable { restore_until: i64 },
    /// Gone for good; `deleted_at` is kept for the record (the action's
    /// time when the user is deleted and erased at once).
    Erased { deleted_now: bool },
    /// Back from a delete: nothing to remember.
    Restored,
}

/// A plan being applied: the platform, the transaction, whose rows, the
/// restore logs (if they are being written) and each member's effects so
/// far (in member order).
pub(super) struct Apply<'a> {
    pub p: &'a Platform,
    pub conn: &'a mut AnyConnection,
    pub tenant: &'a str,
    pub now: i64,
    pub members: &'a [Member<'a>],
    pub users: Vec<&'a str>,
    pub log: Option<Capture>,
    pub effects: Vec<Effects>,
}

/// Apply `plan` (already validated) to every member of the group, in the
/// caller's transaction. One [`Applied`] per member, in member order.
pub(super) async fn apply<'a>(
    p: &'a Platform,
    conn: &'a mut AnyConnection,
    g: &Group<'a>,
    members: &'a [Member<'a>],
    plan: &Plan,
) -> Result<Vec<Applied>, ExecError> {
    let mut run = Apply {
        p,
        conn,
        tenant: g.tenant,
        now: g.now,
        members,
        users: members.iter().map(|m| m.user).collect(),
        log: None,
        effects: vec![
            Effects {
                transfer_target: g.target.clone(),
                ..Effects::default()
            };
            members.len()
        ],
    };
    let target = g.target.as_deref();
    let mut to = g.to;
    let mut restore_until = None;
    match g.action {
        Action::Lock | Action::Unlock | Action::Reactivate => {
            run.guards(g.action).await?;
            run.set_state(to).await?;
        }
        Action::Deactivate => {
            run.categories(plan, target).await?;
            run.guards(g.action).await?;
            run.profile(&plan.profile).await?;
            run.set_state(to).await?;
        }
        Action::Delete if plan.restore_window_days > 0 => {
            let ids: Vec<&str> = members.iter().map(|m| m.action_id).collect();
            run.log = Some(Capture::new(&ids));
            run.categories(plan, target).await?;
            run.guards(g.action).await?;
            run.profile(&plan.profile).await?;
            run.set_state(to).await?;
            let until = g.now + i64::from(plan.restore_window_days) * 86_400;
            restore_until = Some(until);
            run.mark(Mark::Restorable {
                restore_until: until,
            })
            .await?;
        }
        Action::Delete => {
            // Window 0: final at once. No restore log; the users end erased.
            let identities = run.identities(plan).await?;
            run.categories(plan, target).await?;
            run.guards(g.action).await?;
            run.erase(plan, &identities).await?;
            to = LifecycleState::Erased;
            run.mark(Mark::Erased { deleted_now: true }).await?;
        }
        Action::Restore => {
            let member = run.only()?;
            let log = member
                .delete_action_id
                .ok_or(RestoreConflict::NoRestoreLog)?;
            run.restore(log).await?;
            run.mark(Mark::Restored).await?;
        }
        Action::Erase => {
            let identities = run.identities(plan).await?;
            run.categories(plan, target).await?;
            run.erase(plan, &identities).await?;
            run.mark(Mark::Erased { deleted_now: false }).await?;
        }
    }
    let logged = run.log.take().map(|log| log.rows);
    Ok(run
        .effects
        .into_iter()
        .enumerate()
        .map(|(i, mut effects)| {
            if let Some(rows) = &logged {
                effects.restore_log_rows = rows.get(i).copied().unwrap_or(0);
            }
            Applied {
                to,
                effects,
                restore_until,
                notify: plan.notify.clone(),
            }
        })
        .collect())
}

/// The rows `plan` changes for `action` besides the users' own rows and
/// references: each changed category's rows (an empty path), the rows
/// below a cascaded category (one path per table), the leftovers an erase
/// anonymises, and the guards that remove rows. The batch path checks
/// these for rows two of its users share.
pub(super) fn touched<'m>(
    map: &'m DataMap,
    action: Action,
    plan: &Plan,
) -> (Vec<(&'m Category, Vec<&'m Edge>)>, Vec<&'m Guard>) {
    let mut out: Vec<(&Category, Vec<&Edge>)> = Vec::new();
    for cp in &plan.categories {
        let Some(c) = map.category(&cp.category) else {
            continue;
        };
        if cp.disposition == Disposition::Keep {
            continue;
        }
        out.push((c, Vec::new()));
        if cp.disposition == Disposition::Cascade {
            out.extend(cascade_order(c).into_iter().map(|path| (c, path)));
        }
    }
    let erases =
        action == Action::Erase || (action == Action::Delete && plan.restore_window_days == 0);
    if erases {
        for c in &map.categories {
            if !c.personal.is_empty()
                && !map.is_kept(&c.table)
                && !out.iter().any(|(x, p)| x.name == c.name && p.is_empty())
            {
                out.push((c, Vec::new()));
            }
        }
    }
    let guards = map
        .guards
        .iter()
        .filter(|g| g.rule == GuardRule::Remove && g.on.contains(&action))
        .collect();
    (out, guards)
}

/// The plan's transfer target for `user`, resolved to a user id and checked
/// to be an active user of this tenant other than the user; `None` when the
/// plan transfers nothing. `roles` caches the active holders of each role
/// across the users of a batch.
pub(super) async fn transfer_target(
    p: &Platform,
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
    plan: &Plan,
    actor: &ActorRef,
    roles: &mut HashMap<String, Vec<String>>,
) -> Result<Option<String>, ExecError> {
    if !plan::transfers(plan) {
        return Ok(None);
    }
    let Some(target) = &plan.transfer_target else {
        return Ok(None);
    };
    let id = match target {
        TransferTarget::User(u) => u.clone(),
        TransferTarget::Actor => match actor {
            ActorRef::TenantUser(a) => a.clone(),
            _ => return Err(PlanError::ActorNotAUser.into()),
        },
        TransferTarget::Role(role) => {
            if !roles.contains_key(role) {
                let holders = p
                    .with_role(conn, tenant, role, LifecycleState::Active)
                    .await?;
                roles.insert(role.clone(), holders);
            }
            roles
                .get(role)
                .and_then(|holders| holders.iter().find(|id| *id != user))
                .cloned()
                .ok_or_else(|| PlanError::NoUserWithRole(role.clone()))?
        }
    };
    // FOR SHARE: the target cannot be deleted under us before commit.
    let state = p
        .user(conn, tenant, &id, RowLock::Share)
        .await?
        .map(|u| u.standing.state);
    plan::check_target(
        &TargetFacts {
            id: id.clone(),
            state,
        },
        user,
    )?;
    Ok(Some(id))
}

impl<'a> Apply<'a> {
    /// The one member of a plan that is applied user by user (a restore).
    pub fn only(&self) -> Result<&'a Member<'a>, ExecError> {
        let members: &'a [Member<'a>] = self.members;
        match members {
            [one] => Ok(one),
            _ => Err(ExecError::Corrupt(format!(
                "a group of {} users: restores are applied one user at a time",
                members.len()
            ))),
        }
    }
}

impl Apply<'_> {
    /// Apply one mutation to the members' rows (logged while a restore
    /// log is being written). Rows changed per member.
    pub async fn mutate(&mut self, m: Mutation<'_>) -> Result<Vec<u64>, ExecError> {
        let owners = Owners {
            tenant: self.tenant,
            users: &self.users,
        };
        Ok(self
            .p
            .mutate_each(self.conn, owners, &m, self.log.as_mut())
            .await?)
    }

    async fn categories(&mut self, plan: &Plan, target: Option<&str>) -> Result<(), ExecError> {
        for cp in &plan.categories {
            let Some(c) = self.p.map().category(&cp.category) else {
                return Err(PlanError::UnknownCategory(cp.category.clone()).into());
            };
            let mut each = vec![
                CategoryEffect {
                    category: c.name.clone(),
                    disposition: Some(cp.disposition),
                    ..Default::default()
                };
                self.members.len()
            ];
            match cp.disposition {
                Disposition::Keep => {}
                Disposition::Transfer => {
                    let Some(target) = target else {
                        return Err(PlanError::MissingTransferTarget(c.name.clone()).into());
                    };
                    let open = if cp.only_open { c.open.as_ref() } else { None };
                    let moved = self
                        .mutate(Mutation {
                            rows: Rows::category_open(c, open),
                            change: Change::Set(vec![(&c.owner, Some(target.to_owned()))]),
                            expect: Some(target),
                        })
                        .await?;
                    for (e, n) in each.iter_mut().zip(moved) {
                        e.transferred = n;
                    }
                }
                Disposition::Cascade => {
                    let (deleted, detached) = self.cascade(c).await?;
                    for ((e, d), x) in each.iter_mut().zip(deleted).zip(detached) {
                        (e.deleted, e.detached) = (d, x);
                    }
                }
                Disposition::Anonymise => {
                    for (e, n) in each.iter_mut().zip(self.anonymise(c).await?) {
                        e.anonymised = n;
                    }
                }
            }
            for (effects, e) in self.effects.iter_mut().zip(each) {
                effects.categories.push(e);
            }
        }
        Ok(())
    }

    /// Scrub the category's personal columns in the members' rows.
    pub async fn anonymise(&mut self, c: &Category) -> Result<Vec<u64>, ExecError> {
        if c.personal.is_empty() {
            return Ok(vec![0; self.members.len()]);
        }
        let sets = c
            .personal
            .iter()
            .map(|p| (p.column.as_str(), p.scrub.clone()))
            .collect();
        self.mutate(Mutation {
            rows: Rows::category(c),
            change: Change::Set(sets),
            expect: None,
        })
        .await
    }

    /// Remove the category's rows and their deep children (children first),
    /// detaching shallow children. Returns (deleted, detached) per member.
    async fn cascade(&mut self, c: &Category) -> Result<(Vec<u64>, Vec<u64>), ExecError> {
        let n = self.members.len();
        let (mut deleted, mut detached) = (vec![0; n], vec![0; n]);
        fn add(to: &mut [u64], each: Vec<u64>) {
            for (t, x) in to.iter_mut().zip(each) {
                *t += x;
            }
        }
        for path in cascade_order(c) {
            let Some(edge) = path.last() else { continue };
            let rows = Rows::Below {
                category: c,
                path: &path,
            };
            match edge.edge {
                EdgeKind::Shallow => {
                    let each = self
                        .mutate(Mutation {
                            rows,
                            change: Change::Set(vec![(&edge.fk, None)]),
                            expect: None,
                        })
                        .await?;
                    add(&mut detached, each);
                }
                EdgeKind::Deep => {
                    let each = self
                        .mutate(Mutation {
                            rows,
                            change: Change::Delete,
                            expect: None,
                        })
                        .await?;
                    add(&mut deleted, each);
                }
            }
        }
        let each = self
            .mutate(Mutation {
                rows: Rows::category(c),
                change: Change::Delete,
                expect: None,
            })
            .await?;
        add(&mut deleted, each);
        Ok((deleted, detached))
    }

    /// The operator's `remove` guards for this action (sessions on lock…).
    async fn guards(&mut self, action: Action) -> Result<(), ExecError> {
        let p = self.p;
        let guards = p
            .map()
            .guards
            .iter()
            .filter(|g| g.rule == GuardRule::Remove && g.on.contains(&action));
        for g in guards {
            let each = self
                .mutate(Mutation {
                    rows: Rows::guard(g),
                    change: Change::Delete,
                    expect: None,
                })
                .await?;
            for (effects, n) in self.effects.iter_mut().zip(each) {
                *effects.guards.entry(g.table.clone()).or_default() += n;
            }
        }
        Ok(())
    }

    async fn profile(&mut self, profile: &ProfilePlan) -> Result<(), ExecError> {
        if let ProfilePlan::Scrub(name) = profile {
            self.scrub_profile(name).await?;
        }
        Ok(())
    }

    /// The members' personal columns to their scrub values, the display
    /// name to `display_name`.
    pub async fn scrub_profile(&mut self, display_name: &str) -> Result<(), ExecError> {
        let u = &self.p.map().users;
        let mut sets: Vec<(&str, Option<String>)> = u
            .personal
            .iter()
            .filter(|p| p.column != u.display_name)
            .map(|p| (p.column.as_str(), p.scrub.clone()))
            .collect();
        sets.push((&u.display_name, Some(display_name.to_owned())));
        self.mutate(Mutation {
            rows: Rows::user(u),
            change: Change::Set(sets),
            expect: None,
        })
        .await?;
        for e in &mut self.effects {
            e.profile_scrubbed = true;
        }
        Ok(())
    }

    pub async fn set_state(&mut self, state: LifecycleState) -> Result<(), ExecError> {
        let u = &self.p.map().users;
        self.mutate(Mutation {
            rows: Rows::user(u),
            change: Change::Set(vec![(
                &u.state.column,
                Some(u.state.value(state).to_owned()),
            )]),
            expect: None,
        })
        .await?;
        Ok(())
    }

    /// Lethe's lifecycle row for each member, in one statement.
    async fn mark(&mut self, mark: Mark) -> Result<(), ExecError> {
        let mut q = crate::platform::Sql::new();
        let tenant = q.text(self.tenant);
        let rows: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                let (previous, deleted_at, restore_until, delete_action) = match mark {
                    Mark::Restorable { restore_until } => (
                        Some(m.from.as_str()),
                        Some(self.now),
                        Some(restore_until),
                        Some(m.action_id),
                    ),
                    Mark::Erased { deleted_now: true } => (None, Some(self.now), None, None),
                    Mark::Erased { deleted_now: false } => (None, m.deleted_at, None, None),
                    Mark::Restored => (None, None, None, None),
                };
                let int = |q: &mut crate::platform::Sql, v: Option<i64>| match v {
                    Some(v) => q.int(v),
                    None => "NULL".to_owned(),
                };
                format!(
                    "({tenant}, {}, {}, {}, {}, {})",
                    q.text(m.user),
                    q.opt_text(previous),
                    int(&mut q, deleted_at),
                    int(&mut q, restore_until),
                    q.opt_text(delete_action),
                )
            })
            .collect();
        q.push(&format!(
            "INSERT INTO lethe_user_lifecycle (tenant_id, user_id, previous_state, deleted_at, restore_until, delete_action_id) \
             VALUES {} ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
             previous_state = excluded.previous_state, deleted_at = excluded.deleted_at, \
             restore_until = excluded.restore_until, delete_action_id = excluded.delete_action_id",
            rows.join(", ")
        ));
        q.execute(self.conn).await?;
        Ok(())
    }
}
