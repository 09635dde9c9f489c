//! A tenant admin's pages: users, one user, one action (previewed, then
//! confirmed), the audit trail. Each handler reads through the same
//! library calls as the API (`Directory`, `Executor::act_with`, `evidence`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::{check_csrf, date_to_unix, Failure, Nav, TenantSession};
use crate::api::{AppState, Problem};
use crate::clock::unix_now;
use crate::contract::{Action, LifecycleState, Outcome};
use crate::directory::{UserDetail, UserFilter, UserSummary};
use crate::escalation::{self, Asked};
use crate::evidence::{self, AuditEntry, AuditFilter};
use crate::executor::{ActionInput, ActionReport, ActorRef};
use crate::page::Limit;

/// The users page's query: the API's filters, dates as `YYYY-MM-DD`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct UsersQuery {
    state: String,
    role: String,
    q: String,
    domain: String,
    last_login_before: String,
    deleted_after: String,
    deleted_before: String,
    cursor: String,
}

impl UsersQuery {
    pub(super) fn filter(&self) -> Result<UserFilter, String> {
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let date = |name: &str, s: &str| match text(s) {
            None => Ok(None),
            Some(d) => date_to_unix(&d)
                .map(Some)
                .ok_or_else(|| format!("{name} must be a date (YYYY-MM-DD), not “{d}”.")),
        };
        let state = match text(&self.state) {
            None => None,
            Some(s) => Some(
                s.parse::<LifecycleState>()
                    .map_err(|_| format!("There is no state “{s}”."))?,
            ),
        };
        Ok(UserFilter {
            state,
            role: text(&self.role),
            q: text(&self.q),
            domain: text(&self.domain),
            last_login_before: date("Last login before", &self.last_login_before)?,
            deleted_after: date("Deleted after", &self.deleted_after)?,
            deleted_before: date("Deleted before", &self.deleted_before)?,
            limit: Limit::new(25),
            cursor: text(&self.cursor),
        })
    }

    /// This page's query string (where a form returns).
    fn here(&self) -> String {
        let mut out = self.filters();
        if !self.cursor.trim().is_empty() {
            out.push_str(&format!("&cursor={}", self.cursor.trim()));
        }
        out
    }

    /// The filters as a query string.
    fn filters(&self) -> String {
        let pairs = [
            ("state", &self.state),
            ("role", &self.role),
            ("q", &self.q),
            ("domain", &self.domain),
            ("last_login_before", &self.last_login_before),
            ("deleted_after", &self.deleted_after),
            ("deleted_before", &self.deleted_before),
        ];
        url_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
    }

    /// The query string of the next page: these filters, that cursor.
    fn next(&self, cursor: &str) -> String {
        format!("{}&cursor={cursor}", self.filters())
    }
}

/// `k=v&…` of the non-empty values, percent-encoded.
fn url_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Template, WebTemplate)]
#[template(path = "console/users.html")]
pub struct UsersPage {
    nav: Nav,
    tenant: String,
    query: UsersQuery,
    users: Vec<UserSummary>,
    next: Option<String>,
    error: Option<String>,
    states: [LifecycleState; 5],
    /// Every user the session has selected (across pages).
    selected: std::collections::BTreeSet<String>,
    /// This page's query string, where the selection forms return.
    here: String,
    actions: [Action; 7],
}

impl UsersPage {
    fn is_selected(&self, id: &str) -> bool {
        self.selected.contains(id)
    }
}

pub async fn users(
    ts: TenantSession,
    State(state): State<AppState>,
    Query(query): Query<UsersQuery>,
) -> Response {
    let nav = Nav::of(&ts.session);
    let mut page = UsersPage {
        nav: nav.clone(),
        tenant: ts.tenant.clone(),
        query: query.clone(),
        users: Vec::new(),
        next: None,
        error: None,
        states: LifecycleState::ALL,
        selected: Default::default(),
        here: query.here(),
        actions: Action::ALL,
    };
    match state.sessions().selection(&ts.session).await {
        Ok(s) => page.selected = s.into_iter().collect(),
        Err(e) => return Failure::from_problem(nav, e.into()).into_response(),
    }
    let filter = match query.filter() {
        Ok(f) => f,
        Err(e) => {
            page.error = Some(e);
            return (StatusCode::BAD_REQUEST, page).into_response();
        }
    };
    match state.directory().list(&ts.tenant, &filter).await {
        Ok(found) => {
            page.next = found.next_cursor.map(|c| query.next(&c));
            page.users = found.users;
            page.into_response()
        }
        Err(e) => Failure::from_problem(nav, Problem::from(e)).into_response(),
    }
}

/// One decision of the user's history, with its rules.
pub struct DecisionLine {
    entry: AuditEntry,
    rules: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/user.html")]
pub struct UserPage {
    nav: Nav,
    tenant: String,
    user: UserDetail,
    decisions: Vec<DecisionLine>,
    /// Active users who may receive transferred items.
    targets: Vec<UserSummary>,
    actions: [Action; 7],
}

pub async fn user(
    ts: TenantSession,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
) -> Response {
    let nav = Nav::of(&ts.session);
    let fail = |p: Problem| Failure::from_problem(nav.clone(), p).into_response();
    let user = match state.directory().detail(&ts.tenant, &id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Failure::not_found().into_response(),
        Err(e) => return fail(e.into()),
    };
    let audit = AuditFilter {
        user: Some(id.clone()),
        action: None,
        since: None,
        limit: Limit::new(20),
    };
    let entries = match evidence::audit(state.db(), &ts.tenant, &audit).await {
        Ok(e) => e,
        Err(e) => return fail(e.into()),
    };
    let mut decisions = Vec::with_capacity(entries.len());
    for entry in entries {
        let rules = match evidence::decision(state.db(), &ts.tenant, &entry.action_id).await {
            Ok(Some(d)) => d.rules,
            Ok(None) => Vec::new(),
            Err(e) => return fail(e.into()),
        };
        decisions.push(DecisionLine { entry, rules });
    }
    let active = UserFilter {
        state: Some(LifecycleState::Active),
        limit: Limit::new(200),
        ..UserFilter::default()
    };
    let targets = match state.directory().list(&ts.tenant, &active).await {
        Ok(p) => p.users.into_iter().filter(|u| u.id != id).collect(),
        Err(e) => return fail(e.into()),
    };
    UserPage {
        nav,
        tenant: ts.tenant,
        user,
        decisions,
        targets,
        actions: Action::ALL,
    }
    .into_response()
}

/// The action form, on the user page and on the preview's confirmation.
#[derive(Debug, Clone, Deserialize)]
pub struct ActForm {
    #[serde(default)]
    csrf: String,
    action: Action,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    transfer_to: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/decided.html")]
pub struct DecidedPage {
    nav: Nav,
    tenant: String,
    user: String,
    form: ActForm,
    report: ActionReport,
    /// A dry run: the confirmation form follows.
    preview: bool,
    escalation: Option<String>,
}

impl DecidedPage {
    fn outcome(&self) -> &'static str {
        self.report.decision.outcome.kind()
    }
    fn queue(&self) -> String {
        match &self.report.decision.outcome {
            Outcome::Escalate { queue, reason } => format!("{queue}: {reason}"),
            _ => String::new(),
        }
    }
    fn denial(&self) -> String {
        match &self.report.decision.outcome {
            Outcome::Deny { message, code } => format!("{message} ({code})"),
            _ => String::new(),
        }
    }
}

/// Run the form's action as the session's tenant user.
async fn run(
    state: &AppState,
    ts: &TenantSession,
    user: &str,
    form: &ActForm,
    dry_run: bool,
) -> Result<ActionReport, Problem> {
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let now = unix_now();
    let (reason, transfer_to) = (text(&form.reason), text(&form.transfer_to));
    let input = ActionInput {
        tenant: ts.tenant.clone(),
        subject: user.to_owned(),
        action: form.action,
        actor: ActorRef::TenantUser(ts.actor.clone()),
        transfer_to: transfer_to.clone(),
        reason: reason.clone(),
        bulk: false,
        now,
        idempotency_key: None,
        dry_run,
    };
    let queue = escalation::Queue {
        asked: Asked {
            actor_id: &ts.actor,
            transfer_to: transfer_to.as_deref(),
            reason: reason.as_deref(),
        },
        now,
    };
    Ok(state
        .executor()
        .act_with(state.policies(), &input, &queue)
        .await?)
}

async fn decided(
    ts: TenantSession,
    state: AppState,
    id: String,
    form: ActForm,
    dry_run: bool,
) -> Response {
    let nav = Nav::of(&ts.session);
    if let Err(f) = check_csrf(&ts.session, &form.csrf) {
        return f.into_response();
    }
    let report = match run(&state, &ts, &id, &form, dry_run).await {
        Ok(r) => r,
        Err(p) => return Failure::from_problem(nav, p).into_response(),
    };
    let escalation = match (&report.decision.outcome, dry_run) {
        (Outcome::Escalate { .. }, false) => escalation::of_action(state.db(), &report.action_id)
            .await
            .ok()
            .map(|e| e.id),
        _ => None,
    };
    let status = match (&report.decision.outcome, dry_run) {
        (Outcome::Deny { .. }, false) => StatusCode::FORBIDDEN,
        (Outcome::Escalate { .. }, false) => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    let page = DecidedPage {
        nav,
        tenant: ts.tenant,
        user: id,
        form,
        report,
        preview: dry_run,
        escalation,
    };
    (status, page).into_response()
}

/// The dry run: what would happen, and a form to confirm it.
pub async fn preview(
    ts: TenantSession,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Response {
    decided(ts, state, id, form, true).await
}

/// The confirmed action.
pub async fn act(
    ts: TenantSession,
    State(state): State<AppState>,
    Path((_t, id)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Response {
    decided(ts, state, id, form, false).await
}

#[derive(Template, WebTemplate)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    nav: Nav,
    tenant: String,
    entries: Vec<AuditEntry>,
}

pub async fn audit(ts: TenantSession, State(state): State<AppState>) -> Response {
    let nav = Nav::of(&ts.session);
    let filter = AuditFilter {
        user: None,
        action: None,
        since: None,
        limit: Limit::new(200),
    };
    match evidence::audit(state.db(), &ts.tenant, &filter).await {
        Ok(entries) => AuditPage {
            nav,
            tenant: ts.tenant,
            entries,
        }
        .into_response(),
        Err(e) => Failure::from_problem(nav, e.into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_keeps_the_filters() {
        let q = UsersQuery {
            state: "active".into(),
            q: "ann lee&co".into(),
            ..UsersQuery::default()
        };
        assert_eq!(q.next("7431"), "state=active&q=ann%20lee%26co&cursor=7431");
        assert_eq!(q.here(), "state=active&q=ann%20lee%26co");
        let f = q.filter().unwrap();
        assert_eq!(f.state, Some(LifecycleState::Active));
        assert_eq!(f.role, None);
        let bad = UsersQuery {
            deleted_after: "soon".into(),
            ..UsersQuery::default()
        };
        assert!(bad.filter().unwrap_err().contains("Deleted after"));
    }
}
