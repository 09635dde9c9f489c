//! The lifecycle executor: one transaction per user action.
//!
//! ```text
//! lock subject row → idempotency → state machine → context (actor,
//! holdings) → Decider → plan validation → effects + restore log +
//! history + audit + decision record → commit
//! ```
//!
//! [`Executor::act_with`] is that pipeline, top to bottom; each stage is a
//! module:
//! - `context`: the subject (locked), the actor, holdings, the request a
//!   policy sees; and the same read set-based for a bulk batch;
//! - `idempotency`: a retried action returns its first result;
//! - `effects`: a validated plan applied to the platform's rows, each
//!   disposition one logged mutation of [`crate::platform`];
//! - `erase` and `restore`: the two actions that are more than a plan;
//! - `batch`: the users of a bulk batch in one transaction, each group of
//!   identical plans applied by the same statements ([`Executor::act_batch`]).
//!
//! The executor knows nothing of WebAssembly. It asks a [`Decider`] for a
//! decision; the host wires the policy runtime in as one, and tests use a
//! plain Rust decider. Everything an action writes — data changes, restore
//! log, evidence — commits together or not at all, so a crash, a policy
//! fault or a refused plan leaves the user exactly as before. It writes no
//! SQL against the platform's tables itself: [`Platform`] does.

mod batch;
mod context;
mod effects;
mod erase;
mod idempotency;
mod restore;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::audit::{self, Evidence};
use crate::contract::{Action, Decision, Disposition, LifecycleState, Outcome, Request};
use crate::datamap::{DataMap, DataMapError};
use crate::db::{Db, DbError};
pub use crate::decision::{Decider, PolicyFault, Verdict};
use crate::error_code::ErrorCode;
use crate::lifecycle::{self, LifecycleError};
use crate::plan::{self, PlanError};
use crate::platform::{Platform, PlatformError};

pub use batch::{BatchEpilogue, Batched};
pub use erase::pseudonym_for;

/// Writes that must commit with an action; see [`Executor::act_with`].
pub trait Epilogue: Sync {
    fn write(
        &self,
        conn: &mut AnyConnection,
        report: &ActionReport,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;
}

/// No epilogue.
impl Epilogue for () {
    async fn write(&self, _: &mut AnyConnection, _: &ActionReport) -> Result<(), ExecError> {
        Ok(())
    }
}

/// Users per set-based context query in [`Executor::contexts`]: well under
/// every backend's bind-parameter limit.
pub const CONTEXT_CHUNK: usize = crate::platform::users::CHUNK;

/// What a bulk action asks of every user of a batch.
#[derive(Debug, Clone)]
pub struct Ask {
    pub tenant: String,
    pub action: Action,
    pub actor: ActorRef,
    pub transfer_to: Option<String>,
    pub reason: Option<String>,
    /// Unix seconds; one `now` per batch, so the requests read for the batch
    /// equal those each user's transaction re-reads.
    pub now: i64,
}

impl Ask {
    /// The input of one user's action of this batch.
    pub fn input(&self, user: &str) -> ActionInput {
        ActionInput {
            tenant: self.tenant.clone(),
            subject: user.to_owned(),
            action: self.action,
            actor: self.actor.clone(),
            transfer_to: self.transfer_to.clone(),
            reason: self.reason.clone(),
            bulk: true,
            now: self.now,
            idempotency_key: None,
            dry_run: false,
        }
    }
}

/// One user's facts as read for a batch by [`Executor::contexts`].
#[derive(Debug, Clone)]
pub struct Prepared {
    pub user: String,
    /// The request the policy would see, or why the action is impossible.
    pub request: Result<Request, Refusal>,
}

/// Why an action did not happen for one user, with a stable code (the API's
/// problem codes: `not-found`, `invalid-transition`, `policy-fault`…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl From<&ExecError> for Refusal {
    fn from(e: &ExecError) -> Refusal {
        Refusal {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// Who asks. Tenant users are loaded from the database, never taken from
/// the caller's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorRef {
    TenantUser(String),
    Support(String),
    /// Lethe itself (the window-expiry sweep): actor `system`.
    System,
    /// An identity provider over SCIM, by its token's label: a system
    /// actor whose id is `scim:<label>`, so policies can tell it from the
    /// sweep without a new contract version.
    IdentityProvider(String),
}

impl ActorRef {
    /// The prefix of an identity provider's actor id.
    pub const IDENTITY_PROVIDER_PREFIX: &'static str = "scim:";

    /// The actor id policies, the audit and escalations see.
    pub fn id(&self) -> String {
        match self {
            ActorRef::TenantUser(id) | ActorRef::Support(id) => id.clone(),
            ActorRef::System => "system".to_owned(),
            ActorRef::IdentityProvider(label) => {
                format!("{}{label}", ActorRef::IDENTITY_PROVIDER_PREFIX)
            }
        }
    }
}

/// One requested action.
#[derive(Debug, Clone)]
pub struct ActionInput {
    pub tenant: String,
    pub subject: String,
    pub action: Action,
    pub actor: ActorRef,
    pub transfer_to: Option<String>,
    pub reason: Option<String>,
    pub bulk: bool,
    /// Unix seconds; passed in so actions and tests are reproducible.
    pub now: i64,
    /// A retried action with the same key (per tenant) applies once and
    /// returns the first result.
    pub idempotency_key: Option<String>,
    /// Run everything, report the effects, commit nothing.
    pub dry_run: bool,
}

/// What one category's disposition did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryEffect {
    pub category: String,
    pub disposition: Option<Disposition>,
    pub transferred: u64,
    /// Rows removed, deep children included.
    pub deleted: u64,
    /// Children detached through shallow edges.
    pub detached: u64,
    pub anonymised: u64,
}

/// Everything an action changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Effects {
    pub categories: Vec<CategoryEffect>,
    /// Rows removed per table by `remove` guards.
    pub guards: BTreeMap<String, u64>,
    pub transfer_target: Option<String>,
    pub profile_scrubbed: bool,
    pub references_pseudonymised: u64,
    pub restore_log_rows: u64,
    pub rows_restored: u64,
}

/// The result of an action, as printed by `lethe act` and returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionReport {
    pub action_id: String,
    pub tenant: String,
    pub subject: String,
    pub action: Action,
    pub policy_sha256: String,
    /// The version that decided (see [`Verdict::policy_version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<i64>,
    pub decision: Decision,
    pub from_state: LifecycleState,
    /// `None` unless the action was allowed and applied.
    pub to_state: Option<LifecycleState>,
    pub effects: Effects,
    pub restore_until: Option<i64>,
    pub notify: Vec<String>,
    pub dry_run: bool,
    /// True when an idempotency key matched an earlier action.
    #[serde(default)]
    pub replayed: bool,
}

/// Why a restore could not proceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreConflict {
    #[error("the email now belongs to another live user ({other})")]
    EmailTaken { other: String },
    #[error("transferred row {table}/{row} changed owner or was removed since")]
    TransferredRowMoved { table: String, row: String },
    #[error("no restore log for this user")]
    NoRestoreLog,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no user `{user}` in tenant `{tenant}`")]
    UnknownSubject { tenant: String, user: String },
    #[error("actor `{0}` is not a user of this tenant")]
    UnknownActor(String),
    #[error("actor `{actor}` is {state}, not active")]
    ActorNotActive {
        actor: String,
        state: LifecycleState,
    },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("policy fault ({code}): {0}", code = .0.code())]
    Policy(#[from] PolicyFault),
    // The cause is in the message, not chained as a source: `{:#}` would
    // otherwise print it twice.
    #[error("plan refused: {0}")]
    PlanRefused(PlanError),
    #[error("restore conflict: {0}")]
    Conflict(RestoreConflict),
    #[error("user state `{0}` is not one the data map declares")]
    UnknownStateValue(String),
    #[error(transparent)]
    DataMap(#[from] DataMapError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A value could not be serialised for the evidence: nothing is
    /// stored rather than an empty record.
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// An [`Epilogue`] found its work already done by someone else (a bulk
    /// item handled by another worker); the action was rolled back.
    #[error("superseded: {0}")]
    Superseded(String),
    /// The idempotency key was first used for another request.
    #[error(
        "idempotency key `{key}` was used for another request (action {action_id}); use a new key"
    )]
    IdempotencyKeyReused { key: String, action_id: String },
}

impl ExecError {
    /// A stable, machine-readable code (the API's problem `code`).
    pub fn code(&self) -> ErrorCode {
        match self {
            ExecError::UnknownSubject { .. } => ErrorCode::NotFound,
            ExecError::UnknownActor(_) => ErrorCode::UnknownActor,
            ExecError::ActorNotActive { .. } => ErrorCode::ActorNotActive,
            ExecError::Lifecycle(LifecycleError::NotAllowed { .. }) => ErrorCode::InvalidTransition,
            ExecError::Lifecycle(LifecycleError::WindowClosed { .. }) => {
                ErrorCode::RestoreWindowClosed
            }
            ExecError::Policy(_) => ErrorCode::PolicyFault,
            ExecError::PlanRefused(e) if e.is_target_error() => ErrorCode::InvalidTransferTarget,
            ExecError::PlanRefused(_) => ErrorCode::PlanRefused,
            ExecError::Conflict(_) => ErrorCode::RestoreConflict,
            ExecError::Superseded(_) => ErrorCode::Superseded,
            ExecError::IdempotencyKeyReused { .. } => ErrorCode::IdempotencyKeyReused,
            ExecError::UnknownStateValue(_)
            | ExecError::DataMap(_)
            | ExecError::Db(_)
            | ExecError::Corrupt(_)
            | ExecError::Encode { .. } => ErrorCode::Internal,
        }
    }
}

impl From<PlanError> for ExecError {
    fn from(e: PlanError) -> Self {
        ExecError::PlanRefused(e)
    }
}

impl From<RestoreConflict> for ExecError {
    fn from(e: RestoreConflict) -> Self {
        ExecError::Conflict(e)
    }
}

impl From<PlatformError> for ExecError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Db(e) => ExecError::Db(e),
            PlatformError::DataMap(e) => ExecError::DataMap(e),
            PlatformError::UndeclaredState { value, .. } => ExecError::UnknownStateValue(value),
            PlatformError::Corrupt(e) => ExecError::Corrupt(e),
            e @ PlatformError::NotProvisioned => ExecError::Corrupt(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for ExecError {
    fn from(e: sqlx::Error) -> Self {
        ExecError::Db(DbError::Sql(e))
    }
}

/// Applies decisions to one platform database described by one data map.
#[derive(Debug, Clone)]
pub struct Executor {
    platform: Platform,
}

/// What an allowed action did.
struct Applied {
    to: LifecycleState,
    effects: Effects,
    restore_until: Option<i64>,
    notify: Vec<String>,
}

impl Applied {
    /// The report of a decided action, as committed (a dry run marks its
    /// own): `applied` is `None` unless the decision allowed it and its
    /// plan was applied.
    fn report(
        applied: Option<Applied>,
        action_id: String,
        tenant: &str,
        subject: &str,
        action: Action,
        verdict: Verdict,
        from: LifecycleState,
    ) -> ActionReport {
        ActionReport {
            action_id,
            tenant: tenant.to_owned(),
            subject: subject.to_owned(),
            action,
            policy_sha256: verdict.policy_sha256,
            policy_version: verdict.policy_version,
            decision: verdict.decision,
            from_state: from,
            to_state: applied.as_ref().map(|a| a.to),
            restore_until: applied.as_ref().and_then(|a| a.restore_until),
            notify: applied
                .as_ref()
                .map(|a| a.notify.clone())
                .unwrap_or_default(),
            effects: applied.map(|a| a.effects).unwrap_or_default(),
            dry_run: false,
            replayed: false,
        }
    }
}

impl Executor {
    /// Introspect the database and validate the map against it: the host
    /// refuses to start on a map that does not match.
    pub async fn new(db: Db, map: DataMap) -> Result<Executor, ExecError> {
        Ok(Executor::on(Platform::new(db, map).await?))
    }

    /// An executor over an already built platform layer (shared with the
    /// directory, so both see one schema and one map).
    pub fn on(platform: Platform) -> Executor {
        Executor { platform }
    }

    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    pub fn db(&self) -> &Db {
        self.platform.db()
    }

    pub fn map(&self) -> &DataMap {
        self.platform.map()
    }

    /// Decide and apply one action, atomically.
    pub async fn act<D: Decider>(
        &self,
        decider: &D,
        input: &ActionInput,
    ) -> Result<ActionReport, ExecError> {
        self.act_with(decider, input, &()).await
    }

    /// [`Executor::act`], with `epilogue` written in the same transaction
    /// after the evidence: a bulk job's item status or an escalation commits
    /// with the action or not at all. An epilogue error rolls the whole
    /// action back. Not called for a replayed (idempotent) action.
    ///
    /// Every early return drops the transaction uncommitted, so it writes
    /// nothing.
    #[tracing::instrument(name = "executor.act", skip_all, fields(tenant = %input.tenant, subject = %input.subject, action = %input.action, action_id = tracing::field::Empty))]
    pub async fn act_with<D: Decider, E: Epilogue>(
        &self,
        decider: &D,
        input: &ActionInput,
        epilogue: &E,
    ) -> Result<ActionReport, ExecError> {
        let p = &self.platform;
        let started = Instant::now();
        let mut tx = p.db().begin_write().await?;

        // Context: the subject locked until commit, then the facts.
        let subject = context::subject_locked(p, &mut tx, input).await?;
        if let Some(first) = idempotency::first_result(&mut tx, input).await? {
            tx.rollback().await?;
            return Ok(first);
        }
        let from = subject.standing.state;
        let to = lifecycle::check(input.action, subject.standing, input.now)?;
        let actor = context::actor(p, &mut tx, &input.tenant, &input.actor).await?;
        let request = context::request(p, &mut tx, input, &subject, actor).await?;
        let context_us = started.elapsed().as_micros();

        // Decision, then the validated plan applied.
        let verdict = decider.decide(&input.tenant, &request).await?;
        let decided_us = started.elapsed().as_micros();
        let action_id = format!("act-{:032x}", rand::random::<u128>());
        tracing::Span::current().record("action_id", action_id.as_str());
        let applied = match &verdict.decision.outcome {
            Outcome::Allow { plan } => {
                plan::check(p.map(), input.action, plan)?;
                let target = effects::transfer_target(
                    p,
                    &mut tx,
                    &input.tenant,
                    &input.subject,
                    plan,
                    &input.actor,
                    &mut HashMap::new(),
                )
                .await?;
                let group = effects::Group {
                    tenant: &input.tenant,
                    action: input.action,
                    now: input.now,
                    to,
                    target,
                };
                let members = [effects::Member::of(&input.subject, &subject, &action_id)];
                effects::apply(p, &mut tx, &group, &members, plan)
                    .await?
                    .pop()
            }
            Outcome::Escalate { .. } | Outcome::Deny { .. } => None,
        };
        let applied_us = started.elapsed().as_micros();

        // Evidence, in the same transaction.
        let report = ActionReport {
            dry_run: input.dry_run,
            ..Applied::report(
                applied,
                action_id,
                &input.tenant,
                &input.subject,
                input.action,
                verdict,
                from,
            )
        };
        audit::record(&mut tx, &Evidence::of(&request, &report, input.now)?).await?;
        idempotency::remember(&mut tx, input, &report).await?;
        epilogue.write(&mut tx, &report).await?;
        // The outbox: the change's event commits with it (after the
        // epilogue, so an approval's escalation event comes first).
        let actor = crate::events::EventActor {
            kind: request.actor.kind,
            id: request.actor.id.clone(),
        };
        if let Some(event) = crate::events::Event::applied(&report, actor, input.bulk, input.now)? {
            crate::events::record(&mut tx, &event).await?;
        }
        if input.dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        crate::telemetry::acted(&report, started.elapsed());
        tracing::info!(
            action_id = %report.action_id, outcome = report.decision.outcome.kind(),
            dry_run = input.dry_run, context_us, decide_us = decided_us - context_us,
            apply_us = applied_us - decided_us, evidence_us = started.elapsed().as_micros() - applied_us,
            "action decided"
        );
        Ok(report)
    }

    /// The requests a policy would see for `users`, read set-based for a
    /// whole batch: per chunk of [`CONTEXT_CHUNK`] users, one query for the
    /// subjects with their lifecycle rows and one for all their holdings;
    /// the actor once. Users the tenant does not have, and users the action
    /// is impossible for (the state machine), get a [`Refusal`] instead.
    /// Read outside any transaction: each user's own transaction re-reads
    /// and locks its facts before anything is applied (see
    /// [`Executor::act_with`]).
    #[tracing::instrument(name = "executor.contexts", skip_all, fields(tenant = %ask.tenant, action = %ask.action, users = users.len()))]
    pub async fn contexts(&self, ask: &Ask, users: &[String]) -> Result<Vec<Prepared>, ExecError> {
        context::batch(&self.platform, ask, users).await
    }

    /// Erase, as the system actor and through the policy, every deleted user
    /// whose restore window has passed.
    pub async fn sweep<D: Decider>(
        &self,
        decider: &D,
        now: i64,
    ) -> Result<Vec<SweepItem>, ExecError> {
        let mut out = Vec::new();
        for (tenant, user) in context::expired(self.db(), now).await? {
            let input = ActionInput {
                tenant: tenant.clone(),
                subject: user.clone(),
                action: Action::Erase,
                actor: ActorRef::System,
                transfer_to: None,
                reason: Some("restore window expired".into()),
                bulk: true,
                now,
                idempotency_key: None,
                dry_run: false,
            };
            let result = self.act(decider, &input).await;
            if let Err(e) = &result {
                tracing::warn!(%tenant, %user, error = %e, "sweep could not erase");
            }
            out.push(SweepItem {
                tenant,
                user,
                result: result.map_err(|e| e.to_string()),
            });
        }
        Ok(out)
    }
}

/// One user handled by [`Executor::sweep`].
#[derive(Debug, Serialize)]
pub struct SweepItem {
    pub tenant: String,
    pub user: String,
    pub result: Result<ActionReport, String>,
}
