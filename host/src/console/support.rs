//! A support agent's pages: the escalation queue across tenants, one
//! escalation with the policy's reason and what approving would do now
//! (a dry run as the agent), approve with a note or reject with a reason.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{check_csrf, Failure, Nav, SupportSession};
use crate::api::{AppState, Problem};
use crate::clock::unix_now;
use crate::escalation::{self, Escalation, EscalationStatus};
use crate::executor::{ActionInput, ActionReport, ActorRef};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct QueueQuery {
    tenant: String,
    status: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/escalations.html")]
pub struct QueuePage {
    nav: Nav,
    tenant: String,
    status: String,
    escalations: Vec<Escalation>,
    statuses: [EscalationStatus; 3],
}

pub async fn queue(
    ss: SupportSession,
    State(state): State<AppState>,
    Query(q): Query<QueueQuery>,
) -> Response {
    let nav = Nav::of(&ss.session);
    let tenant = Some(q.tenant.trim()).filter(|t| !t.is_empty());
    let status = match q.status.as_str() {
        "" => Some(EscalationStatus::Pending),
        "all" => None,
        s => match s.parse::<EscalationStatus>() {
            Ok(s) => Some(s),
            Err(_) => Some(EscalationStatus::Pending),
        },
    };
    match escalation::list(state.db(), tenant, status, 500).await {
        Ok(escalations) => QueuePage {
            nav,
            tenant: q.tenant,
            status: status.map_or("all", EscalationStatus::as_str).to_owned(),
            escalations,
            statuses: [
                EscalationStatus::Pending,
                EscalationStatus::Approved,
                EscalationStatus::Rejected,
            ],
        }
        .into_response(),
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/escalation.html")]
pub struct EscalationPage {
    nav: Nav,
    esc: Escalation,
    /// What approving would do now, or why it could not be worked out.
    now: Result<ActionReport, String>,
}

impl EscalationPage {
    fn pending(&self) -> bool {
        self.esc.status == EscalationStatus::Pending
    }
}

pub async fn escalation(
    ss: SupportSession,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let nav = Nav::of(&ss.session);
    let esc = match escalation::get(state.db(), &id).await {
        Ok(e) => e,
        Err(e) => return Failure::from_problem(nav, Problem::from(e)).into_response(),
    };
    // Approving re-asks the policy as the agent; a dry run shows what that
    // would do to the user as they are now.
    let input = ActionInput {
        tenant: esc.tenant.clone(),
        subject: esc.user.clone(),
        action: esc.action,
        actor: ActorRef::Support(ss.agent.clone()),
        transfer_to: esc.transfer_to.clone(),
        reason: esc.reason.clone(),
        bulk: false,
        now: unix_now(),
        idempotency_key: None,
        dry_run: true,
    };
    let now = state
        .executor()
        .act(state.policies(), &input)
        .await
        .map_err(|e| Problem::from(e).0.detail.unwrap_or_default());
    EscalationPage { nav, esc, now }.into_response()
}

#[derive(Debug, Deserialize)]
pub struct ApproveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

pub async fn approve(
    ss: SupportSession,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<ApproveForm>,
) -> Response {
    if let Err(f) = check_csrf(&ss.session, &form.csrf) {
        return f.into_response();
    }
    let note = Some(form.note.trim()).filter(|n| !n.is_empty());
    match escalation::approve(
        state.executor(),
        state.policies(),
        state.directory(),
        &id,
        &ss.agent,
        note,
        unix_now(),
    )
    .await
    {
        Ok(_) => Redirect::to(&format!("/console/escalations/{id}")).into_response(),
        Err(e) => Failure::from_problem(Nav::of(&ss.session), Problem::from(e)).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct RejectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn reject(
    ss: SupportSession,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Form(form): Form<RejectForm>,
) -> Response {
    if let Err(f) = check_csrf(&ss.session, &form.csrf) {
        return f.into_response();
    }
    let nav = Nav::of(&ss.session);
    let reason = form.reason.trim();
    if reason.is_empty() {
        return Failure::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            nav,
            "Check the form",
            "A rejection needs a reason: the tenant reads it.".into(),
            "invalid-request",
        )
        .into_response();
    }
    match escalation::reject(state.db(), &id, &ss.agent, reason, unix_now()).await {
        Ok(_) => Redirect::to(&format!("/console/escalations/{id}")).into_response(),
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}
