//! Per HTTP request: an id, a span, and the HTTP metrics.
//!
//! The id is the caller's `x-request-id` when it is sane (1 to 128
//! printable ASCII characters), otherwise a new one. It is echoed in the
//! response header, carried by the `http.request` span (so every log line of
//! the request has it) and put into every problem+json body
//! ([`current`], read by `api::problem`). The metrics are labelled with the
//! route template, never the raw path.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header a request id travels in, both ways.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served, inside [`middleware`].
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// `axum::middleware::from_fn` over the whole router.
pub async fn middleware(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| sane(id))
        .map_or_else(
            || format!("req-{}", hex::encode(rand::random::<[u8; 12]>())),
            str::to_owned,
        );
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http.request",
        request_id = %id,
        method = %method,
        route = %route,
        status = tracing::field::Empty,
    );
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    let status = response.status().as_u16();
    span.record("status", status);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    super::http_request(&route, &method, status, started.elapsed());
    tracing::debug!(parent: &span, elapsed_us = started.elapsed().as_micros() as u64, "served");
    response
}
