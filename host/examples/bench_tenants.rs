//! Benchmark: many tenants, each with its own policy version, served by one
//! replica that follows the database.
//!
//! ```text
//! cargo run --release -p lethe --example bench_tenants -- sqlite:/tmp/lethe-tenants.db [tenants]
//! cargo run --release -p lethe --example bench_tenants -- postgres://postgres@127.0.0.1:5432 [tenants]
//! ```
//!
//! Setup (not timed as start-up): a fresh database with `tenants` tenants
//! (default 1000), each uploading (through the validation gate) and
//! activating its own component: the two-stage-erase seed policy with a
//! custom section naming the tenant, so every tenant has distinct bytes and
//! a distinct sha256, as if each had its own policy. The upload compiles
//! each one, which fills the compile cache (a temporary directory).
//!
//! Then, as a restarted replica would, with the compile cache warm:
//! - **ready**: a new runtime (engine) and `TenantPolicies::from_database`
//!   (reads the active set; loads nothing): the time until the replica can
//!   take requests;
//! - **first decision of a cold tenant**: reads the component from the
//!   database, loads it from the compile cache, instantiates and decides;
//! - **warm-up**: every tenant loaded (what `lethe serve` does in the
//!   background after start), and the resident memory it added, per tenant;
//! - a decision on a warm tenant through `TenantPolicies` against the floor,
//!   the same `Policy::decide` called bare, and again once every tenant has
//!   a shadow version (offered each decision, evaluated in the background).
//!
//! And the same with every tenant on one shared component (1 sha256),
//! which a replica loads once.

use std::time::{Duration, Instant};

use anyhow::Context;
use lethe::contract::Request;
use lethe::db::Db;
use lethe::deploy::{Activate, ActivationKind, Deployments, Upload};
use lethe::executor::Decider;
use lethe::policy::{Runtime, RuntimeConfig};
use lethe::tenancy::{sync, TenantPolicies};

const DEFAULT_TENANTS: usize = 1000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `wasm` with a custom section `lethe-bench` holding `tag` appended: the
/// same code, other bytes.
fn tagged(wasm: &[u8], tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"lethe-bench";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

/// A fresh database at `base` (a file for SQLite, a new database for
/// PostgreSQL), migrated.
async fn fresh(base: &str, name: &str) -> anyhow::Result<Db> {
    let url = if let Some(path) = base.strip_prefix("sqlite:") {
        let path = format!("{path}.{name}");
        let _ = std::fs::remove_file(&path);
        format!("sqlite:{path}")
    } else {
        let admin = Db::connect(&format!("{base}/postgres")).await?;
        let db = format!("lethe_tenantsbench_{name}");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
            .execute(admin.pool())
            .await?;
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(admin.pool())
            .await?;
        admin.close().await;
        format!("{base}/{db}")
    };
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    Ok(db)
}

struct Figures {
    setup: Duration,
    ready: Duration,
    cold_first: Duration,
    warm_up: Duration,
    rss_before_kib: u64,
    rss_after_kib: u64,
    warm_decide_us: f64,
    floor_decide_us: f64,
    /// The same decisions while every tenant has a shadow version (the
    /// shadow's own work runs beside them on the same cores).
    shadowed_decide_us: f64,
}

async fn run(
    base: &str,
    name: &str,
    tenants: usize,
    wasm: &[u8],
    distinct: bool,
    cache: &std::path::Path,
    request: &Request,
) -> anyhow::Result<Figures> {
    let db = fresh(base, name).await?;
    let config = RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        ..RuntimeConfig::default()
    };
    let setup_start = Instant::now();
    {
        let deployments = Deployments::new(db.clone(), Runtime::new(config.clone())?);
        for i in 0..tenants {
            let t = format!("bt{i:04}");
            deployments.create_tenant(&t, &t, 0).await?;
            let bytes = if distinct {
                tagged(wasm, &t)
            } else {
                wasm.to_vec()
            };
            let upload = Upload {
                tenant: &t,
                component: &bytes,
                cases: None,
                message: None,
                uploaded_by: "bench",
            };
            let v = deployments.upload(upload, 0).await?;
            let activate = Activate {
                tenant: &t,
                version: Some(v.version),
                kind: ActivationKind::Activate,
                by: "bench",
                reason: None,
            };
            deployments.activate(activate, 0).await?;
        }
    }
    let setup = setup_start.elapsed();

    // A restarted replica.
    let rss_before_kib = rss_kib();
    let started = Instant::now();
    let runtime = Runtime::new(config)?;
    let policies = TenantPolicies::from_database(db.clone(), runtime, "bench".into()).await?;
    let ready = started.elapsed();
    let first = Instant::now();
    policies
        .decide("bt0000", request)
        .await
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    let cold_first = first.elapsed();
    let warm = Instant::now();
    sync::warm_up(policies.clone()).await;
    let warm_up = warm.elapsed();
    let (known, loaded) = policies.counts();
    anyhow::ensure!(
        known == tenants && loaded == tenants,
        "{loaded}/{known} loaded"
    );
    let rss_after_kib = rss_kib();

    let n: u32 = 2000;
    let warm_decide_us = round_robin(&policies, tenants, n, request).await?;
    let (policy, _) = policies
        .policy("bt0000")
        .await
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    let t = Instant::now();
    for _ in 0..n {
        policy.decide(request)?;
    }
    let floor_decide_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    // Every tenant shadowed by its own active version.
    let deployments = Deployments::new(db.clone(), Runtime::new(RuntimeConfig::default())?);
    for i in 0..tenants {
        deployments
            .set_shadow(&format!("bt{i:04}"), Some(1), "bench", 0)
            .await?;
    }
    sync::sync(&policies).await?;
    let shadowed_decide_us = round_robin(&policies, tenants, n, request).await?;
    db.close().await;
    Ok(Figures {
        setup,
        ready,
        cold_first,
        warm_up,
        rss_before_kib,
        rss_after_kib,
        warm_decide_us,
        floor_decide_us,
        shadowed_decide_us,
    })
}

/// µs per decision over `n` decisions, one tenant after the other.
async fn round_robin(
    policies: &TenantPolicies,
    tenants: usize,
    n: u32,
    request: &Request,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    for i in 0..n {
        policies
            .decide(&format!("bt{:04}", i as usize % tenants), request)
            .await
            .map_err(|f| anyhow::anyhow!("{f}"))?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .context("usage: bench_tenants <sqlite:/path | postgres://…> [tenants]")?;
    let tenants: usize = match args.next() {
        Some(n) => n.parse()?,
        None => DEFAULT_TENANTS,
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = std::fs::read(root.join("policies/dist/two-stage-erase.wasm"))
        .context("policies/dist/two-stage-erase.wasm (bash policies/build.sh)")?;
    let cases = lethe::cases::CasesFile::load(&root.join("policies/two-stage-erase/cases.toml"))?;
    let request = cases.request(&cases.cases[0])?;
    let cache = tempfile::tempdir()?;
    println!(
        "# lethe tenants benchmark: {tenants} tenants, {}, {} CPUs",
        if base.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<28} {:>9} {:>9} {:>12} {:>11} {:>13} {:>14} {:>13} {:>11} {:>14}",
        "components",
        "setup s",
        "ready ms",
        "cold 1st ms",
        "warm-up ms",
        "RSS +MiB",
        "KiB/tenant",
        "decide µs",
        "floor µs",
        "shadowed µs"
    );
    // Shared first: memory freed by one run may be reused by the next, which
    // would hide part of the distinct run's growth if it came second.
    for (label, name, distinct) in [
        ("one shared by all", "shared", false),
        ("one per tenant (distinct)", "distinct", true),
    ] {
        let f = run(
            &base,
            name,
            tenants,
            &wasm,
            distinct,
            cache.path(),
            &request,
        )
        .await?;
        let added = f.rss_after_kib.saturating_sub(f.rss_before_kib);
        println!(
            "{label:<28} {:>9.1} {:>9.1} {:>12.1} {:>11.0} {:>13.1} {:>14.1} {:>13.1} {:>11.1} {:>14.1}",
            f.setup.as_secs_f64(),
            ms(f.ready),
            ms(f.cold_first),
            ms(f.warm_up),
            added as f64 / 1024.0,
            added as f64 / tenants as f64,
            f.warm_decide_us,
            f.floor_decide_us,
            f.shadowed_decide_us,
        );
    }
    Ok(())
}
