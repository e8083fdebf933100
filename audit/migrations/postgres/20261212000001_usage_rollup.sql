-- Usage per hour and per day, per (machine, tool, user, exe, provider,
-- model), findings per hour and detector kind, and blocked secrets'
-- fingerprints per day and user: what the dashboard and
-- `audit agents`/`top` read for whole days and hours, so a page answers
-- from a few thousand rows instead of scanning a million. Partial hours at
-- a window's edges still come from audit_log, so answers are exact
-- (audit/src/rollup.rs).
--
-- Kept by a statement trigger running as the owner (agents, INSERT only on
-- audit_log, get no rights here), so every way a row arrives counts it
-- exactly once: rows ON CONFLICT DO NOTHING skips are not in the
-- transition table;
-- `prune` recounts the hours and days it cut. Unknown attributes are
-- stored as '' (a key column cannot be NULL and still conflict) and read
-- back as NULL.

CREATE TABLE IF NOT EXISTS usage_hourly (
    hour          TEXT    NOT NULL,  -- first 13 characters of ts: 2025-01-31T12
    machine_id    TEXT    NOT NULL,
    tool          TEXT    NOT NULL,
    "user"        TEXT    NOT NULL,
    exe           TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    requests      BIGINT  NOT NULL,
    input_tokens  BIGINT  NOT NULL,
    output_tokens BIGINT  NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    blocked       BIGINT  NOT NULL,
    redacted      BIGINT  NOT NULL,
    first_ts      TEXT    NOT NULL,
    last_ts       TEXT    NOT NULL,
    PRIMARY KEY (hour, machine_id, tool, "user", exe, provider, model)
);

CREATE TABLE IF NOT EXISTS usage_daily (
    day           TEXT    NOT NULL,  -- first 10 characters of ts: 2025-01-31
    machine_id    TEXT    NOT NULL,
    tool          TEXT    NOT NULL,
    "user"        TEXT    NOT NULL,
    exe           TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    requests      BIGINT  NOT NULL,
    input_tokens  BIGINT  NOT NULL,
    output_tokens BIGINT  NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    blocked       BIGINT  NOT NULL,
    redacted      BIGINT  NOT NULL,
    first_ts      TEXT    NOT NULL,
    last_ts       TEXT    NOT NULL,
    PRIMARY KEY (day, machine_id, tool, "user", exe, provider, model)
);

CREATE TABLE IF NOT EXISTS kinds_hourly (
    hour          TEXT    NOT NULL,
    machine_id    TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    requests      BIGINT  NOT NULL,
    input_tokens  BIGINT  NOT NULL,
    output_tokens BIGINT  NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    blocked       BIGINT  NOT NULL,
    redacted      BIGINT  NOT NULL,
    PRIMARY KEY (hour, machine_id, kind)
);
CREATE TABLE IF NOT EXISTS fingerprints_daily (
    day        TEXT   NOT NULL,
    machine_id TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    fp         TEXT   NOT NULL,
    "user"     TEXT   NOT NULL,
    times      BIGINT NOT NULL,
    first_ts   TEXT   NOT NULL,
    last_ts    TEXT   NOT NULL,
    PRIMARY KEY (day, machine_id, kind, fp, "user")
);
REVOKE ALL ON usage_hourly, usage_daily, kinds_hourly, fingerprints_daily FROM PUBLIC;

CREATE OR REPLACE FUNCTION usage_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO usage_hourly AS u (hour, machine_id, tool, "user", exe, provider, model, requests, input_tokens, output_tokens, cost_usd, blocked, redacted, first_ts, last_ts)
    SELECT substr(ts, 1, 13), machine_id, COALESCE(tool, ''), COALESCE("user", ''), COALESCE(exe, ''),
           COALESCE(provider, ''), COALESCE(model, ''), COUNT(*), SUM(COALESCE(input_tokens, 0)),
           SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost_usd, 0.0)), SUM(CASE WHEN verdict = 'blocked' THEN 1 ELSE 0 END),
           SUM(CASE WHEN verdict = 'redacted' THEN 1 ELSE 0 END), MIN(ts), MAX(ts)
    FROM inserted
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (hour, machine_id, tool, "user", exe, provider, model) DO UPDATE SET
        requests      = u.requests + excluded.requests,
        input_tokens  = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        cost_usd      = u.cost_usd + excluded.cost_usd,
        blocked       = u.blocked + excluded.blocked,
        redacted      = u.redacted + excluded.redacted,
        first_ts      = LEAST(u.first_ts, excluded.first_ts),
        last_ts       = GREATEST(u.last_ts, excluded.last_ts);
    INSERT INTO usage_daily AS u (day, machine_id, tool, "user", exe, provider, model, requests, input_tokens, output_tokens, cost_usd, blocked, redacted, first_ts, last_ts)
    SELECT substr(ts, 1, 10), machine_id, COALESCE(tool, ''), COALESCE("user", ''), COALESCE(exe, ''),
           COALESCE(provider, ''), COALESCE(model, ''), COUNT(*), SUM(COALESCE(input_tokens, 0)),
           SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost_usd, 0.0)), SUM(CASE WHEN verdict = 'blocked' THEN 1 ELSE 0 END),
           SUM(CASE WHEN verdict = 'redacted' THEN 1 ELSE 0 END), MIN(ts), MAX(ts)
    FROM inserted
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (day, machine_id, tool, "user", exe, provider, model) DO UPDATE SET
        requests      = u.requests + excluded.requests,
        input_tokens  = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        cost_usd      = u.cost_usd + excluded.cost_usd,
        blocked       = u.blocked + excluded.blocked,
        redacted      = u.redacted + excluded.redacted,
        first_ts      = LEAST(u.first_ts, excluded.first_ts),
        last_ts       = GREATEST(u.last_ts, excluded.last_ts);
    INSERT INTO kinds_hourly AS u (hour, machine_id, kind, requests, input_tokens, output_tokens, cost_usd, blocked, redacted)
    SELECT substr(a.ts, 1, 13), a.machine_id, f.kind, COUNT(*), SUM(COALESCE(a.input_tokens, 0)),
           SUM(COALESCE(a.output_tokens, 0)), SUM(COALESCE(a.cost_usd, 0.0)),
           SUM(CASE WHEN a.verdict = 'blocked' THEN 1 ELSE 0 END), SUM(CASE WHEN a.verdict = 'redacted' THEN 1 ELSE 0 END)
    FROM inserted AS a CROSS JOIN LATERAL jsonb_object_keys(a.findings::jsonb) AS f(kind)
    WHERE a.findings <> '{}'
    GROUP BY 1, 2, 3
    ON CONFLICT (hour, machine_id, kind) DO UPDATE SET
        requests      = u.requests + excluded.requests,
        input_tokens  = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        cost_usd      = u.cost_usd + excluded.cost_usd,
        blocked       = u.blocked + excluded.blocked,
        redacted      = u.redacted + excluded.redacted;
    INSERT INTO fingerprints_daily AS u (day, machine_id, kind, fp, "user", times, first_ts, last_ts)
    SELECT substr(a.ts, 1, 10), a.machine_id, f.v->>'kind', f.v->>'fp', COALESCE(a."user", ''),
           COUNT(*), MIN(a.ts), MAX(a.ts)
    FROM inserted AS a CROSS JOIN LATERAL jsonb_array_elements(a.fingerprints::jsonb) AS f(v)
    WHERE a.fingerprints <> '[]'
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (day, machine_id, kind, fp, "user") DO UPDATE SET
        times    = u.times + excluded.times,
        first_ts = LEAST(u.first_ts, excluded.first_ts),
        last_ts  = GREATEST(u.last_ts, excluded.last_ts);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION usage_add() FROM PUBLIC;

DROP TRIGGER IF EXISTS usage_add ON audit_log;
CREATE TRIGGER usage_add AFTER INSERT ON audit_log
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION usage_add();

INSERT INTO usage_hourly (hour, machine_id, tool, "user", exe, provider, model, requests, input_tokens, output_tokens, cost_usd, blocked, redacted, first_ts, last_ts)
SELECT substr(ts, 1, 13), machine_id, COALESCE(tool, ''), COALESCE("user", ''), COALESCE(exe, ''),
       COALESCE(provider, ''), COALESCE(model, ''), COUNT(*), SUM(COALESCE(input_tokens, 0)),
       SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost_usd, 0.0)), SUM(CASE WHEN verdict = 'blocked' THEN 1 ELSE 0 END),
       SUM(CASE WHEN verdict = 'redacted' THEN 1 ELSE 0 END), MIN(ts), MAX(ts)
FROM audit_log
GROUP BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT DO NOTHING;
INSERT INTO usage_daily (day, machine_id, tool, "user", exe, provider, model, requests, input_tokens, output_tokens, cost_usd, blocked, redacted, first_ts, last_ts)
SELECT substr(ts, 1, 10), machine_id, COALESCE(tool, ''), COALESCE("user", ''), COALESCE(exe, ''),
       COALESCE(provider, ''), COALESCE(model, ''), COUNT(*), SUM(COALESCE(input_tokens, 0)),
       SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost_usd, 0.0)), SUM(CASE WHEN verdict = 'blocked' THEN 1 ELSE 0 END),
       SUM(CASE WHEN verdict = 'redacted' THEN 1 ELSE 0 END), MIN(ts), MAX(ts)
FROM audit_log
GROUP BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT DO NOTHING;
INSERT INTO kinds_hourly (hour, machine_id, kind, requests, input_tokens, output_tokens, cost_usd, blocked, redacted)
SELECT substr(a.ts, 1, 13), a.machine_id, f.kind, COUNT(*), SUM(COALESCE(a.input_tokens, 0)),
       SUM(COALESCE(a.output_tokens, 0)), SUM(COALESCE(a.cost_usd, 0.0)),
       SUM(CASE WHEN a.verdict = 'blocked' THEN 1 ELSE 0 END), SUM(CASE WHEN a.verdict = 'redacted' THEN 1 ELSE 0 END)
FROM audit_log AS a CROSS JOIN LATERAL jsonb_object_keys(a.findings::jsonb) AS f(kind)
WHERE a.findings <> '{}'
GROUP BY 1, 2, 3
ON CONFLICT DO NOTHING;
INSERT INTO fingerprints_daily (day, machine_id, kind, fp, "user", times, first_ts, last_ts)
SELECT substr(a.ts, 1, 10), a.machine_id, f.v->>'kind', f.v->>'fp', COALESCE(a."user", ''),
       COUNT(*), MIN(a.ts), MAX(a.ts)
FROM audit_log AS a CROSS JOIN LATERAL jsonb_array_elements(a.fingerprints::jsonb) AS f(v)
WHERE a.fingerprints <> '[]'
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT DO NOTHING;

-- Auditors read them as they read audit_log (deploy/postgres-roles.sql
-- grants the same on a fresh set-up).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'promptwall_auditor') THEN
        GRANT SELECT ON usage_hourly, usage_daily, kinds_hourly, fingerprints_daily TO promptwall_auditor;
    END IF;
END
$$;

-- The rows at a window's edges with findings or fingerprints.
CREATE INDEX IF NOT EXISTS audit_log_with_findings ON audit_log (ts) WHERE findings <> '{}';
CREATE INDEX IF NOT EXISTS audit_log_with_fingerprints ON audit_log (ts) WHERE fingerprints <> '[]';

-- The Live page's filters by user and by verdict walk these backwards
-- instead of every row (tool has audit_log_tool; providers are few).
CREATE INDEX IF NOT EXISTS audit_log_user ON audit_log ("user", ts);
CREATE INDEX IF NOT EXISTS audit_log_verdict ON audit_log (verdict, ts);

-- A row by its id (`audit show`, the UI's request page): the primary key
-- leads with the machine and install, so without this an id is found by
-- reading every row of its machine.
CREATE INDEX IF NOT EXISTS audit_log_id ON audit_log (id, machine_id);
