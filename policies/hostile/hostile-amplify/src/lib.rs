//! Hostile policy: `decide` returns a small guest-side decision that becomes
//! an enormous host-side one.
//!
//! The canonical ABI passes a `list<string>` as a table of `(ptr, len)`
//! pairs, and nothing stops two entries from pointing at the same bytes. Here
//! every rule id points at one shared buffer: `copies` entries of `bytes`
//! bytes cost the guest `bytes + 8 × copies`, but a host that lifts the whole
//! decision before checking its size allocates `bytes × copies`. Within 128 MiB
//! of guest memory that is millions of copies of tens of MiB (petabytes),
//! far beyond any host; one
//! tenant's policy could take the whole process down. The host must refuse
//! the output as too large *without* materialising it.
//!
//! The size of the attack comes from the request (subject attributes
//! `copies` and `bytes`) so tests can pick a size that proves the point
//! without endangering the machine they run on. The defaults claim 1 GiB.

wit_bindgen::generate!({
    world: "deletion-policy",
    path: "../../../wit",
});

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use exports::lethe::policy::policy::{
    Action, Decision, Denial, Guest, Outcome, PolicyInfo, Request,
};

const DEFAULT_COPIES: usize = 1024;
const DEFAULT_BYTES: usize = 1 << 20;

/// Start and end of the shared buffer every rule id points into.
static SHARED_START: AtomicUsize = AtomicUsize::new(0);
static SHARED_END: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, except that frees inside the shared buffer are
/// ignored: each aliasing `String` is freed once by Rust or by the bindings'
/// post-return cleanup, and only the first free may reach the allocator.
/// Ignoring all of them leaks the buffer, which dies with the instance.
struct AliasTolerant;

unsafe impl GlobalAlloc for AliasTolerant {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let addr = ptr as usize;
        let shared = addr >= SHARED_START.load(Ordering::Relaxed)
            && addr < SHARED_END.load(Ordering::Relaxed);
        if !shared {
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: AliasTolerant = AliasTolerant;

fn attribute(req: &Request, key: &str, default: usize) -> usize {
    req.subject
        .attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.parse().ok())
        .unwrap_or(default)
}

struct HostileAmplify;

impl Guest for HostileAmplify {
    fn decide(req: Request) -> Decision {
        let copies = attribute(&req, "copies", DEFAULT_COPIES);
        let bytes = attribute(&req, "bytes", DEFAULT_BYTES).max(1);
        let mut shared = "r".repeat(bytes).into_bytes();
        let ptr = shared.as_mut_ptr();
        core::mem::forget(shared);
        SHARED_START.store(ptr as usize, Ordering::Relaxed);
        SHARED_END.store(ptr as usize + bytes, Ordering::Relaxed);
        let rules = (0..copies)
            // SAFETY (as far as this guest goes): the bytes are valid UTF-8
            // and never written again; frees of them are ignored above.
            .map(|_| unsafe { String::from_raw_parts(ptr, bytes, bytes) })
            .collect();
        Decision {
            outcome: Outcome::Deny(Denial {
                code: "amplified".into(),
                message: format!("{copies} rule ids of {bytes} bytes, all sharing one buffer"),
            }),
            rules,
        }
    }

    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile-amplify".into(),
            version: "0.1.0".into(),
            description: "decide() returns rule ids aliasing one buffer; the host must refuse the output before copying it".into(),
            actions: vec![Action::Delete],
        }
    }
}

export!(HostileAmplify);
