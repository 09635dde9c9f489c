//! Context: the facts a policy decides on, read from the database.
//!
//! The subject is read and locked inside the action's transaction (two
//! actions on one user never interleave); the actor is loaded by id, never
//! taken from the caller's word, and must be active; holdings are counted.
//! [`batch`] reads the same for many users at once, outside any
//! transaction, for bulk previews and jobs.

use std::collections::{BTreeMap, HashMap};

use sqlx::{AnyConnection, Row};

use super::{ActionInput, ActorRef, Ask, ExecError, Prepared, Refusal};
use crate::contract::{Actor, ActorKind, LifecycleState, Request};
use crate::db::{Db, RowLock};
use crate::lifecycle;
use crate::platform::{no_holdings, Platform, UserRecord};

/// The subject of `input`, locked until the transaction ends.
pub(super) async fn subject_locked(
    p: &Platform,
    conn: &mut AnyConnection,
    input: &ActionInput,
) -> Result<UserRecord, ExecError> {
    p.user(conn, &input.tenant, &input.subject, RowLock::Update)
        .await?
        .ok_or_else(|| ExecError::UnknownSubject {
            tenant: input.tenant.clone(),
            user: input.subject.clone(),
        })
}

/// Who asks, as the policy sees them. Tenant users are loaded from the
/// database and must be active: a locked, deactivated or deleted user acts
/// no more.
pub(super) async fn actor(
    p: &Platform,
    conn: &mut AnyConnection,
    tenant: &str,
    actor: &ActorRef,
) -> Result<Actor, ExecError> {
    match actor {
        ActorRef::Support(id) => Ok(empty_actor(ActorKind::Support, id)),
        ActorRef::System | ActorRef::IdentityProvider(_) => {
            Ok(empty_actor(ActorKind::System, &actor.id()))
        }
        ActorRef::TenantUser(id) => {
            let Some(user) = p.user(conn, tenant, id, RowLock::None).await? else {
                return Err(ExecError::UnknownActor(id.clone()));
            };
            let s = user.subject;
            if s.state != LifecycleState::Active {
                return Err(ExecError::ActorNotActive {
                    actor: id.clone(),
                    state: s.state,
                });
            }
            Ok(Actor {
                kind: ActorKind::TenantUser,
                id: s.id,
                roles: s.roles,
                permissions: s.permissions,
                domain: s.domain,
                attributes: s.attributes,
            })
        }
    }
}

/// The request the policy sees for `input`: the subject and actor as
/// loaded, and the subject's holdings counted now.
pub(super) async fn request(
    p: &Platform,
    conn: &mut AnyConnection,
    input: &ActionInput,
    subject: &UserRecord,
    actor: Actor,
) -> Result<Request, ExecError> {
    let holdings = p.holdings_of(conn, &input.tenant, &input.subject).await?;
    Ok(Request {
        action: input.action,
        now: input.now,
        subject: subject.subject.clone(),
        actor,
        holdings,
        transfer_to: input.transfer_to.clone(),
        reason: input.reason.clone(),
        bulk: input.bulk,
    })
}

/// [`super::Executor::contexts`]: per chunk of users, one query for the
/// subjects with their lifecycle rows and one for their holdings.
pub(super) async fn batch(
    p: &Platform,
    ask: &Ask,
    users: &[String],
) -> Result<Vec<Prepared>, ExecError> {
    let mut conn = p.db().pool().acquire().await?;
    let actor = actor(p, &mut conn, &ask.tenant, &ask.actor).await?;
    let mut out = Vec::with_capacity(users.len());
    for chunk in users.chunks(super::CONTEXT_CHUNK) {
        let mut subjects = HashMap::with_capacity(chunk.len());
        for user in p
            .users(&mut conn, &ask.tenant, chunk, RowLock::None)
            .await?
        {
            let user = user?;
            subjects.insert(user.subject.id.clone(), user);
        }
        let mut holdings = p.holdings(&mut conn, &ask.tenant, chunk).await?;
        for id in chunk {
            let request = match subjects.remove(id) {
                None => Err(Refusal::from(&ExecError::UnknownSubject {
                    tenant: ask.tenant.clone(),
                    user: id.clone(),
                })),
                Some(user) => match lifecycle::check(ask.action, user.standing, ask.now) {
                    Err(e) => Err(Refusal::from(&ExecError::Lifecycle(e))),
                    Ok(_) => Ok(Request {
                        action: ask.action,
                        now: ask.now,
                        subject: user.subject,
                        actor: actor.clone(),
                        holdings: holdings.remove(id).unwrap_or_else(|| no_holdings(p.map())),
                        transfer_to: ask.transfer_to.clone(),
                        reason: ask.reason.clone(),
                        bulk: true,
                    }),
                },
            };
            out.push(Prepared {
                user: id.clone(),
                request,
            });
        }
    }
    Ok(out)
}

/// (tenant, user) of every deleted user whose restore window ended before
/// `now`, for the sweep.
pub(super) async fn expired(db: &Db, now: i64) -> Result<Vec<(String, String)>, ExecError> {
    let rows = sqlx::query(
        "SELECT tenant_id, user_id FROM lethe_user_lifecycle \
         WHERE restore_until IS NOT NULL AND restore_until < $1 ORDER BY tenant_id, user_id",
    )
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

fn empty_actor(kind: ActorKind, id: &str) -> Actor {
    Actor {
        kind,
        id: id.to_owned(),
        roles: vec![],
        permissions: vec![],
        domain: String::new(),
        attributes: BTreeMap::new(),
    }
}
