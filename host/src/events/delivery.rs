//! The delivery worker of `lethe serve`: claims due deliveries under a
//! lease (so several hosts share the work and never send one attempt
//! twice), POSTs each event with Standard Webhooks headers, and records
//! the attempt. 2xx delivers; 410 kills the delivery and disables the
//! endpoint; anything else (another status, a timeout, a refused
//! connection) is retried with exponential backoff and jitter until the
//! horizon, then the delivery is dead: visible, redeliverable, never
//! silently dropped. At least once: receivers deduplicate on `webhook-id`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::signature::{self, Secret};
use super::store::{Claimed, Next, Outcome};
use super::{EventError, EventType, Events, WebhookSettings};
use crate::clock::unix_millis;

/// What the receiver gets as the body.
#[derive(Debug, Serialize)]
struct Envelope<'a> {
    /// The event id (also `webhook-id`).
    id: &'a str,
    #[serde(rename = "type")]
    event_type: EventType,
    /// RFC 3339, the change's own time.
    timestamp: String,
    tenant: &'a str,
    data: serde_json::Value,
}

fn rfc3339(at: i64) -> String {
    jiff::Timestamp::from_second(at).map_or_else(|_| at.to_string(), |t| t.to_string())
}

/// The body of one event, serialised once and signed as sent.
fn body(
    id: &str,
    event_type: EventType,
    at: i64,
    tenant: &str,
    payload: &str,
) -> Result<Vec<u8>, EventError> {
    let data = serde_json::from_str(payload).map_err(|e| EventError::Corrupt(e.to_string()))?;
    serde_json::to_vec(&Envelope {
        id,
        event_type,
        timestamp: rfc3339(at),
        tenant,
        data,
    })
    .map_err(|e| EventError::Corrupt(e.to_string()))
}

/// One HTTP client for every attempt: no redirects (a 3xx is a failure,
/// as the specification says), a time limit per attempt.
fn client(timeout: Duration) -> Result<reqwest::Client, EventError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("lethe-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| EventError::InvalidEndpoint(format!("cannot build the HTTP client: {e}")))
}

/// POSTs `body` to `url`, signed with `secrets`.
async fn send(
    client: &reqwest::Client,
    url: &str,
    secrets: &[Secret],
    id: &str,
    body: Vec<u8>,
) -> Outcome {
    let started_ms = unix_millis();
    let timestamp = started_ms / 1000;
    let refs: Vec<&Secret> = secrets.iter().collect();
    let signature = signature::header(&refs, id, timestamp, &body);
    let clock = Instant::now();
    let result = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let latency_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
    match result {
        Ok(resp) => {
            let status = resp.status();
            Outcome {
                started_ms,
                latency_ms,
                http_status: Some(status.as_u16()),
                error: (!status.is_success()).then(|| format!("answered {status}")),
            }
        }
        Err(e) => Outcome {
            started_ms,
            latency_ms,
            http_status: None,
            error: Some(if e.is_timeout() {
                "timed out".to_owned()
            } else {
                format!("{e}")
            }),
        },
    }
}

/// What follows attempt number `attempt` (1, 2, …) of a delivery first
/// tried at `first_attempt_ms`, which the receiver answered with
/// `http_status` (none: no answer) at `now_ms`. `jitter` in [0, 1) spreads
/// the retries of receivers that failed together by ±20 %.
fn next_step(
    s: &WebhookSettings,
    attempt: i64,
    first_attempt_ms: i64,
    http_status: Option<u16>,
    now_ms: i64,
    jitter: f64,
) -> Next {
    match http_status {
        Some(code) if (200..300).contains(&code) => return Next::Delivered,
        Some(410) => return Next::Gone,
        _ => {}
    }
    let exp = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    let base = s
        .backoff_base_secs
        .saturating_mul(1 << exp)
        .min(s.backoff_max_secs);
    let delay_ms = (base as f64 * 1000.0 * (0.8 + 0.4 * jitter)) as i64;
    let due = now_ms + delay_ms;
    let horizon_ms = i64::try_from(s.horizon_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    if due - first_attempt_ms > horizon_ms {
        Next::Dead
    } else {
        Next::RetryAt(due)
    }
}

impl Events {
    /// One attempt of a claimed delivery, recorded.
    async fn attempt(&self, client: &reqwest::Client, worker: &str, c: Claimed) {
        let outcome = match body(&c.event_id, c.event_type, c.at, &c.tenant, &c.payload) {
            Ok(b) => send(client, &c.url, &c.secrets, &c.event_id, b).await,
            Err(e) => Outcome {
                started_ms: unix_millis(),
                latency_ms: 0,
                http_status: None,
                error: Some(e.to_string()),
            },
        };
        let next = next_step(
            &self.settings,
            c.attempt,
            c.first_attempt_ms,
            outcome.http_status,
            unix_millis(),
            rand::random::<f64>(),
        );
        crate::telemetry::webhook_attempt(&c.tenant, outcome.http_status, next.label());
        match self.finish(worker, &c, &outcome, next).await {
            Ok(true) => tracing::debug!(status = ?outcome.http_status, ?next, "webhook attempt"),
            Ok(false) => {
                tracing::warn!("lease lost during a webhook attempt; its result is dropped")
            }
            Err(e) => tracing::warn!(error = %e, "cannot record a webhook attempt"),
        }
        if next == Next::Gone {
            tracing::warn!(endpoint = %c.endpoint_id, "endpoint answered 410 Gone: disabled");
        }
    }

    /// Sends a `webhook.ping` to one endpoint now, signed like any event,
    /// and reports what it answered; nothing is stored.
    pub async fn ping(
        &self,
        tenant: &str,
        endpoint: &str,
        now: i64,
    ) -> Result<PingResult, EventError> {
        let (url, secrets) = self.target(tenant, endpoint).await?;
        let id = format!("evt-ping-{}", hex::encode(rand::random::<[u8; 8]>()));
        let payload = serde_json::json!({"endpoint": endpoint}).to_string();
        let body = body(&id, EventType::WebhookPing, now, tenant, &payload)?;
        let client = client(Duration::from_secs(self.settings.timeout_secs))?;
        let outcome = send(&client, &url, &secrets, &id, body).await;
        Ok(PingResult {
            delivered: outcome.http_status.is_some_and(|s| (200..300).contains(&s)),
            http_status: outcome.http_status,
            latency_ms: outcome.latency_ms,
            error: outcome.error,
        })
    }
}

/// What a test ping came to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PingResult {
    /// The endpoint answered 2xx.
    pub delivered: bool,
    pub http_status: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// Delivers until `stop`. Claims up to two rounds of `concurrency`
/// deliveries at a time (one read for many attempts) and attempts up to
/// `concurrency` of them in parallel; polls when nothing is due. A claim
/// waiting in the queue keeps its lease, which therefore outlasts two
/// rounds of attempts at their time limit (see [`lease_ms`]).
pub async fn run(events: Events, mut stop: watch::Receiver<bool>) {
    let worker = format!(
        "deliverer-{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 4]>())
    );
    let s = events.settings.clone();
    let client = match client(Duration::from_secs(s.timeout_secs)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no webhook delivery");
            return;
        }
    };
    let lease = lease_ms(&s);
    let poll = Duration::from_millis(s.poll_ms.max(10));
    let concurrency = s.concurrency.max(1);
    let mut queue: VecDeque<Claimed> = VecDeque::new();
    let mut running = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        if queue.is_empty() && running.len() < concurrency {
            let batch = i64::try_from(2 * concurrency).unwrap_or(i64::MAX);
            match events.claim(&worker, batch, lease).await {
                Ok(claimed) => queue.extend(claimed),
                Err(e) => tracing::warn!(error = %e, "cannot claim webhook deliveries"),
            }
        }
        while running.len() < concurrency {
            let Some(c) = queue.pop_front() else { break };
            let span = tracing::info_span!("webhook.attempt", event = %c.event_id,
                endpoint = %c.endpoint_id, tenant = %c.tenant, attempt = c.attempt);
            let (events, client, worker) = (events.clone(), client.clone(), worker.clone());
            running
                .spawn(async move { events.attempt(&client, &worker, c).await }.instrument(span));
        }
        tokio::select! {
            _ = running.join_next(), if !running.is_empty() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
    // Claims not started go back at once; attempts in flight finish (each
    // bounded by the attempt timeout).
    for c in queue {
        if let Err(e) = events.release(&worker, &c).await {
            tracing::warn!(error = %e, "cannot release a webhook delivery");
        }
    }
    while running.join_next().await.is_some() {}
}

/// The lease of a claim: the configured one, but never shorter than two
/// rounds of attempts at their time limit plus a margin, so a queued claim
/// cannot lapse (and be sent by another host too) before its attempt.
fn lease_ms(s: &WebhookSettings) -> i64 {
    let floor = s.timeout_secs.saturating_mul(3).saturating_add(5);
    i64::try_from(s.lease_secs.max(floor).saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_the_cap_then_die_at_the_horizon() {
        let s = WebhookSettings {
            backoff_base_secs: 5,
            backoff_max_secs: 60,
            horizon_secs: 300,
            ..WebhookSettings::default()
        };
        let at = |attempt, now| next_step(&s, attempt, 0, Some(500), now, 0.5);
        assert_eq!(at(1, 0), Next::RetryAt(5_000));
        assert_eq!(at(2, 5_000), Next::RetryAt(15_000));
        assert_eq!(at(3, 15_000), Next::RetryAt(35_000));
        assert_eq!(at(5, 100_000), Next::RetryAt(160_000), "capped at 60 s");
        assert_eq!(
            at(9, 250_000),
            Next::Dead,
            "the next try would pass the horizon"
        );
        // Jitter stays within ±20 %.
        assert_eq!(next_step(&s, 1, 0, None, 0, 0.0), Next::RetryAt(4_000));
        assert_eq!(
            next_step(&s, 1, 0, None, 0, 0.999_999),
            Next::RetryAt(5_999)
        );
        assert_eq!(next_step(&s, 7, 0, Some(204), 0, 0.5), Next::Delivered);
        assert_eq!(next_step(&s, 1, 0, Some(410), 0, 0.5), Next::Gone);
        assert_eq!(
            next_step(&s, 1, 0, Some(301), 0, 0.5),
            Next::RetryAt(5_000),
            "no redirects"
        );
    }

    #[test]
    fn the_body_is_the_envelope_with_the_stored_payload() {
        let b = body(
            "evt-1",
            EventType::UserDeleted,
            0,
            "t1",
            r#"{"user":"u-7"}"#,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["type"], "user.deleted");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(v["data"]["user"], "u-7");
    }
}
