-- Alerts waiting for delivery, one row per (event, webhook): written in the
-- same store as the audit log so an alert survives an agent crash, and
-- marked delivered only after the webhook acknowledged it (at least once;
-- receivers deduplicate by event_id).
CREATE TABLE IF NOT EXISTS alert_outbox (
    seq             BIGSERIAL PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    webhook         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    delivered_at    TEXT,
    last_error      TEXT,
    UNIQUE (event_id, webhook)
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox (delivered_at, next_attempt_at);
