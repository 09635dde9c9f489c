//! The boundary between the executor and the policy runtime.
//!
//! The executor asks a [`Decider`] and gets a [`Verdict`] or a
//! [`PolicyFault`]; it knows nothing of WebAssembly. The host implements
//! `Decider` over the policy runtime (`tenancy::TenantPolicies`), tests and
//! benchmarks implement it in plain Rust. One fault type serves both sides,
//! so a fault's code is the same in the runtime, the API and the evidence.

use std::future::Future;

use crate::contract::{Decision, Request};

/// A policy's decision together with the version that made it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// sha256 of the policy component, stored with the decision.
    pub policy_sha256: String,
    /// The tenant's version number of that component, when it came from
    /// the deployment tables (`None` for a component loaded from a file).
    pub policy_version: Option<i64>,
    pub decision: Decision,
}

/// The boundary between the executor and the policy runtime.
///
/// The host implements it over the WebAssembly runtime (fresh sandbox per
/// call, fuel, deadline and memory caps); tests implement it in Rust. It is
/// called inside the action's transaction, with the subject row locked, so
/// the decision is made on exactly the facts it is applied to.
pub trait Decider: Send + Sync {
    fn decide(
        &self,
        tenant: &str,
        request: &Request,
    ) -> impl Future<Output = Result<Verdict, PolicyFault>> + Send;

    /// Decide many requests of one tenant, answers in request order. The
    /// default asks one at a time; the host's runtime serves a whole batch
    /// from one policy instance (bulk jobs, previews).
    fn decide_batch(
        &self,
        tenant: &str,
        requests: &[Request],
    ) -> impl Future<Output = Vec<Result<Verdict, PolicyFault>>> + Send {
        async move {
            let mut out = Vec::with_capacity(requests.len());
            for r in requests {
                out.push(self.decide(tenant, r).await);
            }
            out
        }
    }
}

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
    /// The tenant has no policy deployed: nothing can be decided.
    #[error("tenant `{tenant}` has no policy deployed")]
    NoPolicy { tenant: String },
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
            PolicyFault::NoPolicy { .. } => "no-policy",
        }
    }
}
