-- Explicit-listener tokens (`promptwall token create`): only a SHA-256 of
-- each token is kept; the token itself is shown once. Limits are optional
-- per token; revoked tokens stay listed.
CREATE TABLE IF NOT EXISTS api_tokens (
    id              TEXT PRIMARY KEY,
    hash            TEXT NOT NULL UNIQUE,
    user_name       TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    name            TEXT,
    rate_per_minute DOUBLE PRECISION,
    tokens_per_day  DOUBLE PRECISION,
    created_at      TEXT NOT NULL,
    revoked_at      TEXT
);
