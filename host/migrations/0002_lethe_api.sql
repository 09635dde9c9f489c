-- The HTTP API's state. Like every lethe_* table it lives in the shared
-- database, so several hosts serving one PostgreSQL database see the same
-- keys and the same escalation queue.

-- Bearer API keys. Only the sha256 of a secret is stored; the secret is
-- printed once by `lethe keys create`. `tenant_id` is NULL for a support
-- (operator) key.
CREATE TABLE lethe_api_keys (
    id         TEXT PRIMARY KEY,
    sha256     TEXT NOT NULL UNIQUE,
    tenant_id  TEXT,
    label      TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- The escalation queue: an action a policy sent to a team. `action_id` is
-- the escalating decision (its record is in lethe_decisions); `from_state`
-- is the subject's state then, so an approval of a user who changed since
-- is refused.
CREATE TABLE lethe_escalations (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    action           TEXT NOT NULL,
    actor_id         TEXT NOT NULL,
    transfer_to      TEXT,
    reason           TEXT,
    queue            TEXT NOT NULL,
    queue_reason     TEXT NOT NULL,
    from_state       TEXT NOT NULL,
    action_id        TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    decided_at       BIGINT,
    decided_by       TEXT,
    note             TEXT,
    result_action_id TEXT
);
CREATE INDEX lethe_escalations_tenant ON lethe_escalations (tenant_id, status);
CREATE INDEX lethe_escalations_status ON lethe_escalations (status, created_at);
