//! The console: server-rendered pages at `/console` for tenant admins and
//! support agents, over the same library calls as the API.
//!
//! - `session`: sign-in with an API key into a server-side session
//!   (HttpOnly, SameSite=Strict cookie; a CSRF token on every form; idle
//!   expiry; the key re-checked at every request);
//! - `tenant`: users with the API's filters and keyset paging, a user's
//!   page (profile, state, holdings, history, decisions), one action with a
//!   dry-run preview before it is confirmed, the audit trail;
//! - `support`: the escalation queue, an escalation with what it would do
//!   now, approve and reject.
//!
//! Pages are askama templates in `host/templates/console/` (checked at
//! compile time); forms are plain HTML forms, so the console works without
//! JavaScript. Every refusal the API would answer with a problem is shown
//! as a sentence ([`Failure`]), with the policy's own message when it has
//! one. Who may see a page is decided by extractors that run before a form
//! body is read: another tenant's page is a 404, as in the API.

mod bulk;
mod operator;
pub mod session;
mod support;
mod tenant;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;

use crate::api::{AppState, Problem};
use crate::apikeys::Principal;
use crate::clock::unix_now;
use crate::contract::LifecycleState;
pub use session::{ConsoleSettings, Role, Session, Sessions};

/// The console's routes, nested at `/console`; a policy upload may be
/// `upload_limit_bytes` (the API's limit).
pub fn router(upload_limit_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/console.css", get(stylesheet))
        .route("/console.js", get(script))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/t/{t}/users", get(tenant::users))
        .route("/t/{t}/users/{id}", get(tenant::user))
        .route("/t/{t}/users/{id}/preview", post(tenant::preview))
        .route("/t/{t}/users/{id}/act", post(tenant::act))
        .route("/t/{t}/audit", get(tenant::audit))
        .route("/t/{t}/selection", post(bulk::select))
        .route("/t/{t}/selection/all", post(bulk::select_all))
        .route("/t/{t}/selection/clear", post(bulk::clear))
        .route("/t/{t}/bulk/preview", post(bulk::preview))
        .route("/t/{t}/bulk/{preview}/execute", post(bulk::execute))
        .route("/t/{t}/jobs", get(bulk::jobs))
        .route("/t/{t}/jobs/{id}", get(bulk::job))
        .route("/t/{t}/jobs/{id}/events", get(bulk::job_events))
        .route("/operator", get(operator::tenants))
        .route("/operator/t/{t}", get(operator::tenant))
        .route(
            "/operator/t/{t}/upload",
            post(operator::upload).layer(axum::extract::DefaultBodyLimit::max(upload_limit_bytes)),
        )
        .route("/operator/t/{t}/activate", post(operator::activate))
        .route("/operator/t/{t}/rollback", post(operator::rollback))
        .route("/operator/t/{t}/replay", post(operator::replay))
        .route("/operator/t/{t}/replays/{id}", get(operator::replay_report))
        .route("/escalations", get(support::queue))
        .route("/escalations/{id}", get(support::escalation))
        .route("/escalations/{id}/approve", post(support::approve))
        .route("/escalations/{id}/reject", post(support::reject))
        .fallback(|| async { Failure::not_found() })
}

/// The stylesheet, compiled in.
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../templates/console/console.css"),
    )
        .into_response()
}

/// The one script (optional: pages work without it), compiled in.
async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("../../templates/console/console.js"),
    )
        .into_response()
}

/// A page that could not be shown or a request that was refused, as a
/// sentence for a person.
#[derive(Debug, Template, WebTemplate)]
#[template(path = "console/failure.html")]
pub struct FailurePage {
    pub nav: Nav,
    pub title: String,
    pub sentence: String,
    /// The stable code, for support tickets.
    pub code: String,
}

/// A refusal with its HTTP status.
pub struct Failure {
    status: StatusCode,
    page: Box<FailurePage>,
}

impl Failure {
    pub fn new(status: StatusCode, nav: Nav, title: &str, sentence: String, code: &str) -> Failure {
        Failure {
            status,
            page: Box::new(FailurePage {
                nav,
                title: title.to_owned(),
                sentence,
                code: code.to_owned(),
            }),
        }
    }

    pub fn not_found() -> Failure {
        Failure::new(
            StatusCode::NOT_FOUND,
            Nav::default(),
            "Not found",
            "There is no such page, or it is not yours to see.".into(),
            "not-found",
        )
    }

    /// A problem the library raised, in words: the policy's message for a
    /// denial, the detail otherwise.
    pub fn from_problem(nav: Nav, p: Problem) -> Failure {
        let body = &p.0;
        let code = body.code.as_str();
        let message = body
            .extensions
            .get("message")
            .and_then(|m| m.as_str())
            .filter(|m| !m.is_empty());
        let sentence = match (code, message) {
            ("denied", Some(m)) => format!("The tenant's policy refused this: {m}"),
            ("policy-fault", _) => {
                "The tenant's policy could not decide, so nothing was changed. Try again; if it \
                 persists, the operator has the details."
                    .to_owned()
            }
            _ => capitalised(body.detail.as_deref().unwrap_or("the request was refused")),
        };
        let status = StatusCode::from_u16(p.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Failure::new(status, nav, title_of(status), sentence, code)
    }
}

fn title_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        403 => "Refused",
        404 => "Not found",
        409 => "Not possible now",
        422 => "Check the form",
        503 => "Try again",
        _ => "Something went wrong",
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => {
            f.to_uppercase().chain(c).collect::<String>() + if s.ends_with('.') { "" } else { "." }
        }
        None => String::new(),
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, *self.page).into_response()
    }
}

/// The header of every page: who is signed in, where they may go, and the
/// CSRF token of the sign-out form.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    pub who: Option<String>,
    pub tenant: Option<String>,
    pub support: bool,
    pub operator: bool,
    pub csrf: String,
}

impl Nav {
    pub fn of(s: &Session) -> Nav {
        match &s.role {
            Role::Tenant { tenant, actor } => Nav {
                who: Some(format!("{actor} · tenant {tenant}")),
                tenant: Some(tenant.clone()),
                support: false,
                operator: false,
                csrf: s.csrf.clone(),
            },
            Role::Support { agent } => Nav {
                who: Some(format!("{agent} · support")),
                tenant: None,
                support: true,
                operator: false,
                csrf: s.csrf.clone(),
            },
            Role::Operator { key } => Nav {
                who: Some(format!("{key} · operator")),
                tenant: None,
                support: false,
                operator: true,
                csrf: s.csrf.clone(),
            },
        }
    }
}

/// A signed-in person. Without a live session: to the sign-in page.
pub struct Signed(pub Session);

pub struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/console/sign-in").into_response()
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(cookie) = jar.get(session::COOKIE) else {
            return Err(SignInFirst.into_response());
        };
        match state.sessions().find(cookie.value(), unix_now()).await {
            Ok(Some(s)) => Ok(Signed(s)),
            Ok(None) => Err(SignInFirst.into_response()),
            Err(e) => Err(Failure::from_problem(Nav::default(), Problem::from(e)).into_response()),
        }
    }
}

/// A tenant admin's session on their own tenant's pages (`{t}`); any other
/// tenant is a 404, like a tenant that does not exist.
pub struct TenantSession {
    pub session: Session,
    pub tenant: String,
    pub actor: String,
}

impl FromRequestParts<AppState> for TenantSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Signed(session) = Signed::from_request_parts(parts, state).await?;
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|_| Failure::not_found().into_response())?;
        match &session.role {
            Role::Tenant { tenant, actor } if params.get("t") == Some(tenant) => {
                let (tenant, actor) = (tenant.clone(), actor.clone());
                Ok(TenantSession {
                    session,
                    tenant,
                    actor,
                })
            }
            _ => Err(not_yours(&session)),
        }
    }
}

/// A page of another role or tenant: the 404 of a page that does not
/// exist, with the session's own header.
fn not_yours(session: &Session) -> Response {
    let mut f = Failure::not_found();
    f.page.nav = Nav::of(session);
    f.into_response()
}

/// An operator's session: holds the key's id.
pub struct OperatorSession {
    pub session: Session,
    pub key: String,
}

impl FromRequestParts<AppState> for OperatorSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Signed(session) = Signed::from_request_parts(parts, state).await?;
        match &session.role {
            Role::Operator { key } => {
                let key = key.clone();
                Ok(OperatorSession { session, key })
            }
            _ => Err(not_yours(&session)),
        }
    }
}

/// A support agent's session.
pub struct SupportSession {
    pub session: Session,
    pub agent: String,
}

impl FromRequestParts<AppState> for SupportSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Signed(session) = Signed::from_request_parts(parts, state).await?;
        match &session.role {
            Role::Support { agent } => {
                let agent = agent.clone();
                Ok(SupportSession { session, agent })
            }
            _ => Err(not_yours(&session)),
        }
    }
}

/// Refuse a form whose CSRF token is not the session's: it was not sent
/// from a page of this session.
pub fn check_csrf(s: &Session, token: &str) -> Result<(), Failure> {
    if s.csrf_ok(token) {
        Ok(())
    } else {
        Err(Failure::new(
            StatusCode::FORBIDDEN,
            Nav::of(s),
            "Refused",
            "This form did not come from your console session (its security token is missing or \
             stale). Nothing was changed; open the page again and resubmit."
                .into(),
            "csrf",
        ))
    }
}

/// Where a session starts.
fn home_of(s: &Session) -> String {
    match &s.role {
        Role::Tenant { tenant, .. } => format!("/console/t/{tenant}/users"),
        Role::Support { .. } => "/console/escalations".into(),
        Role::Operator { .. } => "/console/operator".into(),
    }
}

async fn home(session: Result<Signed, Response>) -> Response {
    match session {
        Ok(Signed(s)) => Redirect::to(&home_of(&s)).into_response(),
        Err(_) => Redirect::to("/console/sign-in").into_response(),
    }
}

#[derive(Debug, Template, WebTemplate)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    nav: Nav,
    error: Option<String>,
}

async fn sign_in_page() -> SignInPage {
    SignInPage {
        nav: Nav::default(),
        error: None,
    }
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    key: String,
    /// Tenant keys: the tenant user to act as.
    #[serde(default)]
    actor: String,
}

/// A sign-in form is refused when another site posted it (its `Origin` is
/// not this host): the session cookie does not exist yet to be
/// SameSite-protected.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host)
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<SignInForm>,
) -> Response {
    let again = |error: &str| {
        (
            StatusCode::UNAUTHORIZED,
            SignInPage {
                nav: Nav::default(),
                error: Some(error.to_owned()),
            },
        )
            .into_response()
    };
    if !same_origin(&headers) {
        return again("This sign-in came from another site and was refused.");
    }
    let key = form.key.trim();
    let principal = match state.sessions().principal(key).await {
        Ok(Some(p)) => p,
        Ok(None) => return again("That API key is unknown or revoked."),
        Err(e) => return Failure::from_problem(Nav::default(), Problem::from(e)).into_response(),
    };
    let actor = form.actor.trim();
    let role = match principal {
        Principal::Tenant(tenant) => {
            if actor.is_empty() {
                return again(
                    "A tenant key acts as one of the tenant's users: enter your user id.",
                );
            }
            // The actor is checked like `actor_id` in the API: a user of
            // this tenant, and active.
            match state.directory().detail(&tenant, actor).await {
                Ok(Some(u)) if u.summary.state == LifecycleState::Active => Role::Tenant {
                    tenant,
                    actor: actor.to_owned(),
                },
                Ok(Some(u)) => {
                    return again(&format!(
                        "User {actor} is {}, not active, and cannot act.",
                        u.summary.state
                    ))
                }
                Ok(None) => return again(&format!("There is no user {actor} in tenant {tenant}.")),
                Err(e) => {
                    return Failure::from_problem(Nav::default(), Problem::from(e)).into_response()
                }
            }
        }
        Principal::Support => {
            if actor.is_empty() {
                return again("Support agents sign their approvals: enter your name.");
            }
            Role::Support {
                agent: actor.to_owned(),
            }
        }
        Principal::Operator(key) => Role::Operator { key },
    };
    let value = match state.sessions().open(key, &role, unix_now()).await {
        Ok(v) => v,
        Err(e) => return Failure::from_problem(Nav::default(), Problem::from(e)).into_response(),
    };
    let mut cookie = Cookie::new(session::COOKIE, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_path("/console");
    cookie.set_secure(state.sessions().settings.secure_cookie);
    let home = match &role {
        Role::Tenant { tenant, .. } => format!("/console/t/{tenant}/users"),
        Role::Support { .. } => "/console/escalations".into(),
        Role::Operator { .. } => "/console/operator".into(),
    };
    (jar.add(cookie), Redirect::to(&home)).into_response()
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    Signed(s): Signed,
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(f) = check_csrf(&s, &form.csrf) {
        return f.into_response();
    }
    if let Err(e) = state.sessions().end_session(&s, unix_now()).await {
        return Failure::from_problem(Nav::of(&s), Problem::from(e)).into_response();
    }
    let gone = Cookie::build((session::COOKIE, ""))
        .path("/console")
        .build();
    (jar.remove(gone), Redirect::to("/console/sign-in")).into_response()
}

/// An enum's wire name (`accepted`, `rollback`…), as the API spells it.
pub fn wire_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Template helper: a unix time for people.
pub fn at(t: &i64) -> String {
    when(Some(*t))
}

/// Template helper: a unix time for people, or a dash.
pub fn when_opt(t: &Option<i64>) -> String {
    when(*t)
}

/// A unix time for people: `2026-12-01 22:29 UTC`.
pub fn when(t: Option<i64>) -> String {
    t.and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|ts| ts.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

/// `YYYY-MM-DD` (a date input's value) as the unix time of its midnight UTC.
pub fn date_to_unix(d: &str) -> Option<i64> {
    let date: jiff::civil::Date = d.trim().parse().ok()?;
    jiff::tz::Offset::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .ok()
        .map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_midnight_utc() {
        assert_eq!(date_to_unix("1970-01-02"), Some(86_400));
        assert_eq!(date_to_unix(" 2026-12-01 "), Some(1_796_083_200));
        assert_eq!(date_to_unix("yesterday"), None);
        assert_eq!(when(Some(86_400)), "1970-01-02 00:00 UTC");
        assert_eq!(when(None), "—");
    }

    #[test]
    fn a_foreign_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h), "no Origin: a same-site navigation");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn details_become_sentences() {
        assert_eq!(capitalised("user t1-u5 is locked"), "User t1-u5 is locked.");
        assert_eq!(capitalised("done."), "Done.");
    }
}
