-- Fleet limits: each agent's usage per (limit, identity key, calendar
-- window), kept at its highest; a limit's fleet usage is the sum over
-- machines. Written and read by every agent sharing this store.
CREATE TABLE IF NOT EXISTS quota_usage (
    limit_name   TEXT             NOT NULL,
    key          TEXT             NOT NULL,
    window_start BIGINT           NOT NULL,
    machine_id   TEXT             NOT NULL,
    used         DOUBLE PRECISION NOT NULL,
    updated_at   TEXT             NOT NULL,
    PRIMARY KEY (limit_name, key, window_start, machine_id)
);
