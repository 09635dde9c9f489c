-- SCIM 2.0: identity providers provision and deprovision a tenant's users.

-- Bearer tokens of identity providers, one tenant each. Like API keys,
-- only the sha256 of a token is kept; the token is shown once.
CREATE TABLE lethe_scim_tokens (
    -- scim-<16 hex>
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    sha256     TEXT NOT NULL UNIQUE,
    -- Names the identity provider: its actions are asked by `scim:<label>`.
    label      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX lethe_scim_tokens_tenant ON lethe_scim_tokens (tenant_id);

-- What `active: false` means for a tenant (deactivate or lock); a tenant
-- without a row deactivates.
CREATE TABLE lethe_scim_settings (
    tenant_id   TEXT PRIMARY KEY,
    deprovision TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL
);

-- Every SCIM request, reads included, with the identity provider that made
-- it, written once its answer is known. A lifecycle action it ran is in the
-- audit trail (and the decision records) under `action_id`.
CREATE TABLE lethe_scim_requests (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    token_id   TEXT NOT NULL,
    -- scim:<label>, the actor its actions are asked by.
    actor      TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    user_id    TEXT,
    status     BIGINT NOT NULL,
    -- created, updated, deprovisioned, reprovisioned, deleted, escalated,
    -- denied, unchanged, read, refused
    outcome    TEXT NOT NULL,
    action_id  TEXT,
    at         BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX lethe_scim_requests_tenant ON lethe_scim_requests (tenant_id, created_ms);
