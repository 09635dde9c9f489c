//! The policy runtime: loads tenants' WebAssembly components and asks them
//! for decisions inside a sandbox no policy can escape, hang or exhaust.
//!
//! - [`Runtime`]: one per process. Owns the shared [`wasmtime::Engine`]
//!   (see [`engine`]), the linker with the host import and capability-free
//!   WASI, the compiled-component cache ([`cache`]) and the default limits.
//! - [`Policy`]: one loaded component: its sha256, its `describe()` output,
//!   and a pre-linked `InstancePre`, so a decision only instantiates.
//! - [`Policy::decide`]: a fresh store and instance per decision, with fuel,
//!   an epoch deadline, a memory cap and an output cap ([`Limits`]).
//! - [`Session`]: one instance reused across a batch of decisions (bulk
//!   jobs); a fault throws the instance away.
//!
//! This module knows nothing of HTTP or SQL: it turns a
//! [`contract::Request`] into a [`contract::Decision`] or a [`PolicyFault`].

mod bindings;
pub mod cache;
pub mod engine;
mod fault;
mod imports;
mod sandbox;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, Trap};

use crate::contract::{self, Decision, PolicyInfo, Request};
pub use cache::CacheOutcome;
pub use engine::PoolConfig;
pub use fault::{LoadError, PolicyFault};
use sandbox::Sandbox;

use bindings::v0_1;

/// Per-decision limits. Fuel is deterministic (the same request uses the
/// same fuel on every machine); the deadline is a wall-clock backstop for
/// whatever fuel does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Fuel units (about one per WebAssembly instruction) per decision,
    /// instantiation included.
    pub fuel: u64,
    /// Wall-clock deadline per decision, in milliseconds.
    pub deadline_ms: u64,
    /// Cap on the component's linear memories together, in bytes (each
    /// pool slot is sized to it too).
    pub memory_bytes: usize,
    /// Cap on the bytes copied out of the guest per call (the decision, a
    /// `log` line), in bytes.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 200_000_000,
            deadline_ms: 500,
            memory_bytes: 128 << 20,
            output_bytes: 256 << 10,
        }
    }
}

impl Limits {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

/// How to build a [`Runtime`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    pub limits: Limits,
    pub pool: PoolConfig,
    /// Where compiled components are cached; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
}

impl RuntimeConfig {
    /// The default cache directory: `$LETHE_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/lethe`, else `$HOME/.cache/lethe`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("LETHE_CACHE_DIR") {
            return Some(dir.into());
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("lethe"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("lethe"))
    }
}

/// The process-wide policy runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<Sandbox>,
    cache: cache::CompileCache,
    limits: Limits,
    _ticker: engine::EpochTicker,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Runtime, LoadError> {
        let engine = engine::build(&config.limits, &config.pool)?;
        let mut linker = Linker::new(&engine);
        let link = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        v0_1::DeletionPolicy::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(link)?;
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link)?;
        let ticker = engine::EpochTicker::start(&engine)?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache: cache::CompileCache::new(config.cache_dir),
                limits: config.limits,
                _ticker: ticker,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Loads a component from a file. See [`Runtime::load`].
    pub fn load_file(&self, path: &Path) -> Result<Policy, LoadError> {
        let wasm = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load(&wasm)
    }

    /// Loads a policy component with the runtime's default limits.
    pub fn load(&self, wasm: &[u8]) -> Result<Policy, LoadError> {
        self.load_with_limits(wasm, self.inner.limits)
    }

    /// Loads a policy component: checks it is a component, compiles it (or
    /// takes it from the cache), refuses imports beyond the world and
    /// capability-free WASI, checks the contract version it exports,
    /// pre-links it and asks it to `describe()` itself.
    ///
    /// `limits.memory_bytes` cannot exceed the engine's (the pool slot size).
    #[tracing::instrument(name = "policy.load", skip_all, fields(sha256))]
    pub fn load_with_limits(&self, wasm: &[u8], limits: Limits) -> Result<Policy, LoadError> {
        let sha256 = hex::encode(Sha256::digest(wasm));
        tracing::Span::current().record("sha256", &sha256[..12]);
        if !wasmparser::Parser::is_component(wasm) {
            return Err(LoadError::NotAComponent(
                if wasmparser::Parser::is_core_wasm(wasm) {
                    "a core WebAssembly module; build it as a component (wasm32-wasip2, componentize-py, componentize-js)".into()
                } else {
                    "not WebAssembly at all".into()
                },
            ));
        }
        let engine = &self.inner.engine;
        let (component, cache) = self
            .inner
            .cache
            .load_or_compile(engine, &sha256, wasm)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        if let Some(name) = imports::first_forbidden(imports.iter().map(String::as_str)) {
            return Err(LoadError::ForbiddenImport(name.to_owned()));
        }
        let version = ContractVersion::detect(&exports)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .and_then(v0_1::DeletionPolicyPre::new)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        let limits = Limits {
            memory_bytes: limits.memory_bytes.min(self.inner.limits.memory_bytes),
            ..limits
        };
        let info = {
            let mut live = instantiate(engine, &pre, &limits, "(describe)".into())
                .map_err(LoadError::Describe)?;
            let info = live
                .bindings
                .lethe_policy_policy()
                .call_describe(&mut live.store)
                .map_err(|e| LoadError::Describe(classify(e, &live.store, &limits)))?;
            bindings::info_from_wit(info)
        };
        let policy = Policy {
            inner: Arc::new(PolicyInner {
                runtime: self.clone(),
                name: info.name.as_str().into(),
                sha256,
                info,
                version,
                pre,
                limits,
                imports,
                exports,
                cache,
            }),
        };
        tracing::debug!(name = %policy.info().name, ?cache, "policy loaded");
        Ok(policy)
    }
}

/// The contract version a component implements, read from its exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractVersion {
    V0_1,
}

impl ContractVersion {
    pub const SUPPORTED: &'static str = "lethe:policy@0.1.x";

    fn detect(exports: &[String]) -> Result<ContractVersion, LoadError> {
        let policy_export = exports
            .iter()
            .find(|e| e.starts_with("lethe:policy/policy@"));
        match policy_export {
            Some(e) if e.starts_with("lethe:policy/policy@0.1.") => Ok(ContractVersion::V0_1),
            Some(e) => Err(LoadError::UnsupportedVersion {
                found: e.clone(),
                supported: Self::SUPPORTED,
            }),
            None => Err(LoadError::WrongWorld(format!(
                "it exports [{}], not `{}`",
                exports.join(", "),
                bindings::V0_1_EXPORT
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
        }
    }
}

/// A loaded policy component. Cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<PolicyInner>,
}

struct PolicyInner {
    /// Keeps the engine's epoch ticker alive while the policy is.
    runtime: Runtime,
    /// `info.name`, shared with every sandbox for its log lines.
    name: Arc<str>,
    sha256: String,
    info: PolicyInfo,
    version: ContractVersion,
    pre: v0_1::DeletionPolicyPre<Sandbox>,
    limits: Limits,
    imports: Vec<String>,
    exports: Vec<String>,
    cache: CacheOutcome,
}

impl Policy {
    /// Hex sha256 of the component bytes: the policy's identity in records.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    pub fn info(&self) -> &PolicyInfo {
        &self.inner.info
    }

    pub fn contract_version(&self) -> ContractVersion {
        self.inner.version
    }

    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    pub fn exports(&self) -> &[String] {
        &self.inner.exports
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Whether the compiled code came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.inner.cache
    }

    /// Asks for a decision in a fresh sandbox. A fault applies nothing and
    /// leaves the policy usable for the next decision.
    #[tracing::instrument(name = "policy.decide", skip_all, fields(policy = %self.info().name, action = %req.action))]
    pub fn decide(&self, req: &Request) -> Result<Decision, PolicyFault> {
        let start = Instant::now();
        let mut live = self.instantiate()?;
        let result = live.decide(self, req, start);
        if let Err(fault) = &result {
            tracing::warn!(%fault, "policy fault");
        }
        result
    }

    /// Opens a session that reuses one instance across many decisions
    /// (bulk jobs). Faster per decision; state a policy keeps in globals
    /// between calls is its own business, since every fact it needs comes in
    /// the request.
    pub fn session(&self) -> Session<'_> {
        Session {
            policy: self,
            live: None,
        }
    }

    fn instantiate(&self) -> Result<Live, PolicyFault> {
        let inner = &self.inner;
        instantiate(
            inner.runtime.engine(),
            &inner.pre,
            &inner.limits,
            inner.name.clone(),
        )
    }
}

/// A fresh store with the per-decision limits, and an instance in it.
fn instantiate(
    engine: &Engine,
    pre: &v0_1::DeletionPolicyPre<Sandbox>,
    limits: &Limits,
    name: Arc<str>,
) -> Result<Live, PolicyFault> {
    let mut store = Store::new(engine, Sandbox::new(name, limits.memory_bytes));
    store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
    store
        .set_fuel(limits.fuel)
        .map_err(|e| PolicyFault::Unavailable(format!("{e:#}")))?;
    store.set_epoch_deadline(engine::deadline_ticks(limits.deadline()));
    store.epoch_deadline_trap();
    // Caps the bytes copied out of the guest per call (the decision, a log
    // line), counted while they are copied: a list of a million aliases of
    // one buffer is stopped before the host allocates it.
    store.set_hostcall_fuel(limits.output_bytes);
    match pre.instantiate(&mut store) {
        Ok(bindings) => Ok(Live { store, bindings }),
        Err(e) => Err(classify(e, &store, limits)),
    }
}

/// An instantiated component and its store.
struct Live {
    store: Store<Sandbox>,
    bindings: v0_1::DeletionPolicy,
}

impl Live {
    fn decide(
        &mut self,
        policy: &Policy,
        req: &Request,
        start: Instant,
    ) -> Result<Decision, PolicyFault> {
        let limits = &policy.inner.limits;
        let wit_req = bindings::request_to_wit(req);
        let result = self
            .bindings
            .lethe_policy_policy()
            .call_decide(&mut self.store, &wit_req);
        let fuel_used = limits
            .fuel
            .saturating_sub(self.store.get_fuel().unwrap_or(0));
        let decision = result.map_err(|e| classify(e, &self.store, limits))?;
        let (outcome, rules) = bindings::decision_from_wit(decision);
        validate::decision(&outcome, &rules).map_err(PolicyFault::MalformedOutput)?;
        let elapsed_us = start.elapsed().as_micros() as u64;
        tracing::debug!(outcome = outcome.kind(), fuel_used, elapsed_us, "decided");
        Ok(Decision {
            outcome,
            rules,
            fuel_used,
            elapsed_us,
        })
    }

    /// Readies the store for the next decision of a session.
    fn rearm(&mut self, limits: &Limits) -> Result<(), PolicyFault> {
        self.store
            .set_fuel(limits.fuel)
            .map_err(|e| PolicyFault::Unavailable(format!("{e:#}")))?;
        self.store
            .set_epoch_deadline(engine::deadline_ticks(limits.deadline()));
        self.store.data_mut().reset_per_decision();
        Ok(())
    }
}

/// Decisions on one reused instance. Created by [`Policy::session`].
pub struct Session<'p> {
    policy: &'p Policy,
    live: Option<Live>,
}

impl Session<'_> {
    /// Like [`Policy::decide`], on the session's instance. After a fault the
    /// instance is dropped (a trapped instance cannot be re-entered) and the
    /// next decision gets a fresh one.
    #[tracing::instrument(name = "policy.decide", skip_all, fields(policy = %self.policy.info().name, action = %req.action, session = true))]
    pub fn decide(&mut self, req: &Request) -> Result<Decision, PolicyFault> {
        let start = Instant::now();
        let mut live = match self.live.take() {
            Some(mut live) => {
                live.rearm(&self.policy.inner.limits)?;
                live
            }
            None => self.policy.instantiate()?,
        };
        let result = live.decide(self.policy, req, start);
        match &result {
            Ok(_) => self.live = Some(live),
            Err(fault) => tracing::warn!(%fault, "policy fault"),
        }
        result
    }
}

/// Turns a wasmtime error from instantiation or a call into a typed fault.
fn classify(error: wasmtime::Error, store: &Store<Sandbox>, limits: &Limits) -> PolicyFault {
    if store.data().memory_exceeded {
        return PolicyFault::MemoryCap {
            cap: limits.memory_bytes,
        };
    }
    // wasmtime's error for exhausted hostcall fuel is a private type; its
    // message is the only handle (wasmtime is pinned, and the hostile corpus
    // test pins this classification).
    if format!("{error:#}").contains("fuel allocated for hostcalls has been exhausted") {
        return PolicyFault::OutputTooLarge {
            cap: limits.output_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PolicyFault::OutOfFuel {
            budget: limits.fuel,
        },
        Some(Trap::Interrupt) => PolicyFault::Deadline {
            deadline_ms: limits.deadline_ms,
        },
        Some(Trap::StackOverflow) => PolicyFault::StackOverflow,
        Some(trap) => PolicyFault::Trap(trap.to_string()),
        None => PolicyFault::Trap(format!("{error:#}")),
    }
}

/// The JSON request a CLI user gives, parsed with a clear error.
pub fn parse_request(json: &str) -> Result<Request, serde_json::Error> {
    serde_json::from_str::<contract::Request>(json)
}
