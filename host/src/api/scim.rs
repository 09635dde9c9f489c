//! SCIM 2.0 over HTTP: `/scim/v2/{t}/…` for identity providers, and the
//! operator and tenant endpoints around it (tokens, the deprovision
//! setting, the request log). Handlers translate only; the use cases are
//! [`crate::scim`].
//!
//! Every SCIM answer is `application/scim+json`, errors included (the SCIM
//! error schema, with `scimType` where one applies), and every request an
//! identity provider makes is logged with its answer. SCIM is its own
//! contract (RFC 7643/7644, checked by the scim2-tester conformance run), so
//! these routes are not in the OpenAPI document; the operator and tenant
//! routes are.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{unix_now, AppState, Body, Operator, Params, Problem, TenantReader};
use crate::page::Limit;
use crate::scim::resource::{self, Projection};
use crate::scim::store::{Logged, NewToken, RequestEntry, ScimSettings, TokenInfo};
use crate::scim::{
    Answer, Desired, IdentityProvider, ListQuery, RequestOutcome, ScimError, ScimType,
};

const SCIM_JSON: &str = "application/scim+json";

/// The SCIM routes, nested under `/scim/v2/{t}`.
pub fn router() -> Router<AppState> {
    let read_only = || {
        axum::routing::MethodRouter::new().fallback(|| async {
            error_response(&ScimError::new(405, None, "this endpoint is read-only"))
        })
    };
    Router::new()
        .route(
            "/ServiceProviderConfig",
            read_only().get(service_provider_config),
        )
        .route("/ResourceTypes", read_only().get(resource_types))
        .route("/ResourceTypes/{id}", read_only().get(resource_type))
        .route("/Schemas", read_only().get(schemas))
        .route("/Schemas/{id}", read_only().get(schema))
        .route("/Users", get(list_users).post(create_user))
        .route("/Users/.search", post(search))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/.search", post(search))
        .fallback(|| async { error_response(&ScimError::not_found()) })
        .method_not_allowed_fallback(|| async {
            error_response(&ScimError::new(
                405,
                None,
                "method not allowed on this path",
            ))
        })
}

fn scim_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON))],
        body.to_string(),
    )
        .into_response()
}

fn error_response(e: &ScimError) -> Response {
    let mut body = json!({
        "schemas": [resource::ERROR],
        "status": e.status.to_string(),
        "detail": e.detail,
    });
    if let Some(t) = e.scim_type {
        body["scimType"] = json!(t);
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = scim_json(status, body);
    if e.status == 401 {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"lethe-scim\""),
        );
    }
    response
}

/// An error raised before an identity provider is known (no or a bad
/// token): answered, not logged against a tenant.
pub struct Rejection(ScimError);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

/// The identity provider calling, authenticated by its SCIM token, and
/// the tenant of the path, which must be its own: another tenant's path
/// answers 404, like a tenant that does not exist. Checked before the body
/// is read.
pub struct Idp {
    idp: IdentityProvider,
    method: Method,
    path: String,
}

impl FromRequestParts<AppState> for Idp {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Rejection> {
        let unauthorized = |d: &str| Rejection(ScimError::new(401, None, d));
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("expected `Authorization: Bearer <SCIM token>`"))?;
        let idp = state
            .scim()
            .store()
            .authenticate(token)
            .await
            .map_err(|e| Rejection(ScimError::from(e)))?
            .ok_or_else(|| unauthorized("unknown or revoked SCIM token"))?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Rejection(ScimError::not_found()))?;
        if params.get("t") != Some(&idp.tenant) || !state.policies().knows(&idp.tenant) {
            return Err(Rejection(ScimError::not_found()));
        }
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |u| u.0.path().to_owned());
        Ok(Idp {
            idp,
            method: parts.method.clone(),
            path,
        })
    }
}

impl Idp {
    /// The tenant's SCIM base path, for `meta.location`.
    fn base(&self) -> String {
        format!("/scim/v2/{}", self.idp.tenant)
    }

    /// Log the request, then answer it.
    async fn answer(
        &self,
        state: &AppState,
        user_id: Option<&str>,
        result: Result<(StatusCode, Value, &Answer), ScimError>,
    ) -> Response {
        let (status, outcome, action_id, response) = match result {
            Ok((status, body, a)) => (
                status.as_u16(),
                a.outcome,
                a.action_id.clone(),
                if status == StatusCode::NO_CONTENT {
                    status.into_response()
                } else {
                    scim_json(status, body)
                },
            ),
            Err(e) => (e.status, e.outcome, e.action_id.clone(), error_response(&e)),
        };
        state
            .scim()
            .store()
            .log(&Logged {
                idp: &self.idp,
                method: self.method.as_str(),
                path: &self.path,
                user_id,
                status,
                outcome,
                action_id: action_id.as_deref(),
                now_ms: crate::clock::unix_millis(),
            })
            .await;
        response
    }

    /// Log and answer a read of a document.
    async fn read(&self, state: &AppState, result: Result<Value, ScimError>) -> Response {
        let answer = Answer {
            user: None,
            outcome: RequestOutcome::Read,
            action_id: None,
            escalation: None,
        };
        let result = result.map(|body| (StatusCode::OK, body, &answer));
        self.answer(state, None, result).await
    }
}

/// A SCIM request body: JSON (`application/json` or
/// `application/scim+json`), any object; the use case reads its shape.
pub struct ScimBody(Value);

impl FromRequest<AppState> for ScimBody {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || m == SCIM_JSON
            });
        if json_type != Some(true) {
            return Err(Rejection(ScimError::new(
                415,
                None,
                "send the body as application/scim+json or application/json",
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status().as_u16();
            Rejection(ScimError::new(status, None, r.body_text()))
        })?;
        serde_json::from_slice(&bytes).map(ScimBody).map_err(|e| {
            Rejection(ScimError::bad_request(
                ScimType::InvalidSyntax,
                format!("the body is not JSON: {e}"),
            ))
        })
    }
}

async fn service_provider_config(idp: Idp, State(state): State<AppState>) -> Response {
    let doc = state
        .scim()
        .stored()
        .map(|_| resource::service_provider_config(&idp.base()));
    idp.read(&state, doc).await
}

async fn resource_types(idp: Idp, State(state): State<AppState>) -> Response {
    let doc = state.scim().stored().map(|_| {
        let rt = resource::user_resource_type(&idp.base());
        resource::list(vec![rt], 1, 1)
    });
    idp.read(&state, doc).await
}

async fn resource_type(
    idp: Idp,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Response {
    let doc = state.scim().stored().and_then(|_| match id.as_str() {
        "User" => Ok(resource::user_resource_type(&idp.base())),
        _ => Err(ScimError::not_found()),
    });
    idp.read(&state, doc).await
}

async fn schemas(idp: Idp, State(state): State<AppState>) -> Response {
    let doc = state.scim().stored().map(|stored| {
        let schema = resource::user_schema(stored, &idp.base());
        resource::list(vec![schema], 1, 1)
    });
    idp.read(&state, doc).await
}

async fn schema(
    idp: Idp,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Response {
    let doc = state.scim().stored().and_then(|stored| {
        if id == crate::scim::request::USER_SCHEMA {
            Ok(resource::user_schema(stored, &idp.base()))
        } else {
            Err(ScimError::not_found())
        }
    });
    idp.read(&state, doc).await
}

/// Query parameters of a list and of a single user.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

/// Query parameters as given; a malformed one is a SCIM 400 (read here,
/// not by an extractor, so the refusal is a logged SCIM error).
fn list_params(uri: &OriginalUri) -> Result<ListParams, ScimError> {
    axum::extract::Query::<ListParams>::try_from_uri(&uri.0)
        .map(|axum::extract::Query(p)| p)
        .map_err(|e| ScimError::bad_request(ScimType::InvalidValue, e.body_text()))
}

/// Run a list, with the projection asked for, as a ListResponse.
async fn list_response(
    idp: &Idp,
    state: &AppState,
    params: &ListParams,
    projection: &Projection,
) -> Result<Value, ScimError> {
    let stored = state.scim().stored()?;
    let q = ListQuery::new(params.filter.as_deref(), params.start_index, params.count)?;
    let found = state.scim().list(&idp.idp.tenant, &q).await?;
    let resources = found
        .users
        .iter()
        .map(|u| projection.apply(resource::user(u, stored, &idp.base())))
        .collect();
    Ok(resource::list(resources, found.total, q.start_index))
}

async fn list_users(idp: Idp, State(state): State<AppState>, uri: OriginalUri) -> Response {
    let result = async {
        let params = list_params(&uri)?;
        let projection = Projection::from_query(
            params.attributes.as_deref(),
            params.excluded_attributes.as_deref(),
        );
        list_response(&idp, &state, &params, &projection).await
    }
    .await;
    idp.read(&state, result).await
}

/// `POST /.search` and `POST /Users/.search` (RFC 7644 §3.4.3).
async fn search(idp: Idp, State(state): State<AppState>, ScimBody(body): ScimBody) -> Response {
    let result = async {
        let field = |name: &str| body.get(name);
        let list = |name: &str| -> Option<String> {
            field(name).and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
        };
        let params = ListParams {
            filter: field("filter").and_then(Value::as_str).map(str::to_owned),
            start_index: field("startIndex").and_then(Value::as_i64),
            count: field("count").and_then(Value::as_i64),
            attributes: None,
            excluded_attributes: None,
        };
        let projection = Projection::from_query(
            list("attributes").as_deref(),
            list("excludedAttributes").as_deref(),
        );
        list_response(&idp, &state, &params, &projection).await
    }
    .await;
    idp.read(&state, result).await
}

/// A user answer: the resource (projected) with `status`.
fn user_body(
    idp: &Idp,
    state: &AppState,
    answer: &Answer,
    projection: &Projection,
) -> Result<Value, ScimError> {
    let stored = state.scim().stored()?;
    Ok(match &answer.user {
        Some(u) => projection.apply(resource::user(u, stored, &idp.base())),
        None => Value::Null,
    })
}

/// Status of a change's answer: 202 while an escalation waits.
fn change_status(answer: &Answer, done: StatusCode) -> StatusCode {
    if answer.escalation.is_some() {
        StatusCode::ACCEPTED
    } else {
        done
    }
}

async fn get_user(
    idp: Idp,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
    uri: OriginalUri,
) -> Response {
    let result = async {
        let params = list_params(&uri)?;
        let projection = Projection::from_query(
            params.attributes.as_deref(),
            params.excluded_attributes.as_deref(),
        );
        let answer = state.scim().get(&idp.idp.tenant, &id).await?;
        let body = user_body(&idp, &state, &answer, &projection)?;
        Ok((answer, body))
    }
    .await;
    respond(&idp, &state, Some(&id), result, StatusCode::OK).await
}

/// Log and answer a change (or a read of one user).
async fn respond(
    idp: &Idp,
    state: &AppState,
    user_id: Option<&str>,
    result: Result<(Answer, Value), ScimError>,
    done: StatusCode,
) -> Response {
    match result {
        Ok((answer, body)) => {
            let status = change_status(&answer, done);
            let user = answer.user.as_ref().map(|u| u.id.clone());
            let user_id = user.as_deref().or(user_id);
            idp.answer(state, user_id, Ok((status, body, &answer)))
                .await
        }
        Err(e) => idp.answer(state, user_id, Err(e)).await,
    }
}

async fn create_user(
    idp: Idp,
    State(state): State<AppState>,
    ScimBody(body): ScimBody,
) -> Response {
    let result = async {
        let stored = state.scim().stored()?;
        let desired = Desired::from_resource(&body, stored, None)?;
        let answer = state.scim().create(&idp.idp, &desired).await?;
        let body = user_body(&idp, &state, &answer, &Projection::default())?;
        Ok((answer, body))
    }
    .await;
    respond(&idp, &state, None, result, StatusCode::CREATED).await
}

async fn replace_user(
    idp: Idp,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
    ScimBody(body): ScimBody,
) -> Response {
    update_user(&idp, &state, &id, |stored, now| {
        Desired::from_resource(&body, stored, Some(now.active))
    })
    .await
}

async fn patch_user(
    idp: Idp,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
    ScimBody(body): ScimBody,
) -> Response {
    update_user(&idp, &state, &id, |stored, now| {
        crate::scim::request::apply_patch(&body, stored, now)
    })
    .await
}

/// PUT and PATCH: what the user should become, read from the request
/// against the user as it is, then made so.
async fn update_user(
    idp: &Idp,
    state: &AppState,
    id: &str,
    read: impl FnOnce(crate::scim::Stored, &Desired) -> Result<Desired, ScimError>,
) -> Response {
    let result = async {
        let scim = state.scim();
        let now = scim.desired_now(&idp.idp.tenant, id).await?;
        let desired = read(scim.stored()?, &now)?;
        let answer = scim
            .update(state.policies(), &idp.idp, id, &desired)
            .await?;
        let body = user_body(idp, state, &answer, &Projection::default())?;
        Ok((answer, body))
    }
    .await;
    respond(idp, state, Some(id), result, StatusCode::OK).await
}

/// 204 when deleted (or already deleted); 202 with the user while support
/// decides.
async fn delete_user(
    idp: Idp,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Response {
    let result = async {
        let answer = state.scim().delete(state.policies(), &idp.idp, &id).await?;
        let body = if answer.escalation.is_some() {
            user_body(&idp, &state, &answer, &Projection::default())?
        } else {
            Value::Null
        };
        Ok((answer, body))
    }
    .await;
    respond(&idp, &state, Some(&id), result, StatusCode::NO_CONTENT).await
}

// Operators and tenants.

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Names the identity provider; its actions are asked by `scim:<label>`.
    #[schema(example = "okta", pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub label: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

fn known_tenant(state: &AppState, t: &str) -> Result<(), Problem> {
    if state.policies().knows(t) {
        Ok(())
    } else {
        Err(Problem::not_found())
    }
}

#[utoipa::path(post, path = "/v1/admin/tenants/{t}/scim/tokens", params(("t" = String, Path)),
    request_body = CreateTokenRequest, responses(
    (status = 201, description = "The token, shown once; give it to the identity provider with the base URL `/scim/v2/{t}`", body = NewToken)
))]
pub async fn create_token(
    Operator(by): Operator,
    State(state): State<AppState>,
    Path(t): Path<String>,
    Body(req): Body<CreateTokenRequest>,
) -> Result<(StatusCode, Json<NewToken>), Problem> {
    known_tenant(&state, &t)?;
    let valid = (1..=64).contains(&req.label.len())
        && req
            .label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(Problem::invalid(
            "`label` is 1 to 64 letters, digits, dots, dashes or underscores",
        ));
    }
    let token = state
        .scim()
        .store()
        .create_token(&t, &req.label, &by, unix_now())
        .await?;
    Ok((StatusCode::CREATED, Json(token)))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{t}/scim/tokens", params(("t" = String, Path)), responses(
    (status = 200, description = "Newest first, revoked ones included; never the token", body = TokenList)
))]
pub async fn tokens(
    _: Operator,
    State(state): State<AppState>,
    Path(t): Path<String>,
) -> Result<Json<TokenList>, Problem> {
    known_tenant(&state, &t)?;
    let tokens = state.scim().store().tokens(&t).await?;
    Ok(Json(TokenList { tokens }))
}

#[utoipa::path(delete, path = "/v1/admin/tenants/{t}/scim/tokens/{id}", params(("t" = String, Path), ("id" = String, Path)), responses(
    (status = 204, description = "Revoked: the identity provider's next request is a 401")
))]
pub async fn revoke_token(
    _: Operator,
    State(state): State<AppState>,
    Path((t, id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    known_tenant(&state, &t)?;
    if state
        .scim()
        .store()
        .revoke_token(&t, &id, unix_now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found())
    }
}

#[utoipa::path(get, path = "/v1/admin/tenants/{t}/scim", params(("t" = String, Path)), responses(
    (status = 200, description = "What `active: false` runs (deactivate unless set)", body = ScimSettings)
))]
pub async fn settings(
    _: Operator,
    State(state): State<AppState>,
    Path(t): Path<String>,
) -> Result<Json<ScimSettings>, Problem> {
    known_tenant(&state, &t)?;
    Ok(Json(state.scim().store().settings(&t).await?))
}

#[utoipa::path(put, path = "/v1/admin/tenants/{t}/scim", params(("t" = String, Path)),
    request_body = ScimSettings, responses(
    (status = 200, description = "Saved", body = ScimSettings)
))]
pub async fn set_settings(
    Operator(by): Operator,
    State(state): State<AppState>,
    Path(t): Path<String>,
    Body(req): Body<ScimSettings>,
) -> Result<Json<ScimSettings>, Problem> {
    known_tenant(&state, &t)?;
    state
        .scim()
        .store()
        .set_settings(&t, &req, &by, unix_now())
        .await?;
    Ok(Json(req))
}

/// Filters of the SCIM request log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestLogFilter {
    /// At most this many, newest first (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<Limit<1000>>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RequestLog {
    pub requests: Vec<RequestEntry>,
}

#[utoipa::path(get, path = "/v1/tenants/{t}/scim/requests", params(("t" = String, Path), RequestLogFilter), responses(
    (status = 200, description = "Every SCIM request of the tenant's identity providers, newest first", body = RequestLog)
))]
pub async fn requests(
    TenantReader(t): TenantReader,
    State(state): State<AppState>,
    Params(f): Params<RequestLogFilter>,
) -> Result<Json<RequestLog>, Problem> {
    let limit = i64::from(Limit::or(f.limit, 100));
    let requests = state.scim().store().requests(&t, limit).await?;
    Ok(Json(RequestLog { requests }))
}
