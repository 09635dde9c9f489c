//! A tenant admin's bulk action: a selection kept across pages (checked
//! users, or every user a filter matches), a preview (outcome counts,
//! reasons, effects per category), the count typed to confirm, and the
//! job's progress to its end with the users that were not applied. The
//! work is `crate::bulk`'s, exactly as for the API.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::Form as MultiForm;
use serde::Deserialize;

use super::tenant::UsersQuery;
use super::{check_csrf, Failure, Nav, TenantSession};
use crate::api::{AppState, Problem};
use crate::bulk::{BulkError, ExecuteRequest, Job, Preview, PreviewRequest};
use crate::contract::Action;
use crate::page::Limit;

/// The users page's selection form: the users shown, those checked.
#[derive(Debug, Deserialize)]
pub struct SelectionForm {
    #[serde(default)]
    csrf: String,
    /// Every user on the page (unchecked ones leave the selection).
    #[serde(default)]
    shown: Vec<String>,
    #[serde(default)]
    checked: Vec<String>,
    /// Where to return: the page's query string.
    #[serde(default)]
    back: String,
}

fn back_to(tenant: &str, query: &str) -> Redirect {
    // Only this tenant's users page: `back` is a query string, not a URL.
    let query: String = query
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "=&%-_.~+".contains(*c))
        .collect();
    Redirect::to(&format!("/console/t/{tenant}/users?{query}"))
}

/// Update the selection from one page's checkboxes.
pub async fn select(
    ts: TenantSession,
    State(state): State<AppState>,
    MultiForm(form): MultiForm<SelectionForm>,
) -> Response {
    if let Err(f) = check_csrf(&ts.session, &form.csrf) {
        return f.into_response();
    }
    let removed: Vec<String> = form
        .shown
        .iter()
        .filter(|u| !form.checked.contains(u))
        .cloned()
        .collect();
    match state
        .sessions()
        .select(&ts.session, &form.checked, &removed)
        .await
    {
        Ok(()) => back_to(&ts.tenant, &form.back).into_response(),
        Err(e) => Failure::from_problem(Nav::of(&ts.session), e.into()).into_response(),
    }
}

/// "Select all N filtered": every user the filter matches, every page.
#[derive(Debug, Deserialize)]
pub struct SelectAllForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    query: UsersQuery,
    #[serde(default)]
    back: String,
}

pub async fn select_all(
    ts: TenantSession,
    State(state): State<AppState>,
    Form(form): Form<SelectAllForm>,
) -> Response {
    let nav = Nav::of(&ts.session);
    if let Err(f) = check_csrf(&ts.session, &form.csrf) {
        return f.into_response();
    }
    let mut filter = match form.query.filter() {
        Ok(f) => f,
        Err(e) => {
            return Failure::new(
                StatusCode::BAD_REQUEST,
                nav,
                "Check the form",
                e,
                "invalid-query",
            )
            .into_response()
        }
    };
    filter.limit = Limit::new(crate::directory::MAX_LIMIT);
    filter.cursor = None;
    let max = state.bulk().settings().max_users;
    let mut ids = Vec::new();
    loop {
        let page = match state.directory().list(&ts.tenant, &filter).await {
            Ok(p) => p,
            Err(e) => return Failure::from_problem(nav, e.into()).into_response(),
        };
        ids.extend(page.users.into_iter().map(|u| u.id));
        if ids.len() > max {
            return Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                nav,
                "Too many users",
                format!("The filter matches more than {max} users, the most one bulk job takes. Narrow it."),
                "invalid-selection",
            )
            .into_response();
        }
        match page.next_cursor {
            Some(c) => filter.cursor = Some(c),
            None => break,
        }
    }
    match state.sessions().select(&ts.session, &ids, &[]).await {
        Ok(()) => back_to(&ts.tenant, &form.back).into_response(),
        Err(e) => Failure::from_problem(nav, e.into()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct ClearForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
}

pub async fn clear(
    ts: TenantSession,
    State(state): State<AppState>,
    Form(form): Form<ClearForm>,
) -> Response {
    if let Err(f) = check_csrf(&ts.session, &form.csrf) {
        return f.into_response();
    }
    match state.sessions().clear_selection(&ts.session).await {
        Ok(()) => back_to(&ts.tenant, &form.back).into_response(),
        Err(e) => Failure::from_problem(Nav::of(&ts.session), e.into()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct BulkForm {
    #[serde(default)]
    csrf: String,
    action: Action,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    transfer_to: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/bulk_preview.html")]
pub struct PreviewPage {
    nav: Nav,
    tenant: String,
    preview: Preview,
    /// A refused count, as a sentence.
    error: Option<String>,
}

/// The selection's preview.
pub async fn preview(
    ts: TenantSession,
    State(state): State<AppState>,
    Form(form): Form<BulkForm>,
) -> Response {
    let nav = Nav::of(&ts.session);
    if let Err(f) = check_csrf(&ts.session, &form.csrf) {
        return f.into_response();
    }
    let selected = match state.sessions().selection(&ts.session).await {
        Ok(s) => s,
        Err(e) => return Failure::from_problem(nav, e.into()).into_response(),
    };
    if selected.is_empty() {
        return Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            nav,
            "Nothing selected",
            "Select users first: check them on the users page, or select all the filter matches."
                .into(),
            "invalid-selection",
        )
        .into_response();
    }
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let req = PreviewRequest {
        action: form.action,
        actor_id: ts.actor.clone(),
        filter: None,
        user_ids: Some(selected),
        transfer_to: text(&form.transfer_to),
        reason: text(&form.reason),
    };
    match state
        .bulk()
        .preview(state.policies(), &ts.tenant, &req)
        .await
    {
        Ok(preview) => PreviewPage {
            nav,
            tenant: ts.tenant,
            preview,
            error: None,
        }
        .into_response(),
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct ExecuteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm_count: String,
}

/// The typed count: right, the job starts; wrong, the preview again with
/// a sentence.
pub async fn execute(
    ts: TenantSession,
    State(state): State<AppState>,
    Path((_t, preview_id)): Path<(String, String)>,
    Form(form): Form<ExecuteForm>,
) -> Response {
    let nav = Nav::of(&ts.session);
    if let Err(f) = check_csrf(&ts.session, &form.csrf) {
        return f.into_response();
    }
    let retype = |preview: Preview| {
        let error = format!(
            "You typed “{}”, but this preview applies to {} users. Nothing was started; type \
             the number shown to confirm.",
            form.confirm_count.trim(),
            preview.confirm_count
        );
        let page = PreviewPage {
            nav: nav.clone(),
            tenant: ts.tenant.clone(),
            preview,
            error: Some(error),
        };
        (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
    };
    let Ok(confirm_count) = form.confirm_count.trim().parse::<u64>() else {
        return match state.bulk().stored_preview(&ts.tenant, &preview_id).await {
            Ok(p) => retype(p),
            Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
        };
    };
    let req = ExecuteRequest { confirm_count };
    match state
        .bulk()
        .execute(state.policies(), &ts.tenant, &preview_id, &req)
        .await
    {
        Ok(job) => {
            if let Err(e) = state.sessions().clear_selection(&ts.session).await {
                tracing::warn!(error = %e, "cannot clear a console selection");
            }
            Redirect::to(&format!("/console/t/{}/jobs/{}", ts.tenant, job.job_id)).into_response()
        }
        Err(BulkError::Mismatch { .. }) => {
            match state.bulk().stored_preview(&ts.tenant, &preview_id).await {
                Ok(p) => retype(p),
                Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
            }
        }
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/job.html")]
pub struct JobPage {
    nav: Nav,
    tenant: String,
    job: Job,
}

impl JobPage {
    fn finished(&self) -> bool {
        self.job.is_terminal()
    }
}

pub async fn job(
    ts: TenantSession,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Response {
    let nav = Nav::of(&ts.session);
    match state.bulk().job(&ts.tenant, &id).await {
        Ok(job) => JobPage {
            nav,
            tenant: ts.tenant,
            job,
        }
        .into_response(),
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/jobs.html")]
pub struct JobsPage {
    nav: Nav,
    tenant: String,
    jobs: Vec<Job>,
}

pub async fn jobs(ts: TenantSession, State(state): State<AppState>) -> Response {
    let nav = Nav::of(&ts.session);
    match state.bulk().jobs(&ts.tenant, 100, None).await {
        Ok(page) => JobsPage {
            nav,
            tenant: ts.tenant,
            jobs: page.jobs,
        }
        .into_response(),
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

/// The job's progress for the job page's script: the API's event stream,
/// behind the session instead of a key.
pub async fn job_events(
    ts: TenantSession,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Response {
    match crate::api::bulk::job_stream(&state, ts.tenant.clone(), id).await {
        Ok(sse) => sse.into_response(),
        Err(p) => Failure::from_problem(Nav::of(&ts.session), p).into_response(),
    }
}
