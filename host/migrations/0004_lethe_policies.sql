-- Tenants and their policy versions, held in the shared database so every
-- host serves the same version of each tenant's policy, and an old decision
-- can always be traced to (and re-run with) the component that made it.
-- `lethe.toml`'s `[[tenant]]` entries are imported here at start when new.

CREATE TABLE lethe_tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Component bytes, content-addressed: a thousand tenants deploying the same
-- component store it once. Never deleted while a version names it.
-- (BYTEA: PostgreSQL's binary type; SQLite stores the blob as given.)
CREATE TABLE lethe_policy_blobs (
    sha256     TEXT PRIMARY KEY,
    size_bytes BIGINT NOT NULL,
    bytes      BYTEA NOT NULL
);

-- One immutable upload of a tenant's component. `status` is `accepted`
-- (passed the validation gate; may be activated) or `rejected` (kept so the
-- operator sees why; can never be activated). `report_json` is the gate's
-- report, `describe_json` what the component said of itself.
CREATE TABLE lethe_policy_versions (
    tenant_id        TEXT NOT NULL,
    version          BIGINT NOT NULL,
    sha256           TEXT NOT NULL,
    status           TEXT NOT NULL,
    contract_version TEXT,
    describe_json    TEXT,
    size_bytes       BIGINT NOT NULL,
    uploaded_by      TEXT NOT NULL,
    message          TEXT,
    report_json      TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
CREATE INDEX lethe_policy_versions_sha ON lethe_policy_versions (sha256);

-- The version each tenant's decisions are made by, at most one.
CREATE TABLE lethe_policy_active (
    tenant_id    TEXT PRIMARY KEY,
    version      BIGINT NOT NULL,
    activated_at BIGINT NOT NULL
);

-- Every activation, forever: who switched which tenant from which version
-- to which, and why (`kind`: activate, rollback, bootstrap). `seq` orders a
-- tenant's activations (1, 2, 3…; several may share a second).
CREATE TABLE lethe_policy_activations (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    from_version BIGINT,
    to_version   BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    activated_by TEXT NOT NULL,
    reason       TEXT,
    at           BIGINT NOT NULL
);
CREATE UNIQUE INDEX lethe_policy_activations_seq ON lethe_policy_activations (tenant_id, seq);

-- One row, bumped in every activation's transaction: replicas poll it (a
-- one-row read) and re-read the active versions only when it moved.
CREATE TABLE lethe_policy_generation (
    id         BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO lethe_policy_generation (id, generation) VALUES (1, 0);

-- What each running host serves per tenant, written when it loads (or
-- fails to load) a version, so an operator sees a replica left behind.
-- `seen_at` is the replica's heartbeat (unix ms); a replica not seen for a
-- while is no longer reported as running.
CREATE TABLE lethe_replicas (
    replica_id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);
CREATE TABLE lethe_replica_policies (
    replica_id TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    version    BIGINT,
    wanted     BIGINT NOT NULL,
    error      TEXT,
    at         BIGINT NOT NULL,
    PRIMARY KEY (replica_id, tenant_id)
);

-- Each decision names the version that made it (NULL: made before versions
-- were kept, or by a component loaded from a file by a tool).
ALTER TABLE lethe_decisions ADD COLUMN policy_version BIGINT;

-- Operator keys: `role` is `operator` for them; NULL keeps the meaning of
-- earlier rows (a tenant key, or support when `tenant_id` is NULL).
ALTER TABLE lethe_api_keys ADD COLUMN role TEXT;
