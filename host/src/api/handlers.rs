//! The endpoints. Each one checks who may call it, calls one library
//! function, and shapes the answer; no lifecycle or policy logic lives here.

use crate::error_code::ErrorCode;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::problem::ProblemDetails;
use super::{unix_now, AppState, Body, Caller, Params, Problem};
use crate::contract::{Action, Outcome};
use crate::directory::{UserDetail, UserFilter, UserPage};
use crate::escalation::{self, Asked, Escalation, Step};
use crate::evidence::{self, AuditEntry, AuditFilter, DecisionRecord};
use crate::executor::{ActionInput, ActionReport, ActorRef};

/// `POST /v1/tenants/{t}/users/{id}/actions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// lock, unlock, deactivate, reactivate, delete, restore or erase.
    #[schema(value_type = String, example = "delete")]
    pub action: Action,
    /// The tenant user asking. Their roles and permissions are read from
    /// the database, never from this body.
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
    /// `applied`, `dry_run` or `escalated`.
    pub result: String,
    /// Set when escalated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// The decision, the states, the effects per category, `restore_until`.
    #[schema(value_type = Object)]
    pub report: ActionReport,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The support agent approving; recorded as the actor.
    pub agent: String,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    pub agent: String,
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
    #[schema(value_type = Object)]
    pub report: ActionReport,
}

/// Filters of the escalation lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EscalationFilter {
    /// Support list only: one tenant.
    pub tenant: Option<String>,
    /// pending, approving, approved or rejected.
    pub status: Option<String>,
    /// At most this many, oldest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

fn required(name: &str, v: &str) -> Result<(), Problem> {
    if v.trim().is_empty() {
        return Err(Problem::invalid(format!("`{name}` must not be empty")));
    }
    Ok(())
}

/// The policy's denial, as a 403 problem with its code and message.
fn denied(report: &ActionReport) -> Problem {
    let (code, message) = match &report.decision.outcome {
        Outcome::Deny { code, message } => (code.clone(), message.clone()),
        _ => (String::new(), String::new()),
    };
    Problem::new(
        StatusCode::FORBIDDEN,
        ErrorCode::Denied,
        format!("the policy denied it: {message}"),
    )
    .with("policy_code", code)
    .with("message", message)
    .with("rules", &report.decision.rules)
    .with("action_id", &report.action_id)
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the database answers and every configured tenant has its
/// policy loaded.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "Not ready", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Problem> {
    if let Err(e) = sqlx::query("SELECT 1").execute(state.db().pool()).await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            "database unreachable",
        ));
    }
    let missing: Vec<&String> = state
        .inner
        .tenants
        .iter()
        .filter(|t| state.inner.policies.get(t).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            "a tenant has no policy loaded",
        )
        .with("tenants", missing));
    }
    Ok(Json(serde_json::json!({
        "status": "ready",
        "tenants": state.inner.tenants.len(),
    })))
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    Json(super::ApiDoc::openapi())
}

#[utoipa::path(get, path = "/v1/tenants/{t}/users", params(("t" = String, Path), UserFilter), responses(
    (status = 200, body = UserPage),
    (status = 404, body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Path(t): Path<String>,
    Params(filter): Params<UserFilter>,
) -> Result<Json<UserPage>, Problem> {
    caller.read(&state, &t)?;
    Ok(Json(state.inner.directory.list(&t, &filter).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/users/{id}", params(("t" = String, Path), ("id" = String, Path)), responses(
    (status = 200, body = UserDetail),
    (status = 404, body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn user_detail(
    State(state): State<AppState>,
    caller: Caller,
    Path((t, id)): Path<(String, String)>,
) -> Result<Json<UserDetail>, Problem> {
    caller.read(&state, &t)?;
    match state.inner.directory.detail(&t, &id).await? {
        Some(d) => Ok(Json(d)),
        None => Err(Problem::not_found()),
    }
}

#[utoipa::path(post, path = "/v1/tenants/{t}/users/{id}/actions", params(("t" = String, Path), ("id" = String, Path)),
    request_body = ActionRequest,
    responses(
        (status = 200, description = "Applied, or a dry run", body = ActionResponse),
        (status = 202, description = "Escalated to a queue", body = ActionResponse),
        (status = 403, description = "Denied by the policy", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Invalid transition or restore conflict", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Policy fault; nothing applied", body = ProblemDetails, content_type = "application/problem+json")
    ))]
pub async fn act(
    State(state): State<AppState>,
    caller: Caller,
    Path((t, id)): Path<(String, String)>,
    Body(req): Body<ActionRequest>,
) -> Result<Response, Problem> {
    caller.act(&state, &t)?;
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
        .act_with(&state.inner.policies, &input, &queue)
        .await?;
    if req.dry_run {
        return Ok(Json(ActionResponse {
            result: "dry_run".into(),
            escalation: None,
            report,
        })
        .into_response());
    }
    match &report.decision.outcome {
        Outcome::Allow { .. } => Ok(Json(ActionResponse {
            result: "applied".into(),
            escalation: None,
            report,
        })
        .into_response()),
        Outcome::Escalate { .. } => {
            let esc = escalation::of_action(state.db(), &report.action_id).await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(ActionResponse {
                    result: "escalated".into(),
                    escalation: Some(esc),
                    report,
                }),
            )
                .into_response())
        }
        Outcome::Deny { .. } => Err(denied(&report)),
    }
}

#[utoipa::path(get, path = "/v1/tenants/{t}/escalations", params(("t" = String, Path), EscalationFilter), responses(
    (status = 200, body = EscalationList),
    (status = 404, body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn tenant_escalations(
    State(state): State<AppState>,
    caller: Caller,
    Path(t): Path<String>,
    Params(f): Params<EscalationFilter>,
) -> Result<Json<EscalationList>, Problem> {
    caller.read(&state, &t)?;
    let limit = i64::from(f.limit.unwrap_or(100).clamp(1, 1000));
    let escalations = escalation::list(state.db(), Some(&t), f.status.as_deref(), limit).await?;
    Ok(Json(EscalationList { escalations }))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/audit", params(("t" = String, Path), AuditFilter), responses(
    (status = 200, body = Vec<AuditEntry>),
    (status = 404, body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(t): Path<String>,
    Params(f): Params<AuditFilter>,
) -> Result<Json<Vec<AuditEntry>>, Problem> {
    caller.read(&state, &t)?;
    Ok(Json(evidence::audit(state.db(), &t, &f).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/decisions/{id}", params(("t" = String, Path), ("id" = String, Path, description = "The action id")), responses(
    (status = 200, body = DecisionRecord),
    (status = 404, body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn decision(
    State(state): State<AppState>,
    caller: Caller,
    Path((t, id)): Path<(String, String)>,
) -> Result<Json<DecisionRecord>, Problem> {
    caller.read(&state, &t)?;
    match evidence::decision(state.db(), &t, &id).await? {
        Some(d) => Ok(Json(d)),
        None => Err(Problem::not_found()),
    }
}

#[utoipa::path(get, path = "/v1/escalations", params(EscalationFilter), responses(
    (status = 200, body = EscalationList),
    (status = 403, body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn support_escalations(
    State(state): State<AppState>,
    caller: Caller,
    Params(f): Params<EscalationFilter>,
) -> Result<Json<EscalationList>, Problem> {
    caller.support()?;
    let limit = i64::from(f.limit.unwrap_or(100).clamp(1, 1000));
    let escalations =
        escalation::list(state.db(), f.tenant.as_deref(), f.status.as_deref(), limit).await?;
    Ok(Json(EscalationList { escalations }))
}

#[utoipa::path(get, path = "/v1/escalations/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = Escalation),
    (status = 404, body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn escalation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Escalation>, Problem> {
    caller.support()?;
    Ok(Json(escalation::get(state.db(), &id).await?))
}

/// Re-evaluates the escalated action with the agent as a support actor and
/// applies what the policy then allows.
#[utoipa::path(post, path = "/v1/escalations/{id}/approve", params(("id" = String, Path)), request_body = ApproveRequest,
    responses(
        (status = 200, body = ApprovalResponse),
        (status = 403, description = "The policy denies it to support too", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "Not pending, or the user changed state since", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, body = ProblemDetails, content_type = "application/problem+json")
    ))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<ApproveRequest>,
) -> Result<Json<ApprovalResponse>, Problem> {
    caller.support()?;
    required("agent", &req.agent)?;
    let esc = escalation::claim(state.db(), &id).await?;
    match approve_claimed(&state, &esc, &req).await {
        Ok(done) => Ok(Json(done)),
        Err(p) => {
            // Back to the queue: support may retry or reject it.
            if let Err(e) = escalation::release(state.db(), &esc.id).await {
                tracing::error!(escalation = %esc.id, error = %e, "could not release escalation");
            }
            Err(p)
        }
    }
}

async fn approve_claimed(
    state: &AppState,
    esc: &Escalation,
    req: &ApproveRequest,
) -> Result<ApprovalResponse, Problem> {
    let now = unix_now();
    let current = state.inner.directory.state(&esc.tenant, &esc.user).await?;
    if current != Some(esc.from_state) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            ErrorCode::SubjectChanged,
            "the user's state changed since the escalation; ask again",
        )
        .with("escalated_in", esc.from_state)
        .with("now_in", current));
    }
    let input = ActionInput {
        tenant: esc.tenant.clone(),
        subject: esc.user.clone(),
        action: esc.action,
        actor: ActorRef::Support(req.agent.clone()),
        transfer_to: esc.transfer_to.clone(),
        reason: req.note.clone().or_else(|| esc.reason.clone()),
        bulk: false,
        now,
        // A retried approval applies once.
        idempotency_key: Some(format!("escalation:{}", esc.id)),
        dry_run: false,
    };
    let report = state.executor().act(&state.inner.policies, &input).await?;
    match &report.decision.outcome {
        Outcome::Allow { .. } => {
            let escalation = escalation::close(
                state.db(),
                esc,
                Step::Approved {
                    agent: &req.agent,
                    note: req.note.as_deref(),
                    result: &report,
                },
                now,
            )
            .await?;
            Ok(ApprovalResponse { escalation, report })
        }
        Outcome::Deny { .. } => Err(denied(&report)),
        Outcome::Escalate { queue, .. } => Err(Problem::new(
            StatusCode::CONFLICT,
            ErrorCode::StillEscalated,
            "the policy escalates this action for support too",
        )
        .with("queue", queue)),
    }
}

#[utoipa::path(post, path = "/v1/escalations/{id}/reject", params(("id" = String, Path)), request_body = RejectRequest,
    responses(
        (status = 200, body = Escalation),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, body = ProblemDetails, content_type = "application/problem+json")
    ))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<RejectRequest>,
) -> Result<Json<Escalation>, Problem> {
    caller.support()?;
    required("agent", &req.agent)?;
    required("reason", &req.reason)?;
    let esc = escalation::get(state.db(), &id).await?;
    let closed = escalation::close(
        state.db(),
        &esc,
        Step::Rejected {
            agent: &req.agent,
            reason: &req.reason,
        },
        unix_now(),
    )
    .await?;
    Ok(Json(closed))
}
