//! The operator API, `/v1/admin/...`: tenants, policy versions behind the
//! validation gate, activation and rollback. Every handler takes the
//! [`Operator`] extractor first, so a tenant or support key is refused
//! before a byte of an upload is read.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::problem::ProblemDetails;
use super::{unix_now, AppState, Body, Operator, Params, Problem};
use crate::deploy::replay::{ReplayReport, MAX_REPLAY};
use crate::deploy::shadow::ShadowStatus;
use crate::deploy::{
    Activate, Activation, ActivationKind, PolicyStatus, PolicyVersion, Replay, Tenant, Upload,
};
use crate::error_code::ErrorCode;
use crate::evidence::RecordWindow;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// The value of `tenant_id` in the platform's tables: letters, digits,
    /// `-`, `_`, `.`; at most 64.
    pub id: String,
    /// For people; defaults to the id.
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionList {
    /// Newest first, rejected ones included.
    pub versions: Vec<PolicyVersion>,
}

/// Query of a raw (`application/wasm`) upload; a multipart upload carries
/// the message as a part instead.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// Why this version: shown in the version list.
    pub message: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    pub version: i64,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// An earlier version; by default the one active before the current.
    pub version: Option<i64>,
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/v1/admin/tenants", request_body = CreateTenantRequest, responses(
    (status = 201, body = Tenant),
    (status = 409, description = "tenant-exists", body = ProblemDetails, content_type = "application/problem+json"),
    (status = 422, description = "invalid-input", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn create_tenant(
    State(state): State<AppState>,
    _operator: Operator,
    Body(req): Body<CreateTenantRequest>,
) -> Result<(StatusCode, Json<Tenant>), Problem> {
    let name = req.name.as_deref().unwrap_or(&req.id);
    let tenant = state
        .deployments()
        .create_tenant(&req.id, name, unix_now())
        .await?;
    state.follow_activations().await;
    Ok((StatusCode::CREATED, Json(tenant)))
}

#[utoipa::path(get, path = "/v1/admin/tenants", responses((status = 200, body = TenantList)))]
pub async fn tenants(
    State(state): State<AppState>,
    _operator: Operator,
) -> Result<Json<TenantList>, Problem> {
    Ok(Json(TenantList {
        tenants: state.deployments().tenants().await?,
    }))
}

/// The component as the body (`application/wasm`), or `multipart/form-data`
/// with the parts `component`, `cases` (a cases file, TOML; every case must
/// pass) and `message`.
#[utoipa::path(post, path = "/v1/admin/tenants/{t}/versions", params(("t" = String, Path), UploadParams),
    request_body(content(
        (Component = "application/wasm"),
        (Component = "application/octet-stream"),
        (UploadForm = "multipart/form-data")
    )),
    responses(
        (status = 201, body = PolicyVersion),
        (status = 400, description = "`bad-request`: a malformed multipart body, or `invalid-query`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "body-too-large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "policy-rejected: stored as rejected; `failures` and `version` say why", body = ProblemDetails, content_type = "application/problem+json")
    ))]
pub async fn upload(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(t): Path<String>,
    Params(params): Params<UploadParams>,
    request: Request,
) -> Result<(StatusCode, Json<PolicyVersion>), Problem> {
    let parts = UploadParts::read(request, &state, params.message).await?;
    let upload = Upload {
        tenant: &t,
        component: &parts.component,
        cases: parts.cases.as_deref(),
        message: parts.message.as_deref(),
        uploaded_by: &who,
    };
    let version = state.deployments().upload(upload, unix_now()).await?;
    Ok((StatusCode::CREATED, Json(version)))
}

/// A component as the whole body (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(value_type = String, format = Binary)]
pub struct Component(Vec<u8>);

/// An upload as `multipart/form-data` (documentation only; read by
/// [`UploadParts::from_multipart`]; another part is refused).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The WebAssembly component.
    #[schema(value_type = String, format = Binary)]
    pub component: Vec<u8>,
    /// A cases file (TOML); every case must pass.
    pub cases: Option<String>,
    /// Why this version; shown in the version list.
    pub message: Option<String>,
}

/// What an upload carried, however it was sent.
struct UploadParts {
    component: Bytes,
    cases: Option<String>,
    message: Option<String>,
}

impl UploadParts {
    async fn read(
        request: Request,
        state: &AppState,
        message: Option<String>,
    ) -> Result<UploadParts, Problem> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let multipart = Multipart::from_request(request, state)
                .await
                .map_err(|r| Problem::coded(ErrorCode::BadRequest, r.body_text()))?;
            return UploadParts::from_multipart(multipart, message).await;
        }
        if !(content_type.starts_with("application/wasm")
            || content_type.starts_with("application/octet-stream"))
        {
            return Err(Problem::coded(
                ErrorCode::UnsupportedMediaType,
                "send the component as application/wasm, or multipart/form-data with a `component` part",
            ));
        }
        let component = Bytes::from_request(request, state)
            .await
            .map_err(|r| too_large_or(r.status(), r.body_text()))?;
        Ok(UploadParts {
            component,
            cases: None,
            message,
        })
    }

    async fn from_multipart(
        mut multipart: Multipart,
        mut message: Option<String>,
    ) -> Result<UploadParts, Problem> {
        let mut component = None;
        let mut cases = None;
        loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|e| too_large_or(e.status(), e.body_text()))?;
            let Some(field) = field else { break };
            let name = field.name().unwrap_or("").to_owned();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| too_large_or(e.status(), e.body_text()))?;
            match name.as_str() {
                "component" => component = Some(bytes),
                "cases" => cases = Some(text_part("cases", bytes)?),
                "message" => message = Some(text_part("message", bytes)?),
                other => {
                    return Err(Problem::invalid(format!(
                        "unknown part `{other}`: expected component, cases, message"
                    )))
                }
            }
        }
        let component =
            component.ok_or_else(|| Problem::invalid("the `component` part is missing"))?;
        Ok(UploadParts {
            component,
            cases,
            message,
        })
    }
}

fn text_part(name: &str, bytes: Bytes) -> Result<String, Problem> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Problem::invalid(format!("the `{name}` part is not UTF-8 text")))
}

fn too_large_or(status: StatusCode, detail: String) -> Problem {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::coded(ErrorCode::BodyTooLarge, detail)
    } else {
        Problem::coded(ErrorCode::BadRequest, detail)
    }
}

#[utoipa::path(get, path = "/v1/admin/tenants/{t}/versions", params(("t" = String, Path)), responses(
    (status = 200, body = VersionList)
))]
pub async fn versions(
    State(state): State<AppState>,
    _operator: Operator,
    Path(t): Path<String>,
) -> Result<Json<VersionList>, Problem> {
    Ok(Json(VersionList {
        versions: state.deployments().versions(&t).await?,
    }))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{t}/versions/{n}", params(("t" = String, Path), ("n" = i64, Path)), responses(
    (status = 200, body = PolicyVersion)
))]
pub async fn version(
    State(state): State<AppState>,
    _operator: Operator,
    Path((t, n)): Path<(String, String)>,
) -> Result<Json<PolicyVersion>, Problem> {
    let n: i64 = n.parse().map_err(|_| Problem::not_found())?;
    Ok(Json(state.deployments().version(&t, n).await?))
}

#[utoipa::path(post, path = "/v1/admin/tenants/{t}/activate", params(("t" = String, Path)), request_body = ActivateRequest, responses(
    (status = 200, body = Activation) ,
    (status = 409, description = "version-rejected, already-active", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn activate(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(t): Path<String>,
    Body(req): Body<ActivateRequest>,
) -> Result<Json<Activation>, Problem> {
    let activate = Activate {
        tenant: &t,
        version: Some(req.version),
        kind: ActivationKind::Activate,
        by: &who,
        reason: req.reason.as_deref(),
    };
    let activation = state.deployments().activate(activate, unix_now()).await?;
    state.follow_activations().await;
    Ok(Json(activation))
}

#[utoipa::path(post, path = "/v1/admin/tenants/{t}/rollback", params(("t" = String, Path)), request_body = RollbackRequest, responses(
    (status = 200, body = Activation) ,
    (status = 409, description = "nothing-to-roll-back, version-rejected, already-active", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn rollback(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(t): Path<String>,
    Body(req): Body<RollbackRequest>,
) -> Result<Json<Activation>, Problem> {
    let activate = Activate {
        tenant: &t,
        version: req.version,
        kind: ActivationKind::Rollback,
        by: &who,
        reason: req.reason.as_deref(),
    };
    let activation = state.deployments().activate(activate, unix_now()).await?;
    state.follow_activations().await;
    Ok(Json(activation))
}

/// The active version, the activation history and what each running
/// replica serves.
#[utoipa::path(get, path = "/v1/admin/tenants/{t}/policy", params(("t" = String, Path)), responses(
    (status = 200, body = PolicyStatus)
))]
pub async fn policy_status(
    State(state): State<AppState>,
    _operator: Operator,
    Path(t): Path<String>,
) -> Result<Json<PolicyStatus>, Problem> {
    let now_ms = unix_now().saturating_mul(1000);
    Ok(Json(state.deployments().status(&t, now_ms).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The newest this many records (default 1000, at most 100 000).
    pub last: Option<u32>,
    /// Only records at or after this unix time.
    pub since: Option<i64>,
    /// Only records at or before this unix time.
    pub until: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayList {
    /// Newest first, at most 100.
    pub replays: Vec<ReplayReport>,
}

/// Re-runs the tenant's recorded requests on version `n` and reports how
/// its decisions differ from those recorded. Writes only the report.
#[utoipa::path(post, path = "/v1/admin/tenants/{t}/versions/{n}/replay", params(("t" = String, Path), ("n" = i64, Path)),
    request_body = ReplayRequest, responses(
    (status = 201, body = ReplayReport) ,
    (status = 409, description = "version-rejected", body = ProblemDetails, content_type = "application/problem+json"),
    (status = 422, description = "invalid-input", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn replay(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path((t, n)): Path<(String, String)>,
    Body(req): Body<ReplayRequest>,
) -> Result<(StatusCode, Json<ReplayReport>), Problem> {
    let n: i64 = n.parse().map_err(|_| Problem::not_found())?;
    let last = req.last.unwrap_or(1000);
    if !(1..=MAX_REPLAY).contains(&last) {
        return Err(Problem::invalid(format!(
            "`last` must be 1 to {MAX_REPLAY}"
        )));
    }
    if let (Some(since), Some(until)) = (req.since, req.until) {
        if since > until {
            return Err(Problem::invalid("`since` is after `until`"));
        }
    }
    let replay = Replay {
        tenant: &t,
        version: n,
        window: RecordWindow {
            last: Some(last),
            since: req.since,
            until: req.until,
        },
        by: &who,
    };
    let report = state.deployments().replay(replay, unix_now()).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{t}/replays", params(("t" = String, Path)), responses(
    (status = 200, body = ReplayList)
))]
pub async fn replays(
    State(state): State<AppState>,
    _operator: Operator,
    Path(t): Path<String>,
) -> Result<Json<ReplayList>, Problem> {
    Ok(Json(ReplayList {
        replays: state.deployments().replays(&t).await?,
    }))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{t}/replays/{id}", params(("t" = String, Path), ("id" = String, Path)), responses(
    (status = 200, body = ReplayReport)
))]
pub async fn replay_report(
    State(state): State<AppState>,
    _operator: Operator,
    Path((t, id)): Path<(String, String)>,
) -> Result<Json<ReplayReport>, Problem> {
    Ok(Json(state.deployments().replay_report(&t, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowRequest {
    /// The accepted version to evaluate beside the active one.
    pub version: i64,
}

/// Starts (or replaces) the tenant's shadow: `version` decides beside the
/// active version on live requests, off the request path.
#[utoipa::path(put, path = "/v1/admin/tenants/{t}/shadow", params(("t" = String, Path)), request_body = ShadowRequest, responses(
    (status = 200, body = ShadowStatus) ,
    (status = 409, description = "version-rejected", body = ProblemDetails, content_type = "application/problem+json")
))]
pub async fn start_shadow(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(t): Path<String>,
    Body(req): Body<ShadowRequest>,
) -> Result<Json<ShadowStatus>, Problem> {
    state
        .deployments()
        .set_shadow(&t, Some(req.version), &who, unix_now())
        .await?;
    state.follow_activations().await;
    Ok(Json(state.deployments().shadow_status(&t).await?))
}

#[utoipa::path(delete, path = "/v1/admin/tenants/{t}/shadow", params(("t" = String, Path)), responses(
    (status = 204, description = "Stopped; the counts and disagreements are kept")
))]
pub async fn stop_shadow(
    State(state): State<AppState>,
    Operator(who): Operator,
    Path(t): Path<String>,
) -> Result<StatusCode, Problem> {
    state.deployments().shadow_status(&t).await?;
    state
        .deployments()
        .set_shadow(&t, None, &who, unix_now())
        .await?;
    state.follow_activations().await;
    Ok(StatusCode::NO_CONTENT)
}

/// The shadow's counts over every replica (flushed each second) and its
/// latest disagreements.
#[utoipa::path(get, path = "/v1/admin/tenants/{t}/shadow", params(("t" = String, Path)), responses(
    (status = 200, body = ShadowStatus)
))]
pub async fn shadow_status(
    State(state): State<AppState>,
    _operator: Operator,
    Path(t): Path<String>,
) -> Result<Json<ShadowStatus>, Problem> {
    Ok(Json(state.deployments().shadow_status(&t).await?))
}
