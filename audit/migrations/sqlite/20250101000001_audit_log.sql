-- One row per proxied request. `id` is assigned by the single writer
-- (max + 1) so it is part of the hash chain; (machine_id, id) is the fleet key.
CREATE TABLE IF NOT EXISTS audit_log (
    id                   INTEGER PRIMARY KEY,
    machine_id           TEXT    NOT NULL,
    ts                   TEXT    NOT NULL,  -- RFC3339 UTC, ms: sorts as text
    listener             TEXT    NOT NULL,
    provider             TEXT,
    host                 TEXT,
    method               TEXT,
    path                 TEXT,
    shape                TEXT,
    model                TEXT,
    status               INTEGER NOT NULL,
    input_tokens         INTEGER,
    output_tokens        INTEGER,
    cache_read_tokens    INTEGER,
    cache_write_tokens   INTEGER,
    request_bytes        INTEGER,
    response_bytes       INTEGER,
    duration_ms          REAL,
    ttfb_ms              REAL,
    pid                  INTEGER,
    exe                  TEXT,
    cmdline              TEXT,
    uid                  INTEGER,
    user                 TEXT,
    login_user           TEXT,
    tool                 TEXT,
    container_id         TEXT,
    socket_cookie        INTEGER,
    original_dst         TEXT,
    verdict              TEXT    NOT NULL,
    findings             TEXT    NOT NULL,  -- JSON object kind -> count, keys sorted
    fingerprints         TEXT    NOT NULL,  -- JSON list of {kind, fp}
    error                TEXT,
    llm                  BOOLEAN NOT NULL,
    cost_usd             REAL,
    request_body         TEXT,
    response_body        TEXT,
    request_body_sha256  TEXT,
    response_body_sha256 TEXT,
    prev_hash            TEXT    NOT NULL,
    hash                 TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts);
CREATE INDEX IF NOT EXISTS audit_log_machine_id ON audit_log (machine_id, id);
CREATE INDEX IF NOT EXISTS audit_log_tool ON audit_log (tool, ts);

-- Where the chain continues after `prune`: the hash of the last pruned row.
CREATE TABLE IF NOT EXISTS audit_checkpoint (
    machine_id  TEXT PRIMARY KEY,
    last_id     INTEGER NOT NULL,
    last_hash   TEXT    NOT NULL,
    pruned_rows INTEGER NOT NULL,
    ts          TEXT    NOT NULL
);

-- Fleet shipping high-water mark per central store (URL without password).
CREATE TABLE IF NOT EXISTS audit_shipping (
    central       TEXT PRIMARY KEY,
    shipped_upto  INTEGER NOT NULL,
    updated_ts    TEXT    NOT NULL
);
