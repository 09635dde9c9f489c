//! Hostile component: a valid component exporting `evil:other/thing@0.1.0`
//! and not `lethe:policy/policy@0.1.0`.
//!
//! The host must refuse it at load as the wrong world, not fail later with a
//! missing export when the first request arrives.

wit_bindgen::generate!({
    world: "other",
    path: "wit",
});

use exports::evil::other::thing::Guest;

struct HostileWrongWorld;

impl Guest for HostileWrongWorld {
    fn hello() {}
}

export!(HostileWrongWorld);
