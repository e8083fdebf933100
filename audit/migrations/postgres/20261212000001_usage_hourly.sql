-- Usage per hour and per (machine, tool, user, exe, provider, model,
-- verdict): what the dashboard's Agents, Spend and Protection pages and
-- `audit agents`/`top` read for whole hours, so they answer from a few
-- thousand rows instead of scanning millions. Partial hours at a window's
-- edges still come from audit_log, so answers are exact.
--
-- Kept by a statement trigger (one upsert per key per shipped batch), so
-- every way a row arrives counts it exactly once: rows that ON CONFLICT DO
-- NOTHING skips are not in the transition table. The function runs as the
-- owner, so agents (INSERT on audit_log only) never get rights on this
-- table. `prune` rebuilds the hours it touched. Unknown attributes are
-- stored as '' and read back as NULL.
CREATE TABLE IF NOT EXISTS usage_hourly (
    hour          TEXT    NOT NULL,  -- first 13 characters of ts: 2025-01-31T12
    machine_id    TEXT    NOT NULL,
    tool          TEXT    NOT NULL,
    "user"        TEXT    NOT NULL,
    exe           TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    verdict       TEXT    NOT NULL,
    requests      BIGINT  NOT NULL,
    input_tokens  BIGINT  NOT NULL,
    output_tokens BIGINT  NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    first_ts      TEXT    NOT NULL,
    last_ts       TEXT    NOT NULL,
    PRIMARY KEY (hour, machine_id, tool, "user", exe, provider, model, verdict)
);
REVOKE ALL ON usage_hourly FROM PUBLIC;

CREATE OR REPLACE FUNCTION usage_hourly_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO usage_hourly AS u (hour, machine_id, tool, "user", exe, provider, model, verdict,
                                   requests, input_tokens, output_tokens, cost_usd, first_ts, last_ts)
    SELECT substr(ts, 1, 13), machine_id, COALESCE(tool, ''), COALESCE("user", ''), COALESCE(exe, ''),
           COALESCE(provider, ''), COALESCE(model, ''), verdict,
           COUNT(*), SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0)),
           SUM(COALESCE(cost_usd, 0.0)), MIN(ts), MAX(ts)
    FROM inserted
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT (hour, machine_id, tool, "user", exe, provider, model, verdict) DO UPDATE SET
        requests      = u.requests + excluded.requests,
        input_tokens  = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        cost_usd      = u.cost_usd + excluded.cost_usd,
        first_ts      = LEAST(u.first_ts, excluded.first_ts),
        last_ts       = GREATEST(u.last_ts, excluded.last_ts);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION usage_hourly_add() FROM PUBLIC;

DROP TRIGGER IF EXISTS usage_hourly_add ON audit_log;
CREATE TRIGGER usage_hourly_add AFTER INSERT ON audit_log
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_add();

INSERT INTO usage_hourly (hour, machine_id, tool, "user", exe, provider, model, verdict,
                          requests, input_tokens, output_tokens, cost_usd, first_ts, last_ts)
SELECT substr(ts, 1, 13), machine_id, COALESCE(tool, ''), COALESCE("user", ''), COALESCE(exe, ''),
       COALESCE(provider, ''), COALESCE(model, ''), verdict,
       COUNT(*), SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0)),
       SUM(COALESCE(cost_usd, 0.0)), MIN(ts), MAX(ts)
FROM audit_log
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
ON CONFLICT DO NOTHING;

-- Auditors read it as they read audit_log (deploy/postgres-roles.sql grants
-- the same on a fresh set-up).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'promptwall_auditor') THEN
        GRANT SELECT ON usage_hourly TO promptwall_auditor;
    END IF;
END
$$;

-- The Protection page reads only rows with findings or fingerprints: a few
-- percent of a store.
CREATE INDEX IF NOT EXISTS audit_log_with_findings ON audit_log (ts) WHERE findings <> '{}';
CREATE INDEX IF NOT EXISTS audit_log_with_fingerprints ON audit_log (ts) WHERE fingerprints <> '[]';
