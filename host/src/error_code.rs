//! Every stable, machine-readable error code Lethe answers with.
//!
//! Clients switch on these (`code` of a problem+json body, a bulk item's
//! `code`, `lethe bulk`'s explanations), so they are an enum with one
//! spelling each, not strings scattered over the modules that raise them.
//! Adding a variant is adding a code; renaming one breaks clients.
//!
//! The library decides which code an error has ([`crate::executor::ExecError::code`],
//! `BulkError`, …); `api::problem` decides the HTTP status; `cli::bulk`
//! explains codes to people. None of them spells a code by hand.

use std::fmt;
use std::str::FromStr;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// A stable error code; its wire form is the kebab-case string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, for documentation and exhaustive tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire form, e.g. `invalid-transition`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $name, )*
                }
            }
        }

        impl FromStr for ErrorCode {
            type Err = UnknownCode;
            fn from_str(s: &str) -> Result<ErrorCode, UnknownCode> {
                match s {
                    $( $name => Ok(ErrorCode::$variant), )*
                    _ => Err(UnknownCode(s.to_owned())),
                }
            }
        }
    };
}

error_codes! {
    // Who may call, and what they sent.
    /// No, malformed or unknown bearer key.
    Unauthorized => "unauthorized",
    /// A support key on an endpoint that acts for a tenant.
    TenantKeyRequired => "tenant-key-required",
    /// A tenant key on a support endpoint.
    SupportKeyRequired => "support-key-required",
    /// Nothing here: unknown, or another tenant's (they look alike).
    NotFound => "not-found",
    MethodNotAllowed => "method-not-allowed",
    MalformedJson => "malformed-json",
    UnsupportedMediaType => "unsupported-media-type",
    BodyTooLarge => "body-too-large",
    BadRequest => "bad-request",
    InvalidInput => "invalid-input",
    InvalidQuery => "invalid-query",
    InvalidCursor => "invalid-cursor",
    NotReady => "not-ready",

    // An action on one user.
    UnknownActor => "unknown-actor",
    ActorNotActive => "actor-not-active",
    /// The state machine forbids the action from the subject's state.
    InvalidTransition => "invalid-transition",
    RestoreWindowClosed => "restore-window-closed",
    RestoreConflict => "restore-conflict",
    /// The policy could not decide (trap, fuel, deadline, no policy…).
    PolicyFault => "policy-fault",
    /// The policy's plan broke an operator rule.
    PlanRefused => "plan-refused",
    InvalidTransferTarget => "invalid-transfer-target",
    /// The policy denied the action.
    Denied => "denied",
    /// Another worker already handled this bulk item.
    Superseded => "superseded",
    /// An idempotency key first used for another request.
    IdempotencyKeyReused => "idempotency-key-reused",

    // Escalations.
    EscalationNotPending => "escalation-not-pending",
    SubjectChanged => "subject-changed",
    StillEscalated => "still-escalated",

    // Bulk actions.
    InvalidSelection => "invalid-selection",
    PreviewExpired => "preview-expired",
    PreviewUsed => "preview-used",
    PreviewStale => "preview-stale",
    ConfirmCountMismatch => "confirm-count-mismatch",
    JobFinished => "job-finished",

    // Deploying policies (operators).
    /// A tenant or support key on an operator endpoint.
    OperatorKeyRequired => "operator-key-required",
    TenantExists => "tenant-exists",
    /// An uploaded component failed the validation gate (stored as rejected).
    PolicyRejected => "policy-rejected",
    /// Activating a version that was rejected at upload.
    VersionRejected => "version-rejected",
    AlreadyActive => "already-active",
    NothingToRollBack => "nothing-to-roll-back",

    /// Ours, not the caller's: the cause is in the server log.
    Internal => "internal",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code this build does not know (a newer server, or a typo).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code `{0}`")]
pub struct UnknownCode(pub String);

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// In the OpenAPI document: a string enum of every wire form, so a client
/// generated from it can switch on codes exhaustively.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A stable error code; clients switch on it."))
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_is_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for &c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
            assert!(c
                .as_str()
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch == '-'));
        }
        assert!("no-such-code".parse::<ErrorCode>().is_err());
    }
}
