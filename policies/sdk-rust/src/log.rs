//! Lines in the host's trace of the current decision.
//!
//! This is the policy's only way to say anything besides its decision: the
//! world grants no stdout, files or network. The host keeps the lines with
//! the decision, so they are worth writing when a rule's reasoning is not
//! obvious from its id.

use crate::bindings::lethe::policy::host::{log as host_log, LogLevel};

/// Most detailed level: step-by-step evaluation.
pub fn trace(message: &str) {
    host_log(LogLevel::Trace, message);
}

/// Detail useful while writing or debugging a policy.
pub fn debug(message: &str) {
    host_log(LogLevel::Debug, message);
}

/// A noteworthy fact about the decision.
pub fn info(message: &str) {
    host_log(LogLevel::Info, message);
}

/// Something surprising in the request that the policy tolerated.
pub fn warn(message: &str) {
    host_log(LogLevel::Warn, message);
}

/// Something the policy could not make sense of.
pub fn error(message: &str) {
    host_log(LogLevel::Error, message);
}
