//! A small load client: dry-run decisions per second over HTTP on loopback.
//!
//! ```sh
//! cargo run --release -p lethe --example load_dry_run -- \
//!     http://127.0.0.1:8080 "$KEY_T5" t5 t5-u5 t5-u1 [requests=20000] [concurrency=16] [seconds=30]
//! ```
//!
//! Sends `POST /v1/tenants/{t}/users/{user}/actions` with
//! `{"action":"delete","actor_id":…,"dry_run":true}` from `concurrency`
//! workers until `requests` are done or `seconds` have passed, whichever
//! comes first, and prints throughput, latency percentiles and every
//! non-200 answer. Refuses anything but a loopback address: it is a
//! benchmark, not a load generator for other people's servers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() >= 5,
        "usage: load_dry_run BASE_URL KEY TENANT USER ACTOR [requests] [concurrency] [seconds]"
    );
    let base = args[0].trim_end_matches('/').to_owned();
    let host = base
        .strip_prefix("http://")
        .and_then(|r| r.split(['/', ':']).next())
        .unwrap_or_default();
    anyhow::ensure!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        "refusing {base}: loopback only"
    );
    let (key, tenant, user, actor) = (&args[1], &args[2], &args[3], &args[4]);
    let requests: u64 = args.get(5).map_or(Ok(20_000), |s| s.parse())?;
    let concurrency: usize = args.get(6).map_or(Ok(16), |s| s.parse())?;
    let seconds: u64 = args.get(7).map_or(Ok(30), |s| s.parse())?;
    anyhow::ensure!(requests <= 1_000_000 && seconds <= 300, "bounded runs only");

    let url = format!("{base}/v1/tenants/{tenant}/users/{user}/actions");
    let body = serde_json::json!({"action": "delete", "actor_id": actor, "dry_run": true});
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body, key, issued) = (
            client.clone(),
            url.clone(),
            body.clone(),
            key.clone(),
            issued.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            while issued.fetch_add(1, Ordering::Relaxed) < requests && Instant::now() < deadline {
                let t0 = Instant::now();
                let r = client.post(&url).bearer_auth(&key).json(&body).send().await;
                match r {
                    Ok(resp) if resp.status() == 200 => {
                        let _ = resp.bytes().await;
                        lat.push(t0.elapsed());
                    }
                    Ok(resp) => errors.push(format!(
                        "{}: {}",
                        resp.status(),
                        resp.text().await.unwrap_or_default()
                    )),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for w in workers {
        let (l, e) = w.await?;
        lat.extend(l);
        errors.extend(e);
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{} ok, {} errors in {:.2} s: {:.0} dry-run decisions/s over HTTP ({concurrency} connections); \
         latency p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        errors.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99)
    );
    for e in errors.iter().take(5) {
        println!("error: {e}");
    }
    anyhow::ensure!(errors.is_empty(), "{} requests failed", errors.len());
    Ok(())
}
