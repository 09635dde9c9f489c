//! Benchmark: webhook delivery throughput to a local receiver.
//!
//! ```text
//! cargo run --release -p lethe --example bench_webhooks -- sqlite:/tmp/lethe-webhooks.db [events] [users]
//! cargo run --release -p lethe --example bench_webhooks -- postgres://postgres@127.0.0.1:5432 [events] [users]
//! ```
//!
//! Setup (not timed): a fresh database, one endpoint pointing at a bare
//! axum receiver on loopback that answers 200, and `events` (default 2000)
//! `user.locked` events over `users` users (default 100), recorded as the
//! executor does, one transaction each (how long that takes is printed:
//! the cost the outbox adds to each action).
//!
//! Then the delivery worker of `lethe serve` (lease, sign, POST, record
//! the attempt, per-user order) delivers them all: events per second,
//! beside the floor, the same signed bodies POSTed by a bare reqwest loop
//! with the same concurrency (no database, no lease, no log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lethe::db::Db;
use lethe::events::{self, Event, EventType, Events, NewEndpoint, WebhookSettings};

const CONCURRENCY: usize = 8;

async fn receiver(hits: Arc<AtomicU64>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/hook"))
}

async fn fresh(url: &str) -> anyhow::Result<(Db, Option<String>)> {
    if let Some(base) = url.strip_prefix("postgres://") {
        let name = format!("lethe_bench_webhooks_{}", std::process::id());
        let admin = Db::connect(&format!("postgres://{base}/postgres")).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(admin.pool())
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(admin.pool())
            .await?;
        admin.close().await;
        Ok((
            Db::connect(&format!("postgres://{base}/{name}")).await?,
            Some(name),
        ))
    } else {
        let path = url.trim_start_matches("sqlite:");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        Ok((Db::connect(url).await?, None))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .context("usage: bench_webhooks <database-url> [events] [users]")?;
    let n: u64 = args.get(2).map_or(Ok(2000), |s| s.parse())?;
    let users: u64 = args.get(3).map_or(Ok(100), |s| s.parse())?;
    let (db, pg_name) = fresh(url).await?;
    db.migrate().await?;
    let hits = Arc::new(AtomicU64::new(0));
    let target = receiver(hits.clone()).await?;
    let settings = WebhookSettings {
        poll_ms: 10,
        concurrency: CONCURRENCY,
        ..WebhookSettings::default()
    };
    let ev = Events::new(db.clone(), settings);
    let endpoint = ev
        .create_endpoint(
            "t1",
            NewEndpoint {
                url: &target,
                description: None,
                event_types: &[],
                secret: None,
            },
            "bench",
            0,
        )
        .await?;

    // The outbox's cost: one event (stream bump, event, delivery) per transaction.
    let started = Instant::now();
    for i in 0..n {
        let mut tx = db.begin_write().await?;
        let event = Event {
            tenant: "t1".into(),
            event_type: EventType::UserLocked,
            user: Some(format!("u-{}", i % users)),
            at: 0,
            data: serde_json::json!({"user": format!("u-{}", i % users), "n": i}),
        };
        events::record(&mut tx, &event).await?;
        tx.commit().await?;
    }
    let record = started.elapsed();

    // Lethe's worker.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let worker = tokio::spawn(events::delivery::run(ev.clone(), stop_rx));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let delivered = ev.endpoint("t1", &endpoint.id).await?.counts.delivered;
        if delivered as u64 >= n {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not delivered in 10 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lethe = started.elapsed();
    let _ = stop_tx.send(true);
    let _ = worker.await;

    // The floor: the same number of signed POSTs, bare.
    let client = reqwest::Client::new();
    let body = serde_json::to_vec(&serde_json::json!({"id": "evt-x", "type": "user.locked",
        "timestamp": "1970-01-01T00:00:00Z", "tenant": "t1", "data": {"user": "u-1", "n": 1}}))?;
    let secret = events::signature::Secret::generate();
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (client, target, body, next, secret) = (
            client.clone(),
            target.clone(),
            body.clone(),
            next.clone(),
            secret.clone(),
        );
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let sig = events::signature::header(&[&secret], "evt-x", 0, &body);
                let r = client
                    .post(&target)
                    .header("webhook-id", "evt-x")
                    .header("webhook-timestamp", "0")
                    .header("webhook-signature", sig)
                    .body(body.clone())
                    .send()
                    .await;
                if r.map(|r| !r.status().is_success()).unwrap_or(true) {
                    return Err(anyhow::anyhow!("floor POST failed"));
                }
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let floor = started.elapsed();

    let per_s = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "backend: {:?}, {n} events over {users} users, concurrency {CONCURRENCY}",
        db.backend()
    );
    println!(
        "record (outbox, one transaction each): {:.0} µs/event",
        record.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "lethe delivery worker: {:>8.0} events/s ({:.2} s)",
        per_s(lethe),
        lethe.as_secs_f64()
    );
    println!(
        "floor (bare signed POSTs): {:>8.0} events/s ({:.2} s)",
        per_s(floor),
        floor.as_secs_f64()
    );
    println!(
        "ratio: {:.1}x the floor's time",
        lethe.as_secs_f64() / floor.as_secs_f64()
    );
    println!("receiver hits: {}", hits.load(Ordering::Relaxed));

    db.close().await;
    if let (Some(name), Some(base)) = (pg_name, url.strip_prefix("postgres://")) {
        let admin = Db::connect(&format!("postgres://{base}/postgres")).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(admin.pool())
            .await?;
    }
    Ok(())
}
