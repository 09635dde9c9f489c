//! Errors as RFC 9457 problem details (`application/problem+json`), each
//! with a stable machine-readable `code` that clients may switch on; the
//! `title` and `detail` are for people and may change.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::directory::DirectoryError;
use crate::escalation::EscalationError;
use crate::executor::ExecError;
use crate::lifecycle::LifecycleError;
use crate::plan::PlanError;

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
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Extension members, e.g. `policy_code` and `message` of a denial.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem(Box::new(ProblemDetails {
            type_uri: format!("urn:lethe:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
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

    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The one answer for "no such thing here": unknown tenant, another
    /// tenant's resource and a missing one look exactly alike.
    pub fn not_found() -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "no such resource")
    }

    pub fn unauthorized(detail: &str) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn internal(e: impl std::fmt::Display) -> Problem {
        // The cause goes to the log, not to the client.
        tracing::error!(error = %e, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let mut resp = (status, axum::Json(self.0)).into_response();
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
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
            JsonRejection::JsonSyntaxError(_) => "malformed-json",
            JsonRejection::JsonDataError(_) => "invalid-input",
            JsonRejection::MissingJsonContentType(_) => "unsupported-media-type",
            _ => "bad-request",
        };
        Problem::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-query", r.body_text())
    }
}

impl From<ExecError> for Problem {
    fn from(e: ExecError) -> Problem {
        let detail = e.to_string();
        match e {
            ExecError::UnknownSubject { .. } => Problem::not_found(),
            ExecError::UnknownActor(_) | ExecError::ActorNotActive { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), detail)
            }
            ExecError::Lifecycle(LifecycleError::NotAllowed { action, state }) => {
                Problem::new(StatusCode::CONFLICT, "invalid-transition", detail)
                    .with("action", action)
                    .with("state", state)
            }
            ExecError::Lifecycle(LifecycleError::WindowClosed { restore_until, .. }) => {
                Problem::new(StatusCode::CONFLICT, "restore-window-closed", detail)
                    .with("restore_until", restore_until)
            }
            ExecError::Conflict(_) => {
                Problem::new(StatusCode::CONFLICT, "restore-conflict", detail)
            }
            ExecError::Policy(fault) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "policy-fault",
                "the tenant's policy could not decide; nothing was applied",
            )
            .with("fault", &fault.kind)
            .with("message", &fault.message),
            ExecError::PlanRefused(
                PlanError::TargetUnknown(_)
                | PlanError::TargetNotActive { .. }
                | PlanError::TargetIsSubject(_)
                | PlanError::ActorNotAUser
                | PlanError::NoUserWithRole(_),
            ) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-transfer-target",
                detail,
            ),
            // The policy's plan broke an operator rule: the policy is at
            // fault, not the caller, and nothing was applied.
            ExecError::PlanRefused(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "plan-refused", detail)
            }
            other => Problem::internal(other),
        }
    }
}

impl From<EscalationError> for Problem {
    fn from(e: EscalationError) -> Problem {
        match e {
            EscalationError::NotFound(_) => Problem::not_found(),
            EscalationError::NotPending { ref status, .. } => {
                let status = status.clone();
                Problem::new(
                    StatusCode::CONFLICT,
                    "escalation-not-pending",
                    e.to_string(),
                )
                .with("escalation_status", status)
            }
            other => Problem::internal(other),
        }
    }
}

impl From<DirectoryError> for Problem {
    fn from(e: DirectoryError) -> Problem {
        match e {
            DirectoryError::BadCursor => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-cursor", e.to_string())
            }
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
                "invalid-selection",
                detail,
            ),
            BulkError::NotFound => Problem::not_found(),
            BulkError::Expired { expires_at } => {
                Problem::new(StatusCode::GONE, "preview-expired", detail)
                    .with("expires_at", expires_at)
            }
            BulkError::Used { job_id } => {
                Problem::new(StatusCode::CONFLICT, "preview-used", detail).with("job_id", job_id)
            }
            BulkError::Mismatch { expected, got } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "confirm-count-mismatch",
                detail,
            )
            .with("expected", expected)
            .with("confirm_count", got),
            BulkError::Stale(preview) => {
                Problem::new(StatusCode::CONFLICT, "preview-stale", detail).with("preview", preview)
            }
            BulkError::Finished { status } => {
                Problem::new(StatusCode::CONFLICT, "job-finished", detail)
                    .with("job_status", status)
            }
            BulkError::Exec(e) => Problem::from(e),
            BulkError::Directory(e) => Problem::from(e),
            other => Problem::internal(other),
        }
    }
}
