-- The sample platform Lethe manages in the demo, tests and benchmark: a small
-- multi-tenant CRM/marketing/mentoring product. Every table carries
-- `tenant_id`. Ids are text ("t1-u7"), times are unix seconds.
--
-- The same file runs on SQLite and PostgreSQL (`lethe seed` applies it when
-- the tables are missing), so both backends hold byte-for-byte the same data
-- model. Keep it free of backend-specific syntax and of `;` inside
-- statements: the loader splits on `;`.

CREATE TABLE IF NOT EXISTS users (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    email             TEXT,
    -- The login name (SCIM userName); seeded users log in with their email.
    username          TEXT,
    -- The display name.
    name              TEXT,
    given_name        TEXT,
    family_name       TEXT,
    -- The identity provider's id of a user provisioned over SCIM.
    external_id       TEXT,
    phone             TEXT,
    avatar_url        TEXT,
    role              TEXT NOT NULL,            -- comma-separated roles
    permissions       TEXT NOT NULL DEFAULT '', -- comma-separated permissions
    domain            TEXT NOT NULL,
    is_domain_contact BOOLEAN NOT NULL DEFAULT FALSE,
    platform_count    BIGINT NOT NULL DEFAULT 1,
    status            TEXT NOT NULL,
    last_login_at     BIGINT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_tenant_email ON users (tenant_id, email);

CREATE TABLE IF NOT EXISTS contacts (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    email      TEXT,
    phone      TEXT,
    company    TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS contacts_owner ON contacts (tenant_id, owner_id);

CREATE TABLE IF NOT EXISTS campaigns (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    status     TEXT NOT NULL, -- draft | running | done
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_owner ON campaigns (tenant_id, owner_id);

CREATE TABLE IF NOT EXISTS campaign_recipients (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    email       TEXT NOT NULL,
    name        TEXT
);
CREATE INDEX IF NOT EXISTS campaign_recipients_campaign ON campaign_recipients (campaign_id);

CREATE TABLE IF NOT EXISTS assets (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users (id),
    campaign_id TEXT REFERENCES campaigns (id),
    title       TEXT NOT NULL,
    url         TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS assets_owner ON assets (tenant_id, owner_id);
CREATE INDEX IF NOT EXISTS assets_campaign ON assets (campaign_id);

CREATE TABLE IF NOT EXISTS deals (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    owner_id     TEXT NOT NULL REFERENCES users (id),
    title        TEXT NOT NULL,
    value_cents  BIGINT NOT NULL,
    status       TEXT NOT NULL, -- open | won | lost
    contact_name TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS deals_owner ON deals (tenant_id, owner_id);

CREATE TABLE IF NOT EXISTS leads (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    email      TEXT,
    phone      TEXT,
    status     TEXT NOT NULL, -- open | converted | lost
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS leads_owner ON leads (tenant_id, owner_id);

CREATE TABLE IF NOT EXISTS products (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS products_owner ON products (tenant_id, owner_id);

CREATE TABLE IF NOT EXISTS activities (
    id        TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    owner_id  TEXT NOT NULL REFERENCES users (id),
    subject   TEXT NOT NULL,
    status    TEXT NOT NULL, -- done | undone
    due_at    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS activities_owner ON activities (tenant_id, owner_id);

CREATE TABLE IF NOT EXISTS mentoring_matches (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    mentor_id  TEXT NOT NULL REFERENCES users (id),
    mentee_id  TEXT NOT NULL REFERENCES users (id),
    status     TEXT NOT NULL, -- active | ended
    goal       TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS mentoring_mentor ON mentoring_matches (tenant_id, mentor_id);
CREATE INDEX IF NOT EXISTS mentoring_mentee ON mentoring_matches (tenant_id, mentee_id);

CREATE TABLE IF NOT EXISTS messages (
    id        TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    sender_id TEXT NOT NULL REFERENCES users (id),
    body      TEXT NOT NULL,
    sent_at   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_sender ON messages (tenant_id, sender_id);

CREATE TABLE IF NOT EXISTS sessions (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (tenant_id, user_id);

-- An append-only log: it names users by id and in its text line, but holds
-- no foreign keys, like most audit logs.
CREATE TABLE IF NOT EXISTS admin_activity (
    id        TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    actor_id  TEXT NOT NULL,
    target_id TEXT,
    line      TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS admin_activity_actor ON admin_activity (tenant_id, actor_id);
CREATE INDEX IF NOT EXISTS admin_activity_target ON admin_activity (tenant_id, target_id);

CREATE TABLE IF NOT EXISTS billing_seats (
    id        TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id   TEXT NOT NULL REFERENCES users (id),
    month     TEXT NOT NULL -- YYYY-MM
);
CREATE INDEX IF NOT EXISTS billing_seats_user ON billing_seats (tenant_id, user_id);
