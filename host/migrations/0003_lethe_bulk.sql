-- Bulk actions: previews, and the durable jobs that execute them. Like every
-- lethe_* table they live in the shared database, so any host can resume a
-- job another host started (see the lease columns).

-- A preview: the selection as the tenant gave it, and what it matched. It
-- changes no user; executing it re-evaluates the selection and refuses when
-- the matched set or the outcomes have changed since (`digest`, counts).
CREATE TABLE lethe_bulk_previews (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    action         TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    transfer_to    TEXT,
    reason         TEXT,
    selection_json TEXT NOT NULL,
    -- sha256 over the sorted matched user ids.
    digest         TEXT NOT NULL,
    matched        BIGINT NOT NULL,
    -- Users the execute would apply to: what `confirm_count` must equal.
    confirm_count  BIGINT NOT NULL,
    preview_json   TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    -- Set once executed: a preview runs one job at most.
    job_id         TEXT UNIQUE
);
CREATE INDEX lethe_bulk_previews_tenant ON lethe_bulk_previews (tenant_id, created_at);

-- A job: one bulk action over a fixed list of users (its items).
-- status: queued → running → completed | cancelled.
CREATE TABLE lethe_bulk_jobs (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    preview_id       TEXT NOT NULL,
    action           TEXT NOT NULL,
    actor_id         TEXT NOT NULL,
    transfer_to      TEXT,
    reason           TEXT,
    status           TEXT NOT NULL,
    total            BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    -- The worker holding the job, until `lease_until` (unix milliseconds). A
    -- worker killed mid-job stops renewing; another (or the restarted host)
    -- takes the job over once the lease has passed.
    lease_owner      TEXT,
    lease_until      BIGINT
);
CREATE INDEX lethe_bulk_jobs_tenant ON lethe_bulk_jobs (tenant_id, created_at);
CREATE INDEX lethe_bulk_jobs_status ON lethe_bulk_jobs (status, lease_until);

-- One user of a job. `status` leaves `pending` in the same transaction as
-- the user's action (applied, escalated, denied), or in its own when the
-- action failed and applied nothing (failed) or the job was cancelled
-- (cancelled): a user is never applied twice nor left half-applied.
CREATE TABLE lethe_bulk_items (
    job_id        TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    user_id       TEXT NOT NULL,
    status        TEXT NOT NULL,
    code          TEXT,
    detail        TEXT,
    action_id     TEXT,
    escalation_id TEXT,
    done_at       BIGINT,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX lethe_bulk_items_status ON lethe_bulk_items (job_id, status, seq);
