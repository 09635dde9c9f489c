//! The hostile corpus (`policies/hostile/`) against the real runtime.
//!
//! Every hostile component is loaded and asked to decide through one shared
//! [`Runtime`], as in production where one engine serves every tenant. Each
//! attack must end in its own typed fault (not a generic error, not a hang,
//! not a crash of the test process), within its limit, and a good seed policy
//! on the same engine must decide normally right afterwards: one tenant's
//! hostile policy must not degrade anyone else's.
//!
//! The components are built by `bash policies/build.sh`. A missing component
//! fails the test with that instruction; it never skips, because a skipped
//! sandbox test reads as a passed one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lethe::contract::{Decision, Request};
use lethe::policy::{self, Limits, LoadError, Policy, PolicyFault, Runtime, RuntimeConfig};
use rand::{RngCore, SeedableRng};

// ---------------------------------------------------------------------------
// Host allocation accounting
// ---------------------------------------------------------------------------

/// Counts the bytes the host allocates, per thread, so a test can tell how
/// much host memory one decision cost. Per thread because tests run in
/// parallel; a synchronous `decide` lifts its result on the calling thread.
struct CountingAllocator;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(bytes)));
}

// SAFETY: defers every operation to `System`; only adds bookkeeping.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Bytes allocated by this thread so far (monotonic).
fn allocated_here() -> usize {
    ALLOCATED.with(Cell::get)
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// The limits of the shared runtime. The memory cap is 64 MiB so that
/// `hostile-huge-output` (≈ 15 MiB peak) fits and must be caught by the
/// output cap, while `hostile-alloc` must be caught by the memory cap.
const LIMITS: Limits = Limits {
    fuel: 200_000_000,
    deadline_ms: 2_000,
    memory_bytes: 64 << 20,
    output_bytes: 256 << 10,
};

/// Extra wall-clock time a faulting decision may take beyond its own limit:
/// the machine running the tests is shared and slow, and a fault includes
/// instantiation and tear-down.
const SLACK: Duration = Duration::from_secs(3);

/// Good seed policies, in order of preference (small Rust components first,
/// which compile in milliseconds).
const GOOD_SEEDS: &[&str] = &["support-only", "deactivate-first", "two-stage-erase"];

fn dist_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/dist")
        .join(format!("{name}.wasm"))
}

/// The bytes of a built component. Panics (fails the test) when missing.
fn component(name: &str) -> Vec<u8> {
    let path = dist_path(name);
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) => panic!(
            "{} is missing ({err}): run `bash policies/build.sh` to build the policy components",
            path.display()
        ),
    }
}

/// The one runtime every test shares, like every tenant of a host does.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(RuntimeConfig {
            limits: LIMITS,
            ..RuntimeConfig::default()
        })
        .expect("the policy runtime starts")
    })
}

/// A good seed policy on the shared runtime.
fn good_policy() -> &'static Policy {
    static GOOD: OnceLock<Policy> = OnceLock::new();
    GOOD.get_or_init(|| {
        let name = GOOD_SEEDS
            .iter()
            .find(|name| dist_path(name).exists())
            .unwrap_or_else(|| {
                panic!(
                    "none of the good seed policies {GOOD_SEEDS:?} is in policies/dist: \
                     run `bash policies/build.sh` to build the policy components"
                )
            });
        runtime()
            .load(&component(name))
            .unwrap_or_else(|err| panic!("good seed policy {name} loads: {err}"))
    })
}

fn request_with(attributes: &str) -> Request {
    let json = format!(
        r#"{{"action":"delete","now":1795000000,
        "subject":{{"id":"u-42","state":"deactivated","roles":["member"],"permissions":[],
            "domain":"acme.example","created_at":1700000000,"last_login_at":1790000000,
            "deleted_at":null,"attributes":{attributes}}},
        "actor":{{"kind":"tenant_user","id":"u-1","roles":["admin"],"permissions":["account_settings"],
            "domain":"acme.example","attributes":{{"is_domain_contact":"true"}}}},
        "holdings":[{{"category":"deals","total":12,"open":5}}],
        "transfer_to":"u-7","reason":null,"bulk":false}}"#
    );
    policy::parse_request(&json).expect("the test request is valid JSON of the contract")
}

fn request() -> Request {
    request_with(r#"{"platform_count":"1"}"#)
}

/// Asserts that a good policy on the same engine still decides, quickly.
fn good_policy_still_decides(after: &str) {
    let start = Instant::now();
    let decision = good_policy().decide(&request());
    let elapsed = start.elapsed();
    match decision {
        Ok(Decision { fuel_used, .. }) => assert!(fuel_used > 0, "fuel is metered after {after}"),
        Err(fault) => panic!("good seed policy faulted right after {after}: {fault}"),
    }
    assert!(
        elapsed < Duration::from_millis(LIMITS.deadline_ms),
        "good seed policy took {elapsed:?} right after {after}"
    );
}

/// Loads a hostile policy component, which must load (its attack is at
/// decision time) and describe itself under its own name.
fn load_hostile(name: &str, limits: Limits) -> Policy {
    let policy = runtime()
        .load_with_limits(&component(name), limits)
        .unwrap_or_else(|err| panic!("{name} loads (its attack is in decide): {err}"));
    assert_eq!(policy.info().name, name, "describe() of {name}");
    policy
}

/// Runs one decision of `name` and returns its fault and how long it took.
fn fault_of(name: &str, limits: Limits, req: &Request) -> (PolicyFault, Duration) {
    let policy = load_hostile(name, limits);
    let start = Instant::now();
    let result = policy.decide(req);
    let elapsed = start.elapsed();
    match result {
        Ok(decision) => panic!("{name} must fault, but decided {decision:?}"),
        Err(fault) => (fault, elapsed),
    }
}

fn assert_within(name: &str, elapsed: Duration, limit: Duration) {
    assert!(
        elapsed <= limit + SLACK,
        "{name} came back after {elapsed:?}, beyond its limit of {limit:?} (+{SLACK:?} slack)"
    );
}

fn load_error(name: &str, wasm: &[u8]) -> LoadError {
    match runtime().load(wasm) {
        Ok(policy) => panic!(
            "{name} must be refused at load, but loaded as {:?}",
            policy.info()
        ),
        Err(err) => err,
    }
}

// ---------------------------------------------------------------------------
// Decision-time attacks
// ---------------------------------------------------------------------------

#[test]
fn endless_loop_runs_out_of_fuel() {
    // A long deadline, so that only fuel can stop it.
    let limits = Limits {
        fuel: 20_000_000,
        deadline_ms: 60_000,
        ..LIMITS
    };
    let (fault, elapsed) = fault_of("hostile-loop", limits, &request());
    assert_eq!(fault, PolicyFault::OutOfFuel { budget: 20_000_000 });
    assert_eq!(fault.code(), "out-of-fuel");
    // 20 M units is a few tens of milliseconds of guest code.
    assert_within("hostile-loop (fuel)", elapsed, Duration::ZERO);
    good_policy_still_decides("hostile-loop ran out of fuel");
}

#[test]
fn endless_loop_hits_the_deadline_when_fuel_is_plenty() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline_ms: 300,
        ..LIMITS
    };
    let (fault, elapsed) = fault_of("hostile-loop", limits, &request());
    assert_eq!(fault, PolicyFault::Deadline { deadline_ms: 300 });
    assert_eq!(fault.code(), "deadline");
    assert!(
        elapsed >= Duration::from_millis(250),
        "the deadline fired after only {elapsed:?}"
    );
    assert_within("hostile-loop (deadline)", elapsed, limits.deadline());
    good_policy_still_decides("hostile-loop hit its deadline");
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let (fault, elapsed) = fault_of("hostile-alloc", LIMITS, &request());
    assert_eq!(
        fault,
        PolicyFault::MemoryCap {
            cap: LIMITS.memory_bytes
        }
    );
    assert_eq!(fault.code(), "memory-cap");
    assert_within("hostile-alloc", elapsed, LIMITS.deadline());
    good_policy_still_decides("hostile-alloc hit the memory cap");
}

#[test]
fn unreachable_is_a_trap() {
    let (fault, elapsed) = fault_of("hostile-trap", LIMITS, &request());
    match &fault {
        PolicyFault::Trap(message) => assert!(
            message.contains("unreachable"),
            "the trap names its cause: {message}"
        ),
        other => panic!("hostile-trap must be a trap fault, got {other:?}"),
    }
    assert_eq!(fault.code(), "trap");
    assert_within("hostile-trap", elapsed, LIMITS.deadline());
    good_policy_still_decides("hostile-trap trapped");
}

#[test]
fn unbounded_recursion_is_a_stack_overflow() {
    let (fault, elapsed) = fault_of("hostile-recursion", LIMITS, &request());
    assert_eq!(fault, PolicyFault::StackOverflow);
    assert_eq!(fault.code(), "stack-overflow");
    assert_within("hostile-recursion", elapsed, LIMITS.deadline());
    good_policy_still_decides("hostile-recursion overflowed its stack");
}

#[test]
fn huge_output_is_refused_as_too_large() {
    let (fault, elapsed) = fault_of("hostile-huge-output", LIMITS, &request());
    match fault {
        PolicyFault::OutputTooLarge { size, cap } => {
            assert_eq!(cap, LIMITS.output_bytes);
            assert!(
                size >= 200_000 * 64,
                "reported size {size} is the real size"
            );
        }
        other => panic!("hostile-huge-output must be refused as too large, got {other:?}"),
    }
    assert_within("hostile-huge-output", elapsed, LIMITS.deadline());
    good_policy_still_decides("hostile-huge-output was refused");
}

/// `hostile-amplify` returns `copies` rule ids that all point at one buffer
/// of `bytes` bytes: cheap for the guest, `copies × bytes` for a host that
/// copies the decision out before checking its size. Here that would be
/// 512 MiB; at full scale (millions of copies of tens of MiB, still inside
/// the guest's memory cap) it would take the host process down. The host
/// must refuse the output without materialising it.
#[test]
fn aliased_output_is_refused_without_copying_it() {
    const COPIES: usize = 2048;
    const BYTES: usize = 256 << 10;
    let req = request_with(&format!(r#"{{"copies":"{COPIES}","bytes":"{BYTES}"}}"#));
    let policy = load_hostile("hostile-amplify", LIMITS);
    let before = allocated_here();
    let start = Instant::now();
    let result = policy.decide(&req);
    let elapsed = start.elapsed();
    let host_bytes = allocated_here() - before;
    match result {
        Ok(decision) => panic!("hostile-amplify must fault, decided {:?}", decision.outcome),
        Err(PolicyFault::OutputTooLarge { cap, .. }) => assert_eq!(cap, LIMITS.output_bytes),
        Err(other) => panic!("hostile-amplify must be refused as too large, got {other:?}"),
    }
    assert!(
        host_bytes < 64 << 20,
        "deciding hostile-amplify made the host allocate {} MiB for a guest output of \
         {COPIES} aliases of one {} KiB buffer: the output size must be checked before the \
         decision is copied out of the guest",
        host_bytes >> 20,
        BYTES >> 10
    );
    assert_within("hostile-amplify", elapsed, LIMITS.deadline());
    good_policy_still_decides("hostile-amplify was refused");
}

#[test]
fn a_hostile_policy_spinning_does_not_hold_up_a_good_one() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline_ms: 1_500,
        ..LIMITS
    };
    let hostile = load_hostile("hostile-loop", limits);
    let spinner = std::thread::spawn(move || hostile.decide(&request()));
    // Give the spinner time to enter its loop, then decide beside it.
    std::thread::sleep(Duration::from_millis(100));
    good_policy_still_decides("hostile-loop started spinning on another thread");
    let fault = spinner
        .join()
        .expect("the spinning decision's thread does not panic")
        .expect_err("hostile-loop faults");
    assert_eq!(fault, PolicyFault::Deadline { deadline_ms: 1_500 });
}

// ---------------------------------------------------------------------------
// Load-time refusals
// ---------------------------------------------------------------------------

#[test]
fn forbidden_import_is_refused_at_load_naming_it() {
    let err = load_error(
        "hostile-forbidden-import",
        &component("hostile-forbidden-import"),
    );
    match &err {
        LoadError::ForbiddenImport(name) => assert_eq!(name, "evil:net/exfiltrate@0.1.0"),
        other => panic!("hostile-forbidden-import must be a forbidden import, got {other:?}"),
    }
    assert_eq!(err.code(), "forbidden-import");
    assert!(
        err.to_string().contains("evil:net/exfiltrate@0.1.0"),
        "{err}"
    );
    good_policy_still_decides("hostile-forbidden-import was refused");
}

#[test]
fn sockets_are_refused_at_load_naming_the_import() {
    let err = load_error("hostile-socket", &component("hostile-socket"));
    match &err {
        LoadError::ForbiddenImport(name) => assert!(
            name.starts_with("wasi:sockets/"),
            "the refused import is a socket interface: {name}"
        ),
        other => panic!("hostile-socket must be a forbidden import, got {other:?}"),
    }
    assert!(err.to_string().contains("wasi:sockets/"), "{err}");
    good_policy_still_decides("hostile-socket was refused");
}

#[test]
fn a_component_of_another_world_is_refused_as_wrong_world() {
    let err = load_error("hostile-wrong-world", &component("hostile-wrong-world"));
    match &err {
        LoadError::WrongWorld(message) => assert!(
            message.contains("evil:other/thing@0.1.0"),
            "the refusal says what the component exports instead: {message}"
        ),
        other => panic!("hostile-wrong-world must be a wrong world, got {other:?}"),
    }
    assert_eq!(err.code(), "wrong-world");
    good_policy_still_decides("hostile-wrong-world was refused");
}

/// `(module (type (func)) (func (type 0)) (export "decide" (func 0)))`: valid
/// WebAssembly, but a core module, not a component.
const CORE_MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: one () -> ()
    0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
    0x07, 0x0a, 0x01, 0x06, b'd', b'e', b'c', b'i', b'd', b'e', 0x00, 0x00, // export "decide"
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code section: empty body
];

#[test]
fn a_core_module_is_not_a_component() {
    let err = load_error("a core module", CORE_MODULE);
    assert!(
        matches!(err, LoadError::NotAComponent(_)),
        "a core module must be refused as not a component, got {err:?}"
    );
    assert_eq!(err.code(), "not-a-component");
    good_policy_still_decides("a core module was refused");
}

#[test]
fn random_bytes_are_refused() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x1e7e);
    for len in [0usize, 1, 7, 8, 64, 4096, 65_536] {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        let err = load_error(&format!("{len} random bytes"), &bytes);
        assert!(
            matches!(err, LoadError::NotAComponent(_)),
            "{len} random bytes must be refused as not a component, got {err:?}"
        );
    }
    // Random bytes behind a valid component header get past the cheap check
    // and must fail in the parser or compiler, still as a typed error.
    let header = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    for len in [0usize, 16, 4096] {
        let mut bytes = header.to_vec();
        let mut tail = vec![0u8; len];
        rng.fill_bytes(&mut tail);
        bytes.extend_from_slice(&tail);
        let err = load_error(
            &format!("a component header and {len} random bytes"),
            &bytes,
        );
        assert!(
            matches!(err, LoadError::NotAComponent(_) | LoadError::Invalid(_)),
            "a component header with {len} random bytes must be refused as invalid, got {err:?}"
        );
    }
    good_policy_still_decides("random bytes were refused");
}
