-- What a key was first used for (sha256 of the action, subject, actor and
-- options), so the same key with another request is refused instead of
-- answered with the first request's result. NULL for keys stored before.
ALTER TABLE lethe_idempotency ADD COLUMN request_sha256 TEXT;
