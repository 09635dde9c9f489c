//! The endpoints. Each one names who may call it in its signature (an
//! extractor of [`super::auth`]), calls one library function, and shapes
//! the answer; no lifecycle or policy logic lives here.

use crate::error_code::ErrorCode;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::problem::ProblemDetails;
use super::{unix_now, AppState, Body, Params, Problem, SupportAgent, TenantActor, TenantReader};
use crate::contract::{Action, Outcome};
use crate::directory::{UserDetail, UserFilter, UserPage};
use crate::escalation::{self, Asked, Escalation, EscalationStatus};
use crate::evidence::{self, AuditEntry, AuditFilter, DecisionRecord};
use crate::executor::{ActionInput, ActionReport, ActorRef};
use crate::page::Limit;

/// `POST /v1/tenants/{t}/users/{id}/actions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"action": "delete", "actor_id": "t2-u1", "reason": "left the company"}))]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// lock, unlock, deactivate, reactivate, delete, restore or erase.
    pub action: Action,
    /// The tenant user asking. Their roles and permissions are read from
    /// the database, never from this body.
    #[schema(pattern = r"\S", example = "t2-u1")]
    pub actor_id: String,
    pub reason: Option<String>,
    /// The user who receives transferred items.
    pub transfer_to: Option<String>,
    /// Decide and compute the effects; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// A retry with the same key (per tenant) applies once and returns the
    /// first answer.
    pub idempotency_key: Option<String>,
}

/// The answer to an action that was applied, dry-run or escalated.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionResponse {
    pub result: ActionResult,
    /// Set when escalated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// The decision, the states, the effects per category, `restore_until`.
    pub report: ActionReport,
}

/// What became of an action that was not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionResult {
    Applied,
    DryRun,
    /// Queued for support (HTTP 202).
    Escalated,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The support agent approving; recorded as the actor.
    #[schema(pattern = r"\S")]
    pub agent: String,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    #[schema(pattern = r"\S")]
    pub agent: String,
    #[schema(pattern = r"\S")]
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EscalationList {
    pub escalations: Vec<Escalation>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalResponse {
    pub escalation: Escalation,
    /// The action that applied the approval.
    pub report: ActionReport,
}

/// Filters of the escalation lists. An unknown parameter is a 400, as on
/// every other list: a misspelt filter must not silently list everything.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EscalationFilter {
    /// Support list only: one tenant.
    pub tenant: Option<String>,
    /// pending, approved or rejected (approving: left by earlier versions).
    pub status: Option<EscalationStatus>,
    /// At most this many, oldest first (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<Limit<1000>>,
}

fn required(name: &str, v: &str) -> Result<(), Problem> {
    if v.trim().is_empty() {
        return Err(Problem::invalid(format!("`{name}` must not be empty")));
    }
    Ok(())
}

/// The answer of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The answer of `/readyz` when ready.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Tenants this server knows.
    pub tenants: usize,
    /// Tenants whose active policy is loaded in memory.
    pub loaded: usize,
    /// This server's replica id, when it records its activations.
    pub replica: Option<String>,
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready when the database answers and every configured tenant has its
/// policy loaded.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "Not ready", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, Problem> {
    if let Err(e) = sqlx::query("SELECT 1").execute(state.db().pool()).await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            "database unreachable",
        ));
    }
    let without = state.inner.policies.without_policy();
    let missing: Vec<&String> = state
        .inner
        .tenants
        .iter()
        .filter(|t| !state.inner.policies.knows(t) || without.contains(t))
        .collect();
    if !missing.is_empty() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            "a tenant has no policy loaded",
        )
        .with("tenants", missing));
    }
    let (tenants, loaded) = state.inner.policies.counts();
    Ok(Json(Readiness {
        status: "ready",
        tenants,
        loaded,
        replica: state.inner.policies.replica().map(str::to_owned),
    }))
}

/// Prometheus metrics (text format 0.0.4): decisions, faults, actions,
/// effects, bulk items and jobs, pending escalations per queue, HTTP
/// requests; see `telemetry`. Public, like the health endpoints.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "Prometheus text exposition format", content_type = "text/plain"),
    (status = 503, description = "`not-ready`: this process records no metrics", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = crate::telemetry::prometheus() else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            "metrics are not recorded in this process",
        )
        .into_response();
    };
    match escalation::pending_per_queue(state.db()).await {
        Ok(queues) => {
            for (queue, pending) in queues {
                crate::telemetry::escalations_pending(&queue, pending);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count pending escalations"),
    }
    match state.events().counts_by_endpoint().await {
        Ok(rows) => {
            for (tenant, endpoint, c) in rows {
                let statuses = [
                    ("pending", c.pending),
                    ("failing", c.failing),
                    ("delivered", c.delivered),
                    ("dead", c.dead),
                ];
                for (status, n) in statuses {
                    crate::telemetry::webhook_deliveries(&tenant, &endpoint, status, n);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count webhook deliveries"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

pub async fn openapi_json() -> Result<Json<serde_json::Value>, Problem> {
    super::openapi::document()
        .map(Json)
        .map_err(Problem::internal)
}

#[utoipa::path(get, path = "/v1/tenants/{t}/users", params(("t" = String, Path), UserFilter), responses(
    (status = 200, body = UserPage)
))]
pub async fn list_users(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Params(filter): Params<UserFilter>,
) -> Result<Json<UserPage>, Problem> {
    Ok(Json(state.directory().list(&t, &filter).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/users/{id}", params(("t" = String, Path, example = "t2"), ("id" = String, Path, example = "t2-u5")), responses(
    (status = 200, body = UserDetail)
))]
pub async fn user_detail(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Result<Json<UserDetail>, Problem> {
    match state.directory().detail(&t, &id).await? {
        Some(d) => Ok(Json(d)),
        None => Err(Problem::not_found()),
    }
}

#[utoipa::path(post, path = "/v1/tenants/{t}/users/{id}/actions", params(("t" = String, Path, example = "t2"), ("id" = String, Path, example = "t2-u5")),
    request_body = ActionRequest,
    responses(
        (status = 200, description = "Applied, or a dry run", body = ActionResponse),
        (status = 202, description = "Escalated to a queue", body = ActionResponse),
        (status = 403, description = "`denied` by the policy (with its `policy_code`, `message` and `rules`), or `tenant-key-required`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "`invalid-transition`, `restore-window-closed`, `restore-conflict`, `superseded`, or `idempotency-key-reused` (with the earlier `action_id`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`unknown-actor`, `actor-not-active`, `invalid-transfer-target`, or a body that does not have this shape", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Policy fault; nothing applied", body = ProblemDetails, content_type = "application/problem+json")
    ))]
pub async fn act(
    TenantActor(t): TenantActor,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
    Body(req): Body<ActionRequest>,
) -> Result<Response, Problem> {
    required("actor_id", &req.actor_id)?;
    let now = unix_now();
    let input = ActionInput {
        tenant: t.clone(),
        subject: id,
        action: req.action,
        actor: ActorRef::TenantUser(req.actor_id.clone()),
        transfer_to: req.transfer_to.clone(),
        reason: req.reason.clone(),
        bulk: false,
        now,
        idempotency_key: req.idempotency_key.clone(),
        dry_run: req.dry_run,
    };
    // An escalation is queued in the action's own transaction.
    let queue = escalation::Queue {
        asked: Asked {
            actor_id: &req.actor_id,
            transfer_to: req.transfer_to.as_deref(),
            reason: req.reason.as_deref(),
        },
        now,
    };
    let report = state
        .executor()
        .act_with(state.policies(), &input, &queue)
        .await?;
    if req.dry_run {
        return Ok(Json(ActionResponse {
            result: ActionResult::DryRun,
            escalation: None,
            report,
        })
        .into_response());
    }
    match &report.decision.outcome {
        Outcome::Allow { .. } => Ok(Json(ActionResponse {
            result: ActionResult::Applied,
            escalation: None,
            report,
        })
        .into_response()),
        Outcome::Escalate { .. } => {
            let esc = escalation::of_action(state.db(), &report.action_id).await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(ActionResponse {
                    result: ActionResult::Escalated,
                    escalation: Some(esc),
                    report,
                }),
            )
                .into_response())
        }
        Outcome::Deny { .. } => Err(Problem::denied(&report)),
    }
}

#[utoipa::path(get, path = "/v1/tenants/{t}/escalations", params(("t" = String, Path), EscalationFilter), responses(
    (status = 200, body = EscalationList)
))]
pub async fn tenant_escalations(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Params(f): Params<EscalationFilter>,
) -> Result<Json<EscalationList>, Problem> {
    let limit = i64::from(Limit::or(f.limit, 100));
    let escalations = escalation::list(state.db(), Some(&t), f.status, limit).await?;
    Ok(Json(EscalationList { escalations }))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/audit", params(("t" = String, Path), AuditFilter), responses(
    (status = 200, body = Vec<AuditEntry>)
))]
pub async fn audit(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Params(f): Params<AuditFilter>,
) -> Result<Json<Vec<AuditEntry>>, Problem> {
    Ok(Json(evidence::audit(state.db(), &t, &f).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/decisions/{id}", params(("t" = String, Path), ("id" = String, Path, description = "The action id")), responses(
    (status = 200, body = DecisionRecord)
))]
pub async fn decision(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Result<Json<DecisionRecord>, Problem> {
    match evidence::decision(state.db(), &t, &id).await? {
        Some(d) => Ok(Json(d)),
        None => Err(Problem::not_found()),
    }
}

#[utoipa::path(get, path = "/v1/escalations", params(EscalationFilter), responses(
    (status = 200, body = EscalationList)
))]
pub async fn support_escalations(
    _: SupportAgent,
    State(state): State<AppState>,
    Params(f): Params<EscalationFilter>,
) -> Result<Json<EscalationList>, Problem> {
    let limit = i64::from(Limit::or(f.limit, 100));
    let escalations = escalation::list(state.db(), f.tenant.as_deref(), f.status, limit).await?;
    Ok(Json(EscalationList { escalations }))
}

#[utoipa::path(get, path = "/v1/escalations/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = Escalation)
))]
pub async fn escalation(
    _: SupportAgent,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Escalation>, Problem> {
    Ok(Json(escalation::get(state.db(), &id).await?))
}

/// Re-evaluates the escalated action with the agent as a support actor and
/// applies what the policy then allows.
#[utoipa::path(post, path = "/v1/escalations/{id}/approve", params(("id" = String, Path)), request_body = ApproveRequest,
    responses(
        (status = 200, body = ApprovalResponse),
        (status = 403, description = "`denied`: the policy denies it to support too; or `support-key-required`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Not pending, or the user changed state since", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "`policy-fault` or `plan-refused`: nothing applied", body = ProblemDetails, content_type = "application/problem+json")
    ))]
pub async fn approve(
    _: SupportAgent,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(req): Body<ApproveRequest>,
) -> Result<Json<ApprovalResponse>, Problem> {
    required("agent", &req.agent)?;
    let approval = escalation::approve(
        state.executor(),
        state.policies(),
        state.directory(),
        &id,
        &req.agent,
        req.note.as_deref(),
        unix_now(),
    )
    .await?;
    Ok(Json(ApprovalResponse {
        escalation: approval.escalation,
        report: approval.report,
    }))
}

#[utoipa::path(post, path = "/v1/escalations/{id}/reject", params(("id" = String, Path)), request_body = RejectRequest,
    responses(
        (status = 200, body = Escalation) ,
        (status = 409, description = "`escalation-not-pending`", body = ProblemDetails, content_type = "application/problem+json")
    ))]
pub async fn reject(
    _: SupportAgent,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(req): Body<RejectRequest>,
) -> Result<Json<Escalation>, Problem> {
    required("agent", &req.agent)?;
    required("reason", &req.reason)?;
    let closed = escalation::reject(state.db(), &id, &req.agent, &req.reason, unix_now()).await?;
    Ok(Json(closed))
}
