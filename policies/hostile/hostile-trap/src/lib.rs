//! Hostile policy: `decide` executes the wasm `unreachable` instruction.
//!
//! The host must surface the trap as a typed policy fault and keep serving:
//! a trapped instance is poisoned, so the next decision needs a fresh store.

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use exports::lethe::policy::policy::{Action, Decision, Guest, PolicyInfo, Request};

struct HostileTrap;

impl Guest for HostileTrap {
    fn decide(_req: Request) -> Decision {
        // A raw `unreachable` rather than `panic!`, so the trap happens without
        // first going through std's panic machinery (stderr printing, abort).
        core::arch::wasm32::unreachable()
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-trap".into(),
            version: "0.1.0".into(),
            description: "decide() executes `unreachable`; the host must report a trap".into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileTrap);
