//! The decision benchmark of the policy runtime (issue 2, item 8).
//!
//! ```text
//! cargo bench -p lethe --bench decide              # about 2 minutes
//! cargo bench -p lethe --bench decide -- --quick   # about 30 s
//! cargo bench -p lethe --bench decide -- --keep-resident 65536  # runtime rows at 64 KiB
//! cargo bench -p lethe --bench decide -- --only runtime,floor
//! cargo bench -p lethe --bench decide -- --spin 10 # a steady loop for perf
//! cargo bench -p lethe --bench decide -- --spin 10 --spin-policy transfer-and-scrub
//! cargo bench -p lethe --bench decide -- --spin 10 --spin-session  # reused instance
//! cargo bench -p lethe --bench decide -- --rust-policy other-build.wasm
//! ```
//!
//! Sections (`--only` takes a comma-separated subset):
//! - `runtime`: lethe's public API end to end, per policy (Rust, Python,
//!   JavaScript): a fresh instance per decision (`Policy::decide`) and one
//!   instance reused across a batch (`Policy::session`), on 1 and 2 threads
//!   sharing one `Runtime` and one `Policy`.
//! - `floor`: plain wasmtime with no lethe code: a minimal component built
//!   here from WAT and the Rust policy's own `decide` (through bindings
//!   generated here), each on `Engine::default()` (on-demand allocator, no
//!   fuel, no epochs, no limits) and on the pooling engine lethe builds.
//! - `tuning`: the pooling allocator's memory-reset options (keep-resident
//!   0 / 64 KiB / 1 MiB × `PAGEMAP_SCAN` on/off), then fuel, epochs and
//!   copy-on-write memory images on/off, on an engine built here the way
//!   `lethe::policy::engine::build` builds it but with those knobs open; then
//!   the real runtime at several keep-resident sizes for every policy (the
//!   one knob `PoolConfig` exposes). CPU time is split into user and system
//!   time and minor page faults are counted, because memory reset is kernel
//!   work that per-decision wall time alone hides.
//! - `breakdown`: where a fresh-instance Rust decision spends its time, stage
//!   by stage, and what lethe and the request's size add on top.
//!
//! A bench binary rather than criterion because the targets are about
//! per-decision percentiles and aggregate throughput of threads that run at
//! the same time against one shared runtime: every decision is timed on its
//! own, and the threads start and stop together.
//!
//! The machine is shared, so the load average is printed with the figures.

use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lethe::contract::{Outcome, Request};
use lethe::policy::{Limits, Policy, PoolConfig, Runtime, RuntimeConfig};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
    Store,
};

/// Decisions per session in the batch mode; the first one of each batch
/// instantiates, the rest reuse the instance.
const BATCH: usize = 1000;
/// The Rust policy every Rust-only section uses.
const RUST_POLICY: &str = "support-only";
/// Targets from the issue, for the Rust policy.
const TARGET_FRESH_P50_NS: u64 = 5_000;
const TARGET_FRESH_RATE_2T: f64 = 200_000.0;
const TARGET_BATCH_P50_NS: u64 = 1_500;

/// Bindings for the Rust policy's world, generated here so the floor and
/// tuning sections can drive it through plain wasmtime with no lethe code in
/// between.
mod replica {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "deletion-policy",
    });
}

use replica::exports::lethe::policy::policy as w;

/// wasmtime 48 has its own error type; this turns it into an `anyhow` one.
trait Wt<T> {
    fn wt(self) -> Result<T>;
}

impl<T> Wt<T> for wasmtime::Result<T> {
    fn wt(self) -> Result<T> {
        self.map_err(|e| anyhow::anyhow!("{e:?}"))
    }
}

fn main() -> Result<()> {
    let opts = Opts::parse()?;
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/dist");
    let subjects = Subject::all(&dist, opts.rust_policy.as_deref());
    for s in &subjects {
        if !s.path.is_file() {
            bail!(
                "{} is missing: build the policies first with `bash policies/build.sh` \
                 (from the repository root)",
                s.path.display()
            );
        }
    }
    let rust = Subject::rust(&subjects)?;
    let rust_wasm = std::fs::read(&rust.path)?;

    if let Some(secs) = opts.spin {
        let name = opts.spin_policy.as_deref().unwrap_or(RUST_POLICY);
        let subject = subjects
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("--spin-policy: no bench policy named `{name}`"))?;
        return spin(&opts, subject, Duration::from_secs_f64(secs));
    }

    println!("# lethe decision benchmark");
    println!(
        "{} mode, window {:.2} s per row after {:.2} s warm-up; {} CPUs; load average at start: {}",
        if opts.quick { "quick" } else { "full" },
        opts.window.as_secs_f64(),
        opts.warmup().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!(
        "p50/p99 are per decision, per thread; decisions/s is the sum over threads; \
         scaling = 2-thread rate / 1-thread rate.\nuser/sys µs/dec = process CPU time per decision \
         (getrusage); CPU-bound/s = threads × 1 s / (user + sys per decision), the rate if the \
         threads had their cores to themselves: on a shared machine it separates contention \
         inside lethe (CPU per decision rising with threads) from other processes' load. \
         blocked/1k = voluntary context switches per 1000 decisions (a thread waiting on a lock \
         or the kernel; the epoch ticker alone adds ~1000 a second)."
    );
    let started = Instant::now();
    let mut results = Results::default();

    if opts.has(Section::Runtime) {
        runtime_section(&opts, &subjects, &mut results)?;
    }
    if opts.has(Section::Floor) {
        floor_section(&opts, &rust_wasm)?;
    }
    if opts.has(Section::Tuning) {
        tuning_section(&opts, &subjects, &rust_wasm)?;
    }
    if opts.has(Section::Breakdown) {
        breakdown_section(&opts, rust, &rust_wasm)?;
    }
    if opts.has(Section::Runtime) {
        results.print_targets();
    }
    println!(
        "\ntotal {:.0} s; load average at end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Options

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Runtime,
    Floor,
    Tuning,
    Breakdown,
}

struct Opts {
    quick: bool,
    window: Duration,
    sections: Vec<Section>,
    spin: Option<f64>,
    /// Another build of the Rust policy to measure in its place (same rules,
    /// e.g. other compiler settings).
    rust_policy: Option<PathBuf>,
    /// Which policy `--spin` runs (default: the Rust one).
    spin_policy: Option<String>,
    /// `--spin` reuses one instance (a session) instead of a fresh one.
    spin_session: bool,
    /// `PoolConfig::keep_resident_bytes` for the runtime section and
    /// `--spin` (default: lethe's default).
    keep_resident: Option<usize>,
}

impl Opts {
    fn parse() -> Result<Opts> {
        let mut quick = false;
        let mut sections = vec![
            Section::Runtime,
            Section::Floor,
            Section::Tuning,
            Section::Breakdown,
        ];
        let mut spin = None;
        let mut rust_policy = None;
        let mut spin_policy = None;
        let mut spin_session = false;
        let mut keep_resident = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                // `cargo bench` passes `--bench` to every bench binary.
                "--bench" => {}
                "--only" => {
                    let list = args.next().context("--only needs a section list")?;
                    sections = list
                        .split(',')
                        .map(|s| match s.trim() {
                            "runtime" => Ok(Section::Runtime),
                            "floor" => Ok(Section::Floor),
                            "tuning" => Ok(Section::Tuning),
                            "breakdown" => Ok(Section::Breakdown),
                            other => bail!(
                                "unknown section `{other}` (runtime, floor, tuning, breakdown)"
                            ),
                        })
                        .collect::<Result<_>>()?;
                }
                "--spin" => {
                    let secs = args.next().context("--spin needs a number of seconds")?;
                    spin = Some(secs.parse().context("--spin needs a number of seconds")?);
                }
                "--spin-session" => spin_session = true,
                "--spin-policy" => {
                    spin_policy = Some(args.next().context("--spin-policy needs a policy name")?);
                }
                "--keep-resident" => {
                    let bytes = args.next().context("--keep-resident needs a byte count")?;
                    keep_resident = Some(bytes.parse().context("--keep-resident needs a byte count")?);
                }
                "--rust-policy" => {
                    let path = args.next().context("--rust-policy needs a .wasm path")?;
                    rust_policy = Some(PathBuf::from(path));
                }
                other => bail!(
                    "unknown argument `{other}` (--quick, --only LIST, --spin SECS, --spin-policy NAME, \
                     --spin-session, --rust-policy WASM, --keep-resident BYTES)"
                ),
            }
        }
        let window = if quick {
            Duration::from_millis(300)
        } else {
            Duration::from_millis(1200)
        };
        Ok(Opts {
            quick,
            window,
            sections,
            spin,
            rust_policy,
            spin_policy,
            spin_session,
            keep_resident,
        })
    }

    /// The runtime configuration of the runtime section and `--spin`.
    fn runtime_config(&self) -> RuntimeConfig {
        let default = PoolConfig::default();
        RuntimeConfig {
            pool: PoolConfig {
                keep_resident_bytes: self.keep_resident.unwrap_or(default.keep_resident_bytes),
                ..default
            },
            cache_dir: RuntimeConfig::default_cache_dir(),
            ..RuntimeConfig::default()
        }
    }

    fn has(&self, s: Section) -> bool {
        self.sections.contains(&s)
    }

    fn warmup(&self) -> Duration {
        self.window / 5
    }

    /// Rows of the tuning section are many; they get a shorter window.
    fn tuning_window(&self) -> Duration {
        self.window * 2 / 3
    }
}

// ---------------------------------------------------------------------------
// Measurement

/// One row's figures.
#[derive(Debug, Clone, Copy)]
struct Stats {
    p50_ns: u64,
    p99_ns: u64,
    /// Decisions per second, summed over threads.
    rate: f64,
    /// CPU time per decision (all threads of the process), microseconds.
    user_us: f64,
    sys_us: f64,
    /// Minor page faults per decision.
    faults: f64,
    /// Voluntary context switches (a thread blocked, e.g. on a lock) per
    /// 1000 decisions; the epoch ticker adds about 1000 a second.
    blocked: f64,
}

/// Runs `step` on `threads` threads at once, each with its own state from
/// `make`: a warm-up, then all threads start together and run for `window`,
/// timing every step. CPU time and page faults are taken for the process
/// over the measured window.
fn measure<S>(
    threads: usize,
    warmup: Duration,
    window: Duration,
    make: &(dyn Fn() -> Result<S> + Sync),
    step: &(dyn Fn(&mut S) -> Result<()> + Sync),
) -> Result<Stats> {
    let barrier = Barrier::new(threads + 1);
    let (per_thread, usage) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<(Vec<u32>, Duration)> {
                    let prepared = make().and_then(|mut state| {
                        let until = Instant::now() + warmup;
                        while Instant::now() < until {
                            step(&mut state)?;
                        }
                        Ok(state)
                    });
                    // Reached even on failure, so no thread waits forever.
                    barrier.wait();
                    let mut state = prepared?;
                    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
                    let start = Instant::now();
                    let end = start + window;
                    loop {
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        step(&mut state)?;
                        let ns = t0.elapsed().as_nanos();
                        lat.push(u32::try_from(ns).unwrap_or(u32::MAX));
                    }
                    Ok((lat, start.elapsed()))
                })
            })
            .collect();
        barrier.wait();
        let before = Usage::now();
        let per_thread: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a bench thread panicked")))
            })
            .collect();
        (per_thread, (before, Usage::now()))
    });
    summarise(per_thread, usage)
}

fn summarise(
    per_thread: Vec<Result<(Vec<u32>, Duration)>>,
    (before, after): (Usage, Usage),
) -> Result<Stats> {
    let mut all = Vec::new();
    let mut rate = 0.0;
    for r in per_thread {
        let (lat, elapsed) = r?;
        rate += lat.len() as f64 / elapsed.as_secs_f64();
        all.extend(lat);
    }
    if all.is_empty() {
        bail!("no decision completed in the window");
    }
    all.sort_unstable();
    let pct = |p: f64| u64::from(all[((all.len() - 1) as f64 * p).round() as usize]);
    let n = all.len() as f64;
    let user_us = after.user_us.saturating_sub(before.user_us) as f64 / n;
    let sys_us = after.sys_us.saturating_sub(before.sys_us) as f64 / n;
    let faults = after.minflt.saturating_sub(before.minflt) as f64 / n;
    let blocked = after.nvcsw.saturating_sub(before.nvcsw) as f64 * 1000.0 / n;
    Ok(Stats {
        p50_ns: pct(0.50),
        p99_ns: pct(0.99),
        rate,
        user_us,
        sys_us,
        faults,
        blocked,
    })
}

/// Process CPU time and minor page faults (`getrusage`).
#[derive(Debug, Clone, Copy)]
struct Usage {
    user_us: u64,
    sys_us: u64,
    minflt: u64,
    nvcsw: u64,
}

impl Usage {
    fn now() -> Usage {
        // SAFETY: `getrusage` only writes the struct we hand it; a zeroed
        // `rusage` is a valid value of that plain C struct.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut ru);
            ru
        };
        let us = |t: libc::timeval| (t.tv_sec as u64) * 1_000_000 + t.tv_usec as u64;
        Usage {
            user_us: us(ru.ru_utime),
            sys_us: us(ru.ru_stime),
            minflt: ru.ru_minflt as u64,
            nvcsw: ru.ru_nvcsw as u64,
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn fmt_ns(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 10_000 {
        format!("{:.0} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} µs", ns as f64 / 1e3)
    }
}

fn fmt_rate(r: f64) -> String {
    let n = r.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints rows of one table: a label, then 1-thread and 2-thread figures.
struct Table {
    with_usage: bool,
}

impl Table {
    fn header(&self, title: &str, label: &str) {
        println!("\n## {title}\n");
        let usage = if self.with_usage {
            " | user µs/dec | sys µs/dec | faults/dec | blocked/1k | CPU-bound/s"
        } else {
            ""
        };
        println!("| {label:<64} | thr | p50       | p99       | decisions/s | scaling{usage} |");
        let usage_sep = if self.with_usage {
            "|-------------|------------|------------|------------|------------"
        } else {
            ""
        };
        println!(
            "|{}|-----|-----------|-----------|-------------|---------{usage_sep}|",
            "-".repeat(66)
        );
    }

    fn row(&self, label: &str, threads: usize, s: &Stats, one_thread: Option<&Stats>) {
        let scaling = match (threads, one_thread) {
            (1, _) => "1.00×".to_string(),
            (_, Some(one)) => format!("{:.2}×", s.rate / one.rate),
            _ => "-".into(),
        };
        let usage = if self.with_usage {
            format!(
                " | {:>11.2} | {:>10.2} | {:>10.2} | {:>10.1} | {:>11}",
                s.user_us,
                s.sys_us,
                s.faults,
                s.blocked,
                fmt_rate(threads as f64 * 1e6 / (s.user_us + s.sys_us))
            )
        } else {
            String::new()
        };
        println!(
            "| {label:<64} | {threads:>3} | {:>9} | {:>9} | {:>11} | {scaling:>7}{usage} |",
            fmt_ns(s.p50_ns),
            fmt_ns(s.p99_ns),
            fmt_rate(s.rate),
        );
    }

    /// Measures and prints a label on 1 and 2 threads; returns both.
    fn measure_pair<S>(
        &self,
        opts: &Opts,
        window: Duration,
        label: &str,
        make: &(dyn Fn() -> Result<S> + Sync),
        step: &(dyn Fn(&mut S) -> Result<()> + Sync),
    ) -> Result<(Stats, Stats)> {
        let one = measure(1, opts.warmup(), window, make, step)
            .with_context(|| format!("{label}, 1 thread"))?;
        self.row(label, 1, &one, None);
        let two = measure(2, opts.warmup(), window, make, step)
            .with_context(|| format!("{label}, 2 threads"))?;
        self.row(label, 2, &two, Some(&one));
        Ok((one, two))
    }
}

// ---------------------------------------------------------------------------
// Section: the runtime through lethe's public API

/// A seed policy under test and the request it is asked about.
struct Subject {
    name: &'static str,
    path: PathBuf,
    language: &'static str,
    /// An allow with a non-trivial plan, so lifting the result does real work.
    request: &'static str,
    expect: &'static str,
}

impl Subject {
    /// The three policies in `dist`, the Rust one optionally from elsewhere.
    fn all(dist: &std::path::Path, rust_override: Option<&std::path::Path>) -> Vec<Subject> {
        let path = |name: &str| dist.join(format!("{name}.wasm"));
        vec![
            Subject {
                name: RUST_POLICY,
                path: rust_override.map_or_else(|| path(RUST_POLICY), |p| p.to_owned()),
                language: "Rust",
                // A support agent deletes a member: cascade plan, one log line.
                request: r#"{"action":"delete","now":1795000000,"bulk":false,
                    "subject":{"id":"u-42","state":"active","roles":["member"],"permissions":[],
                        "domain":"acme.example","created_at":1700000000,"last_login_at":1790000000,
                        "attributes":{"platform_count":"1"}},
                    "actor":{"kind":"support","id":"s-7"},
                    "holdings":[{"category":"contacts","total":3,"open":0},
                        {"category":"campaigns","total":2,"open":1},
                        {"category":"assets","total":5,"open":0},
                        {"category":"deals","total":4,"open":2}]}"#,
                expect: "allow",
            },
            Subject {
                name: "transfer-and-scrub",
                path: path("transfer-and-scrub"),
                language: "Python",
                // An account-settings admin deletes a deactivated user and
                // hands their open items to u-7.
                request: r#"{"action":"delete","now":1795000000,"bulk":false,"transfer_to":"u-7",
                    "subject":{"id":"u-42","state":"deactivated","roles":["member"],"permissions":[],
                        "domain":"acme.example","created_at":1700000000,"last_login_at":1790000000},
                    "actor":{"kind":"tenant_user","id":"u-1","roles":["admin"],
                        "permissions":["account_settings"],"domain":"acme.example"},
                    "holdings":[{"category":"deals","total":12,"open":5},
                        {"category":"contacts","total":40,"open":40},
                        {"category":"products","total":3,"open":3},
                        {"category":"leads","total":7,"open":2},
                        {"category":"activities","total":30,"open":4},
                        {"category":"notes","total":9,"open":0}]}"#,
                expect: "allow",
            },
            Subject {
                name: "cohort-cleanup",
                path: path("cohort-cleanup"),
                language: "JavaScript",
                // A platform admin deletes a mentee linked to one platform.
                request: r#"{"action":"delete","now":1795000000,"bulk":false,
                    "subject":{"id":"u-42","state":"active","roles":["mentee"],"permissions":[],
                        "domain":"cohort.example","created_at":1700000000,"last_login_at":1790000000,
                        "attributes":{"platform_count":"1"}},
                    "actor":{"kind":"tenant_user","id":"u-1","roles":["admin"],
                        "domain":"cohort.example"},
                    "holdings":[{"category":"mentoring_matches","total":3,"open":1},
                        {"category":"messages","total":120,"open":0},
                        {"category":"assets","total":2,"open":0}]}"#,
                expect: "allow",
            },
        ]
    }

    fn rust(subjects: &[Subject]) -> Result<&Subject> {
        subjects
            .iter()
            .find(|s| s.name == RUST_POLICY)
            .context("the Rust subject is missing")
    }

    fn request(&self) -> Result<Request> {
        serde_json::from_str(self.request)
            .with_context(|| format!("the bench request for {} is invalid", self.name))
    }
}

/// The 1- and 2-thread figures of the runtime table, for the target check.
#[derive(Default)]
struct Results {
    rust_fresh: Option<(Stats, Stats)>,
    rust_batch: Option<(Stats, Stats)>,
}

impl Results {
    fn print_targets(&self) {
        let (Some(fresh), Some(batch)) = (self.rust_fresh, self.rust_batch) else {
            return;
        };
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!("\n## Targets (Rust policy, issue 2 item 8)\n");
        println!(
            "- fresh instance p50 ≤ {}: {} ({})",
            fmt_ns(TARGET_FRESH_P50_NS),
            fmt_ns(fresh.0.p50_ns),
            verdict(fresh.0.p50_ns <= TARGET_FRESH_P50_NS)
        );
        println!(
            "- fresh instance ≥ {}/s on 2 threads, scaling with threads: {}/s, {:.2}× ({})",
            fmt_rate(TARGET_FRESH_RATE_2T),
            fmt_rate(fresh.1.rate),
            fresh.1.rate / fresh.0.rate,
            verdict(fresh.1.rate >= TARGET_FRESH_RATE_2T && fresh.1.rate > fresh.0.rate)
        );
        println!(
            "- batch p50 ≤ {}: {} ({})",
            fmt_ns(TARGET_BATCH_P50_NS),
            fmt_ns(batch.0.p50_ns),
            verdict(batch.0.p50_ns <= TARGET_BATCH_P50_NS)
        );
    }
}

fn bench_runtime(config: RuntimeConfig) -> Result<Runtime> {
    Runtime::new(config).context("cannot build the policy runtime")
}

/// Loads a policy and checks it decides the bench request as expected, so the
/// bench never times a fault path.
fn load_checked(runtime: &Runtime, s: &Subject) -> Result<Policy> {
    let t = Instant::now();
    let policy = runtime
        .load_file(&s.path)
        .with_context(|| format!("cannot load {}", s.name))?;
    let req = s.request()?;
    let decision = policy
        .decide(&req)
        .with_context(|| format!("{} faulted on the bench request", s.name))?;
    if decision.outcome.kind() != s.expect {
        bail!(
            "{} decided {} instead of {} on the bench request: {decision:?}",
            s.name,
            decision.outcome.kind(),
            s.expect
        );
    }
    if matches!(decision.outcome, Outcome::Allow { ref plan } if plan.categories.is_empty()) {
        bail!(
            "{}: the bench request should produce a plan with categories",
            s.name
        );
    }
    eprintln!(
        "loaded {} ({}) in {:.2} s, compiled code: {:?}, fuel per decision: {}",
        s.name,
        s.language,
        t.elapsed().as_secs_f64(),
        policy.cache_outcome(),
        decision.fuel_used
    );
    Ok(policy)
}

fn fresh_step<'a>(
    policy: &'a Policy,
    req: &'a Request,
) -> impl Fn(&mut ()) -> Result<()> + Sync + 'a {
    move |_| {
        policy.decide(req)?;
        Ok(())
    }
}

/// A session and how many decisions it has made.
struct Batch<'p> {
    session: lethe::policy::Session<'p>,
    done: usize,
}

fn batch_step<'a>(
    policy: &'a Policy,
    req: &'a Request,
) -> impl Fn(&mut Batch<'a>) -> Result<()> + Sync + 'a {
    move |b| {
        if b.done == BATCH {
            b.session = policy.session();
            b.done = 0;
        }
        b.session.decide(req)?;
        b.done += 1;
        Ok(())
    }
}

fn runtime_section(opts: &Opts, subjects: &[Subject], results: &mut Results) -> Result<()> {
    let config = opts.runtime_config();
    let keep = config.pool.keep_resident_bytes;
    let runtime = bench_runtime(config)?;
    let table = Table { with_usage: true };
    let mut loaded = Vec::new();
    for s in subjects {
        loaded.push((s, load_checked(&runtime, s)?, s.request()?));
    }
    table.header(
        &format!(
            "Runtime: lethe::policy (pooling, keep-resident {} KiB, fuel, epoch deadline, limits); batch = {BATCH} decisions per session",
            keep >> 10
        ),
        "policy / mode",
    );
    for (s, policy, req) in &loaded {
        let label = format!("{} ({}) fresh instance", s.name, s.language);
        let fresh = table.measure_pair(
            opts,
            opts.window,
            &label,
            &|| Ok(()),
            &fresh_step(policy, req),
        )?;
        let label = format!("{} ({}) batch session", s.name, s.language);
        let batch = table.measure_pair(
            opts,
            opts.window,
            &label,
            &|| {
                Ok(Batch {
                    session: policy.session(),
                    done: 0,
                })
            },
            &batch_step(policy, req),
        )?;
        if s.name == RUST_POLICY {
            results.rust_fresh = Some(fresh);
            results.rust_batch = Some(batch);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The replica: the Rust policy driven through plain wasmtime

/// Engine settings the floor and tuning sections vary.
#[derive(Debug, Clone, Copy)]
struct Knobs {
    /// Pooling allocator as lethe configures it; `false` = `Engine::default()`
    /// with nothing else (on-demand allocator, no fuel, no epochs).
    pooling: bool,
    keep_resident: usize,
    pagemap_scan: bool,
    fuel: bool,
    /// Epoch interruption (the wall-clock deadline).
    epoch: bool,
    /// Copy-on-write initialisation of linear memory from the module image.
    cow: bool,
    /// Memory limiter, epoch deadline, hostcall fuel: the per-store limits.
    limits: bool,
}

impl Knobs {
    /// `Engine::default()`: the floor.
    const DEFAULT: Knobs = Knobs {
        pooling: false,
        keep_resident: 0,
        pagemap_scan: false,
        fuel: false,
        epoch: false,
        cow: true,
        limits: false,
    };

    /// What `lethe::policy::engine::build` does today.
    fn lethe() -> Knobs {
        Knobs {
            pooling: true,
            keep_resident: PoolConfig::default().keep_resident_bytes,
            pagemap_scan: true,
            fuel: true,
            epoch: true,
            cow: true,
            limits: true,
        }
    }

    fn label(&self) -> String {
        if !self.pooling {
            return "Engine::default()".into();
        }
        let on = |b: bool| if b { "on" } else { "off" };
        let mut label = format!(
            "keep {} KiB, pagemap {}",
            self.keep_resident >> 10,
            on(self.pagemap_scan)
        );
        if !self.fuel {
            label.push_str(", fuel off");
        }
        if !self.epoch {
            label.push_str(", epoch off");
        }
        if !self.cow {
            label.push_str(", CoW off");
        }
        label
    }

    /// The engine, built as `lethe::policy::engine::build` builds it with
    /// these knobs turned.
    fn engine(&self) -> Result<Engine> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        if !self.pooling {
            return Engine::new(&config).wt();
        }
        let limits = Limits::default();
        let pool = PoolConfig::default();
        config.consume_fuel(self.fuel);
        config.epoch_interruption(self.epoch);
        config.memory_init_cow(self.cow);
        config.max_wasm_stack(512 * 1024);
        let mut pooling = PoolingAllocationConfig::new();
        let instances = pool.instances.max(1);
        let per_component = pool.core_instances_per_component.max(1);
        pooling
            .total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(per_component))
            .max_core_instances_per_component(per_component)
            .total_memories(instances.saturating_mul(4))
            .total_tables(instances.saturating_mul(per_component))
            .max_memories_per_component(per_component)
            .max_tables_per_component(per_component)
            .max_memory_size(limits.memory_bytes)
            .linear_memory_keep_resident(self.keep_resident)
            .table_keep_resident(self.keep_resident)
            .pagemap_scan(if self.pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        Engine::new(&config).wt()
    }
}

/// The replica's store data: what lethe's `Sandbox` does on the hot path
/// (memory cap, counted log lines), without WASI.
struct Guest {
    memory_cap: usize,
    log_lines: u32,
}

impl ResourceLimiter for Guest {
    fn memory_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.memory_cap)
    }
    fn table_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired.saturating_mul(8) <= self.memory_cap)
    }
}

impl replica::lethe::policy::host::Host for Guest {
    fn log(&mut self, level: replica::lethe::policy::host::LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines <= 64 {
            tracing::debug!(target: "lethe::guest", ?level, "{message}");
        }
    }
}

/// The Rust policy, pre-linked on an engine with the given knobs.
struct Replica {
    engine: Engine,
    pre: replica::DeletionPolicyPre<Guest>,
    knobs: Knobs,
}

impl Replica {
    fn new(knobs: Knobs, wasm: &[u8]) -> Result<Replica> {
        let engine = knobs.engine()?;
        let component = Component::new(&engine, wasm).wt()?;
        let mut linker = Linker::new(&engine);
        replica::DeletionPolicy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).wt()?;
        // A Rust wasip2 guest imports stdio it only touches when it panics.
        linker.define_unknown_imports_as_traps(&component).wt()?;
        let pre = replica::DeletionPolicyPre::new(linker.instantiate_pre(&component).wt()?).wt()?;
        Ok(Replica { engine, pre, knobs })
    }

    fn store(&self) -> Result<Store<Guest>> {
        let limits = Limits::default();
        let mut store = Store::new(
            &self.engine,
            Guest {
                memory_cap: limits.memory_bytes,
                log_lines: 0,
            },
        );
        if self.knobs.fuel {
            store.set_fuel(limits.fuel).wt()?;
        }
        if self.knobs.epoch {
            // No ticker runs here, so the deadline never fires; setting it
            // costs what it costs lethe.
            store.set_epoch_deadline(1 << 40);
        }
        if self.knobs.limits {
            store.limiter(|g| g as &mut dyn ResourceLimiter);
            store.set_hostcall_fuel(limits.output_bytes);
        }
        Ok(store)
    }

    fn instantiate(&self) -> Result<(Store<Guest>, replica::DeletionPolicy)> {
        let mut store = self.store()?;
        let bindings = self.pre.instantiate(&mut store).wt()?;
        Ok((store, bindings))
    }

    /// Re-arms a reused store the way a lethe session does.
    fn rearm(&self, store: &mut Store<Guest>) -> Result<()> {
        if self.knobs.fuel {
            store.set_fuel(Limits::default().fuel).wt()?;
        }
        if self.knobs.epoch {
            store.set_epoch_deadline(1 << 40);
        }
        store.data_mut().log_lines = 0;
        Ok(())
    }
}

fn decide(
    store: &mut Store<Guest>,
    bindings: &replica::DeletionPolicy,
    req: &w::Request,
) -> Result<()> {
    let d = bindings
        .lethe_policy_policy()
        .call_decide(store, req)
        .wt()?;
    match d.outcome {
        w::Outcome::Allow(plan) if !plan.categories.is_empty() => Ok(()),
        other => bail!("the replica decided {other:?}, expected an allow with a plan"),
    }
}

/// The Rust bench request, in the WIT types of the replica's bindings.
fn replica_request() -> w::Request {
    let s = |v: &str| v.to_string();
    w::Request {
        action: w::Action::Delete,
        subject: w::Subject {
            id: s("u-42"),
            state: w::LifecycleState::Active,
            roles: vec![s("member")],
            permissions: vec![],
            domain: s("acme.example"),
            created_at: 1_700_000_000,
            last_login_at: Some(1_790_000_000),
            deleted_at: None,
            attributes: vec![w::Attribute {
                key: s("platform_count"),
                value: s("1"),
            }],
        },
        actor: w::Actor {
            kind: w::ActorKind::Support,
            id: s("s-7"),
            roles: vec![],
            permissions: vec![],
            domain: String::new(),
            attributes: vec![],
        },
        holdings: [
            ("contacts", 3, 0),
            ("campaigns", 2, 1),
            ("assets", 5, 0),
            ("deals", 4, 2),
        ]
        .into_iter()
        .map(|(c, total, open)| w::Holding {
            category: s(c),
            total,
            open,
        })
        .collect(),
        transfer_to: None,
        reason: None,
        bulk: false,
        now: 1_795_000_000,
    }
}

/// A replica instance reused across decisions.
struct Warm {
    store: Store<Guest>,
    bindings: replica::DeletionPolicy,
}

/// Measures the replica fresh and reused, 1 and 2 threads.
fn replica_rows(
    table: &Table,
    opts: &Opts,
    window: Duration,
    label: &str,
    replica: &Replica,
    reused: bool,
) -> Result<(Stats, Stats)> {
    let req = replica_request();
    let fresh = table.measure_pair(opts, window, &format!("{label} fresh"), &|| Ok(()), &|_| {
        let (mut store, bindings) = replica.instantiate()?;
        decide(&mut store, &bindings, &req)
    })?;
    if reused {
        table.measure_pair(
            opts,
            window,
            &format!("{label} reused"),
            &|| {
                let (store, bindings) = replica.instantiate()?;
                Ok(Warm { store, bindings })
            },
            &|warm: &mut Warm| {
                replica.rearm(&mut warm.store)?;
                decide(&mut warm.store, &warm.bindings, &req)
            },
        )?;
    }
    Ok(fresh)
}

// ---------------------------------------------------------------------------
// Section: the bare-wasmtime floor

/// How many imported functions the floor prices: about what a Rust wasip2
/// policy imports (19 WASI functions and `log`).
const IMPORTS_PRICED: usize = 20;

/// The minimal component's export.
type RunFunc = wasmtime::component::TypedFunc<(), (u32,)>;

/// The smallest useful component: one page of memory (so instantiation has a
/// memory to set up and reset, as every real policy does) and one export
/// returning a byte read from it; optionally with `imports` host functions
/// lowered into its core module, the way a Rust wasip2 policy imports about
/// twenty WASI functions it only calls when it panics.
fn minimal_wat(imports: usize) -> String {
    let names: Vec<String> = (0..imports).map(|i| format!("f{i}")).collect();
    let mut wat = String::from("(component\n");
    if imports > 0 {
        wat.push_str("  (import \"host\" (instance $h\n");
        for n in &names {
            wat.push_str(&format!("    (export \"{n}\" (func))\n"));
        }
        wat.push_str("  ))\n");
        for n in &names {
            wat.push_str(&format!("  (alias export $h \"{n}\" (func $h{n}))\n"));
            wat.push_str(&format!("  (core func $c{n} (canon lower (func $h{n})))\n"));
        }
        wat.push_str("  (core instance $imports\n");
        for n in &names {
            wat.push_str(&format!("    (export \"{n}\" (func $c{n}))\n"));
        }
        wat.push_str("  )\n");
    }
    wat.push_str("  (core module $m\n");
    for n in &names {
        wat.push_str(&format!("    (import \"host\" \"{n}\" (func))\n"));
    }
    wat.push_str(
        r#"    (memory (export "memory") 1)
    (data (i32.const 0) "\2a")
    (func (export "run") (result i32)
      i32.const 0
      i32.load8_u))
"#,
    );
    if imports > 0 {
        wat.push_str("  (core instance $i (instantiate $m (with \"host\" (instance $imports))))\n");
    } else {
        wat.push_str("  (core instance $i (instantiate $m))\n");
    }
    wat.push_str("  (func (export \"run\") (result u32) (canon lift (core func $i \"run\"))))\n");
    wat
}

fn floor_section(opts: &Opts, rust_wasm: &[u8]) -> Result<()> {
    let table = Table { with_usage: true };
    table.header(
        "Floor: plain wasmtime. Engine::default() = on-demand allocator, no fuel, no epoch, no limits; \
         lethe settings = the pooling engine lethe builds, fuel and epoch on, no lethe code",
        "component / engine / mode",
    );
    let wasm = wat::parse_str(minimal_wat(0)).context("the floor WAT does not parse")?;
    for knobs in [Knobs::DEFAULT, Knobs::lethe()] {
        let engine = knobs.engine()?;
        let component = Component::new(&engine, &wasm).wt()?;
        let linker: Linker<()> = Linker::new(&engine);
        let pre = linker.instantiate_pre(&component).wt()?;
        let imports = IMPORTS_PRICED;
        let with_imports = wat::parse_str(minimal_wat(imports))
            .context("the floor WAT with imports does not parse")?;
        let with_imports = Component::new(&engine, &with_imports).wt()?;
        let mut linker: Linker<()> = Linker::new(&engine);
        let mut host = linker.instance("host").wt()?;
        for i in 0..imports {
            host.func_wrap(&format!("f{i}"), |_, (): ()| Ok(())).wt()?;
        }
        let pre_with_imports = linker.instantiate_pre(&with_imports).wt()?;
        let engine_label = if knobs.pooling {
            "lethe settings"
        } else {
            "Engine::default()"
        };
        let new_store = || -> Result<Store<()>> {
            let mut store = Store::new(&engine, ());
            if knobs.pooling {
                store.set_fuel(Limits::default().fuel).wt()?;
                store.set_epoch_deadline(1 << 40);
            }
            Ok(store)
        };
        let run = |store: &mut Store<()>, f: &wasmtime::component::TypedFunc<(), (u32,)>| {
            let (v,) = f.call(&mut *store, ()).wt()?;
            if v != 42 {
                bail!("the minimal component returned {v}");
            }
            Ok(())
        };
        let instantiate = || -> Result<(Store<()>, RunFunc)> {
            let mut store = new_store()?;
            let instance = pre.instantiate(&mut store).wt()?;
            let f = instance
                .get_typed_func::<(), (u32,)>(&mut store, "run")
                .wt()?;
            Ok((store, f))
        };
        table.measure_pair(
            opts,
            opts.window,
            &format!("minimal WAT, {engine_label}, fresh"),
            &|| Ok(()),
            &|_| {
                let (mut store, f) = instantiate()?;
                run(&mut store, &f)
            },
        )?;
        table.measure_pair(
            opts,
            opts.window,
            &format!("minimal WAT, {engine_label}, reused"),
            &instantiate,
            &|(store, f)| {
                if knobs.pooling {
                    store.set_fuel(Limits::default().fuel).wt()?;
                }
                run(store, f)
            },
        )?;
        table.measure_pair(
            opts,
            opts.window,
            &format!("minimal WAT + {imports} imported functions, {engine_label}, fresh"),
            &|| Ok(()),
            &|_| {
                let mut store = new_store()?;
                let instance = pre_with_imports.instantiate(&mut store).wt()?;
                let f = instance
                    .get_typed_func::<(), (u32,)>(&mut store, "run")
                    .wt()?;
                run(&mut store, &f)
            },
        )?;
        let replica = Replica::new(knobs, rust_wasm)?;
        replica_rows(
            &table,
            opts,
            opts.window,
            &format!("{RUST_POLICY} decide, {engine_label},"),
            &replica,
            true,
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Section: engine tuning

fn tuning_section(opts: &Opts, subjects: &[Subject], rust_wasm: &[u8]) -> Result<()> {
    let window = opts.tuning_window();
    let table = Table { with_usage: true };
    table.header(
        &format!(
            "Tuning: {RUST_POLICY} fresh instance per decision, pooling engine as lethe builds it, memory-reset options varied"
        ),
        "engine settings",
    );
    for keep in [0usize, 64 << 10, 1 << 20] {
        for pagemap_scan in [false, true] {
            let knobs = Knobs {
                keep_resident: keep,
                pagemap_scan,
                ..Knobs::lethe()
            };
            let replica = Replica::new(knobs, rust_wasm)?;
            replica_rows(&table, opts, window, &knobs.label(), &replica, false)?;
        }
    }

    table.header(
        &format!(
            "Tuning: other engine settings, {RUST_POLICY}, keep 1 MiB + pagemap on; fuel and epochs are \
             what the sandbox needs, shown off only to price them"
        ),
        "engine settings",
    );
    let variants = [
        Knobs::lethe(),
        Knobs {
            fuel: false,
            ..Knobs::lethe()
        },
        Knobs {
            epoch: false,
            ..Knobs::lethe()
        },
        Knobs {
            fuel: false,
            epoch: false,
            ..Knobs::lethe()
        },
        Knobs {
            cow: false,
            ..Knobs::lethe()
        },
    ];
    for knobs in variants {
        let replica = Replica::new(knobs, rust_wasm)?;
        replica_rows(&table, opts, window, &knobs.label(), &replica, true)?;
    }

    table.header(
        "Tuning: the real runtime (Policy::decide, fresh instance) at each PoolConfig.keep_resident_bytes \
         (pagemap scan on, as engine.rs sets it)",
        "policy, keep_resident_bytes",
    );
    for subject in subjects {
        // A Rust policy dirties a few pages; the Python and JavaScript
        // interpreters dirty megabytes, so they are tried with larger sizes.
        let sizes: [usize; 3] = if subject.name == RUST_POLICY {
            [0, 64 << 10, 1 << 20]
        } else {
            [1 << 20, 16 << 20, 64 << 20]
        };
        let req = subject.request()?;
        for keep in sizes {
            let runtime = bench_runtime(RuntimeConfig {
                pool: PoolConfig {
                    keep_resident_bytes: keep,
                    ..PoolConfig::default()
                },
                cache_dir: RuntimeConfig::default_cache_dir(),
                ..RuntimeConfig::default()
            })?;
            let policy = runtime.load_file(&subject.path)?;
            table.measure_pair(
                opts,
                window,
                &format!(
                    "{} ({}), keep {} KiB",
                    subject.name,
                    subject.language,
                    keep >> 10
                ),
                &|| Ok(()),
                &fresh_step(&policy, &req),
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Section: where the time of a fresh-instance decision goes

fn breakdown_section(opts: &Opts, subject: &Subject, rust_wasm: &[u8]) -> Result<()> {
    println!("\n## Breakdown: {RUST_POLICY} fresh instance, one thread, p50 of each stage\n");
    let iterations = if opts.quick { 20_000 } else { 100_000 };
    let req = replica_request();
    let mut rows: Vec<(String, u64)> = Vec::new();

    for knobs in [Knobs::lethe(), Knobs::DEFAULT] {
        let replica = Replica::new(knobs, rust_wasm)?;
        let mut stages: [Vec<u32>; 4] = Default::default();
        for i in 0..iterations + iterations / 10 {
            let t0 = Instant::now();
            let mut store = replica.store()?;
            let t1 = Instant::now();
            let bindings = replica.pre.instantiate(&mut store).wt()?;
            let t2 = Instant::now();
            decide(&mut store, &bindings, &req)?;
            let t3 = Instant::now();
            drop(store);
            let t4 = Instant::now();
            if i >= iterations / 10 {
                for (k, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4)]
                    .into_iter()
                    .enumerate()
                {
                    stages[k].push((b - a).as_nanos() as u32);
                }
            }
        }
        let names = [
            "Store::new + fuel/epoch/limiter setup",
            "InstancePre::instantiate",
            "decide call (lower request, run, lift decision)",
            "drop store (instance freed, memory reset)",
        ];
        let mut sum = 0;
        for (name, mut v) in names.into_iter().zip(stages) {
            v.sort_unstable();
            let p50 = u64::from(v[v.len() / 2]);
            sum += p50;
            rows.push((format!("{}: {name}", knobs.label()), p50));
        }
        rows.push((format!("{}: sum of stage p50s", knobs.label()), sum));
    }

    // What lethe adds on top of the replica: converting the JSON-side
    // request to WIT types and back, the sandbox (an `Arc<str>` name, a
    // resource table), validation, the tracing span.
    let runtime = bench_runtime(RuntimeConfig {
        cache_dir: RuntimeConfig::default_cache_dir(),
        ..RuntimeConfig::default()
    })?;
    let policy = runtime.load_file(&subject.path)?;
    let json_req = subject.request()?;
    let p50_of = |f: &mut dyn FnMut() -> Result<()>| -> Result<u64> {
        let mut v = Vec::with_capacity(iterations);
        for _ in 0..iterations / 10 {
            f()?;
        }
        for _ in 0..iterations {
            let t = Instant::now();
            f()?;
            v.push(t.elapsed().as_nanos() as u64);
        }
        v.sort_unstable();
        Ok(v[v.len() / 2])
    };
    rows.push((
        "lethe Policy::decide (same engine settings as the first block)".into(),
        p50_of(&mut || {
            policy.decide(&json_req)?;
            Ok(())
        })?,
    ));
    let mut light = json_req.clone();
    light.action = lethe::contract::Action::Lock;
    light.actor = serde_json::from_str(
        r#"{"kind":"tenant_user","id":"u-1","roles":["admin"],"domain":"acme.example"}"#,
    )?;
    let light_fuel = policy.decide(&light)?.fuel_used;
    let heavy_fuel = policy.decide(&json_req)?.fuel_used;
    rows.push((
        format!(
            "lethe Policy::decide, an admin's lock instead ({light_fuel} fuel; the delete uses {heavy_fuel})"
        ),
        p50_of(&mut || {
            policy.decide(&light)?;
            Ok(())
        })?,
    ));
    let mut session = policy.session();
    rows.push((
        "lethe Session::decide (reused instance)".into(),
        p50_of(&mut || {
            session.decide(&json_req)?;
            Ok(())
        })?,
    ));
    rows.push((
        "lethe Session::decide (reused instance), the admin's lock".into(),
        p50_of(&mut || {
            session.decide(&light)?;
            Ok(())
        })?,
    ));
    // The lock ignores holdings, so this prices what each string and list
    // element of a request costs to lower into the guest (a guest
    // `cabi_realloc` call per string or list).
    for n in [0usize, 16] {
        let mut req = light.clone();
        req.holdings = (0..n)
            .map(|i| lethe::contract::Holding {
                category: format!("category-{i}"),
                total: 10,
                open: 1,
            })
            .collect();
        rows.push((
            format!("lethe Session::decide, the admin's lock with {n} holdings"),
            p50_of(&mut || {
                session.decide(&req)?;
                Ok(())
            })?,
        ));
    }
    let replica = Replica::new(Knobs::lethe(), rust_wasm)?;
    let (mut store, bindings) = replica.instantiate()?;
    rows.push((
        "replica reused call (rearm + decide), no lethe conversions".into(),
        p50_of(&mut || {
            replica.rearm(&mut store)?;
            decide(&mut store, &bindings, &req)
        })?,
    ));
    rows.push((
        "Request::clone (≈ allocations of lethe's request_to_wit)".into(),
        p50_of(&mut || {
            std::hint::black_box(json_req.clone());
            Ok(())
        })?,
    ));
    rows.push((
        "Instant::now() pair (timer overhead inside every figure)".into(),
        p50_of(&mut || {
            std::hint::black_box(Instant::now());
            Ok(())
        })?,
    ));

    println!("| {:<96} | p50       |", "stage");
    println!("|{}|-----------|", "-".repeat(98));
    for (name, ns) in rows {
        println!("| {name:<96} | {:>9} |", fmt_ns(ns));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// --spin: a steady single-threaded loop to profile

/// Runs one policy's fresh-instance decisions through lethe on one thread
/// for `for_`, e.g. under `perf record -g` or `strace -c`.
fn spin(opts: &Opts, subject: &Subject, for_: Duration) -> Result<()> {
    let runtime = bench_runtime(opts.runtime_config())?;
    let policy = load_checked(&runtime, subject)?;
    let req = subject.request()?;
    let until = Instant::now() + for_;
    let mut n = 0u64;
    let t = Instant::now();
    let mut session = policy.session();
    while Instant::now() < until {
        if opts.spin_session {
            session.decide(&req)?;
        } else {
            policy.decide(&req)?;
        }
        n += 1;
    }
    eprintln!(
        "{n} decisions in {:.2} s: {:.2} µs each",
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}
