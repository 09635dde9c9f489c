//! Write a Lethe deletion policy in Rust.
//!
//! A policy is a WebAssembly component targeting the WIT world
//! `lethe:policy/deletion-policy@0.1.0` (`wit/policy.wit`). This crate runs
//! `wit-bindgen` on that world once and hides the generated plumbing, so that
//! a policy crate contains only its rules:
//!
//! ```no_run
//! use lethe_policy::{export_policy, Action, Decision, Plan, Policy, PolicyInfo, Request};
//!
//! struct LockOnly;
//!
//! impl Policy for LockOnly {
//!     fn decide(req: &Request) -> Decision {
//!         match req.action {
//!             Action::Lock if req.actor.has_role("admin") => {
//!                 Decision::allow(Plan::keep_all()).rule("lock.admin")
//!             }
//!             _ => Decision::deny("not-allowed", "only admins may lock").rule("default.deny"),
//!         }
//!     }
//!
//!     fn describe() -> PolicyInfo {
//!         PolicyInfo::new("lock-only", env!("CARGO_PKG_VERSION"), "Admins lock.", &[Action::Lock])
//!     }
//! }
//!
//! export_policy!(LockOnly);
//! ```
//!
//! Build the crate as a `cdylib` for `wasm32-wasip2`; the result is the
//! component the host loads. The only import it has beyond minimal WASI is
//! the host's `log` function, wrapped in [`log`].
//!
//! The generated types are re-exported as they are ([`Request`],
//! [`Decision`], [`Plan`]...), so the policy speaks the contract's own
//! vocabulary; this crate only adds constructors, a plan builder and
//! predicates on top of them.

#![warn(missing_docs)]

// Lets the generated code name this crate by its public name both here and
// in the policy crates that expand `export_policy!`, so policies need no
// direct dependency on `wit-bindgen`.
extern crate self as lethe_policy;

mod decision;
pub mod log;
mod plan;
mod request;

/// The raw `wit-bindgen` output for the `deletion-policy` world.
///
/// Policies should not need it: everything useful is re-exported at the
/// crate root. It is public because `export_policy!` expands inside the
/// policy crate and must reach the generated export machinery.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "deletion-policy",
        // The export macro must be callable from the policy crate, where it
        // finds the generated types under `lethe_policy::bindings`.
        pub_export_macro: true,
        export_macro_name: "__export_deletion_policy",
        default_bindings_module: "lethe_policy::bindings",
        runtime_path: "lethe_policy::__private::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

pub use bindings::exports::lethe::policy::policy::{
    Action, Actor, ActorKind, Attribute, CategoryPlan, Decision, Denial, Disposition, Escalation,
    Holding, LifecycleState, Outcome, Plan, PolicyInfo, ProfilePlan, References, Request, Subject,
    TransferTarget,
};

/// A deletion policy: a pure function from a request to a decision.
///
/// Both functions are associated functions rather than methods because a
/// policy has no state: the host instantiates the component afresh for each
/// decision, and every fact a rule may use arrives in the [`Request`].
pub trait Policy {
    /// Decide one action on one user.
    ///
    /// Every decision should carry the ids of the rules that produced it
    /// (see [`Decision::rule`]): they are what operators read when they ask
    /// why a user was deleted.
    fn decide(req: &Request) -> Decision;

    /// Name, version, description and the actions this policy has rules for.
    fn describe() -> PolicyInfo;
}

/// Export a type implementing [`Policy`] as the component's
/// `lethe:policy/policy@0.1.0` interface.
///
/// Invoke it once, at the root of the policy crate (a `cdylib`).
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        const _: () = {
            struct LethePolicyComponent;

            impl $crate::bindings::exports::lethe::policy::policy::Guest for LethePolicyComponent {
                fn decide(req: $crate::Request) -> $crate::Decision {
                    <$policy as $crate::Policy>::decide(&req)
                }

                fn describe() -> $crate::PolicyInfo {
                    <$policy as $crate::Policy>::describe()
                }
            }

            $crate::bindings::__export_deletion_policy!(
                LethePolicyComponent with_types_in $crate::bindings
            );
        };
    };
}

impl PolicyInfo {
    /// Describe a policy. `version` is usually `env!("CARGO_PKG_VERSION")`.
    pub fn new(name: &str, version: &str, description: &str, actions: &[Action]) -> Self {
        PolicyInfo {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            actions: actions.to_vec(),
        }
    }
}
