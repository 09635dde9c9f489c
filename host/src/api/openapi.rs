//! The API's contract: the OpenAPI document served at `/openapi.json`.
//!
//! Handlers declare their bodies and the statuses only they answer with
//! (`#[utoipa::path]`). What every route of one audience answers alike is
//! added here, once, by [`Contract`]: who may call (the bearer scheme, or
//! nothing for the public endpoints) and the problems that come from
//! authentication, the tenant in the path, the query string and the body
//! (401, 403, 404, 400, 413, 415, 422, 500). So the document cannot forget
//! a status a route's extractors can return, and `host/openapi.json`, the
//! reviewed copy, changes only when the contract does (`tests/api.rs`).

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::OpenApi;

use super::{admin, bulk, events, handlers, problem, scim};
use crate::error_code::ErrorCode;

/// The OpenAPI document, generated from the handlers and their types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Lethe", description = "Programmable, per-tenant user deletion: tenant, support and operator API"),
    paths(
        handlers::healthz, handlers::readyz, handlers::metrics, handlers::list_users, handlers::user_detail,
        handlers::act, handlers::tenant_escalations, handlers::audit, handlers::decision,
        handlers::support_escalations, handlers::escalation, handlers::approve, handlers::reject, bulk::preview,
        bulk::execute, bulk::jobs, bulk::job, bulk::items, bulk::events, bulk::cancel, admin::create_tenant,
        admin::tenants, admin::upload, admin::versions, admin::version, admin::activate, admin::rollback,
        admin::policy_status, admin::replay, admin::replays, admin::replay_report, admin::start_shadow,
        admin::stop_shadow, admin::shadow_status, events::list_events, events::event, events::redeliver,
        events::create_webhook, events::webhooks, events::webhook, events::update_webhook,
        events::rotate_webhook_secret, events::ping_webhook, scim::create_token, scim::tokens,
        scim::revoke_token, scim::settings, scim::set_settings, scim::requests
    ),
    components(schemas(
        problem::ProblemDetails, ErrorCode, handlers::Health, handlers::Readiness, handlers::ActionRequest, handlers::ActionResponse,
        handlers::ActionResult, handlers::ApproveRequest, handlers::RejectRequest, handlers::EscalationList,
        handlers::ApprovalResponse, crate::escalation::Escalation, crate::escalation::EscalationStep,
        crate::directory::UserPage, crate::directory::UserSummary, crate::directory::UserDetail,
        crate::directory::HistoryEntry, crate::evidence::AuditEntry, crate::evidence::AuditOutcome,
        crate::evidence::AuditEffects, crate::evidence::DecisionRecord, crate::bulk::PreviewRequest,
        crate::bulk::BulkFilter, crate::bulk::Preview, crate::bulk::OutcomeCounts, crate::bulk::ReasonCount,
        crate::bulk::EffectEstimate, crate::bulk::SampleUser, crate::bulk::ExecuteRequest, crate::bulk::Job,
        crate::bulk::JobItem, crate::bulk::JobPage, crate::bulk::ItemPage, admin::CreateTenantRequest,
        admin::TenantList, admin::VersionList, admin::ActivateRequest, admin::RollbackRequest,
        crate::deploy::Tenant, crate::deploy::PolicyVersion, crate::deploy::VersionStatus,
        crate::deploy::Activation, crate::deploy::ActivationKind, crate::deploy::PolicyStatus,
        crate::deploy::ReplicaStatus, crate::deploy::gate::GateReport, crate::deploy::gate::Check,
        crate::deploy::gate::CheckName, crate::deploy::gate::CheckStatus, crate::deploy::gate::CaseResult,
        admin::ReplayRequest, admin::ReplayList, crate::deploy::replay::ReplayReport,
        crate::deploy::replay::Transition, crate::deploy::replay::PlanChange, crate::deploy::replay::Example,
        crate::evidence::RecordWindow, admin::ShadowRequest, crate::deploy::shadow::ShadowStatus,
        crate::deploy::shadow::ShadowCounts, crate::deploy::shadow::Disagreement,
        crate::deploy::shadow::ShadowAnswer, crate::contract::Request, crate::contract::Decision,
        crate::events::EventType, crate::events::StoredEvent, crate::events::EventPage,
        crate::events::Delivery, crate::events::DeliveryStatus, crate::events::Attempt,
        crate::events::Endpoint, crate::events::DeliveryCounts, crate::events::UserChanged,
        crate::events::EscalationChanged, crate::events::BulkJobFinished, crate::events::PolicyActivated,
        crate::events::EventActor, crate::events::delivery::PingResult, events::RedeliverRequest,
        events::CreateEndpointRequest, events::EndpointList, events::UpdateEndpointRequest,
        events::RotateRequest, scim::CreateTokenRequest, scim::TokenList, scim::RequestLog,
        crate::scim::store::TokenInfo, crate::scim::store::NewToken, crate::scim::store::ScimSettings,
        crate::scim::store::Deprovision, crate::scim::store::RequestEntry,
        crate::scim::store::RequestOutcome
    )),
    modifiers(&Contract)
)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> Result<serde_json::Value, serde_json::Error> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    spell_links(&mut doc);
    Ok(doc)
}

/// utoipa 5.5 serialises a link's fields in snake_case (`operation_id`);
/// OpenAPI spells them in camelCase (`operationId`), and clients that
/// follow links (Schemathesis among them) read only that spelling.
fn spell_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.to_owned(), v);
                }
            }
        }
    }
}

/// Who may call a route, read off its path: the same rule the role
/// extractors of [`super::auth`] apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Health, readiness, metrics: no key.
    Public,
    /// `/v1/tenants/{t}/…`: that tenant's key.
    Tenant,
    /// `/v1/escalations…`: a support key.
    Support,
    /// `/v1/admin/…`: an operator key.
    Operator,
}

impl Audience {
    fn of(path: &str) -> Audience {
        if path.starts_with("/v1/tenants/") {
            Audience::Tenant
        } else if path.starts_with("/v1/escalations") {
            Audience::Support
        } else if path.starts_with("/v1/admin/") {
            Audience::Operator
        } else {
            Audience::Public
        }
    }

    /// The shared response (see [`SHARED`]) for the 403 a key of another
    /// role gets; none for public routes.
    fn wrong_role(self) -> Option<&'static str> {
        match self {
            Audience::Public => None,
            Audience::Tenant => Some("TenantKeyRequired"),
            Audience::Support => Some("SupportKeyRequired"),
            Audience::Operator => Some("OperatorKeyRequired"),
        }
    }
}

/// The responses every route of an audience shares, by name in
/// `components.responses`.
const SHARED: &[(&str, &str)] = &[
    ("Unauthorized", "`unauthorized`: no bearer key, or one that is malformed or unknown"),
    ("TenantKeyRequired", "`tenant-key-required`: a support or operator key on a tenant's route"),
    ("SupportKeyRequired", "`support-key-required`: a tenant or operator key on a support route"),
    ("OperatorKeyRequired", "`operator-key-required`: a support key on an operator route"),
    ("NotFound", "`not-found`: no such tenant or resource, or another tenant's (they look alike)"),
    ("BadQuery", "`invalid-query` (an unknown filter value or parameter type; `detail` names the allowed values) or `invalid-cursor`"),
    ("BadBody", "`malformed-json` (not JSON) or `bad-request`"),
    ("BodyTooLarge", "`body-too-large`: over the server's body limit"),
    ("UnsupportedMediaType", "`unsupported-media-type`: the body is not of a type the route takes"),
    ("InvalidInput", "`invalid-input` (the body does not have the documented shape, or a required field is empty) or a business rule named by `code`"),
    ("Internal", "`internal`: the server's fault; the cause is in its log under the `request_id`"),
];

fn shared(name: &str) -> RefOr<Response> {
    RefOr::Ref(Ref::from_response_name(name))
}

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemDetails")))
                .build(),
        )
        .build()
}

/// Where one answer names the resource of another operation (OpenAPI
/// links): a generated client can follow them, and Schemathesis's stateful
/// phase chains real requests through them (list, act, escalate, approve;
/// preview, execute, follow the job; upload, replay).
/// `(operation, status, link target, parameters)`.
#[rustfmt::skip]
const LINKS: &[(&str, &str, &str, &[Param])] = &[
    ("list_users", "200", "user_detail", &[T, FIRST_USER]),
    ("list_users", "200", "act", &[T, FIRST_USER]),
    ("act", "200", "decision", &[T, ("id", "$response.body#/report/action_id")]),
    ("act", "200", "user_detail", &[T, ("id", "$request.path.id")]),
    ("act", "202", "escalation", &[ESCALATION]),
    ("act", "202", "approve", &[ESCALATION]),
    ("act", "202", "reject", &[ESCALATION]),
    ("audit", "200", "decision", &[T, ("id", "$response.body#/0/action_id")]),
    ("support_escalations", "200", "escalation", &[FIRST_ESCALATION]),
    ("support_escalations", "200", "approve", &[FIRST_ESCALATION]),
    ("support_escalations", "200", "reject", &[FIRST_ESCALATION]),
    ("preview", "200", "execute", &[T, ("preview", "$response.body#/preview_id")]),
    ("execute", "202", "job", &[T, JOB]),
    ("execute", "202", "items", &[T, JOB]),
    ("execute", "202", "events", &[T, JOB]),
    ("execute", "202", "cancel", &[T, JOB]),
    ("jobs", "200", "job", &[T, ("id", "$response.body#/jobs/0/job_id")]),
    ("upload", "201", "version", &[T, VERSION]),
    ("upload", "201", "replay", &[T, VERSION]),
    ("versions", "200", "version", &[T, ("n", "$response.body#/versions/0/version")]),
    ("replay", "201", "replay_report", &[T, ("id", "$response.body#/id")]),
    ("create_tenant", "201", "versions", &[("t", "$response.body#/id")]),
    ("create_tenant", "201", "policy_status", &[("t", "$response.body#/id")]),
    ("list_events", "200", "event", &[T, ("id", "$response.body#/events/0/id")]),
    ("list_events", "200", "redeliver", &[T, ("id", "$response.body#/events/0/id")]),
    ("create_webhook", "201", "webhook", &[T, ENDPOINT]),
    ("create_webhook", "201", "ping_webhook", &[T, ENDPOINT]),
    ("create_webhook", "201", "update_webhook", &[T, ENDPOINT]),
    ("create_webhook", "201", "rotate_webhook_secret", &[T, ENDPOINT]),
];

/// A link parameter: its name, and the runtime expression of its value.
type Param = (&'static str, &'static str);

/// The tenant of the request, passed on.
const T: Param = ("t", "$request.path.t");
const FIRST_USER: Param = ("id", "$response.body#/users/0/id");
const ESCALATION: Param = ("id", "$response.body#/escalation/id");
const FIRST_ESCALATION: Param = ("id", "$response.body#/escalations/0/id");
const JOB: Param = ("id", "$response.body#/job_id");
const VERSION: Param = ("n", "$response.body#/version");
const ENDPOINT: Param = ("id", "$response.body#/id");

/// The operations of a path, whatever their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn add_links(openapi: &mut utoipa::openapi::OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        for op in operations(item) {
            let Some(id) = op.operation_id.clone() else {
                continue;
            };
            for (_, status, to, params) in LINKS.iter().filter(|l| l.0 == id) {
                let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) else {
                    continue;
                };
                let link = params.iter().fold(
                    LinkBuilder::new().operation_id(*to),
                    |link, (name, expr)| link.parameter(*name, *expr),
                );
                response
                    .links
                    .insert((*to).to_owned(), RefOr::T(link.build()));
            }
        }
    }
}

/// Declares security per route and the statuses every route of its
/// audience can answer with (see the module docs).
struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (name, description) in SHARED {
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(problem_response(description)));
        }
        add_links(openapi);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let audience = Audience::of(path);
            for op in operations(item) {
                declare(op, path, audience);
            }
        }
    }
}

fn declare(op: &mut Operation, path: &str, audience: Audience) {
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query);
    let body = op
        .request_body
        .as_ref()
        .map(|b| b.content.contains_key("application/json"));
    let mut shares = Vec::new();
    if let Some(wrong_role) = audience.wrong_role() {
        shares.extend([
            ("401", "Unauthorized"),
            ("403", wrong_role),
            ("500", "Internal"),
        ]);
    }
    // A tenant's path answers 404 for an unknown tenant and for another
    // tenant's key; operator routes answer 404 to a tenant key.
    if matches!(audience, Audience::Tenant | Audience::Operator) || path.contains('{') {
        shares.push(("404", "NotFound"));
    }
    if has_query {
        shares.push(("400", "BadQuery"));
    }
    if let Some(json) = body {
        shares.extend([("413", "BodyTooLarge"), ("415", "UnsupportedMediaType")]);
        if json {
            shares.extend([("400", "BadBody"), ("422", "InvalidInput")]);
        }
    }
    for (status, name) in shares {
        // What the handler declared itself says more; keep it.
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| shared(name));
    }
    op.security = Some(match audience {
        // An empty list: no security requirement at all.
        Audience::Public => Vec::new(),
        _ => vec![SecurityRequirement::new("bearer", Vec::<String>::new())],
    });
}
