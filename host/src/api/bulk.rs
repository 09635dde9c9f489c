//! Bulk endpoints: preview, execute, jobs, items, progress events, cancel.
//! They translate only; the work is in [`crate::bulk`].

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::problem::ProblemDetails;
use super::{AppState, Body, Params, Problem, TenantActor, TenantReader};
use crate::bulk::{ExecuteRequest, ItemPage, ItemStatus, Job, JobPage, Preview, PreviewRequest};
use crate::page::Limit;

/// How often the progress stream looks at the job.
const EVENT_POLL: Duration = Duration::from_millis(250);

#[utoipa::path(post, path = "/v1/tenants/{t}/bulk/preview", params(("t" = String, Path)), request_body = PreviewRequest, responses(
    (status = 200, description = "What executing the selection would do; no user changed", body = Preview) ,
    (status = 422, description = "Invalid selection or unknown actor", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn preview(
    TenantActor(t): TenantActor,
    State(state): State<AppState>,
    Body(req): Body<PreviewRequest>,
) -> Result<Json<Preview>, Problem> {
    Ok(Json(
        state.bulk().preview(state.policies(), &t, &req).await?,
    ))
}

#[utoipa::path(post, path = "/v1/tenants/{t}/bulk/{preview}/execute", params(("t" = String, Path), ("preview" = String, Path)), request_body = ExecuteRequest, responses(
    (status = 202, description = "Job queued", body = Job) ,
    (status = 409, description = "`preview-stale` (with a fresh `preview`) or `preview-used`", body = ProblemDetails, content_type = "application/problem+json"),
    (status = 410, description = "`preview-expired`", body = ProblemDetails, content_type = "application/problem+json"),
    (status = 422, description = "`confirm-count-mismatch` (with `expected`)", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn execute(
    TenantActor(t): TenantActor,
    State(state): State<AppState>,
    Path((_t, preview)): Path<(String, String)>,
    Body(req): Body<ExecuteRequest>,
) -> Result<impl IntoResponse, Problem> {
    let job = state
        .bulk()
        .execute(state.policies(), &t, &preview, &req)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Query of `GET /v1/tenants/{t}/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit<200>>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}-.+$")]
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/tenants/{t}/jobs", params(("t" = String, Path), JobsQuery), responses(
    (status = 200, description = "Newest first", body = JobPage)
))]
pub async fn jobs(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Params(q): Params<JobsQuery>,
) -> Result<Json<JobPage>, Problem> {
    Ok(Json(
        state
            .bulk()
            .jobs(&t, Limit::or(q.limit, 50), q.cursor.as_deref())
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/jobs/{id}", params(("t" = String, Path), ("id" = String, Path)), responses(
    (status = 200, body = Job)
))]
pub async fn job(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Result<Json<Job>, Problem> {
    Ok(Json(state.bulk().job(&t, &id).await?))
}

/// Query of `GET /v1/tenants/{t}/jobs/{id}/items`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    /// pending, applied, escalated, denied, failed or cancelled.
    pub status: Option<ItemStatus>,
    /// Default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<Limit<1000>>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/tenants/{t}/jobs/{id}/items", params(("t" = String, Path), ("id" = String, Path), ItemsQuery), responses(
    (status = 200, description = "In job order", body = ItemPage)
))]
pub async fn items(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
    Params(q): Params<ItemsQuery>,
) -> Result<Json<ItemPage>, Problem> {
    Ok(Json(
        state
            .bulk()
            .items(
                &t,
                &id,
                q.status,
                Limit::or(q.limit, 100),
                q.cursor.as_deref(),
            )
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/tenants/{t}/jobs/{id}/cancel", params(("t" = String, Path), ("id" = String, Path)), responses(
    (status = 202, description = "Cancel requested; users already done stay done", body = Job) ,
    (status = 409, description = "`job-finished`", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn cancel(
    TenantActor(t): TenantActor,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, Problem> {
    let job = state.bulk().cancel(&t, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/jobs/{id}/events", params(("t" = String, Path), ("id" = String, Path)), responses(
    (status = 200, description = "Server-sent events: `progress` (Job JSON) whenever the counts change, then one `end` (the final Job) and the stream closes", content_type = "text/event-stream")
))]
pub async fn events(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    job_stream(&state, t, id).await
}

/// A job's progress as server-sent events (`progress`, then `end`); the
/// API's stream and the console's job page.
pub(crate) async fn job_stream(
    state: &AppState,
    t: String,
    id: String,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    // 404 before the stream starts, like every other endpoint.
    state.bulk().job(&t, &id).await?;
    let bulk = state.bulk().clone();
    let stream = stream::unfold(Some(String::new()), move |last| {
        let (bulk, t, id) = (bulk.clone(), t.clone(), id.clone());
        async move {
            let last = last?;
            loop {
                let job = match bulk.job(&t, &id).await {
                    Ok(job) => job,
                    Err(e) => {
                        let event = Event::default().event("error").data(e.to_string());
                        return Some((Ok(event), None));
                    }
                };
                let json = serde_json::to_string(&job).unwrap_or_default();
                if job.is_terminal() {
                    return Some((Ok(Event::default().event("end").data(json)), None));
                }
                if json != last {
                    let event = Event::default().event("progress").data(json.clone());
                    return Some((Ok(event), Some(json)));
                }
                tokio::time::sleep(EVENT_POLL).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
