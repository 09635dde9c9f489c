//! Typed failures of loading a policy and of asking it for a decision.

use std::path::PathBuf;

/// A decision that did not happen. Whatever the cause, nothing is applied:
/// callers treat every variant as "policy fault" (HTTP 503) and keep serving
/// other tenants. [`PolicyFault::code`] is the stable name in APIs and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFault {
    #[error("policy ran out of fuel (budget {budget} units)")]
    OutOfFuel { budget: u64 },
    #[error("policy exceeded its deadline of {deadline_ms} ms")]
    Deadline { deadline_ms: u64 },
    /// The cap covers all of the instance's linear memories together.
    #[error("policy exceeded its memory cap of {cap} bytes")]
    MemoryCap { cap: usize },
    #[error("policy exhausted its call stack")]
    StackOverflow,
    #[error("policy trapped: {0}")]
    Trap(String),
    /// Measured while the output is copied out of the guest, so an output
    /// that aliases one buffer many times is stopped before it is
    /// materialised; its full size is therefore never known.
    #[error("policy output exceeds the cap of {cap} bytes")]
    OutputTooLarge { cap: usize },
    #[error("policy returned a malformed decision: {0}")]
    MalformedOutput(String),
    #[error("no sandbox available for the policy: {0}")]
    Unavailable(String),
}

impl PolicyFault {
    pub fn code(&self) -> &'static str {
        match self {
            PolicyFault::OutOfFuel { .. } => "out-of-fuel",
            PolicyFault::Deadline { .. } => "deadline",
            PolicyFault::MemoryCap { .. } => "memory-cap",
            PolicyFault::StackOverflow => "stack-overflow",
            PolicyFault::Trap(_) => "trap",
            PolicyFault::OutputTooLarge { .. } => "output-too-large",
            PolicyFault::MalformedOutput(_) => "malformed-output",
            PolicyFault::Unavailable(_) => "unavailable",
        }
    }
}

/// A component that cannot serve as a policy.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("component imports `{0}`, which policies may not use (only lethe:policy/host and capability-free WASI are linked)")]
    ForbiddenImport(String),
    #[error("component does not implement the lethe:policy deletion-policy world: {0}")]
    WrongWorld(String),
    #[error("component implements `{found}`; this host supports {supported}")]
    UnsupportedVersion {
        found: String,
        supported: &'static str,
    },
    #[error("describe() failed: {0}")]
    Describe(PolicyFault),
    #[error("policy engine: {0}")]
    Engine(String),
}

impl LoadError {
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::Read { .. } => "unreadable",
            LoadError::NotAComponent(_) => "not-a-component",
            LoadError::Invalid(_) => "invalid-component",
            LoadError::ForbiddenImport(_) => "forbidden-import",
            LoadError::WrongWorld(_) => "wrong-world",
            LoadError::UnsupportedVersion { .. } => "unsupported-version",
            LoadError::Describe(_) => "describe-failed",
            LoadError::Engine(_) => "engine",
        }
    }
}
