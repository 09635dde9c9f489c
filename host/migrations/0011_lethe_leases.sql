-- Cluster leases: periodic work that must run on one replica at a time
-- (the window-expiry sweep), claimed by a conditional upsert. `until_ms` is
-- unix milliseconds; a lease whose `until_ms` has passed is free to take.
CREATE TABLE lethe_leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
