//! Events: the tenant reads its outbox and redelivers
//! (`/v1/tenants/{t}/events`); operators manage webhook endpoints
//! (`/v1/admin/tenants/{t}/webhooks`). They translate only; the work is in
//! [`crate::events`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{unix_now, AppState, Body, Operator, Params, Problem, TenantActor, TenantReader};
use crate::events::delivery::PingResult;
use crate::events::signature::Secret;
use crate::events::{Endpoint, EventFilter, EventPage, EventType, NewEndpoint, StoredEvent};

#[utoipa::path(get, path = "/v1/tenants/{t}/events", params(("t" = String, Path), EventFilter), responses(
    (status = 200, description = "Newest first, each with where its deliveries stand", body = EventPage)
))]
pub async fn list_events(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Params(f): Params<EventFilter>,
) -> Result<Json<EventPage>, Problem> {
    Ok(Json(state.events().list(&t, &f).await?))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/events/{id}", params(("t" = String, Path), ("id" = String, Path)), responses(
    (status = 200, description = "The event, its deliveries and every attempt", body = StoredEvent)
))]
pub async fn event(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Result<Json<StoredEvent>, Problem> {
    Ok(Json(state.events().get(&t, &id).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    /// One endpoint; by default every endpoint the event went to.
    pub endpoint: Option<String>,
}

#[utoipa::path(post, path = "/v1/tenants/{t}/events/{id}/redeliver", params(("t" = String, Path), ("id" = String, Path)),
    request_body = RedeliverRequest, responses(
    (status = 202, description = "Due again now, with a fresh retry horizon; the attempt log is kept", body = StoredEvent)
))]
pub async fn redeliver(
    TenantActor(t): TenantActor,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
    Body(req): Body<RedeliverRequest>,
) -> Result<(StatusCode, Json<StoredEvent>), Problem> {
    let event = state
        .events()
        .redeliver(&t, &id, req.endpoint.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(event)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// Where to POST events: an http or https URL.
    #[schema(example = "https://hooks.example.com/lethe")]
    pub url: String,
    pub description: Option<String>,
    /// The types to send; none or empty: every type.
    #[serde(default)]
    pub event_types: Vec<EventType>,
    /// A `whsec_…` secret to sign with; by default a new one, returned once.
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    /// Off: events are still recorded and wait; on again: they are sent.
    pub enabled: bool,
}

/// The longest two secrets sign side by side.
const MAX_OVERLAP_SECS: u32 = 30 * 24 * 3600;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the previous secret keeps signing too (default one day).
    #[schema(minimum = 0, maximum = 2592000)]
    pub overlap_secs: Option<u32>,
}

/// The operator routes name a tenant that must exist.
async fn known(state: &AppState, t: &str) -> Result<(), Problem> {
    state.deployments().tenant(t).await?;
    Ok(())
}

#[utoipa::path(post, path = "/v1/admin/tenants/{t}/webhooks", params(("t" = String, Path)),
    request_body = CreateEndpointRequest, responses(
    (status = 201, description = "Created; `secret` is shown this once", body = Endpoint)
))]
pub async fn create_webhook(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(t): Path<String>,
    Body(req): Body<CreateEndpointRequest>,
) -> Result<(StatusCode, Json<Endpoint>), Problem> {
    known(&state, &t).await?;
    let secret = req
        .secret
        .as_deref()
        .map(Secret::parse)
        .transpose()
        .map_err(|e| Problem::invalid(e.to_string()))?;
    let new = NewEndpoint {
        url: &req.url,
        description: req.description.as_deref(),
        event_types: &req.event_types,
        secret,
    };
    let endpoint = state
        .events()
        .create_endpoint(&t, new, &who, unix_now())
        .await?;
    Ok((StatusCode::CREATED, Json(endpoint)))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{t}/webhooks", params(("t" = String, Path)), responses(
    (status = 200, description = "With their delivery counts (pending, failing, delivered, dead)", body = EndpointList)
))]
pub async fn webhooks(
    State(state): State<AppState>,
    _operator: Operator,
    Path(t): Path<String>,
) -> Result<Json<EndpointList>, Problem> {
    known(&state, &t).await?;
    Ok(Json(EndpointList {
        endpoints: state.events().endpoints(&t).await?,
    }))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{t}/webhooks/{id}", params(("t" = String, Path), ("id" = String, Path)), responses(
    (status = 200, body = Endpoint)
))]
pub async fn webhook(
    State(state): State<AppState>,
    _operator: Operator,
    Path((t, id)): Path<(String, String)>,
) -> Result<Json<Endpoint>, Problem> {
    Ok(Json(state.events().endpoint(&t, &id).await?))
}

#[utoipa::path(patch, path = "/v1/admin/tenants/{t}/webhooks/{id}", params(("t" = String, Path), ("id" = String, Path)),
    request_body = UpdateEndpointRequest, responses(
    (status = 200, body = Endpoint)
))]
pub async fn update_webhook(
    State(state): State<AppState>,
    _operator: Operator,
    Path((t, id)): Path<(String, String)>,
    Body(req): Body<UpdateEndpointRequest>,
) -> Result<Json<Endpoint>, Problem> {
    Ok(Json(
        state
            .events()
            .set_enabled(&t, &id, req.enabled, unix_now())
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/admin/tenants/{t}/webhooks/{id}/rotate-secret", params(("t" = String, Path), ("id" = String, Path)),
    request_body = RotateRequest, responses(
    (status = 200, description = "The new `secret`, shown this once; both sign until `previous_secret_until`", body = Endpoint)
))]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    _operator: Operator,
    Path((t, id)): Path<(String, String)>,
    Body(req): Body<RotateRequest>,
) -> Result<Json<Endpoint>, Problem> {
    let overlap = req.overlap_secs.unwrap_or(86_400);
    if overlap > MAX_OVERLAP_SECS {
        return Err(Problem::invalid(format!(
            "`overlap_secs` is at most {MAX_OVERLAP_SECS} (30 days)"
        )));
    }
    Ok(Json(
        state
            .events()
            .rotate_secret(&t, &id, i64::from(overlap), unix_now())
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/admin/tenants/{t}/webhooks/{id}/ping", params(("t" = String, Path), ("id" = String, Path)), responses(
    (status = 200, description = "A signed `webhook.ping` was sent now; what the endpoint answered (nothing is stored)", body = PingResult)
))]
pub async fn ping_webhook(
    State(state): State<AppState>,
    _operator: Operator,
    Path((t, id)): Path<(String, String)>,
) -> Result<Json<PingResult>, Problem> {
    Ok(Json(state.events().ping(&t, &id, unix_now()).await?))
}
