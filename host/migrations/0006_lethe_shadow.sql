-- Shadow evaluation: a candidate version decides beside the active one on
-- live requests, off the request path; where the two disagree is recorded.

-- At most one shadow version per tenant.
CREATE TABLE lethe_policy_shadow (
    tenant_id  TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    started_by TEXT NOT NULL
);

-- Per replica, tenant and shadow version: how many live decisions the
-- shadow saw, agreed with, disagreed with, faulted on, and how many it had
-- to drop because its queue was full. Flushed by each replica every second.
CREATE TABLE lethe_shadow_counts (
    replica_id TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    version    BIGINT NOT NULL,
    evaluated  BIGINT NOT NULL,
    agreed     BIGINT NOT NULL,
    disagreed  BIGINT NOT NULL,
    faults     BIGINT NOT NULL,
    dropped    BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (replica_id, tenant_id, version)
);

-- The disagreements themselves (the first ones per replica and version):
-- the request, what the active version decided, what the shadow decided.
CREATE TABLE lethe_shadow_disagreements (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    live_version BIGINT,
    subject_id   TEXT NOT NULL,
    action       TEXT NOT NULL,
    request_json TEXT NOT NULL,
    live_json    TEXT NOT NULL,
    shadow_json  TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX lethe_shadow_disagreements_tenant ON lethe_shadow_disagreements (tenant_id, version, at);
