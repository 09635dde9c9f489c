//! Effects: a validated plan applied to the platform's rows.
//!
//! Each disposition and guard is one [`Mutation`] of the platform layer,
//! which captures the restore log (while a delete with a window is being
//! applied) and changes the rows in one call. What each action does, in
//! order, is [`apply`]; the lifecycle row Lethe keeps beside the user is
//! written last.

use sqlx::AnyConnection;

use super::{ActionInput, ActorRef, Applied, CategoryEffect, Effects, ExecError, RestoreConflict};
use crate::contract::{Action, Disposition, LifecycleState, Plan, ProfilePlan, TransferTarget};
use crate::datamap::{cascade_order, Category, EdgeKind, GuardRule};
use crate::db::RowLock;
use crate::plan::{self, PlanError, TargetFacts};
use crate::platform::mutation::Owner;
use crate::platform::{Capture, Change, Mutation, Platform, Rows, UserRecord};

/// What an allowed action is applied to.
pub(super) struct Target<'a> {
    pub input: &'a ActionInput,
    pub subject: &'a UserRecord,
    /// The state the state machine says the action ends in.
    pub to: LifecycleState,
    pub action_id: &'a str,
}

impl<'a> Target<'a> {
    pub fn of(
        input: &'a ActionInput,
        subject: &'a UserRecord,
        to: LifecycleState,
        action_id: &'a str,
    ) -> Target<'a> {
        Target {
            input,
            subject,
            to,
            action_id,
        }
    }
}

/// How Lethe's lifecycle row for the user ends an action.
enum Mark {
    /// Deleted with a window: restorable until `restore_until` from the
    /// restore log of this action.
    Restorable {
        previous: LifecycleState,
        deleted_at: i64,
        restore_until: i64,
    },
    /// Gone for good; `deleted_at` is kept for the record.
    Erased { deleted_at: Option<i64> },
    /// Back from a delete: nothing to remember.
    Restored,
}

/// An action being applied: the platform, the transaction, whose rows, the
/// restore log (if one is being written) and the effects so far.
pub(super) struct Apply<'a> {
    pub p: &'a Platform,
    pub conn: &'a mut AnyConnection,
    pub owner: Owner<'a>,
    pub action_id: &'a str,
    pub log: Option<Capture>,
    pub effects: Effects,
}

/// Apply `plan` (already validated) to the target, in one transaction.
pub(super) async fn apply(
    p: &Platform,
    conn: &mut AnyConnection,
    t: Target<'_>,
    plan: &Plan,
) -> Result<Applied, ExecError> {
    let input = t.input;
    let mut run = Apply {
        p,
        conn,
        owner: Owner {
            tenant: &input.tenant,
            user: &input.subject,
        },
        action_id: t.action_id,
        log: None,
        effects: Effects::default(),
    };
    let target = run.transfer_target(plan, &input.actor).await?;
    run.effects.transfer_target = target.clone();
    let target = target.as_deref();
    let mut to = t.to;
    let mut restore_until = None;
    let from = t.subject.standing.state;
    match input.action {
        Action::Lock | Action::Unlock | Action::Reactivate => {
            run.guards(input.action).await?;
            run.set_state(to).await?;
        }
        Action::Deactivate => {
            run.categories(plan, target).await?;
            run.guards(input.action).await?;
            run.profile(&plan.profile).await?;
            run.set_state(to).await?;
        }
        Action::Delete if plan.restore_window_days > 0 => {
            run.log = Some(Capture::new(t.action_id));
            run.categories(plan, target).await?;
            run.guards(input.action).await?;
            run.profile(&plan.profile).await?;
            run.set_state(to).await?;
            let until = input.now + i64::from(plan.restore_window_days) * 86_400;
            restore_until = Some(until);
            run.mark(Mark::Restorable {
                previous: from,
                deleted_at: input.now,
                restore_until: until,
            })
            .await?;
        }
        Action::Delete => {
            // Window 0: final at once. No restore log; the user ends erased.
            let identity = run.identity(plan, None).await?;
            run.categories(plan, target).await?;
            run.guards(input.action).await?;
            run.erase(plan, &identity, None).await?;
            to = LifecycleState::Erased;
            run.mark(Mark::Erased {
                deleted_at: Some(input.now),
            })
            .await?;
        }
        Action::Restore => {
            let log = t
                .subject
                .delete_action_id
                .as_deref()
                .ok_or(RestoreConflict::NoRestoreLog)?;
            run.restore(log).await?;
            run.mark(Mark::Restored).await?;
        }
        Action::Erase => {
            let log = t.subject.delete_action_id.as_deref();
            let identity = run.identity(plan, log).await?;
            run.categories(plan, target).await?;
            run.erase(plan, &identity, log).await?;
            run.mark(Mark::Erased {
                deleted_at: t.subject.subject.deleted_at,
            })
            .await?;
        }
    }
    let mut effects = run.effects;
    if let Some(log) = run.log {
        effects.restore_log_rows = log.rows;
    }
    Ok(Applied {
        to,
        effects,
        restore_until,
        notify: plan.notify.clone(),
    })
}

impl Apply<'_> {
    /// Apply one mutation to the subject's rows (logged while a restore
    /// log is being written).
    pub async fn mutate(&mut self, m: Mutation<'_>) -> Result<u64, ExecError> {
        Ok(self
            .p
            .mutate(self.conn, self.owner, &m, self.log.as_mut())
            .await?)
    }

    async fn categories(&mut self, plan: &Plan, target: Option<&str>) -> Result<(), ExecError> {
        for cp in &plan.categories {
            let Some(c) = self.p.map().category(&cp.category) else {
                return Err(PlanError::UnknownCategory(cp.category.clone()).into());
            };
            let mut effect = CategoryEffect {
                category: c.name.clone(),
                disposition: Some(cp.disposition),
                ..Default::default()
            };
            match cp.disposition {
                Disposition::Keep => {}
                Disposition::Transfer => {
                    let Some(target) = target else {
                        return Err(PlanError::MissingTransferTarget(c.name.clone()).into());
                    };
                    let open = if cp.only_open { c.open.as_ref() } else { None };
                    effect.transferred = self
                        .mutate(Mutation {
                            rows: Rows::category_open(c, open),
                            change: Change::Set(vec![(&c.owner, Some(target.to_owned()))]),
                            expect: Some(target),
                        })
                        .await?;
                }
                Disposition::Cascade => {
                    (effect.deleted, effect.detached) = self.cascade(c).await?;
                }
                Disposition::Anonymise => {
                    effect.anonymised = self.anonymise(c).await?;
                }
            }
            self.effects.categories.push(effect);
        }
        Ok(())
    }

    /// Scrub the category's personal columns in the subject's rows.
    pub async fn anonymise(&mut self, c: &Category) -> Result<u64, ExecError> {
        if c.personal.is_empty() {
            return Ok(0);
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
    /// detaching shallow children. Returns (deleted, detached).
    async fn cascade(&mut self, c: &Category) -> Result<(u64, u64), ExecError> {
        let (mut deleted, mut detached) = (0, 0);
        for path in cascade_order(c) {
            let Some(edge) = path.last() else { continue };
            let rows = Rows::Below {
                category: c,
                path: &path,
            };
            match edge.edge {
                EdgeKind::Shallow => {
                    detached += self
                        .mutate(Mutation {
                            rows,
                            change: Change::Set(vec![(&edge.fk, None)]),
                            expect: None,
                        })
                        .await?;
                }
                EdgeKind::Deep => {
                    deleted += self
                        .mutate(Mutation {
                            rows,
                            change: Change::Delete,
                            expect: None,
                        })
                        .await?;
                }
            }
        }
        deleted += self
            .mutate(Mutation {
                rows: Rows::category(c),
                change: Change::Delete,
                expect: None,
            })
            .await?;
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
            let n = self
                .mutate(Mutation {
                    rows: Rows::guard(g),
                    change: Change::Delete,
                    expect: None,
                })
                .await?;
            *self.effects.guards.entry(g.table.clone()).or_default() += n;
        }
        Ok(())
    }

    async fn profile(&mut self, profile: &ProfilePlan) -> Result<(), ExecError> {
        if let ProfilePlan::Scrub(name) = profile {
            self.scrub_profile(name).await?;
        }
        Ok(())
    }

    /// The subject's personal columns to their scrub values, the display
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
        self.effects.profile_scrubbed = true;
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

    /// Lethe's lifecycle row for the subject.
    async fn mark(&mut self, mark: Mark) -> Result<(), ExecError> {
        let (previous, deleted_at, restore_until, delete_action) = match mark {
            Mark::Restorable {
                previous,
                deleted_at,
                restore_until,
            } => (
                Some(previous.as_str()),
                Some(deleted_at),
                Some(restore_until),
                Some(self.action_id),
            ),
            Mark::Erased { deleted_at } => (None, deleted_at, None, None),
            Mark::Restored => (None, None, None, None),
        };
        sqlx::query(
            "INSERT INTO lethe_user_lifecycle (tenant_id, user_id, previous_state, deleted_at, restore_until, delete_action_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
             previous_state = excluded.previous_state, deleted_at = excluded.deleted_at, \
             restore_until = excluded.restore_until, delete_action_id = excluded.delete_action_id",
        )
        .bind(self.owner.tenant)
        .bind(self.owner.user)
        .bind(previous)
        .bind(deleted_at)
        .bind(restore_until)
        .bind(delete_action)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// The plan's transfer target, resolved to a user id and checked to be
    /// an active user of this tenant other than the subject; `None` when
    /// the plan transfers nothing.
    async fn transfer_target(
        &mut self,
        plan: &Plan,
        actor: &ActorRef,
    ) -> Result<Option<String>, ExecError> {
        if !plan::transfers(plan) {
            return Ok(None);
        }
        let Some(target) = &plan.transfer_target else {
            return Ok(None);
        };
        let Owner { tenant, user } = self.owner;
        let id = match target {
            TransferTarget::User(u) => u.clone(),
            TransferTarget::Actor => match actor {
                ActorRef::TenantUser(a) => a.clone(),
                _ => return Err(PlanError::ActorNotAUser.into()),
            },
            TransferTarget::Role(role) => self
                .p
                .with_role(self.conn, tenant, role, LifecycleState::Active)
                .await?
                .into_iter()
                .find(|id| id != user)
                .ok_or_else(|| PlanError::NoUserWithRole(role.clone()))?,
        };
        // FOR SHARE: the target cannot be deleted under us before commit.
        let state = self
            .p
            .user(self.conn, tenant, &id, RowLock::Share)
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
}
