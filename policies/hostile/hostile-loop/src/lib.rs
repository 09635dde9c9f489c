//! Hostile policy: `decide` spins forever.
//!
//! The host must stop it with its fuel budget (deterministic) or, if fuel is
//! generous, with its epoch deadline (wall-clock backstop), and report a typed
//! fault instead of hanging the worker.

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use core::hint::black_box;
use exports::lethe::policy::policy::{Action, Decision, Guest, PolicyInfo, Request};

struct HostileLoop;

impl Guest for HostileLoop {
    fn decide(_req: Request) -> Decision {
        // `black_box` makes every iteration observable to the optimiser, so the
        // loop body cannot be folded away and each turn burns real fuel.
        let mut turns: u64 = 0;
        loop {
            turns = black_box(turns.wrapping_add(1));
        }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-loop".into(),
            version: "0.1.0".into(),
            description: "decide() loops forever; the host must stop it by fuel or deadline".into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileLoop);
