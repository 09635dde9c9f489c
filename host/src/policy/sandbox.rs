//! The per-decision sandbox: what a policy's [`Store`](wasmtime::Store) holds.
//!
//! A fresh `Sandbox` is made for every decision (or batch session). It
//! enforces the memory cap, implements the one host import (`log`), and gives
//! WASI-targeting guests a context with no capabilities at all: no preopened
//! directories, no environment or arguments, no stdio, no network, a clock
//! stopped at the epoch and a fixed-seed random source. Policies learn the
//! time from `request.now`; a decision is a pure function of its request.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::bindings::v0_1::lethe::policy::host::{Host, LogLevel};

/// Longest guest log line kept; the rest is cut.
const MAX_LOG_LINE: usize = 2048;
/// Guest log lines per decision beyond which lines are dropped.
const MAX_LOG_LINES: u32 = 64;

pub struct Sandbox {
    policy: Arc<str>,
    /// Cap on all linear memories of the instance together: a component may
    /// define many memories, and a per-memory cap would let it commit the
    /// cap once per memory.
    memory_cap: usize,
    memory_total: usize,
    /// Set when the guest tried to grow a memory past the cap, so the trap
    /// that follows is reported as a memory fault rather than a generic one.
    pub(super) memory_exceeded: bool,
    log_lines: u32,
    /// Built on first use: guests that never touch WASI (most Rust and JS
    /// policies) never pay for it.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
}

impl Sandbox {
    pub fn new(policy: Arc<str>, memory_cap: usize) -> Sandbox {
        Sandbox {
            policy,
            memory_cap,
            memory_total: 0,
            memory_exceeded: false,
            log_lines: 0,
            wasi: None,
            table: ResourceTable::new(),
        }
    }

    /// Called between decisions of one batch session.
    pub fn reset_per_decision(&mut self) {
        self.log_lines = 0;
    }
}

impl ResourceLimiter for Sandbox {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_total
            .saturating_sub(current)
            .saturating_add(desired);
        if total > self.memory_cap {
            self.memory_exceeded = true;
            return Err(wasmtime::format_err!(
                "memory cap of {} bytes exceeded (all memories would hold {total})",
                self.memory_cap
            ));
        }
        self.memory_total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables cost a pointer per element; bound them by the same cap.
        Ok(desired.saturating_mul(std::mem::size_of::<usize>()) <= self.memory_cap)
    }
}

impl Host for Sandbox {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut end = MAX_LOG_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let policy = &*self.policy;
        match level {
            LogLevel::Trace => tracing::trace!(target: "lethe::guest", policy, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "lethe::guest", policy, "{message}"),
            LogLevel::Info => tracing::info!(target: "lethe::guest", policy, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "lethe::guest", policy, "{message}"),
            LogLevel::Error => tracing::error!(target: "lethe::guest", policy, "{message}"),
        }
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.wasi.get_or_insert_with(empty_wasi);
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// A WASI context that grants nothing. `WasiCtxBuilder::new()` already has
/// no preopens, environment, arguments or stdio; we also stop the clocks,
/// fix the random seed and close every network door.
fn empty_wasi() -> WasiCtx {
    WasiCtxBuilder::new()
        .wall_clock(StoppedClock)
        .monotonic_clock(StoppedClock)
        .secure_random(wasmtime_wasi::Deterministic::new(vec![0x5a]))
        .insecure_random(wasmtime_wasi::Deterministic::new(vec![0x5a]))
        .insecure_random_seed(0)
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}

/// A clock that always reads zero.
struct StoppedClock;

impl HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}
