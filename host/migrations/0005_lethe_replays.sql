-- Replay reports: what a candidate policy version would have decided on a
-- tenant's recorded requests, kept so an operator can read them later.
CREATE TABLE lethe_policy_replays (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    report_json TEXT NOT NULL
);
CREATE INDEX lethe_policy_replays_tenant ON lethe_policy_replays (tenant_id, created_at);
