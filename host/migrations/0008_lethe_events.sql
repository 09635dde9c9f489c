-- Events: facts about changes, written in the change's own transaction
-- (the outbox), then delivered to the tenant's webhook endpoints, signed.
-- Payloads carry ids and counts, never profile values: an event outlives
-- the erase of the user it names.
CREATE TABLE lethe_events (
    -- evt-<32 hex>: the webhook-id every attempt carries (receivers dedupe on it).
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    -- The user the event is about (user and escalation events), else NULL.
    user_id      TEXT,
    -- Order of the user's events (1, 2, 3…); NULL when not about a user.
    stream_seq   BIGINT,
    payload_json TEXT NOT NULL,
    -- Unix seconds: the change's own time.
    at           BIGINT NOT NULL,
    -- Unix milliseconds, wall clock, and a tie-breaker: list order.
    created_ms   BIGINT NOT NULL
);
CREATE INDEX lethe_events_tenant ON lethe_events (tenant_id, created_ms);
CREATE INDEX lethe_events_user ON lethe_events (tenant_id, user_id, stream_seq);

-- The last sequence number of each user's events. Bumping it locks the
-- row until commit (PostgreSQL; SQLite serialises writers), so a user's
-- sequence follows commit order.
CREATE TABLE lethe_event_streams (
    tenant_id TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    last_seq  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

-- Where a tenant's events go. The signing secret must stay usable for
-- HMAC (unlike API keys, stored as sha256); during a rotation the previous
-- one signs too, until `previous_until`.
CREATE TABLE lethe_webhook_endpoints (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    url              TEXT NOT NULL,
    description      TEXT,
    -- JSON array of event types; empty: every type.
    event_types_json TEXT NOT NULL,
    enabled          BIGINT NOT NULL,
    -- Why it is disabled: `operator`, or `gone` (it answered 410).
    disabled_reason  TEXT,
    secret           TEXT NOT NULL,
    secret_previous  TEXT,
    previous_until   BIGINT,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX lethe_webhook_endpoints_tenant ON lethe_webhook_endpoints (tenant_id);

-- One event for one endpoint: pending → delivered, or failed (retried at
-- next_attempt_ms) until the horizon, then dead. Leased while an attempt
-- is in flight, like bulk jobs, so several hosts never send one attempt
-- twice. Only the oldest undelivered event of a user's stream is sent.
CREATE TABLE lethe_webhook_deliveries (
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    tenant_id        TEXT NOT NULL,
    user_id          TEXT,
    stream_seq       BIGINT,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    -- Unix milliseconds.
    next_attempt_ms  BIGINT NOT NULL,
    first_attempt_ms BIGINT,
    last_status      BIGINT,
    last_error       TEXT,
    last_latency_ms  BIGINT,
    delivered_ms     BIGINT,
    lease_owner      TEXT,
    lease_until      BIGINT,
    created_ms       BIGINT NOT NULL,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX lethe_webhook_deliveries_due ON lethe_webhook_deliveries (status, next_attempt_ms);
CREATE INDEX lethe_webhook_deliveries_stream ON lethe_webhook_deliveries (endpoint_id, user_id, stream_seq);

-- The delivery log: every attempt, kept.
CREATE TABLE lethe_webhook_attempts (
    event_id    TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    started_ms  BIGINT NOT NULL,
    latency_ms  BIGINT NOT NULL,
    -- NULL: no answer (timeout, refused connection).
    http_status BIGINT,
    error       TEXT,
    worker      TEXT NOT NULL,
    PRIMARY KEY (event_id, endpoint_id, attempt)
);
