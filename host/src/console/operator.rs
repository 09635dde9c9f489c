//! An operator's pages: tenants, and per tenant its policy versions with
//! their validation reports, an upload, a replay of recorded decisions on
//! a version (the diff as tables), activation and rollback. The work is
//! `crate::deploy`'s, as for the operator API.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{check_csrf, Failure, Nav, OperatorSession};
use crate::api::{AppState, Problem};
use crate::clock::unix_now;
use crate::deploy::replay::ReplayReport;
use crate::deploy::{
    Activate, ActivationKind, PolicyStatus, PolicyVersion, Replay, Tenant, Upload, VersionStatus,
};
use crate::evidence::RecordWindow;

#[derive(Template, WebTemplate)]
#[template(path = "console/operator_tenants.html")]
pub struct TenantsPage {
    nav: Nav,
    tenants: Vec<Tenant>,
}

pub async fn tenants(os: OperatorSession, State(state): State<AppState>) -> Response {
    let nav = Nav::of(&os.session);
    match state.deployments().tenants().await {
        Ok(tenants) => TenantsPage { nav, tenants }.into_response(),
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/operator_tenant.html")]
pub struct TenantPage {
    nav: Nav,
    tenant: String,
    status: PolicyStatus,
    versions: Vec<PolicyVersion>,
    replays: Vec<ReplayReport>,
}

impl TenantPage {
    fn accepted(&self, v: &PolicyVersion) -> bool {
        v.status == VersionStatus::Accepted
    }
    fn short(&self, sha: &str) -> String {
        sha.chars().take(12).collect()
    }
    /// A status enum's wire name.
    fn name<T: serde::Serialize>(&self, v: &T) -> String {
        super::wire_name(v)
    }
}

pub async fn tenant(
    os: OperatorSession,
    State(state): State<AppState>,
    Path(t): Path<String>,
) -> Response {
    let nav = Nav::of(&os.session);
    let d = state.deployments();
    let page = async {
        Ok::<_, Problem>(TenantPage {
            nav: nav.clone(),
            status: d.status(&t, unix_now().saturating_mul(1000)).await?,
            versions: d.versions(&t).await?,
            replays: d.replays(&t).await?,
            tenant: t.clone(),
        })
    }
    .await;
    match page {
        Ok(p) => p.into_response(),
        Err(p) => Failure::from_problem(nav, p).into_response(),
    }
}

/// The upload form: a component file, a cases file, a message, the token.
pub async fn upload(
    os: OperatorSession,
    State(state): State<AppState>,
    Path(t): Path<String>,
    mut multipart: Multipart,
) -> Response {
    let nav = Nav::of(&os.session);
    let (mut csrf, mut component, mut cases, mut message) = (String::new(), None, None, None);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Failure::new(
                    e.status(),
                    nav,
                    "Upload refused",
                    e.body_text(),
                    "bad-request",
                )
                .into_response()
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Failure::new(
                    e.status(),
                    nav,
                    "Upload refused",
                    e.body_text(),
                    "bad-request",
                )
                .into_response()
            }
        };
        let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
        match name.as_str() {
            "csrf" => csrf = text(),
            "component" if !bytes.is_empty() => component = Some(bytes),
            "cases" if !bytes.is_empty() => cases = Some(text()),
            "message" if !bytes.is_empty() => message = Some(text()),
            _ => {}
        }
    }
    if let Err(f) = check_csrf(&os.session, &csrf) {
        return f.into_response();
    }
    let Some(component) = component else {
        return Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            nav,
            "Check the form",
            "Choose the policy component (a .wasm file) to upload.".into(),
            "invalid-request",
        )
        .into_response();
    };
    let upload = Upload {
        tenant: &t,
        component: &component,
        cases: cases.as_deref(),
        message: message.as_deref(),
        uploaded_by: &os.key,
    };
    // A rejected version is stored too: the tenant page shows why.
    match state.deployments().upload(upload, unix_now()).await {
        Ok(_) => Redirect::to(&format!("/console/operator/t/{t}")).into_response(),
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct ActivateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    reason: String,
}

async fn activation(
    os: OperatorSession,
    state: AppState,
    t: String,
    form: ActivateForm,
    kind: ActivationKind,
) -> Response {
    let nav = Nav::of(&os.session);
    if let Err(f) = check_csrf(&os.session, &form.csrf) {
        return f.into_response();
    }
    let version = form.version.trim();
    let version = match (version.is_empty(), version.parse::<i64>()) {
        (true, _) => None,
        (false, Ok(v)) => Some(v),
        (false, Err(_)) => {
            return Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                nav,
                "Check the form",
                format!("“{version}” is not a version number."),
                "invalid-request",
            )
            .into_response()
        }
    };
    let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
    let activate = Activate {
        tenant: &t,
        version,
        kind,
        by: &os.key,
        reason,
    };
    match state.deployments().activate(activate, unix_now()).await {
        Ok(_) => {
            state.follow_activations().await;
            Redirect::to(&format!("/console/operator/t/{t}")).into_response()
        }
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

pub async fn activate(
    os: OperatorSession,
    State(state): State<AppState>,
    Path(t): Path<String>,
    Form(form): Form<ActivateForm>,
) -> Response {
    activation(os, state, t, form, ActivationKind::Activate).await
}

pub async fn rollback(
    os: OperatorSession,
    State(state): State<AppState>,
    Path(t): Path<String>,
    Form(form): Form<ActivateForm>,
) -> Response {
    activation(os, state, t, form, ActivationKind::Rollback).await
}

#[derive(Debug, Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    version: i64,
    /// The newest this many records.
    #[serde(default)]
    last: Option<u32>,
}

pub async fn replay(
    os: OperatorSession,
    State(state): State<AppState>,
    Path(t): Path<String>,
    Form(form): Form<ReplayForm>,
) -> Response {
    let nav = Nav::of(&os.session);
    if let Err(f) = check_csrf(&os.session, &form.csrf) {
        return f.into_response();
    }
    let last = form
        .last
        .unwrap_or(1000)
        .clamp(1, crate::deploy::replay::MAX_REPLAY);
    let replay = Replay {
        tenant: &t,
        version: form.version,
        window: RecordWindow {
            last: Some(last),
            since: None,
            until: None,
        },
        by: &os.key,
    };
    match state.deployments().replay(replay, unix_now()).await {
        Ok(r) => Redirect::to(&format!("/console/operator/t/{t}/replays/{}", r.id)).into_response(),
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/operator_replay.html")]
pub struct ReplayPage {
    nav: Nav,
    tenant: String,
    report: ReplayReport,
}

pub async fn replay_report(
    os: OperatorSession,
    State(state): State<AppState>,
    Path((t, id)): Path<(String, String)>,
) -> Response {
    let nav = Nav::of(&os.session);
    match state.deployments().replay_report(&t, &id).await {
        Ok(report) => ReplayPage {
            nav,
            tenant: t,
            report,
        }
        .into_response(),
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}
