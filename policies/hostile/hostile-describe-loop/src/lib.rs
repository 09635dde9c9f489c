//! Hostile policy: `describe` never returns.
//!
//! The host calls `describe()` when it loads a component, before any
//! decision, so a policy that hangs there would hang a deployment (or the
//! start-up of every host) instead of one decision. Loading must end in a
//! typed load error carrying the fault (out of fuel, or the deadline).

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use core::hint::black_box;
use exports::lethe::policy::policy::{Decision, Denial, Guest, Outcome, PolicyInfo, Request};

struct HostileDescribeLoop;

impl Guest for HostileDescribeLoop {
    fn decide(_req: Request) -> Decision {
        Decision {
            outcome: Outcome::Deny(Denial {
                code: "unreachable".into(),
                message: "a host must never get this far".into(),
            }),
            rules: vec!["hostile-describe-loop/decide".into()],
        }
    }

    fn describe() -> PolicyInfo {
        let mut turns: u64 = 0;
        loop {
            turns = black_box(turns.wrapping_add(1));
        }
    }
}

export!(HostileDescribeLoop);
