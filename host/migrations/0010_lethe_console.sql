-- Console sessions: a person signed in with an API key. Only the sha256 of
-- the cookie's value is kept, and the key's sha256, so a revoked key ends
-- its sessions at the next request.
CREATE TABLE lethe_console_sessions (
    sha256      TEXT PRIMARY KEY,
    key_sha256  TEXT NOT NULL,
    -- tenant, support or operator
    role        TEXT NOT NULL,
    tenant_id   TEXT,
    -- The tenant user the session acts as (tenant sessions).
    actor_id    TEXT,
    -- Support sessions: the agent's name, recorded on approvals.
    agent       TEXT,
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    ended_at    BIGINT
);

-- The users a session has selected for a bulk action, kept across pages.
CREATE TABLE lethe_console_selections (
    session_sha256 TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    PRIMARY KEY (session_sha256, user_id)
);
