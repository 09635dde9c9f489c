//! The lifecycle executor: one transaction per user action.
//!
//! ```text
//! lock subject row → idempotency → state machine → context (actor,
//! holdings) → Decider → plan validation → effects + restore log +
//! history + audit + decision record → commit
//! ```
//!
//! The executor knows nothing of WebAssembly. It asks a [`Decider`] for a
//! decision; the host wires the policy runtime in as one, and tests use a
//! plain Rust decider. Everything an action writes — data changes, restore
//! log, evidence — commits together or not at all, so a crash, a policy
//! fault or a refused plan leaves the user exactly as before.
//!
//! All data changes are set-based SQL built from the data map (never a row
//! at a time), and the restore log is captured with `INSERT … SELECT` just
//! before each change, so its cost grows linearly with the rows touched.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use crate::audit::{self, Evidence};
use crate::contract::{
    Action, Actor, ActorKind, Decision, Disposition, Holding, LifecycleState, Outcome, Plan,
    ProfilePlan, References, Request, Subject, TransferTarget,
};
use crate::datamap::{cascade_order, Category, DataMap, DataMapError, Edge, EdgeKind, GuardRule};
use crate::db::{quote_ident, Backend, ColumnKind, Db, DbError, RowLock, Schema};
pub use crate::decision::{Decider, PolicyFault, Verdict};
use crate::error_code::ErrorCode;
use crate::lifecycle::{self, LifecycleError, Standing};
use crate::plan::{self, PlanError, TargetFacts};

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
pub const CONTEXT_CHUNK: usize = 500;

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
    System,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReport {
    pub action_id: String,
    pub tenant: String,
    pub subject: String,
    pub action: Action,
    pub policy_sha256: String,
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
    /// An [`Epilogue`] found its work already done by someone else (a bulk
    /// item handled by another worker); the action was rolled back.
    #[error("superseded: {0}")]
    Superseded(String),
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
            ExecError::UnknownStateValue(_)
            | ExecError::DataMap(_)
            | ExecError::Db(_)
            | ExecError::Corrupt(_) => ErrorCode::Internal,
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

impl From<sqlx::Error> for ExecError {
    fn from(e: sqlx::Error) -> Self {
        ExecError::Db(DbError::Sql(e))
    }
}

/// Applies decisions to one platform database described by one data map.
#[derive(Debug, Clone)]
pub struct Executor {
    db: Db,
    map: DataMap,
    schema: Schema,
}

impl Executor {
    /// Introspect the database and validate the map against it: the host
    /// refuses to start on a map that does not match.
    pub async fn new(db: Db, map: DataMap) -> Result<Executor, ExecError> {
        let schema = db.introspect().await?;
        map.validate(&schema)?;
        Ok(Executor { db, map, schema })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn map(&self) -> &DataMap {
        &self.map
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
    #[tracing::instrument(name = "executor.act", skip_all, fields(tenant = %input.tenant, subject = %input.subject, action = %input.action))]
    pub async fn act_with<D: Decider, E: Epilogue>(
        &self,
        decider: &D,
        input: &ActionInput,
        epilogue: &E,
    ) -> Result<ActionReport, ExecError> {
        let tx = self.db.begin_write().await?;
        let mut run = Run {
            tx,
            ex: self,
            tenant: &input.tenant,
            user: &input.subject,
            action_id: format!("act-{:032x}", rand::random::<u128>()),
            step: 0,
            log: false,
            effects: Effects::default(),
        };
        // Dropping `run.tx` without commit rolls everything back, so every
        // early return below writes nothing.
        let report = run.act(decider, input).await?;
        if report.replayed {
            run.tx.rollback().await?;
            return Ok(report);
        }
        epilogue.write(&mut run.tx, &report).await?;
        if input.dry_run {
            run.tx.rollback().await?;
        } else {
            run.tx.commit().await?;
        }
        Ok(report)
    }

    /// One user of `tenant`, or `None`; `deleted_at` is left for the caller.
    async fn user_on(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        id: &str,
        lock: RowLock,
    ) -> Result<Option<Subject>, ExecError> {
        let mut q = Q::new("");
        let select = self.user_select(&mut q, tenant);
        let user = q.text(id);
        let key = self.text_expr(&self.map.users.table, "x", &self.map.users.key);
        q.push(&format!(
            "{select} AND {key} = {user}{}",
            self.db.backend().row_lock(lock)
        ));
        match q.fetch_optional(conn).await? {
            Some(row) => Ok(Some(self.subject_from_row(&row)?)),
            None => Ok(None),
        }
    }

    /// Who asks, as the policy sees them. Tenant users are loaded from the
    /// database and must be active: a locked, deactivated or deleted user
    /// acts no more.
    async fn actor_on(
        &self,
        conn: &mut AnyConnection,
        tenant: &str,
        actor: &ActorRef,
    ) -> Result<Actor, ExecError> {
        match actor {
            ActorRef::Support(id) => Ok(empty_actor(ActorKind::Support, id)),
            ActorRef::System => Ok(empty_actor(ActorKind::System, "system")),
            ActorRef::TenantUser(id) => {
                let Some(user) = self.user_on(conn, tenant, id, RowLock::None).await? else {
                    return Err(ExecError::UnknownActor(id.clone()));
                };
                if user.state != LifecycleState::Active {
                    return Err(ExecError::ActorNotActive {
                        actor: id.clone(),
                        state: user.state,
                    });
                }
                Ok(Actor {
                    kind: ActorKind::TenantUser,
                    id: id.clone(),
                    roles: user.roles,
                    permissions: user.permissions,
                    domain: user.domain,
                    attributes: user.attributes,
                })
            }
        }
    }

    /// The requests a policy would see for `users`, read set-based for a
    /// whole batch: per chunk of [`CONTEXT_CHUNK`] users, one query for the
    /// subjects, one for their lifecycle rows and one for all their
    /// holdings; the actor once. Users the tenant does not have, and users
    /// the action is impossible for (the state machine), get a [`Refusal`]
    /// instead. Read outside any transaction: each user's own transaction
    /// re-reads and locks its facts before anything is applied (see
    /// [`Executor::act_with`]).
    #[tracing::instrument(name = "executor.contexts", skip_all, fields(tenant = %ask.tenant, action = %ask.action, users = users.len()))]
    pub async fn contexts(&self, ask: &Ask, users: &[String]) -> Result<Vec<Prepared>, ExecError> {
        let mut conn = self.db.pool().acquire().await?;
        let actor = self.actor_on(&mut conn, &ask.tenant, &ask.actor).await?;
        let u = &self.map.users;
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(CONTEXT_CHUNK) {
            // Subjects.
            let mut q = Q::new("");
            let select = self.user_select(&mut q, &ask.tenant);
            let list: Vec<String> = chunk.iter().map(|id| q.text(id.as_str())).collect();
            let key = self.text_expr(&u.table, "x", &u.key);
            q.push(&format!("{select} AND {key} IN ({})", list.join(", ")));
            let mut subjects = HashMap::with_capacity(chunk.len());
            for row in q.fetch_all(&mut conn).await? {
                let s = self.subject_from_row(&row)?;
                subjects.insert(s.id.clone(), s);
            }
            // Lifecycle rows.
            let mut q = Q::new("");
            let t = q.text(ask.tenant.as_str());
            let list: Vec<String> = chunk.iter().map(|id| q.text(id.as_str())).collect();
            q.push(&format!(
                "SELECT user_id, previous_state, deleted_at, restore_until, delete_action_id \
                 FROM lethe_user_lifecycle WHERE tenant_id = {t} AND user_id IN ({})",
                list.join(", ")
            ));
            let mut lifecycle_rows = HashMap::new();
            for row in q.fetch_all(&mut conn).await? {
                let lc = LifecycleRow::read(&row)?;
                lifecycle_rows.insert(lc.user_id.clone(), lc);
            }
            // Holdings, grouped by owner.
            let mut holdings: HashMap<String, Vec<Holding>> = HashMap::new();
            if !self.map.categories.is_empty() {
                let mut q = Q::new("");
                let list: Vec<String> = chunk.iter().map(|id| q.text(id.as_str())).collect();
                let cond = format!("IN ({})", list.join(", "));
                let sql = self.holdings_sql(&mut q, &ask.tenant, &cond, true);
                q.push(&sql);
                for row in q.fetch_all(&mut conn).await? {
                    let i: i64 = row.try_get(0)?;
                    let owner: String = row.try_get(1)?;
                    let total: i64 = row.try_get(2)?;
                    let open: i64 = row.try_get(3)?;
                    let entry = holdings.entry(owner).or_insert_with(|| self.no_holdings());
                    if let Some(h) = usize::try_from(i).ok().and_then(|i| entry.get_mut(i)) {
                        h.total = total.max(0) as u64;
                        h.open = open.max(0) as u64;
                    }
                }
            }
            for id in chunk {
                let request = match subjects.remove(id) {
                    None => Err(Refusal {
                        code: ErrorCode::NotFound,
                        message: format!("no user `{id}` in tenant `{}`", ask.tenant),
                    }),
                    Some(subject) => {
                        let l = loaded(subject, lifecycle_rows.remove(id));
                        match lifecycle::check(ask.action, l.standing, ask.now) {
                            Err(e) => Err(Refusal::from(&ExecError::Lifecycle(e))),
                            Ok(_) => Ok(Request {
                                action: ask.action,
                                now: ask.now,
                                subject: l.subject,
                                actor: actor.clone(),
                                holdings: holdings.remove(id).unwrap_or_else(|| self.no_holdings()),
                                transfer_to: ask.transfer_to.clone(),
                                reason: ask.reason.clone(),
                                bulk: true,
                            }),
                        }
                    }
                };
                out.push(Prepared {
                    user: id.clone(),
                    request,
                });
            }
        }
        Ok(out)
    }

    /// Zero holdings in every category, in data-map order.
    fn no_holdings(&self) -> Vec<Holding> {
        self.map
            .categories
            .iter()
            .map(|c| Holding {
                category: c.name.clone(),
                total: 0,
                open: 0,
            })
            .collect()
    }

    /// `alias.col` as text, cast only when the column is not text (so
    /// indexes on text keys stay usable).
    fn text_expr(&self, table: &str, alias: &str, col: &str) -> String {
        let kind = self
            .schema
            .tables
            .get(table)
            .and_then(|t| t.columns.get(col))
            .map(|c| c.kind);
        if kind == Some(ColumnKind::Text) {
            format!("{alias}.{}", quote_ident(col))
        } else {
            format!("CAST({alias}.{} AS TEXT)", quote_ident(col))
        }
    }

    /// `SELECT key, state, roles, permissions, domain, created, last_login,
    /// attributes… FROM users x WHERE x.tenant = $t`, for
    /// [`Executor::subject_from_row`]; callers append `AND …`.
    fn user_select(&self, q: &mut Q, tenant: &str) -> String {
        let u = &self.map.users;
        let col = |c: &Option<String>| match c {
            Some(c) => format!("CAST(x.{} AS TEXT)", quote_ident(c)),
            None => "CAST(NULL AS TEXT)".to_owned(),
        };
        let mut sql = format!(
            "SELECT {key}, x.{state}, {roles}, {perms}, {domain}, x.{created}, {last_login}",
            key = self.text_expr(&u.table, "x", &u.key),
            state = quote_ident(&u.state.column),
            roles = col(&u.roles),
            perms = col(&u.permissions),
            domain = col(&u.domain),
            created = quote_ident(&u.created),
            last_login = match &u.last_login {
                Some(c) => format!("x.{}", quote_ident(c)),
                None => "CAST(NULL AS BIGINT)".into(),
            },
        );
        for a in &u.attributes {
            sql.push_str(&format!(", CAST(x.{} AS TEXT)", quote_ident(a)));
        }
        let t = q.text(tenant);
        sql.push_str(&format!(
            " FROM {} x WHERE x.{} = {t}",
            quote_ident(&u.table),
            quote_ident(&u.tenant),
        ));
        sql
    }

    /// A user as selected by [`Executor::user_select`]; `deleted_at` is
    /// left for the caller (it lives in Lethe's lifecycle table).
    fn subject_from_row(&self, row: &AnyRow) -> Result<Subject, ExecError> {
        let u = &self.map.users;
        let state_value: String = row.try_get(1)?;
        let state = u
            .state
            .state(&state_value)
            .ok_or(ExecError::UnknownStateValue(state_value))?;
        let split = |s: Option<String>| -> Vec<String> {
            s.unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut attributes = BTreeMap::new();
        for (i, a) in u.attributes.iter().enumerate() {
            if let Some(v) = row.try_get::<Option<String>, _>(7 + i)? {
                let is_bool = self
                    .schema
                    .tables
                    .get(&u.table)
                    .and_then(|t| t.columns.get(a))
                    .map(|c| c.kind)
                    == Some(ColumnKind::Boolean);
                // Booleans read as 1/0 on SQLite and true/false on
                // PostgreSQL; policies see "true"/"false" either way.
                let v = if is_bool {
                    (if matches!(v.as_str(), "1" | "t" | "true" | "TRUE") {
                        "true"
                    } else {
                        "false"
                    })
                    .to_owned()
                } else {
                    v
                };
                attributes.insert(a.clone(), v);
            }
        }
        Ok(Subject {
            id: row.try_get(0)?,
            state,
            roles: split(row.try_get(2)?),
            permissions: split(row.try_get(3)?),
            domain: row.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
            created_at: row.try_get(5)?,
            last_login_at: row.try_get(6)?,
            deleted_at: None,
            attributes,
        })
    }

    /// Holdings of the owners matching `owner_cond` (`= $2`, `IN (…)`), as
    /// one `UNION ALL` over the categories: rows of (category index,
    /// [owner,] total, open). With `by_owner`, one row per owner holding
    /// anything; without, exactly one row per category.
    fn holdings_sql(&self, q: &mut Q, tenant: &str, owner_cond: &str, by_owner: bool) -> String {
        let t = q.text(tenant);
        let mut parts = Vec::new();
        for (i, c) in self.map.categories.iter().enumerate() {
            let owner = self.text_expr(&c.table, "x", &c.owner);
            let open = match &c.open {
                Some(o) => {
                    let values: Vec<String> = o.values.iter().map(|v| q.text(v.as_str())).collect();
                    format!(
                        "COALESCE(SUM(CASE WHEN x.{} IN ({}) THEN 1 ELSE 0 END), 0)",
                        quote_ident(&o.column),
                        values.join(", ")
                    )
                }
                None => "COUNT(*)".into(),
            };
            let (owner_col, group) = if by_owner {
                (format!("{owner}, "), format!(" GROUP BY {owner}"))
            } else {
                (String::new(), String::new())
            };
            parts.push(format!(
                "SELECT CAST({i} AS BIGINT), {owner_col}CAST(COUNT(*) AS BIGINT), CAST({open} AS BIGINT) \
                 FROM {} x WHERE x.{} = {t} AND {owner} {owner_cond}{group}",
                quote_ident(&c.table),
                quote_ident(&c.tenant),
            ));
        }
        parts.join(" UNION ALL ")
    }

    /// Erase, as the system actor and through the policy, every deleted user
    /// whose restore window has passed.
    pub async fn sweep<D: Decider>(
        &self,
        decider: &D,
        now: i64,
    ) -> Result<Vec<SweepItem>, ExecError> {
        let due = sqlx::query(
            "SELECT tenant_id, user_id FROM lethe_user_lifecycle \
             WHERE restore_until IS NOT NULL AND restore_until < $1 ORDER BY tenant_id, user_id",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::new();
        for row in due {
            let tenant: String = row.try_get(0)?;
            let user: String = row.try_get(1)?;
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

/// A bound SQL argument.
#[derive(Debug, Clone)]
enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
}

/// A statement under construction with `$n` placeholders.
#[derive(Debug, Default)]
struct Q {
    sql: String,
    args: Vec<Arg>,
}

impl Q {
    fn new(sql: impl Into<String>) -> Q {
        Q {
            sql: sql.into(),
            args: Vec::new(),
        }
    }
    fn push(&mut self, s: &str) -> &mut Q {
        self.sql.push_str(s);
        self
    }
    fn text(&mut self, v: impl Into<String>) -> String {
        self.args.push(Arg::Text(Some(v.into())));
        format!("${}", self.args.len())
    }
    fn opt_text(&mut self, v: Option<&str>) -> String {
        self.args.push(Arg::Text(v.map(str::to_owned)));
        format!("${}", self.args.len())
    }
    fn int(&mut self, v: Option<i64>) -> String {
        self.args.push(Arg::Int(v));
        format!("${}", self.args.len())
    }
    fn query(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(&self.sql);
        for a in &self.args {
            q = match a {
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Int(v) => q.bind(*v),
            };
        }
        q
    }
    async fn execute(&self, conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
        tracing::trace!(sql = %self.sql, "execute");
        Ok(self.query().execute(conn).await?.rows_affected())
    }
    async fn fetch_all(&self, conn: &mut AnyConnection) -> Result<Vec<AnyRow>, sqlx::Error> {
        self.query().fetch_all(conn).await
    }
    async fn fetch_optional(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        self.query().fetch_optional(conn).await
    }
}

/// The subject as loaded (and locked) at the start of an action.
struct Loaded {
    subject: Subject,
    standing: Standing,
    delete_action_id: Option<String>,
}

/// A `lethe_user_lifecycle` row.
struct LifecycleRow {
    user_id: String,
    previous_state: Option<LifecycleState>,
    deleted_at: Option<i64>,
    restore_until: Option<i64>,
    delete_action_id: Option<String>,
}

impl LifecycleRow {
    /// From `SELECT user_id, previous_state, deleted_at, restore_until,
    /// delete_action_id`.
    fn read(r: &AnyRow) -> Result<LifecycleRow, ExecError> {
        let prev: Option<String> = r.try_get(1)?;
        let previous_state = prev
            .map(|p| {
                p.parse::<LifecycleState>()
                    .map_err(|e| ExecError::Corrupt(e.to_string()))
            })
            .transpose()?;
        Ok(LifecycleRow {
            user_id: r.try_get(0)?,
            previous_state,
            deleted_at: r.try_get(2)?,
            restore_until: r.try_get(3)?,
            delete_action_id: r.try_get(4)?,
        })
    }
}

/// The subject with its lifecycle facts: `deleted_at` only while deleted
/// or erased, the restore window only while deleted.
fn loaded(subject: Subject, lc: Option<LifecycleRow>) -> Loaded {
    let state = subject.state;
    let gone = matches!(state, LifecycleState::Deleted | LifecycleState::Erased);
    let (previous_state, deleted_at, restore_until, delete_action_id) = match lc {
        Some(l) => (
            l.previous_state,
            l.deleted_at,
            l.restore_until,
            l.delete_action_id,
        ),
        None => (None, None, None, None),
    };
    Loaded {
        subject: Subject {
            deleted_at: if gone { deleted_at } else { None },
            ..subject
        },
        standing: Standing {
            state,
            restore_until: if state == LifecycleState::Deleted {
                restore_until
            } else {
                None
            },
            previous_state,
        },
        delete_action_id,
    }
}

/// What the restore log saves of each matched row.
enum Saved<'a> {
    /// The whole row (it is about to be removed; restore re-inserts it).
    Row,
    /// The old values of these columns (restore writes them back).
    Columns(&'a [&'a str]),
}

/// A table whose rows are selected by tenant and owner.
struct Owned<'a> {
    table: &'a str,
    tenant: &'a str,
    owner: &'a str,
}

/// One action in progress.
struct Run<'e> {
    tx: Transaction<'static, Any>,
    ex: &'e Executor,
    tenant: &'e str,
    user: &'e str,
    action_id: String,
    step: i64,
    /// Whether changes are written to the restore log (delete with window).
    log: bool,
    effects: Effects,
}

impl Run<'_> {
    fn backend(&self) -> Backend {
        self.ex.db.backend()
    }
    fn map(&self) -> &DataMap {
        &self.ex.map
    }

    fn text_expr(&self, table: &str, alias: &str, col: &str) -> String {
        self.ex.text_expr(table, alias, col)
    }

    async fn act<D: Decider>(
        &mut self,
        decider: &D,
        input: &ActionInput,
    ) -> Result<ActionReport, ExecError> {
        let started = std::time::Instant::now();
        let loaded = self.load_subject().await?;
        if let Some(key) = &input.idempotency_key {
            let row = sqlx::query("SELECT response_json FROM lethe_idempotency WHERE tenant_id = $1 AND idem_key = $2")
                .bind(self.tenant)
                .bind(key)
                .fetch_optional(&mut *self.tx)
                .await?;
            if let Some(row) = row {
                let json: String = row.try_get(0)?;
                let mut report: ActionReport =
                    serde_json::from_str(&json).map_err(|e| ExecError::Corrupt(e.to_string()))?;
                report.replayed = true;
                return Ok(report);
            }
        }
        let from = loaded.standing.state;
        let mut to = lifecycle::check(input.action, loaded.standing, input.now)?;
        let actor = self.load_actor(&input.actor).await?;
        let holdings = self.holdings().await?;
        let request = Request {
            action: input.action,
            now: input.now,
            subject: loaded.subject.clone(),
            actor: actor.clone(),
            holdings,
            transfer_to: input.transfer_to.clone(),
            reason: input.reason.clone(),
            bulk: input.bulk,
        };
        let context_us = started.elapsed().as_micros();
        let verdict = decider.decide(self.tenant, &request).await?;
        let decided_us = started.elapsed().as_micros();
        let mut restore_until = None;
        let mut notify = Vec::new();
        let applied = match &verdict.decision.outcome {
            Outcome::Allow { plan } => {
                plan::check(self.map(), input.action, plan)?;
                let target = if plan::transfers(plan) {
                    match &plan.transfer_target {
                        Some(t) => Some(self.resolve_target(t, &input.actor).await?),
                        None => None,
                    }
                } else {
                    None
                };
                self.effects.transfer_target = target.clone();
                notify = plan.notify.clone();
                match input.action {
                    Action::Lock | Action::Unlock | Action::Reactivate => {
                        self.apply_guards(input.action).await?;
                        self.set_state(to).await?;
                    }
                    Action::Deactivate => {
                        self.apply_categories(plan, target.as_deref()).await?;
                        self.apply_guards(input.action).await?;
                        self.apply_profile(&plan.profile).await?;
                        self.set_state(to).await?;
                    }
                    Action::Delete if plan.restore_window_days > 0 => {
                        self.log = true;
                        self.apply_categories(plan, target.as_deref()).await?;
                        self.apply_guards(input.action).await?;
                        self.apply_profile(&plan.profile).await?;
                        self.set_state(to).await?;
                        let until = input.now + i64::from(plan.restore_window_days) * 86_400;
                        restore_until = Some(until);
                        self.set_lifecycle(Some(from), Some(input.now), Some(until), true)
                            .await?;
                    }
                    Action::Delete => {
                        // Window 0: final at once. No restore log; the user
                        // ends erased.
                        let identity = self.identity(plan, None).await?;
                        self.apply_categories(plan, target.as_deref()).await?;
                        self.apply_guards(input.action).await?;
                        self.erase(plan, &identity, None).await?;
                        to = LifecycleState::Erased;
                        self.set_lifecycle(None, Some(input.now), None, false)
                            .await?;
                    }
                    Action::Restore => {
                        let action_id = loaded
                            .delete_action_id
                            .clone()
                            .ok_or(RestoreConflict::NoRestoreLog)?;
                        self.restore(&action_id, &loaded.subject).await?;
                        self.set_lifecycle(None, None, None, false).await?;
                    }
                    Action::Erase => {
                        let log = loaded.delete_action_id.as_deref();
                        let identity = self.identity(plan, log).await?;
                        self.apply_categories(plan, target.as_deref()).await?;
                        self.erase(plan, &identity, log).await?;
                        self.set_lifecycle(None, loaded.subject.deleted_at, None, false)
                            .await?;
                    }
                }
                true
            }
            Outcome::Escalate { .. } | Outcome::Deny { .. } => false,
        };
        let applied_us = started.elapsed().as_micros();
        let report = ActionReport {
            action_id: self.action_id.clone(),
            tenant: self.tenant.to_owned(),
            subject: self.user.to_owned(),
            action: input.action,
            policy_sha256: verdict.policy_sha256.clone(),
            decision: verdict.decision.clone(),
            from_state: from,
            to_state: applied.then_some(to),
            effects: std::mem::take(&mut self.effects),
            restore_until,
            notify,
            dry_run: input.dry_run,
            replayed: false,
        };
        let request_json =
            serde_json::to_string(&request).map_err(|e| ExecError::Corrupt(e.to_string()))?;
        let effects_json = serde_json::to_string(&report.effects)
            .map_err(|e| ExecError::Corrupt(e.to_string()))?;
        audit::record(
            &mut self.tx,
            &Evidence {
                action_id: &self.action_id,
                tenant: self.tenant,
                subject: self.user,
                actor: &actor,
                action: input.action,
                at: input.now,
                policy_sha256: &verdict.policy_sha256,
                request_json: &request_json,
                decision: &verdict.decision,
                effects_json: &effects_json,
                transition: applied.then_some((from, to)),
            },
        )
        .await?;
        if let Some(key) = &input.idempotency_key {
            let json =
                serde_json::to_string(&report).map_err(|e| ExecError::Corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO lethe_idempotency (tenant_id, idem_key, action_id, response_json) VALUES ($1, $2, $3, $4)",
            )
            .bind(self.tenant)
            .bind(key)
            .bind(&self.action_id)
            .bind(&json)
            .execute(&mut *self.tx)
            .await?;
        }
        tracing::info!(
            action_id = %self.action_id, tenant = %self.tenant, subject = %self.user,
            action = %input.action, outcome = report.decision.outcome.kind(), dry_run = input.dry_run,
            context_us, decide_us = decided_us - context_us, apply_us = applied_us - decided_us,
            evidence_us = started.elapsed().as_micros() - applied_us,
            "action decided"
        );
        Ok(report)
    }

    /// Load the subject and lock its row until commit: two actions on one
    /// user never interleave.
    async fn load_subject(&mut self) -> Result<Loaded, ExecError> {
        let ex = self.ex;
        let subject = ex
            .user_on(&mut self.tx, self.tenant, self.user, RowLock::Update)
            .await?
            .ok_or_else(|| ExecError::UnknownSubject {
                tenant: self.tenant.to_owned(),
                user: self.user.to_owned(),
            })?;
        let lc = sqlx::query(
            "SELECT user_id, previous_state, deleted_at, restore_until, delete_action_id FROM lethe_user_lifecycle \
             WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(self.tenant)
        .bind(self.user)
        .fetch_optional(&mut *self.tx)
        .await?;
        let lc = lc.as_ref().map(LifecycleRow::read).transpose()?;
        Ok(loaded(subject, lc))
    }

    async fn load_actor(&mut self, actor: &ActorRef) -> Result<Actor, ExecError> {
        let ex = self.ex;
        ex.actor_on(&mut self.tx, self.tenant, actor).await
    }

    /// A user of the subject's tenant (actor, transfer target) through the
    /// action's own transaction.
    async fn user_view(&mut self, id: &str, lock: RowLock) -> Result<Option<Subject>, ExecError> {
        let ex = self.ex;
        ex.user_on(&mut self.tx, self.tenant, id, lock).await
    }

    /// Rows per category the subject owns, and how many are open: one
    /// round trip (`UNION ALL` over the categories' tables).
    async fn holdings(&mut self) -> Result<Vec<Holding>, ExecError> {
        let ex = self.ex;
        let categories = &ex.map.categories;
        if categories.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Q::new("");
        let user = q.text(self.user);
        let sql = ex.holdings_sql(&mut q, self.tenant, &format!("= {user}"), false);
        q.push(&sql);
        let rows = q.fetch_all(&mut self.tx).await?;
        let mut out: Vec<Holding> = categories
            .iter()
            .map(|c| Holding {
                category: c.name.clone(),
                total: 0,
                open: 0,
            })
            .collect();
        for row in rows {
            let (i, total, open) = holding_row(&row)?;
            if let Some(h) = out.get_mut(i) {
                h.total = total;
                h.open = open;
            }
        }
        Ok(out)
    }

    /// `alias.tenant = $t AND alias.owner = $u [AND alias.open IN (…)]`.
    fn owned_cond(
        &self,
        q: &mut Q,
        o: &Owned<'_>,
        alias: &str,
        open: Option<&crate::datamap::OpenRule>,
    ) -> String {
        let t = q.text(self.tenant);
        let u = q.text(self.user);
        let mut cond = format!(
            "{alias}.{} = {t} AND {} = {u}",
            quote_ident(o.tenant),
            self.text_expr(o.table, alias, o.owner)
        );
        if let Some(open) = open {
            let values: Vec<String> = open.values.iter().map(|v| q.text(v.as_str())).collect();
            cond.push_str(&format!(
                " AND {alias}.{} IN ({})",
                quote_ident(&open.column),
                values.join(", ")
            ));
        }
        cond
    }

    /// Append restore-log rows for the rows of `table` (alias `x`) matched
    /// by `from_where`, whose arguments `q` already holds. `expect` is what
    /// the first saved column must still hold at restore time (transfers).
    async fn log_rows(
        &mut self,
        table: &str,
        key: &str,
        saved: Saved<'_>,
        from_where: &str,
        mut q: Q,
        expect: Option<&str>,
    ) -> Result<(), ExecError> {
        if !self.log {
            return Ok(());
        }
        self.step += 1;
        let all: Vec<&str>;
        let (op, cols): (&str, &[&str]) = match saved {
            Saved::Row => {
                all = self
                    .ex
                    .schema
                    .tables
                    .get(table)
                    .map(|t| t.order.iter().map(String::as_str).collect())
                    .unwrap_or_default();
                ("insert", &all)
            }
            Saved::Columns(c) => ("update", c),
        };
        let json = self.backend().json_object("x", cols);
        let a = q.text(self.action_id.as_str());
        let t = q.text(self.tenant);
        let u = q.text(self.user);
        let s = q.int(Some(self.step));
        let tbl = q.text(table);
        let opp = q.text(op);
        let exp = q.opt_text(expect);
        let key_expr = self.text_expr(table, "x", key);
        let sql = format!(
            "INSERT INTO lethe_restore_log (action_id, tenant_id, user_id, step, table_name, op, row_key, data, expect) \
             SELECT {a}, {t}, {u}, {s}, {tbl}, {opp}, {key_expr}, {json}, {exp} {from_where}"
        );
        let q = Q { sql, args: q.args };
        let n = q.execute(&mut self.tx).await?;
        self.effects.restore_log_rows += n;
        Ok(())
    }

    async fn apply_categories(
        &mut self,
        plan: &Plan,
        target: Option<&str>,
    ) -> Result<(), ExecError> {
        for cp in &plan.categories {
            let Some(c) = self.ex.map.category(&cp.category) else {
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
                    effect.transferred = self.transfer(c, open, target).await?;
                }
                Disposition::Cascade => {
                    let (deleted, detached) = self.cascade(c).await?;
                    effect.deleted = deleted;
                    effect.detached = detached;
                }
                Disposition::Anonymise => {
                    effect.anonymised = self.anonymise(c).await?;
                }
            }
            self.effects.categories.push(effect);
        }
        Ok(())
    }

    async fn transfer(
        &mut self,
        c: &Category,
        open: Option<&crate::datamap::OpenRule>,
        target: &str,
    ) -> Result<u64, ExecError> {
        let o = owned(c);
        let mut q = Q::new("");
        let cond = self.owned_cond(&mut q, &o, "x", open);
        let from_where = format!("FROM {} x WHERE {cond}", quote_ident(&c.table));
        self.log_rows(
            &c.table,
            &c.key,
            Saved::Columns(&[&c.owner]),
            &from_where,
            q,
            Some(target),
        )
        .await?;
        let mut q = Q::new("");
        // UPDATE cannot alias its target portably: conditions name the table.
        let cond = self.owned_cond(&mut q, &o, &quote_ident(&c.table), open);
        let tgt = q.text(target);
        q.push(&format!(
            "UPDATE {t} SET {owner} = {tgt} WHERE {cond}",
            t = quote_ident(&c.table),
            owner = quote_ident(&c.owner)
        ));
        Ok(q.execute(&mut self.tx).await?)
    }

    async fn anonymise(&mut self, c: &Category) -> Result<u64, ExecError> {
        if c.personal.is_empty() {
            return Ok(0);
        }
        let o = owned(c);
        let cols: Vec<&str> = c.personal.iter().map(|p| p.column.as_str()).collect();
        let mut q = Q::new("");
        let cond = self.owned_cond(&mut q, &o, "x", None);
        let from_where = format!("FROM {} x WHERE {cond}", quote_ident(&c.table));
        self.log_rows(
            &c.table,
            &c.key,
            Saved::Columns(&cols),
            &from_where,
            q,
            None,
        )
        .await?;
        let mut q = Q::new("");
        let cond = self.owned_cond(&mut q, &o, &quote_ident(&c.table), None);
        let sets: Vec<String> = c
            .personal
            .iter()
            .map(|p| {
                format!(
                    "{} = {}",
                    quote_ident(&p.column),
                    q.opt_text(p.scrub.as_deref())
                )
            })
            .collect();
        q.push(&format!(
            "UPDATE {} SET {} WHERE {cond}",
            quote_ident(&c.table),
            sets.join(", ")
        ));
        Ok(q.execute(&mut self.tx).await?)
    }

    /// Remove the category's rows and their deep children (children first),
    /// detaching shallow children. Returns (deleted, detached).
    async fn cascade(&mut self, c: &Category) -> Result<(u64, u64), ExecError> {
        let o = owned(c);
        let (mut deleted, mut detached) = (0, 0);
        for path in cascade_order(c) {
            let Some(edge) = path.last() else { continue };
            // SELECT parent keys … nested from the category down to the
            // edge's parent.
            let mut q = Q::new("");
            let parent_keys = self.parent_keys(&mut q, c, &o, &path[..path.len() - 1]);
            let fk = quote_ident(&edge.fk);
            let child = quote_ident(&edge.table);
            let from_where = format!("FROM {child} x WHERE x.{fk} IN ({parent_keys})");
            match edge.edge {
                EdgeKind::Shallow => {
                    self.log_rows(
                        &edge.table,
                        &edge.key,
                        Saved::Columns(&[&edge.fk]),
                        &from_where,
                        q,
                        None,
                    )
                    .await?;
                    let mut q = Q::new("");
                    let parent_keys = self.parent_keys(&mut q, c, &o, &path[..path.len() - 1]);
                    q.push(&format!(
                        "UPDATE {child} SET {fk} = NULL WHERE {fk} IN ({parent_keys})"
                    ));
                    detached += q.execute(&mut self.tx).await?;
                }
                EdgeKind::Deep => {
                    self.log_rows(&edge.table, &edge.key, Saved::Row, &from_where, q, None)
                        .await?;
                    let mut q = Q::new("");
                    let parent_keys = self.parent_keys(&mut q, c, &o, &path[..path.len() - 1]);
                    q.push(&format!(
                        "DELETE FROM {child} WHERE {fk} IN ({parent_keys})"
                    ));
                    deleted += q.execute(&mut self.tx).await?;
                }
            }
        }
        let mut q = Q::new("");
        let cond = self.owned_cond(&mut q, &o, "x", None);
        let from_where = format!("FROM {} x WHERE {cond}", quote_ident(&c.table));
        self.log_rows(&c.table, &c.key, Saved::Row, &from_where, q, None)
            .await?;
        let mut q = Q::new("");
        let cond = self.owned_cond(&mut q, &o, &quote_ident(&c.table), None);
        q.push(&format!(
            "DELETE FROM {} WHERE {cond}",
            quote_ident(&c.table)
        ));
        deleted += q.execute(&mut self.tx).await?;
        Ok((deleted, detached))
    }

    /// `SELECT key FROM …` selecting the keys of the rows at the end of
    /// `path` (the category's own rows when `path` is empty).
    fn parent_keys(&self, q: &mut Q, c: &Category, o: &Owned<'_>, path: &[&Edge]) -> String {
        let cond = self.owned_cond(q, o, "p0", None);
        let mut sql = format!(
            "SELECT p0.{} FROM {} p0 WHERE {cond}",
            quote_ident(&c.key),
            quote_ident(&c.table)
        );
        for (i, e) in path.iter().enumerate() {
            let a = format!("p{}", i + 1);
            sql = format!(
                "SELECT {a}.{} FROM {} {a} WHERE {a}.{} IN ({sql})",
                quote_ident(&e.key),
                quote_ident(&e.table),
                quote_ident(&e.fk)
            );
        }
        sql
    }

    async fn apply_guards(&mut self, action: Action) -> Result<(), ExecError> {
        let guards: Vec<_> = self
            .ex
            .map
            .guards
            .iter()
            .filter(|g| g.rule == GuardRule::Remove && g.on.contains(&action))
            .collect();
        for g in guards {
            let o = Owned {
                table: &g.table,
                tenant: &g.tenant,
                owner: &g.column,
            };
            let mut q = Q::new("");
            let cond = self.owned_cond(&mut q, &o, "x", None);
            let from_where = format!("FROM {} x WHERE {cond}", quote_ident(&g.table));
            self.log_rows(&g.table, &g.key, Saved::Row, &from_where, q, None)
                .await?;
            let mut q = Q::new("");
            let cond = self.owned_cond(&mut q, &o, &quote_ident(&g.table), None);
            q.push(&format!(
                "DELETE FROM {} WHERE {cond}",
                quote_ident(&g.table)
            ));
            let n = q.execute(&mut self.tx).await?;
            *self.effects.guards.entry(g.table.clone()).or_default() += n;
        }
        Ok(())
    }

    /// `WHERE` for the subject's own users row, with `alias`.
    fn subject_cond(&self, q: &mut Q, alias: &str) -> String {
        let u = &self.ex.map.users;
        let t = q.text(self.tenant);
        let id = q.text(self.user);
        format!(
            "{alias}.{} = {t} AND {} = {id}",
            quote_ident(&u.tenant),
            self.text_expr(&u.table, alias, &u.key)
        )
    }

    async fn apply_profile(&mut self, profile: &ProfilePlan) -> Result<(), ExecError> {
        if let ProfilePlan::Scrub(name) = profile {
            self.scrub_profile(name.as_str()).await?;
        }
        Ok(())
    }

    async fn scrub_profile(&mut self, display_name: &str) -> Result<(), ExecError> {
        let u = self.ex.map.users.clone();
        let mut cols: Vec<&str> = u.personal.iter().map(|p| p.column.as_str()).collect();
        if !cols.contains(&u.display_name.as_str()) {
            cols.push(&u.display_name);
        }
        let mut q = Q::new("");
        let cond = self.subject_cond(&mut q, "x");
        let from_where = format!("FROM {} x WHERE {cond}", quote_ident(&u.table));
        self.log_rows(
            &u.table,
            &u.key,
            Saved::Columns(&cols),
            &from_where,
            q,
            None,
        )
        .await?;
        let mut q = Q::new("");
        let mut sets = Vec::new();
        for p in &u.personal {
            if p.column != u.display_name {
                sets.push(format!(
                    "{} = {}",
                    quote_ident(&p.column),
                    q.opt_text(p.scrub.as_deref())
                ));
            }
        }
        sets.push(format!(
            "{} = {}",
            quote_ident(&u.display_name),
            q.text(display_name)
        ));
        let cond = self.subject_cond(&mut q, &quote_ident(&u.table));
        q.push(&format!(
            "UPDATE {} SET {} WHERE {cond}",
            quote_ident(&u.table),
            sets.join(", ")
        ));
        q.execute(&mut self.tx).await?;
        self.effects.profile_scrubbed = true;
        Ok(())
    }

    async fn set_state(&mut self, state: LifecycleState) -> Result<(), ExecError> {
        let u = self.ex.map.users.clone();
        let mut q = Q::new("");
        let cond = self.subject_cond(&mut q, "x");
        let from_where = format!("FROM {} x WHERE {cond}", quote_ident(&u.table));
        self.log_rows(
            &u.table,
            &u.key,
            Saved::Columns(&[&u.state.column]),
            &from_where,
            q,
            None,
        )
        .await?;
        let mut q = Q::new("");
        let v = q.text(u.state.value(state));
        let cond = self.subject_cond(&mut q, &quote_ident(&u.table));
        q.push(&format!(
            "UPDATE {} SET {} = {v} WHERE {cond}",
            quote_ident(&u.table),
            quote_ident(&u.state.column)
        ));
        q.execute(&mut self.tx).await?;
        Ok(())
    }

    async fn set_lifecycle(
        &mut self,
        previous: Option<LifecycleState>,
        deleted_at: Option<i64>,
        restore_until: Option<i64>,
        with_log: bool,
    ) -> Result<(), ExecError> {
        let delete_action = with_log.then(|| self.action_id.clone());
        sqlx::query(
            "INSERT INTO lethe_user_lifecycle (tenant_id, user_id, previous_state, deleted_at, restore_until, delete_action_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
             previous_state = excluded.previous_state, deleted_at = excluded.deleted_at, \
             restore_until = excluded.restore_until, delete_action_id = excluded.delete_action_id",
        )
        .bind(self.tenant)
        .bind(self.user)
        .bind(previous.map(|s| s.as_str().to_owned()))
        .bind(deleted_at)
        .bind(restore_until)
        .bind(delete_action)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Resolve the plan's target to a user id and check it is an active user
    /// of this tenant other than the subject.
    async fn resolve_target(
        &mut self,
        target: &TransferTarget,
        actor: &ActorRef,
    ) -> Result<String, ExecError> {
        let id = match target {
            TransferTarget::User(u) => u.clone(),
            TransferTarget::Actor => match actor {
                ActorRef::TenantUser(a) => a.clone(),
                _ => return Err(PlanError::ActorNotAUser.into()),
            },
            TransferTarget::Role(role) => {
                let u = self.ex.map.users.clone();
                let Some(roles_col) = &u.roles else {
                    return Err(PlanError::NoUserWithRole(role.clone()).into());
                };
                let mut q = Q::new("");
                let t = q.text(self.tenant);
                let active = q.text(u.state.value(LifecycleState::Active));
                let like = q.text(format!("%{role}%"));
                let key = self.text_expr(&u.table, "x", &u.key);
                q.push(&format!(
                    "SELECT {key}, CAST(x.{roles} AS TEXT) FROM {tbl} x WHERE x.{tc} = {t} AND x.{sc} = {active} \
                     AND x.{roles} LIKE {like} ORDER BY 1",
                    roles = quote_ident(roles_col),
                    tbl = quote_ident(&u.table),
                    tc = quote_ident(&u.tenant),
                    sc = quote_ident(&u.state.column),
                ));
                let mut found = None;
                for row in q.fetch_all(&mut self.tx).await? {
                    let id: String = row.try_get(0)?;
                    let roles: Option<String> = row.try_get(1)?;
                    let has = roles
                        .unwrap_or_default()
                        .split(',')
                        .any(|r| r.trim() == role);
                    if has && id != self.user {
                        found = Some(id);
                        break;
                    }
                }
                found.ok_or_else(|| PlanError::NoUserWithRole(role.clone()))?
            }
        };
        // FOR SHARE: the target cannot be deleted under us before commit.
        let state = self.user_view(&id, RowLock::Share).await?.map(|s| s.state);
        plan::check_target(
            &TargetFacts {
                id: id.clone(),
                state,
            },
            self.user,
        )?;
        Ok(id)
    }

    /// The strings that identify the subject (name, email, phone… as they
    /// are now and as the restore log remembers them), to be removed from
    /// references on erase. Scrub values are not identity.
    /// `log` is the delete whose restore log remembers the profile.
    async fn identity(&mut self, plan: &Plan, log: Option<&str>) -> Result<Vec<String>, ExecError> {
        let u = self.ex.map.users.clone();
        let mut cols: Vec<&str> = u.personal.iter().map(|p| p.column.as_str()).collect();
        if !cols.contains(&u.display_name.as_str()) {
            cols.push(&u.display_name);
        }
        let mut not_identity: Vec<String> =
            u.personal.iter().filter_map(|p| p.scrub.clone()).collect();
        if let ProfilePlan::Scrub(s) = &plan.profile {
            not_identity.push(s.clone());
        }
        let mut values = Vec::new();
        let mut q = Q::new("");
        let sel: Vec<String> = cols
            .iter()
            .map(|c| format!("CAST(x.{} AS TEXT)", quote_ident(c)))
            .collect();
        let cond = self.subject_cond(&mut q, "x");
        q.push(&format!(
            "SELECT {} FROM {} x WHERE {cond}",
            sel.join(", "),
            quote_ident(&u.table)
        ));
        if let Some(row) = q.fetch_optional(&mut self.tx).await? {
            for i in 0..cols.len() {
                if let Some(v) = row.try_get::<Option<String>, _>(i)? {
                    values.push(v);
                }
            }
        }
        let logged =
            match log {
                Some(action_id) => sqlx::query(
                    "SELECT data FROM lethe_restore_log WHERE action_id = $1 AND table_name = $2 \
                     AND row_key = $3 AND op = 'update'",
                )
                .bind(action_id)
                .bind(&u.table)
                .bind(self.user)
                .fetch_all(&mut *self.tx)
                .await?,
                None => Vec::new(),
            };
        for row in logged {
            let data: String = row.try_get(0)?;
            let v: serde_json::Value =
                serde_json::from_str(&data).map_err(|e| ExecError::Corrupt(e.to_string()))?;
            for c in &cols {
                if let Some(s) = v.get(*c).and_then(|x| x.as_str()) {
                    values.push(s.to_owned());
                }
            }
        }
        values.retain(|v| v.chars().count() >= 3 && !not_identity.contains(v));
        values.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        values.dedup();
        Ok(values)
    }

    /// The subject's stable pseudonym: derived from tenant and id (so the
    /// same person always gets the same one) and registered under a UNIQUE
    /// constraint (so two people can never share one).
    async fn pseudonym(&mut self) -> Result<String, ExecError> {
        let existing = sqlx::query(
            "SELECT pseudonym FROM lethe_pseudonyms WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(self.tenant)
        .bind(self.user)
        .fetch_optional(&mut *self.tx)
        .await?;
        if let Some(row) = existing {
            return Ok(row.try_get(0)?);
        }
        let p = pseudonym_for(self.tenant, self.user);
        sqlx::query(
            "INSERT INTO lethe_pseudonyms (tenant_id, user_id, pseudonym) VALUES ($1, $2, $3)",
        )
        .bind(self.tenant)
        .bind(self.user)
        .bind(&p)
        .execute(&mut *self.tx)
        .await?;
        Ok(p)
    }

    /// Erase: purge the restore log, pseudonymise references (if the plan
    /// says so), scrub what personal data is left, end erased. Billing
    /// (keep-guarded) rows stay so counts stay.
    ///
    /// A user has at most one restore log, the one of the delete that is
    /// still inside its window (`log`): restore consumes it, erase purges it.
    async fn erase(
        &mut self,
        plan: &Plan,
        identity: &[String],
        log: Option<&str>,
    ) -> Result<(), ExecError> {
        self.log = false;
        if let Some(action_id) = log {
            let n = sqlx::query("DELETE FROM lethe_restore_log WHERE action_id = $1")
                .bind(action_id)
                .execute(&mut *self.tx)
                .await?
                .rows_affected();
            tracing::debug!(rows = n, "restore log purged");
        }
        if plan.references == References::Pseudonymise && !self.ex.map.references.is_empty() {
            let pseudonym = self.pseudonym().await?;
            for r in self.ex.map.references.clone() {
                let tbl = quote_ident(&r.table);
                // One UPDATE per id column rather than `a = $u OR b = $u`:
                // SQLite cannot use an index for the OR and would read the
                // tenant's whole log once per erased user (bench_bulk: per-user
                // cost 2x at 10k users). A row naming the user in two columns
                // is rewritten twice, which changes nothing the second time.
                for c in r.ids.iter().filter(|_| !r.text.is_empty()) {
                    let mut q = Q::new("");
                    let p = q.text(pseudonym.as_str());
                    let sets: Vec<String> = r
                        .text
                        .iter()
                        .map(|col| {
                            let mut expr = quote_ident(col);
                            for s in identity {
                                expr = format!("REPLACE({expr}, {}, {p})", q.text(s.as_str()));
                            }
                            format!("{} = {expr}", quote_ident(col))
                        })
                        .collect();
                    let t = q.text(self.tenant);
                    let u = q.text(self.user);
                    q.push(&format!(
                        "UPDATE {tbl} SET {} WHERE {tbl}.{} = {t} AND {} = {u}",
                        sets.join(", "),
                        quote_ident(&r.tenant),
                        self.text_expr(&r.table, &tbl, c)
                    ));
                    q.execute(&mut self.tx).await?;
                }
                for c in &r.ids {
                    let mut q = Q::new("");
                    let p = q.text(pseudonym.as_str());
                    let t = q.text(self.tenant);
                    let u = q.text(self.user);
                    q.push(&format!(
                        "UPDATE {tbl} SET {c} = {p} WHERE {tbl}.{tc} = {t} AND {tbl}.{c} = {u}",
                        c = quote_ident(c),
                        tc = quote_ident(&r.tenant)
                    ));
                    self.effects.references_pseudonymised += q.execute(&mut self.tx).await?;
                }
            }
        }
        // What is left of the subject's own rows loses its personal columns.
        for c in self.ex.map.categories.clone() {
            if c.personal.is_empty() || self.ex.map.is_kept(&c.table) {
                continue;
            }
            let n = self.anonymise(&c).await?;
            if n > 0 {
                match self
                    .effects
                    .categories
                    .iter_mut()
                    .find(|e| e.category == c.name)
                {
                    Some(e) => e.anonymised += n,
                    None => self.effects.categories.push(CategoryEffect {
                        category: c.name.clone(),
                        disposition: None,
                        anonymised: n,
                        ..Default::default()
                    }),
                }
            }
        }
        let u = &self.ex.map.users;
        let name = match &plan.profile {
            ProfilePlan::Scrub(s) => s.clone(),
            ProfilePlan::Keep => u
                .personal
                .iter()
                .find(|p| p.column == u.display_name)
                .and_then(|p| p.scrub.clone())
                .unwrap_or_else(|| "(erased user)".into()),
        };
        self.scrub_profile(&name).await?;
        self.set_state(LifecycleState::Erased).await?;
        Ok(())
    }

    /// Undo the delete `action_id` from its restore log, after checking for
    /// conflicts (which change nothing: the transaction is dropped).
    async fn restore(&mut self, action_id: &str, subject: &Subject) -> Result<(), ExecError> {
        let steps = sqlx::query(
            "SELECT step, table_name, op, MIN(data), COUNT(expect) FROM lethe_restore_log WHERE action_id = $1 \
             GROUP BY step, table_name, op ORDER BY step DESC",
        )
        .bind(action_id)
        .fetch_all(&mut *self.tx)
        .await?;
        if steps.is_empty() {
            return Err(RestoreConflict::NoRestoreLog.into());
        }
        struct Step {
            step: i64,
            table: String,
            op: String,
            columns: Vec<String>,
            expects: bool,
        }
        let mut plan = Vec::new();
        for row in steps {
            let sample: String = row.try_get(3)?;
            let v: serde_json::Value =
                serde_json::from_str(&sample).map_err(|e| ExecError::Corrupt(e.to_string()))?;
            let columns = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            plan.push(Step {
                step: row.try_get(0)?,
                table: row.try_get(1)?,
                op: row.try_get(2)?,
                columns,
                expects: row.try_get::<i64, _>(4)? > 0,
            });
        }
        let u = self.ex.map.users.clone();
        // Conflict 1: the email the user would get back belongs to another
        // live user now.
        let mut email: Option<String> = None;
        for s in plan
            .iter()
            .filter(|s| s.table == u.table && s.columns.contains(&u.email))
        {
            let row = sqlx::query("SELECT data FROM lethe_restore_log WHERE action_id = $1 AND step = $2 AND row_key = $3")
                .bind(action_id)
                .bind(s.step)
                .bind(self.user)
                .fetch_optional(&mut *self.tx)
                .await?;
            if let Some(row) = row {
                let data: String = row.try_get(0)?;
                let v: serde_json::Value =
                    serde_json::from_str(&data).map_err(|e| ExecError::Corrupt(e.to_string()))?;
                email = v.get(&u.email).and_then(|e| e.as_str()).map(str::to_owned);
            }
        }
        if email.is_none() {
            let mut q = Q::new("");
            let cond = self.subject_cond(&mut q, "x");
            q.push(&format!(
                "SELECT CAST(x.{} AS TEXT) FROM {} x WHERE {cond}",
                quote_ident(&u.email),
                quote_ident(&u.table)
            ));
            if let Some(row) = q.fetch_optional(&mut self.tx).await? {
                email = row.try_get(0)?;
            }
        }
        if let Some(email) = email {
            let mut q = Q::new("");
            let t = q.text(self.tenant);
            let e = q.text(email);
            let me = q.text(subject.id.as_str());
            let d = q.text(u.state.value(LifecycleState::Deleted));
            let er = q.text(u.state.value(LifecycleState::Erased));
            let key = self.text_expr(&u.table, "x", &u.key);
            q.push(&format!(
                "SELECT {key} FROM {tbl} x WHERE x.{tc} = {t} AND x.{ec} = {e} AND {key} <> {me} \
                 AND x.{sc} NOT IN ({d}, {er}) ORDER BY 1",
                tbl = quote_ident(&u.table),
                tc = quote_ident(&u.tenant),
                ec = quote_ident(&u.email),
                sc = quote_ident(&u.state.column),
            ));
            if let Some(row) = q.fetch_optional(&mut self.tx).await? {
                return Err(RestoreConflict::EmailTaken {
                    other: row.try_get(0)?,
                }
                .into());
            }
        }
        // Conflict 2: a transferred row changed owner (or vanished) since.
        for s in plan.iter().filter(|s| s.expects) {
            let Some(owner) = s.columns.first() else {
                continue;
            };
            let key = self.key_of(&s.table);
            let mut q = Q::new("");
            let a = q.text(action_id);
            let st = q.int(Some(s.step));
            let key_expr = self.text_expr(&s.table, "x", &key);
            let owner_expr = self.text_expr(&s.table, "x", owner);
            q.push(&format!(
                "SELECT r.row_key FROM lethe_restore_log r LEFT JOIN {tbl} x ON {key_expr} = r.row_key \
                 WHERE r.action_id = {a} AND r.step = {st} AND (x.{k} IS NULL OR {owner_expr} IS NULL OR {owner_expr} <> r.expect) \
                 ORDER BY 1",
                tbl = quote_ident(&s.table),
                k = quote_ident(&key),
            ));
            if let Some(row) = q.fetch_optional(&mut self.tx).await? {
                return Err(RestoreConflict::TransferredRowMoved {
                    table: s.table.clone(),
                    row: row.try_get(0)?,
                }
                .into());
            }
        }
        // Replay, last change first.
        let backend = self.backend();
        for s in &plan {
            let tbl = quote_ident(&s.table);
            let mut q = Q::new("");
            let a = q.text(action_id);
            let st = q.int(Some(s.step));
            let from = backend.replay_from(&s.table);
            if s.op == "insert" {
                let cols: Vec<String> = self
                    .ex
                    .schema
                    .tables
                    .get(&s.table)
                    .map(|t| t.order.clone())
                    .unwrap_or_default();
                let names: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
                let values: Vec<String> = cols.iter().map(|c| backend.logged_field(c)).collect();
                q.push(&format!(
                    "INSERT INTO {tbl} ({}) SELECT {} FROM {from} WHERE r.action_id = {a} AND r.step = {st}",
                    names.join(", "),
                    values.join(", ")
                ));
            } else {
                let key = self.key_of(&s.table);
                let sets: Vec<String> = s
                    .columns
                    .iter()
                    .map(|c| format!("{} = {}", quote_ident(c), backend.logged_field(c)))
                    .collect();
                let key_expr = self.text_expr(&s.table, &tbl, &key);
                q.push(&format!(
                    "UPDATE {tbl} SET {} FROM {from} WHERE r.action_id = {a} AND r.step = {st} AND {key_expr} = r.row_key",
                    sets.join(", ")
                ));
            }
            self.effects.rows_restored += q.execute(&mut self.tx).await?;
        }
        sqlx::query("DELETE FROM lethe_restore_log WHERE action_id = $1")
            .bind(action_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// The key column the data map declares for `table`.
    fn key_of(&self, table: &str) -> String {
        let m = &self.ex.map;
        if m.users.table == table {
            return m.users.key.clone();
        }
        fn in_edges(edges: &[Edge], table: &str) -> Option<String> {
            edges.iter().find_map(|e| {
                if e.table == table {
                    Some(e.key.clone())
                } else {
                    in_edges(&e.children, table)
                }
            })
        }
        m.categories
            .iter()
            .find(|c| c.table == table)
            .map(|c| c.key.clone())
            .or_else(|| {
                m.guards
                    .iter()
                    .find(|g| g.table == table)
                    .map(|g| g.key.clone())
            })
            .or_else(|| {
                m.categories
                    .iter()
                    .find_map(|c| in_edges(&c.children, table))
            })
            .unwrap_or_else(|| "id".into())
    }
}

fn owned(c: &Category) -> Owned<'_> {
    Owned {
        table: &c.table,
        tenant: &c.tenant,
        owner: &c.owner,
    }
}

/// (category index, total, open) of a [`Executor::holdings_sql`] row
/// without the owner column.
fn holding_row(row: &AnyRow) -> Result<(usize, u64, u64), ExecError> {
    let i: i64 = row.try_get(0)?;
    let total: i64 = row.try_get(1)?;
    let open: i64 = row.try_get(2)?;
    Ok((
        usize::try_from(i).map_err(|e| ExecError::Corrupt(e.to_string()))?,
        total.max(0) as u64,
        open.max(0) as u64,
    ))
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

/// `erased-` and 80 bits of sha256(tenant, user): stable per person. The
/// UNIQUE constraint on `lethe_pseudonyms` turns the (astronomically
/// unlikely) collision into an error instead of merging two people.
pub fn pseudonym_for(tenant: &str, user: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(user.as_bytes());
    let digest = h.finalize();
    format!("erased-{}", hex::encode(&digest[..10]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_and_distinct() {
        assert_eq!(pseudonym_for("t1", "u1"), pseudonym_for("t1", "u1"));
        assert_ne!(pseudonym_for("t1", "u1"), pseudonym_for("t1", "u2"));
        assert_ne!(pseudonym_for("t1", "u1"), pseudonym_for("t2", "u1"));
        // The separator keeps ("t1","1u") and ("t11","u") apart.
        assert_ne!(pseudonym_for("t1", "1u"), pseudonym_for("t11", "u"));
    }
}
