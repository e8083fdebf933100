-- Central fleet store: rows shipped from every agent's SQLite spool.
-- Same columns as the spool; all integers BIGINT so one decoder reads both.
CREATE TABLE IF NOT EXISTS audit_log (
    id                   BIGINT  NOT NULL,
    machine_id           TEXT    NOT NULL,
    ts                   TEXT    NOT NULL,  -- RFC3339 UTC, ms: sorts as text
    listener             TEXT    NOT NULL,
    provider             TEXT,
    host                 TEXT,
    method               TEXT,
    path                 TEXT,
    shape                TEXT,
    model                TEXT,
    status               BIGINT  NOT NULL,
    input_tokens         BIGINT,
    output_tokens        BIGINT,
    cache_read_tokens    BIGINT,
    cache_write_tokens   BIGINT,
    request_bytes        BIGINT,
    response_bytes       BIGINT,
    duration_ms          DOUBLE PRECISION,
    ttfb_ms              DOUBLE PRECISION,
    pid                  BIGINT,
    exe                  TEXT,
    cmdline              TEXT,
    uid                  BIGINT,
    "user"               TEXT,
    login_user           TEXT,
    tool                 TEXT,
    container_id         TEXT,
    socket_cookie        BIGINT,
    original_dst         TEXT,
    verdict              TEXT    NOT NULL,
    findings             TEXT    NOT NULL,
    fingerprints         TEXT    NOT NULL,
    error                TEXT,
    llm                  BOOLEAN NOT NULL,
    cost_usd             DOUBLE PRECISION,
    request_body         TEXT,
    response_body        TEXT,
    request_body_sha256  TEXT,
    response_body_sha256 TEXT,
    prev_hash            TEXT    NOT NULL,
    hash                 TEXT    NOT NULL,
    PRIMARY KEY (machine_id, id)
);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts);
CREATE INDEX IF NOT EXISTS audit_log_tool ON audit_log (tool, ts);

CREATE TABLE IF NOT EXISTS audit_checkpoint (
    machine_id  TEXT PRIMARY KEY,
    last_id     BIGINT NOT NULL,
    last_hash   TEXT   NOT NULL,
    pruned_rows BIGINT NOT NULL,
    ts          TEXT   NOT NULL
);
