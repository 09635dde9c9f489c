//! The one wasmtime [`Engine`] a host process shares between all tenants.
//!
//! Everything that is decided once per process lives here: the compiler and
//! its settings, fuel and epoch interruption, the pooling allocator and its
//! memory-reset tuning, and the epoch ticker that drives wall-clock deadlines.
//! Per-decision limits are applied per [`Store`](wasmtime::Store) in
//! [`super::sandbox`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::{Limits, LoadError};

/// How finely the epoch ticker measures wall-clock deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Sizing of the pooling allocator: how many decisions may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Component instances alive at once across the process (one per
    /// decision in flight, one per open batch session).
    pub instances: u32,
    /// Core instances per component. componentize-py 0.25 components use 38.
    pub core_instances_per_component: u32,
    /// Linear memory kept resident (not returned to the kernel) per slot when
    /// an instance is recycled. The prototype measured 1 MiB as the setting
    /// that lets decisions scale across cores instead of fighting over
    /// `madvise`.
    pub keep_resident_bytes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            instances: 128,
            core_instances_per_component: 48,
            keep_resident_bytes: 1 << 20,
        }
    }
}

/// Builds the shared engine for the given limits.
///
/// The limits that shape compiled code (fuel, epochs) are engine-wide; their
/// per-decision values are set on each store. The memory cap also sizes the
/// pool's memory slots, so no memory can outgrow its slot.
pub fn build(limits: &Limits, pool: &PoolConfig) -> Result<Engine, LoadError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    // Deep recursion must hit a clean `StackOverflow` trap well before the
    // host thread's own stack (tokio workers have 2 MiB).
    config.max_wasm_stack(512 * 1024);

    // Resetting a recycled memory by scanning which pages were written
    // (PAGEMAP_SCAN, Linux 6.7+) is what lets decisions scale across cores
    // with memory kept resident. Without it, keeping 1 MiB resident means
    // clearing 1 MiB per decision (37 µs instead of 12 µs measured by
    // `benches/decide.rs`), so fall back to 64 KiB, the best setting then.
    let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
    let keep_resident = if pagemap {
        pool.keep_resident_bytes
    } else {
        tracing::warn!(
            "PAGEMAP_SCAN unavailable (Linux < 6.7): keeping 64 KiB resident per memory"
        );
        pool.keep_resident_bytes.min(64 << 10)
    };
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
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident)
        .pagemap_scan(if pagemap { Enabled::Yes } else { Enabled::No });
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));

    Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))
}

/// A background thread advancing the engine's epoch every [`EPOCH_TICK`], so a
/// store's epoch deadline is a wall-clock deadline. Stops when dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Result<EpochTicker, LoadError> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("lethe-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| LoadError::Engine(format!("cannot start epoch ticker: {e}")))?;
        Ok(EpochTicker {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Number of epoch ticks that make up `deadline` (at least one).
pub fn deadline_ticks(deadline: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    (deadline.as_micros() / tick).max(1) as u64
}
