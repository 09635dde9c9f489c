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
fn unbounded_recursion_in_linear_memory_is_a_trap() {
    // Frames in the guest's own shadow stack: it wraps below address 0 and
    // the guest's next store is out of bounds, before the wasm stack is full.
    let req = request_with(r#"{"frames":"memory"}"#);
    let (fault, elapsed) = fault_of("hostile-recursion", LIMITS, &req);
    match &fault {
        PolicyFault::Trap(message) => assert!(
            message.contains("out of bounds"),
            "the trap names its cause: {message}"
        ),
        other => panic!("a shadow-stack overflow must be a trap fault, got {other:?}"),
    }
    assert_within(
        "hostile-recursion (shadow stack)",
        elapsed,
        LIMITS.deadline(),
    );
    good_policy_still_decides("hostile-recursion overflowed its shadow stack");
}

/// The host bytes one good decision costs, for comparison.
fn host_bytes_of_a_good_decision() -> usize {
    let before = allocated_here();
    let _ = good_policy().decide(&request());
    allocated_here() - before
}

/// What a hostile output may cost the host: what a good decision costs,
/// plus a small multiple of the output cap (the refused output may be
/// inspected, never fully copied).
fn host_budget_for_refused_output() -> usize {
    host_bytes_of_a_good_decision() + 4 * LIMITS.output_bytes
}

#[test]
fn huge_output_is_refused_as_too_large() {
    let policy = load_hostile("hostile-huge-output", LIMITS);
    let budget = host_budget_for_refused_output();
    let before = allocated_here();
    let start = Instant::now();
    let result = policy.decide(&request());
    let elapsed = start.elapsed();
    let host_bytes = allocated_here() - before;
    match result {
        Ok(decision) => panic!(
            "hostile-huge-output must fault, decided {:?}",
            decision.outcome
        ),
        Err(PolicyFault::OutputTooLarge { cap, .. }) => assert_eq!(cap, LIMITS.output_bytes),
        Err(other) => panic!("hostile-huge-output must be refused as too large, got {other:?}"),
    }
    assert!(
        host_bytes <= budget,
        "refusing a 13 MB decision made the host allocate {} KiB (budget {} KiB): the \
         output size must be bounded while the decision is copied out of the guest \
         (wasmtime's Store::set_hostcall_fuel), not checked after",
        host_bytes >> 10,
        budget >> 10
    );
    assert_within("hostile-huge-output", elapsed, LIMITS.deadline());
    good_policy_still_decides("hostile-huge-output was refused");
}

/// `hostile-amplify` returns `copies` rule ids that all point at one buffer
/// of `bytes` bytes: cheap for the guest, `copies × bytes` for a host that
/// copies the decision out before checking its size. Here that would be
/// 512 MiB; at full scale (millions of copies of tens of MiB, still inside
/// the guest's memory cap) it is petabytes. wasmtime stops copying at its
/// per-call hostcall fuel (128 MiB by default), which is still far too much
/// per decision when many run at once: the host must bound the copy by its
/// own output cap and report the fault as "output too large".
#[test]
fn aliased_output_is_refused_without_copying_it() {
    const COPIES: usize = 2048;
    const BYTES: usize = 256 << 10;
    let req = request_with(&format!(r#"{{"copies":"{COPIES}","bytes":"{BYTES}"}}"#));
    let policy = load_hostile("hostile-amplify", LIMITS);
    let budget = host_budget_for_refused_output();
    let before = allocated_here();
    let start = Instant::now();
    let result = policy.decide(&req);
    let elapsed = start.elapsed();
    let host_bytes = allocated_here() - before;
    assert!(
        host_bytes <= budget,
        "deciding hostile-amplify made the host allocate {} KiB (budget {} KiB) for a guest \
         output of {COPIES} aliases of one {} KiB buffer: the copy out of the guest must be \
         bounded by the output cap (wasmtime's Store::set_hostcall_fuel)",
        host_bytes >> 10,
        budget >> 10,
        BYTES >> 10
    );
    match result {
        Ok(decision) => panic!("hostile-amplify must fault, decided {:?}", decision.outcome),
        Err(PolicyFault::OutputTooLarge { cap, .. }) => assert_eq!(cap, LIMITS.output_bytes),
        Err(other) => panic!("hostile-amplify must be refused as too large, got {other:?}"),
    }
    assert_within("hostile-amplify", elapsed, LIMITS.deadline());
    good_policy_still_decides("hostile-amplify was refused");
}

#[test]
fn well_typed_nonsense_is_malformed_output() {
    let policy = load_hostile("hostile-malformed", LIMITS);
    for defect in [
        "duplicate-category",
        "empty-code",
        "control-rule",
        "long-window",
        "long-message",
    ] {
        let req = request_with(&format!(r#"{{"defect":"{defect}"}}"#));
        let start = Instant::now();
        let result = policy.decide(&req);
        let elapsed = start.elapsed();
        match result {
            Ok(decision) => panic!("hostile-malformed ({defect}) must fault, decided {decision:?}"),
            Err(PolicyFault::MalformedOutput(message)) => assert!(
                !message.is_empty(),
                "the malformed-output fault for {defect} says what is wrong"
            ),
            Err(other) => {
                panic!("hostile-malformed ({defect}) must be malformed output, got {other:?}")
            }
        }
        assert_within("hostile-malformed", elapsed, LIMITS.deadline());
    }
    good_policy_still_decides("hostile-malformed was refused");
}

#[test]
fn a_session_starts_fresh_after_a_fault() {
    // A batch session reuses its instance between decisions; after a fault
    // the instance (and its sandbox state, such as the memory-cap flag) must
    // be thrown away, and the next decision must fault for its own reason.
    let alloc = load_hostile("hostile-alloc", LIMITS);
    let mut session = alloc.session();
    for round in 0..2 {
        assert_eq!(
            session.decide(&request()),
            Err(PolicyFault::MemoryCap {
                cap: LIMITS.memory_bytes
            }),
            "round {round} of a hostile-alloc session"
        );
    }
    let trap = load_hostile("hostile-trap", LIMITS);
    let mut session = trap.session();
    for round in 0..2 {
        match session.decide(&request()) {
            Err(PolicyFault::Trap(message)) => assert!(
                message.contains("unreachable"),
                "round {round} of a hostile-trap session: {message}"
            ),
            other => panic!("round {round} of a hostile-trap session: {other:?}"),
        }
    }
    let mut good = good_policy().session();
    for round in 0..3 {
        if let Err(fault) = good.decide(&request()) {
            panic!("round {round} of a good session after hostile sessions: {fault}");
        }
    }
}

/// Signed LEB128, as `i32.const` immediates are encoded.
fn sleb(mut value: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        out.push(if done { byte } else { byte | 0x80 });
        if done {
            return;
        }
    }
}

/// Unsigned LEB128, as sizes and indices are encoded.
fn uleb(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    uleb(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// A core module whose start function grows its own memory to `pages` pages
/// and writes a byte into every 4 KiB of it, so the memory is really
/// committed:
///
/// ```wat
/// (module (memory 1) (start $hog)
///   (func $hog (local $i i32)
///     (drop (memory.grow (i32.const pages-1)))
///     (loop (i32.store8 (i32.shl (local.get $i) (i32.const 12)) (i32.const 1))
///           (br_if 0 (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
///                              (i32.const pages*16))))))
/// ```
fn memory_hog_module(pages: u32) -> Vec<u8> {
    let mut code = vec![0x01, 0x01, 0x7f]; // one local: i32
    code.push(0x41); // i32.const pages-1
    sleb(i64::from(pages) - 1, &mut code);
    code.extend_from_slice(&[0x40, 0x00, 0x1a]); // memory.grow 0; drop
    code.extend_from_slice(&[
        0x03, 0x40, // loop
        0x20, 0x00, 0x41, 0x0c, 0x74, // local.get 0; i32.const 12; i32.shl
        0x41, 0x01, 0x3a, 0x00, 0x00, // i32.const 1; i32.store8
        0x20, 0x00, 0x41, 0x01, 0x6a, 0x22, 0x00, // local.get 0; +1; local.tee 0
        0x41, // i32.const pages*16
    ]);
    sleb(i64::from(pages) * 16, &mut code);
    code.extend_from_slice(&[0x49, 0x0d, 0x00, 0x0b, 0x0b]); // lt_u; br_if 0; end; end
    let mut bodies = vec![0x01];
    uleb(code.len() as u64, &mut bodies);
    bodies.extend_from_slice(&code);

    let mut module = vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    section(1, &[0x01, 0x60, 0x00, 0x00], &mut module); // type: () -> ()
    section(3, &[0x01, 0x00], &mut module); // one function
    section(5, &[0x01, 0x00, 0x01], &mut module); // memory, min 1 page
    section(8, &[0x00], &mut module); // start: function 0
    section(10, &bodies, &mut module);
    module
}

/// `component` with `hogs` extra core instances appended, each of a module
/// that fills a memory of `memory_bytes` in its start function. The policy
/// itself is untouched; the extra instances run when it is instantiated.
fn with_memory_hogs(component: &[u8], hogs: u32, memory_bytes: usize) -> Vec<u8> {
    // Core modules already defined at the top level: the hog module's index.
    let mut depth = 0usize;
    let mut modules = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.expect("the base component parses") {
            wasmparser::Payload::ModuleSection { .. } => {
                if depth == 0 {
                    modules += 1;
                }
                depth += 1;
            }
            wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let pages = u32::try_from(memory_bytes >> 16).expect("the memory cap fits in 32-bit pages");
    let mut out = component.to_vec();
    section(1, &memory_hog_module(pages), &mut out); // core module section
    let mut instances = Vec::new();
    uleb(u64::from(hogs), &mut instances);
    for _ in 0..hogs {
        instances.push(0x00); // instantiate
        uleb(modules, &mut instances);
        instances.push(0x00); // no arguments
    }
    section(2, &instances, &mut out); // core instance section
    out
}

/// The memory cap bounds one linear memory, but a component may hold many
/// core instances, each with its own memory (componentize-py components
/// have a dozen). A good policy with eight extra instances that each fill a
/// memory up to the cap commits eight caps of host memory per decision
/// (measured with `lethe policy run` at the default 128 MiB cap: 1.07 GB
/// peak RSS, and the decision succeeded), and takes eight of the pool's
/// memory slots. The cap must bound the component's memory as a whole.
#[test]
fn many_memories_do_not_multiply_the_memory_cap() {
    const HOGS: u32 = 8;
    // A long deadline: committing the memory is slow, and only the memory
    // cap may be what stops this component.
    let limits = Limits {
        deadline_ms: 30_000,
        ..LIMITS
    };
    let seed = GOOD_SEEDS
        .iter()
        .find(|name| dist_path(name).exists())
        .unwrap_or_else(|| panic!("no good seed in policies/dist: run `bash policies/build.sh`"));
    let wasm = with_memory_hogs(&component(seed), HOGS, limits.memory_bytes);
    let start = Instant::now();
    let fault = match runtime().load_with_limits(&wasm, limits) {
        Err(LoadError::Describe(fault)) => fault,
        Err(other) => panic!("{seed} with memory hogs must fail on memory, got {other:?}"),
        Ok(policy) => match policy.decide(&request()) {
            Err(fault) => fault,
            Ok(_) => panic!(
                "{seed} with {HOGS} memory hogs loaded and decided, committing {HOGS} × the \
                 {} MiB memory cap: the cap must count every memory of the component",
                limits.memory_bytes >> 20
            ),
        },
    };
    assert_eq!(
        fault,
        PolicyFault::MemoryCap {
            cap: limits.memory_bytes
        }
    );
    assert_within("memory hogs", start.elapsed(), LIMITS.deadline());
    good_policy_still_decides("a component with memory hogs was refused");
}

/// The `key=value` fields of `hostile-ambient`'s report.
fn ambient_report(decision: &Decision) -> std::collections::BTreeMap<String, String> {
    let lethe::contract::Outcome::Deny { code, message } = &decision.outcome else {
        panic!(
            "hostile-ambient reports in a denial, got {:?}",
            decision.outcome
        )
    };
    assert_eq!(code, "ambient-report");
    message
        .split(' ')
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn ambient_authority_is_empty_and_decisions_replay() {
    let policy = load_hostile("hostile-ambient", LIMITS);
    let first = policy
        .decide(&request())
        .unwrap_or_else(|fault| panic!("hostile-ambient decides: {fault}"));
    let report = ambient_report(&first);
    let expect = [
        ("env", "0"),
        ("args", "0"),
        ("passwd", "denied"),
        ("root", "denied"),
        ("wall", "0"),
        ("mono", "0"),
    ];
    for (key, value) in expect {
        assert_eq!(
            report.get(key).map(String::as_str),
            Some(value),
            "hostile-ambient saw {key}; full report: {report:?}"
        );
    }
    // Randomness is a fixed sequence, so a decision replays identically,
    // in a fresh sandbox and in a batch session alike.
    let again = policy
        .decide(&request())
        .unwrap_or_else(|fault| panic!("hostile-ambient decides again: {fault}"));
    assert_eq!(ambient_report(&again), report, "a second decision differs");
    let in_session = policy
        .session()
        .decide(&request())
        .unwrap_or_else(|fault| panic!("hostile-ambient decides in a session: {fault}"));
    assert_eq!(
        ambient_report(&in_session),
        report,
        "a session decision differs"
    );
    good_policy_still_decides("hostile-ambient looked around");
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

#[test]
fn describe_that_never_returns_is_stopped_at_load_by_fuel() {
    let limits = Limits {
        fuel: 20_000_000,
        deadline_ms: 60_000,
        ..LIMITS
    };
    let start = Instant::now();
    let result = runtime().load_with_limits(&component("hostile-describe-loop"), limits);
    let elapsed = start.elapsed();
    match result {
        Ok(policy) => panic!("hostile-describe-loop loaded as {:?}", policy.info()),
        Err(LoadError::Describe(fault)) => {
            assert_eq!(fault, PolicyFault::OutOfFuel { budget: 20_000_000 })
        }
        Err(other) => panic!("hostile-describe-loop must fail in describe(), got {other:?}"),
    }
    assert_within("hostile-describe-loop (fuel)", elapsed, Duration::ZERO);
    good_policy_still_decides("hostile-describe-loop was refused");
}

#[test]
fn describe_that_never_returns_is_stopped_at_load_by_the_deadline() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline_ms: 300,
        ..LIMITS
    };
    let start = Instant::now();
    let result = runtime().load_with_limits(&component("hostile-describe-loop"), limits);
    let elapsed = start.elapsed();
    match result {
        Ok(policy) => panic!("hostile-describe-loop loaded as {:?}", policy.info()),
        Err(LoadError::Describe(fault)) => {
            assert_eq!(fault, PolicyFault::Deadline { deadline_ms: 300 })
        }
        Err(other) => panic!("hostile-describe-loop must fail in describe(), got {other:?}"),
    }
    assert_within(
        "hostile-describe-loop (deadline)",
        elapsed,
        limits.deadline(),
    );
    good_policy_still_decides("hostile-describe-loop was refused");
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
    // A component header alone is a valid, empty component: it exports
    // nothing, so it is the wrong world.
    let header = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    let err = load_error("an empty component", &header);
    assert!(
        matches!(err, LoadError::WrongWorld(_)),
        "an empty component must be refused as the wrong world, got {err:?}"
    );
    // Random bytes behind a valid component header get past the cheap check
    // and must fail in the parser or compiler, still as a typed error.
    for len in [1usize, 16, 4096] {
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
