//! Hostile policy: `decide` allocates without bound.
//!
//! It keeps pushing 1 MiB chunks and touches every page of each, so the memory
//! is really committed. The host's memory cap must refuse the `memory.grow`
//! and report a memory fault, without the host process itself running out.

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use core::hint::black_box;
use exports::lethe::policy::policy::{Action, Decision, Guest, PolicyInfo, Request};

const CHUNK: usize = 1 << 20;
const PAGE: usize = 4096;

struct HostileAlloc;

impl Guest for HostileAlloc {
    fn decide(_req: Request) -> Decision {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            for (i, byte) in chunk.iter_mut().step_by(PAGE).enumerate() {
                *byte = black_box(i as u8).wrapping_add(1);
            }
            hoard.push(black_box(chunk));
            black_box(&mut hoard);
        }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-alloc".into(),
            version: "0.1.0".into(),
            description:
                "decide() allocates 1 MiB chunks forever; the host must enforce its memory cap"
                    .into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileAlloc);
