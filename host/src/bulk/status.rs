//! The closed sets of names the bulk tables and the bulk JSON use: job
//! status, item status, and the outcome a preview counts.
//!
//! Each is an enum with one spelling per variant, used both as the SQL
//! value (bind [`as_str`](JobStatus::as_str), decode with `parse`) and as
//! the JSON value (serde renames to the same spelling), so the database,
//! the wire and the code cannot drift apart. A value in the database that
//! is none of them is a corrupt record ([`UnknownStatus`]), never a panic.

use std::fmt;
use std::str::FromStr;

/// A stored name that is not one of its enum's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownStatus {
    pub kind: &'static str,
    pub value: String,
}

/// An enum whose variants have one wire/SQL spelling each.
macro_rules! named {
    ($(#[$doc:meta])* $name:ident ($kind:literal) { $( $(#[$vdoc:meta])* $variant:ident => $text:literal, )* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $text)] $variant, )*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The SQL and JSON spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<$name, UnknownStatus> {
                match s {
                    $( $text => Ok($name::$variant), )*
                    _ => Err(UnknownStatus { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        // By hand: the derive cannot see the spellings through the macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($name::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// Where a bulk job stands (`lethe_bulk_jobs.status`).
    JobStatus ("job status") {
        /// Written, no worker holds it yet.
        Queued => "queued",
        /// A worker holds it under a lease (or held it, and the lease lapsed).
        Running => "running",
        Completed => "completed",
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    /// No worker will touch the job again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Cancelled)
    }
}

named! {
    /// Where one user of a job stands (`lethe_bulk_items.status`). An item
    /// leaves `pending` in its user's action transaction, or, when the
    /// action applied nothing, on its own.
    ItemStatus ("item status") {
        Pending => "pending",
        Applied => "applied",
        /// Queued for support; the item names the escalation.
        Escalated => "escalated",
        /// Refused by the policy or by the state machine.
        Denied => "denied",
        /// Could not be decided or applied (policy fault, refused plan…).
        Failed => "failed",
        /// Left untouched because the job was cancelled.
        Cancelled => "cancelled",
    }
}

impl ItemStatus {
    /// Done, but not applied: shown inline in a job view.
    pub const NOT_APPLIED: [ItemStatus; 3] = [
        ItemStatus::Escalated,
        ItemStatus::Denied,
        ItemStatus::Failed,
    ];
}

named! {
    /// What a preview says the policy would do to one user.
    /// Declared in alphabetical order: the derived `Ord` sorts a preview's
    /// reasons exactly as their names would sort.
    OutcomeKind ("outcome") {
        Allow => "allow",
        /// Refused by the policy, or impossible from the user's state.
        Deny => "deny",
        Escalate => "escalate",
        /// The policy could not decide, or its plan was refused.
        Fault => "fault",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_sql_and_json() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(*s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        for s in ItemStatus::ALL {
            assert_eq!(s.as_str().parse::<ItemStatus>(), Ok(*s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        for s in OutcomeKind::ALL {
            assert_eq!(s.as_str().parse::<OutcomeKind>(), Ok(*s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_not_a_panic() {
        let e = "half-done".parse::<ItemStatus>().unwrap_err();
        assert_eq!(e.kind, "item status");
        assert_eq!(e.to_string(), "unknown item status `half-done`");
    }
}
