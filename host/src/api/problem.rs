//! Errors as RFC 9457 problem details (`application/problem+json`), each
//! with a stable machine-readable `code` that clients may switch on; the
//! `title` and `detail` are for people and may change.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::directory::DirectoryError;
use crate::error_code::ErrorCode;
use crate::escalation::EscalationError;
use crate::executor::ExecError;
use crate::lifecycle::LifecycleError;

/// An API error; boxed so `Result<_, Problem>` stays small on the happy path.
#[derive(Debug, Clone)]
pub struct Problem(pub Box<ProblemDetails>);

/// A problem details object. Extension members (`policy_code`, `rules`…)
/// sit beside the standard ones.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProblemDetails {
    /// `urn:lethe:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    /// Stable identifier of the problem, e.g. `invalid-transition`.
    pub code: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members, e.g. `policy_code` and `message` of a denial.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem(Box::new(ProblemDetails {
            type_uri: format!("urn:lethe:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code,
            detail: Some(detail.into()),
            extensions: serde_json::Map::new(),
        }))
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Problem {
        if let Ok(v) = serde_json::to_value(value) {
            self.0.extensions.insert(key.to_owned(), v);
        }
        self
    }

    pub fn status(&self) -> u16 {
        self.0.status
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The one answer for "no such thing here": unknown tenant, another
    /// tenant's resource and a missing one look exactly alike.
    pub fn not_found() -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such resource",
        )
    }

    pub fn unauthorized(detail: &str) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, detail)
    }

    pub fn internal(e: impl std::fmt::Display) -> Problem {
        // The cause goes to the log, not to the client.
        tracing::error!(error = %e, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the server log",
        )
    }

    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidInput,
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let mut details = self.0;
        if let Some(id) = crate::telemetry::request::current() {
            details
                .extensions
                .insert("request_id".into(), serde_json::Value::String(id));
        }
        let mut resp = (status, axum::Json(details)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if unauthorized {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Problem {
        let status = r.status();
        let code = match &r {
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::BodyTooLarge,
            JsonRejection::JsonSyntaxError(_) => ErrorCode::MalformedJson,
            JsonRejection::JsonDataError(_) => ErrorCode::InvalidInput,
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::BadRequest,
        };
        Problem::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            r.body_text(),
        )
    }
}

/// The HTTP status each code answers with: one table, so a code never
/// comes with two statuses.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::Unauthorized => StatusCode::UNAUTHORIZED,
        C::TenantKeyRequired | C::SupportKeyRequired | C::OperatorKeyRequired | C::Denied => {
            StatusCode::FORBIDDEN
        }
        C::NotFound => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::MalformedJson | C::BadRequest | C::InvalidQuery | C::InvalidCursor => {
            StatusCode::BAD_REQUEST
        }
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        C::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::InvalidInput
        | C::UnknownActor
        | C::ActorNotActive
        | C::InvalidTransferTarget
        | C::InvalidSelection
        | C::ConfirmCountMismatch
        | C::PolicyRejected => StatusCode::UNPROCESSABLE_ENTITY,
        C::InvalidTransition
        | C::RestoreWindowClosed
        | C::RestoreConflict
        | C::Superseded
        | C::IdempotencyKeyReused
        | C::EscalationNotPending
        | C::SubjectChanged
        | C::StillEscalated
        | C::PreviewUsed
        | C::PreviewStale
        | C::JobFinished
        | C::TenantExists
        | C::VersionRejected
        | C::AlreadyActive
        | C::NothingToRollBack => StatusCode::CONFLICT,
        C::PreviewExpired => StatusCode::GONE,
        // A policy that cannot decide, or whose plan broke an operator
        // rule: the policy is at fault, not the caller; nothing was applied.
        C::PolicyFault | C::PlanRefused | C::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl Problem {
    /// A problem whose status is the code's (see [`status_of`]).
    pub fn coded(code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem::new(status_of(code), code, detail)
    }
}

impl From<ExecError> for Problem {
    fn from(e: ExecError) -> Problem {
        let code = e.code();
        match e {
            ExecError::UnknownSubject { .. } => Problem::not_found(),
            ExecError::Lifecycle(LifecycleError::NotAllowed { action, state }) => {
                Problem::coded(code, e.to_string())
                    .with("action", action)
                    .with("state", state)
            }
            ExecError::Lifecycle(LifecycleError::WindowClosed { restore_until, .. }) => {
                Problem::coded(code, e.to_string()).with("restore_until", restore_until)
            }
            ExecError::IdempotencyKeyReused { ref action_id, .. } => {
                let action_id = action_id.clone();
                Problem::coded(code, e.to_string()).with("action_id", action_id)
            }
            ExecError::Policy(fault) => Problem::coded(
                code,
                "the tenant's policy could not decide; nothing was applied",
            )
            .with("fault", fault.code())
            .with("message", fault.to_string()),
            other if code == ErrorCode::Internal => Problem::internal(other),
            other => Problem::coded(code, other.to_string()),
        }
    }
}

impl From<EscalationError> for Problem {
    fn from(e: EscalationError) -> Problem {
        let detail = e.to_string();
        match e {
            EscalationError::NotFound(_) => Problem::not_found(),
            EscalationError::NotPending { status, .. } => {
                Problem::coded(ErrorCode::EscalationNotPending, detail)
                    .with("escalation_status", status)
            }
            EscalationError::SubjectChanged {
                escalated_in,
                now_in,
            } => Problem::coded(ErrorCode::SubjectChanged, detail)
                .with("escalated_in", escalated_in)
                .with("now_in", now_in),
            EscalationError::Denied(report) => Problem::denied(&report),
            EscalationError::StillEscalated { queue } => {
                Problem::coded(ErrorCode::StillEscalated, detail).with("queue", queue)
            }
            EscalationError::Exec(e) => Problem::from(e),
            EscalationError::Directory(e) => Problem::from(e),
            other => Problem::internal(other),
        }
    }
}

impl Problem {
    /// The policy's denial, as a 403 problem with its code and message.
    pub fn denied(report: &crate::executor::ActionReport) -> Problem {
        let (code, message) = match &report.decision.outcome {
            crate::contract::Outcome::Deny { code, message } => (code.clone(), message.clone()),
            _ => (String::new(), String::new()),
        };
        Problem::coded(
            ErrorCode::Denied,
            format!("the policy denied it: {message}"),
        )
        .with("policy_code", code)
        .with("message", message)
        .with("rules", &report.decision.rules)
        .with("action_id", &report.action_id)
        .with("policy_sha256", &report.policy_sha256)
        .with("policy_version", report.policy_version)
    }
}

impl From<DirectoryError> for Problem {
    fn from(e: DirectoryError) -> Problem {
        match e {
            DirectoryError::BadCursor => Problem::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidCursor,
                e.to_string(),
            ),
            other => Problem::internal(other),
        }
    }
}

impl From<crate::deploy::DeployError> for Problem {
    fn from(e: crate::deploy::DeployError) -> Problem {
        use crate::deploy::DeployError;
        let code = e.code();
        match e {
            DeployError::NoTenant
            | DeployError::NoVersion(_)
            | DeployError::NoReplay
            | DeployError::NoShadow => Problem::not_found(),
            DeployError::Rejected(version) => {
                let failures = version.report.failures();
                Problem::coded(
                    code,
                    format!("the component failed validation: {}", failures.join("; ")),
                )
                .with("failures", failures)
                .with("version", &*version)
            }
            other if code == ErrorCode::Internal => Problem::internal(other),
            other => Problem::coded(code, other.to_string()),
        }
    }
}

impl From<crate::events::EventError> for Problem {
    fn from(e: crate::events::EventError) -> Problem {
        use crate::events::EventError;
        let detail = e.to_string();
        match e {
            EventError::NotFound => Problem::not_found(),
            EventError::InvalidEndpoint(_) | EventError::UnknownType(_) => Problem::invalid(detail),
            EventError::BadCursor => Problem::coded(ErrorCode::InvalidCursor, detail),
            other => Problem::internal(other),
        }
    }
}

impl From<crate::db::DbError> for Problem {
    fn from(e: crate::db::DbError) -> Problem {
        Problem::internal(e)
    }
}

impl From<crate::bulk::BulkError> for Problem {
    fn from(e: crate::bulk::BulkError) -> Problem {
        use crate::bulk::BulkError;
        let detail = e.to_string();
        match e {
            BulkError::InvalidSelection(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidSelection,
                detail,
            ),
            BulkError::NotFound => Problem::not_found(),
            BulkError::BadCursor => Problem::coded(ErrorCode::InvalidCursor, detail),
            BulkError::Expired { expires_at } => {
                Problem::new(StatusCode::GONE, ErrorCode::PreviewExpired, detail)
                    .with("expires_at", expires_at)
            }
            BulkError::Used { job_id } => {
                Problem::new(StatusCode::CONFLICT, ErrorCode::PreviewUsed, detail)
                    .with("job_id", job_id)
            }
            BulkError::Mismatch { expected, got } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ConfirmCountMismatch,
                detail,
            )
            .with("expected", expected)
            .with("confirm_count", got),
            BulkError::Stale(preview) => {
                Problem::new(StatusCode::CONFLICT, ErrorCode::PreviewStale, detail)
                    .with("preview", preview)
            }
            BulkError::Finished { status } => {
                Problem::new(StatusCode::CONFLICT, ErrorCode::JobFinished, detail)
                    .with("job_status", status)
            }
            BulkError::Exec(e) => Problem::from(e),
            BulkError::Directory(e) => Problem::from(e),
            other => Problem::internal(other),
        }
    }
}
