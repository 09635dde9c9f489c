//! Typed failures of loading a policy and of asking it for a decision.
//!
//! [`PolicyFault`] itself lives in [`crate::decision`]: it crosses the
//! `Decider` boundary, and the executor must not depend on this runtime.

use std::path::PathBuf;

pub use crate::decision::PolicyFault;

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
