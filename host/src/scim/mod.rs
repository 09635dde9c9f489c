//! SCIM 2.0 (RFC 7643/7644): identity providers provision a tenant's users
//! and deprovision them through the tenant's policy.
//!
//! An identity provider says "this person left" (`active: false`, or a
//! DELETE); the tenant's policy decides what that means. `active: false`
//! runs the tenant's deprovision action (deactivate or lock,
//! [`store::Deprovision`]), `active: true` reactivates or unlocks, DELETE
//! deletes: each one action of the lifecycle executor, asked by a system
//! actor named `scim:<token label>`, evidence and events included, exactly
//! as any other actor's. Profile attributes (userName, names, email,
//! externalId) are written to the columns the data map's `[users.scim]`
//! names ([`crate::platform::provisioning`]).
//!
//! - `request`: a POST/PUT body or PATCH operations → [`Desired`];
//! - `filter`: the `filter` parameter → platform matches;
//! - `resource`: users and discovery documents as SCIM JSON;
//! - `store`: tokens, the deprovision setting, the request log.
//!
//! Answers an identity provider gets:
//! - allowed: the SCIM success status (200, 201, 204);
//! - escalated: **202 Accepted** with the user as it is now, so the
//!   provider neither retries nor records a failure, while the user is
//!   visibly not yet deprovisioned; support decides;
//! - denied: **403** with the policy's code and message in `detail`;
//! - a policy fault: **503**, nothing applied, so the provider retries.

pub mod filter;
pub mod request;
pub mod resource;
pub mod store;

use crate::clock::unix_now;
use crate::contract::{Action, LifecycleState, Outcome};
use crate::db::RowLock;
use crate::escalation::{self, Asked};
use crate::executor::{ActionInput, ActionReport, ActorRef, ExecError, Executor};
use crate::platform::provisioning::{Found, Match, Profile, ProvisionedUser};
use crate::platform::PlatformError;
use crate::tenancy::TenantPolicies;

pub use request::{Desired, Stored};
pub use store::{IdentityProvider, RequestOutcome, ScimStore};

/// `scimType` of an error (RFC 7644 §3.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ScimType {
    InvalidFilter,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
}

/// A request that did not do what was asked, as SCIM reports it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
    /// For the request log.
    pub outcome: RequestOutcome,
    /// The action that decided, when the policy denied it.
    pub action_id: Option<String>,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> ScimError {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            outcome: RequestOutcome::Refused,
            action_id: None,
        }
    }

    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> ScimError {
        ScimError::new(400, Some(scim_type), detail)
    }

    pub fn not_found() -> ScimError {
        ScimError::new(404, None, "no such resource")
    }

    fn internal(e: impl std::fmt::Display) -> ScimError {
        tracing::error!(error = %e, "SCIM request failed");
        ScimError::new(500, None, "internal error; nothing was applied")
    }

    fn denied(report: &ActionReport) -> ScimError {
        let (code, message) = match &report.decision.outcome {
            Outcome::Deny { code, message } => (code.as_str(), message.as_str()),
            _ => ("", ""),
        };
        ScimError {
            status: 403,
            scim_type: None,
            detail: format!(
                "denied by the tenant's policy ({code}): {message} [action {}]",
                report.action_id
            ),
            outcome: RequestOutcome::Denied,
            action_id: Some(report.action_id.clone()),
        }
    }
}

impl From<PlatformError> for ScimError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::NotProvisioned => ScimError::not_found(),
            other => ScimError::internal(other),
        }
    }
}

impl From<crate::db::DbError> for ScimError {
    fn from(e: crate::db::DbError) -> Self {
        ScimError::internal(e)
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> Self {
        ScimError::internal(e)
    }
}

impl From<escalation::EscalationError> for ScimError {
    fn from(e: escalation::EscalationError) -> Self {
        ScimError::internal(e)
    }
}

impl From<ExecError> for ScimError {
    fn from(e: ExecError) -> Self {
        match &e {
            ExecError::UnknownSubject { .. } => ScimError::not_found(),
            ExecError::Lifecycle(_) | ExecError::Conflict(_) | ExecError::Superseded(_) => {
                ScimError::new(409, None, e.to_string())
            }
            ExecError::Policy(_) | ExecError::PlanRefused(_) => ScimError::new(
                503,
                None,
                format!("the tenant's policy could not decide; nothing was applied ({e})"),
            ),
            _ => ScimError::internal(e),
        }
    }
}

/// What a request did.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The user now; `None` once a delete erased it.
    pub user: Option<ProvisionedUser>,
    pub outcome: RequestOutcome,
    /// The lifecycle action it ran, if any.
    pub action_id: Option<String>,
    /// The escalation the answer waits on (202).
    pub escalation: Option<String>,
}

impl Answer {
    fn read(user: ProvisionedUser) -> Answer {
        Answer {
            user: Some(user),
            outcome: RequestOutcome::Read,
            action_id: None,
            escalation: None,
        }
    }
}

/// What a list asks for.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub matches: Vec<Match>,
    /// 1-based.
    pub start_index: i64,
    pub count: i64,
}

impl ListQuery {
    /// From the `filter`, `startIndex` and `count` parameters (RFC 7644
    /// §3.4.2.4: a start below 1 is 1, a negative count is 0).
    pub fn new(
        filter: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
    ) -> Result<ListQuery, ScimError> {
        let matches = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) => filter::parse(f)?,
            None => Vec::new(),
        };
        Ok(ListQuery {
            matches,
            start_index: start_index.unwrap_or(1).max(1),
            count: count
                .unwrap_or(DEFAULT_COUNT)
                .clamp(0, resource::MAX_RESULTS),
        })
    }
}

/// Users per page when `count` is not given.
pub const DEFAULT_COUNT: i64 = 100;

/// The SCIM use cases over the executor and Lethe's SCIM tables.
#[derive(Debug, Clone)]
pub struct Scim {
    executor: Executor,
    store: ScimStore,
}

/// What a lifecycle step came to.
enum Step {
    /// Nothing to do: the user is already as asked.
    None,
    Applied {
        action_id: String,
    },
    Escalated {
        action_id: String,
        escalation: String,
    },
}

impl Scim {
    pub fn new(executor: Executor) -> Scim {
        let store = ScimStore::new(executor.db().clone());
        Scim { executor, store }
    }

    pub fn store(&self) -> &ScimStore {
        &self.store
    }

    /// Which optional attributes the data map stores (`None`: the map has
    /// no SCIM section, and SCIM answers 404).
    pub fn stored(&self) -> Result<Stored, ScimError> {
        Ok(Stored::of(self.executor.platform().scim_columns()?))
    }

    pub async fn list(&self, tenant: &str, q: &ListQuery) -> Result<Found, ScimError> {
        let p = self.executor.platform();
        let mut conn = p.db().pool().acquire().await?;
        Ok(
            p.provisioned_page(&mut conn, tenant, &q.matches, q.start_index - 1, q.count)
                .await?,
        )
    }

    pub async fn get(&self, tenant: &str, id: &str) -> Result<Answer, ScimError> {
        Ok(Answer::read(self.current(tenant, id).await?))
    }

    async fn current(&self, tenant: &str, id: &str) -> Result<ProvisionedUser, ScimError> {
        let p = self.executor.platform();
        let mut conn = p.db().pool().acquire().await?;
        p.provisioned(&mut conn, tenant, id, RowLock::None)
            .await?
            .ok_or_else(ScimError::not_found)
    }

    /// Refuse a userName another user of the tenant has.
    async fn check_unique(
        &self,
        tenant: &str,
        conn: &mut sqlx::AnyConnection,
        user_name: &str,
        except: Option<&str>,
    ) -> Result<(), ScimError> {
        let holder = self
            .executor
            .platform()
            .user_name_holder(conn, tenant, user_name, except)
            .await?;
        match holder {
            Some(_) => Err(ScimError::new(
                409,
                Some(ScimType::Uniqueness),
                format!("userName `{user_name}` is taken by another user of this tenant"),
            )),
            None => Ok(()),
        }
    }

    /// POST /Users: a new user, active or (with `active: false`) already in
    /// the tenant's deprovisioned state. Creating destroys nothing, so it
    /// does not ask the policy.
    #[tracing::instrument(name = "scim.create", skip_all, fields(tenant = %idp.tenant, idp = %idp.label))]
    pub async fn create(
        &self,
        idp: &IdentityProvider,
        desired: &Desired,
    ) -> Result<Answer, ScimError> {
        let p = self.executor.platform();
        let tenant = &idp.tenant;
        let state = if desired.active {
            LifecycleState::Active
        } else {
            self.deprovisioned_state(tenant).await?
        };
        let key = format!(
            "{}{}",
            p.scim_columns()?.key_prefix,
            hex::encode(rand::random::<[u8; 12]>())
        );
        let mut tx = p.db().begin_write().await?;
        self.check_unique(tenant, &mut tx, &desired.profile.user_name, None)
            .await?;
        p.insert_provisioned(&mut tx, tenant, &key, &desired.profile, state, unix_now())
            .await?;
        tx.commit().await?;
        tracing::info!(tenant = %tenant, user = %key, idp = %idp.label, "SCIM user created");
        Ok(Answer {
            user: Some(self.current(tenant, &key).await?),
            outcome: RequestOutcome::Created,
            action_id: None,
            escalation: None,
        })
    }

    async fn deprovisioned_state(&self, tenant: &str) -> Result<LifecycleState, ScimError> {
        Ok(match self.store.settings(tenant).await?.deprovision {
            store::Deprovision::Deactivate => LifecycleState::Deactivated,
            store::Deprovision::Lock => LifecycleState::Locked,
        })
    }

    /// The user as it is, as a [`Desired`]: the base of a PATCH.
    pub async fn desired_now(&self, tenant: &str, id: &str) -> Result<Desired, ScimError> {
        let u = self.current(tenant, id).await?;
        Ok(Desired {
            active: u.state == LifecycleState::Active,
            profile: u.profile,
        })
    }

    /// PUT or PATCH: make user `id` what `desired` says. The lifecycle
    /// change (if `active` changes) goes first, through the policy; the
    /// profile is written only if it was allowed or escalated, so a denial
    /// changes nothing.
    #[tracing::instrument(name = "scim.update", skip_all, fields(tenant = %idp.tenant, idp = %idp.label, user = %id))]
    pub async fn update(
        &self,
        policies: &TenantPolicies,
        idp: &IdentityProvider,
        id: &str,
        desired: &Desired,
    ) -> Result<Answer, ScimError> {
        let tenant = &idp.tenant;
        let before = self.current(tenant, id).await?;
        if !desired
            .profile
            .user_name
            .eq_ignore_ascii_case(&before.profile.user_name)
        {
            let p = self.executor.platform();
            let mut conn = p.db().pool().acquire().await?;
            self.check_unique(tenant, &mut conn, &desired.profile.user_name, Some(id))
                .await?;
        }
        let action = self
            .lifecycle_action(tenant, &before, desired.active)
            .await?;
        let step = match action {
            Some(action) => self.run(policies, idp, id, action).await?,
            None => Step::None,
        };
        let profile_changed = desired.profile != before.profile;
        if profile_changed {
            self.write_profile(tenant, id, &desired.profile).await?;
        }
        let user = self.current(tenant, id).await?;
        Ok(match step {
            Step::Escalated {
                action_id,
                escalation,
            } => Answer {
                user: Some(user),
                outcome: RequestOutcome::Escalated,
                action_id: Some(action_id),
                escalation: Some(escalation),
            },
            Step::Applied { action_id } => Answer {
                user: Some(user),
                outcome: if desired.active {
                    RequestOutcome::Reprovisioned
                } else {
                    RequestOutcome::Deprovisioned
                },
                action_id: Some(action_id),
                escalation: None,
            },
            Step::None => Answer {
                user: Some(user),
                outcome: if profile_changed {
                    RequestOutcome::Updated
                } else {
                    RequestOutcome::Unchanged
                },
                action_id: None,
                escalation: None,
            },
        })
    }

    async fn write_profile(
        &self,
        tenant: &str,
        id: &str,
        profile: &Profile,
    ) -> Result<(), ScimError> {
        let p = self.executor.platform();
        let mut tx = p.db().begin_write().await?;
        // Locked and re-read: the user may have been erased meanwhile.
        if p.provisioned(&mut tx, tenant, id, RowLock::Update)
            .await?
            .is_none()
        {
            return Err(ScimError::not_found());
        }
        self.check_unique(tenant, &mut tx, &profile.user_name, Some(id))
            .await?;
        p.update_profile(&mut tx, tenant, id, profile).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The action that takes `user` to `active`, if any. Already there is
    /// no action (a retried PATCH changes nothing the second time).
    async fn lifecycle_action(
        &self,
        tenant: &str,
        user: &ProvisionedUser,
        active: bool,
    ) -> Result<Option<Action>, ScimError> {
        use LifecycleState as S;
        Ok(match (user.state, active) {
            (S::Active, true) => None,
            (S::Active, false) => Some(self.store.settings(tenant).await?.deprovision.action()),
            (S::Locked | S::Deactivated | S::Deleted, false) => None,
            (S::Locked, true) => Some(Action::Unlock),
            (S::Deactivated, true) => Some(Action::Reactivate),
            (S::Deleted | S::Erased, true) => {
                return Err(ScimError::new(
                    409,
                    Some(ScimType::Mutability),
                    format!(
                        "user {} is deleted; a restore is the tenant's or support's decision",
                        user.id
                    ),
                ))
            }
            (S::Erased, false) => return Err(ScimError::not_found()),
        })
    }

    /// Run `action` on `id` through the policy as the identity provider.
    /// A pending escalation of the same action is joined, not repeated.
    async fn run(
        &self,
        policies: &TenantPolicies,
        idp: &IdentityProvider,
        id: &str,
        action: Action,
    ) -> Result<Step, ScimError> {
        let db = self.executor.db();
        if let Some(waiting) = escalation::pending_of(db, &idp.tenant, id, action).await? {
            return Ok(Step::Escalated {
                action_id: waiting.action_id,
                escalation: waiting.id,
            });
        }
        let actor = ActorRef::IdentityProvider(idp.label.clone());
        let now = unix_now();
        let reason = format!("identity provider {} (SCIM)", idp.label);
        let input = ActionInput {
            tenant: idp.tenant.clone(),
            subject: id.to_owned(),
            action,
            actor: actor.clone(),
            transfer_to: None,
            reason: Some(reason.clone()),
            bulk: false,
            now,
            idempotency_key: None,
            dry_run: false,
        };
        let actor_id = actor.id();
        let queue = escalation::Queue {
            asked: Asked {
                actor_id: &actor_id,
                transfer_to: None,
                reason: Some(&reason),
            },
            now,
        };
        let report = self.executor.act_with(policies, &input, &queue).await?;
        match &report.decision.outcome {
            Outcome::Allow { .. } => Ok(Step::Applied {
                action_id: report.action_id,
            }),
            Outcome::Escalate { .. } => {
                let esc = escalation::of_action(db, &report.action_id).await?;
                Ok(Step::Escalated {
                    action_id: report.action_id,
                    escalation: esc.id,
                })
            }
            Outcome::Deny { .. } => Err(ScimError::denied(&report)),
        }
    }

    /// DELETE: the tenant's deprovision action first when the user is
    /// still active (Okta and Entra deprovision before they delete; a
    /// client that does not gets the same path), then delete, each through
    /// the policy. A deleted user is already what was asked.
    #[tracing::instrument(name = "scim.delete", skip_all, fields(tenant = %idp.tenant, idp = %idp.label, user = %id))]
    pub async fn delete(
        &self,
        policies: &TenantPolicies,
        idp: &IdentityProvider,
        id: &str,
    ) -> Result<Answer, ScimError> {
        let tenant = &idp.tenant;
        let mut user = self.current(tenant, id).await?;
        if user.state == LifecycleState::Active {
            let deprovision = self.store.settings(tenant).await?.deprovision.action();
            if let Step::Escalated {
                action_id,
                escalation,
            } = self.run(policies, idp, id, deprovision).await?
            {
                return Ok(Answer {
                    user: Some(self.current(tenant, id).await?),
                    outcome: RequestOutcome::Escalated,
                    action_id: Some(action_id),
                    escalation: Some(escalation),
                });
            }
            user = self.current(tenant, id).await?;
        }
        if user.state == LifecycleState::Deleted {
            return Ok(Answer {
                user: Some(user),
                outcome: RequestOutcome::Unchanged,
                action_id: None,
                escalation: None,
            });
        }
        match self.run(policies, idp, id, Action::Delete).await? {
            Step::Escalated {
                action_id,
                escalation,
            } => Ok(Answer {
                user: Some(self.current(tenant, id).await?),
                outcome: RequestOutcome::Escalated,
                action_id: Some(action_id),
                escalation: Some(escalation),
            }),
            Step::Applied { action_id } => {
                let p = self.executor.platform();
                let mut conn = p.db().pool().acquire().await?;
                Ok(Answer {
                    user: p.provisioned(&mut conn, tenant, id, RowLock::None).await?,
                    outcome: RequestOutcome::Deleted,
                    action_id: Some(action_id),
                    escalation: None,
                })
            }
            Step::None => Err(ScimError::internal("a delete that was no action")),
        }
    }
}
