//! Hostile policy: `decide` recurses without bound.
//!
//! By default the frames live on the engine's wasm call stack, which the
//! host must turn into a stack-overflow fault rather than crash its own
//! thread. With subject attribute `frames = memory`, each frame also keeps a
//! buffer in linear memory (Rust's shadow stack, 1 MiB below the data), which
//! runs out first: the stack pointer wraps below 0 and the guest traps with
//! an out-of-bounds access, a trap fault like any other.

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use core::hint::black_box;
use exports::lethe::policy::policy::{Action, Decision, Guest, PolicyInfo, Request};

/// Read through volatile loads so the optimiser knows nothing of them.
static ONE: u64 = 1;

/// Recurses forever on the wasm call stack. The volatile load after the call
/// makes it a non-tail call (LLVM cannot turn it into a loop, not even with
/// an accumulator), and nothing lives in linear memory, so the frames use the
/// engine's wasm stack and it is that stack which overflows.
#[inline(never)]
#[allow(unconditional_recursion)] // the whole point of this component
fn dive(depth: u64) -> u64 {
    // SAFETY: a plain read of an initialised static.
    let step = unsafe { core::ptr::read_volatile(&ONE) };
    let below = dive(depth.wrapping_add(step));
    below ^ unsafe { core::ptr::read_volatile(&ONE) }.wrapping_add(depth)
}

/// Recurses forever with a buffer per frame in linear memory (the shadow
/// stack), which runs out before the wasm stack does: the stack pointer
/// wraps below address 0 and the next store is out of bounds.
#[inline(never)]
#[allow(unconditional_recursion)] // the whole point of this component
fn dive_in_memory(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    let below = dive_in_memory(black_box(depth.wrapping_add(1)));
    black_box(below).wrapping_add(frame[(depth % 64) as usize])
}

struct HostileRecursion;

impl Guest for HostileRecursion {
    fn decide(req: Request) -> Decision {
        // Subject attribute `frames = memory` picks the shadow-stack variant.
        let in_memory = req
            .subject
            .attributes
            .iter()
            .any(|a| a.key == "frames" && a.value == "memory");
        let depth = if in_memory {
            dive_in_memory(black_box(0))
        } else {
            dive(black_box(0))
        };
        // Never reached; written so the result of `dive` is used.
        panic!("recursion ended at depth {depth}")
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-recursion".into(),
            version: "0.1.0".into(),
            description:
                "decide() recurses without bound; the host must report a stack overflow trap".into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileRecursion);
