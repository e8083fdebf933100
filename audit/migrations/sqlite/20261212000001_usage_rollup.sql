-- Usage per hour and per day, per (machine, tool, user, exe, provider,
-- model), findings per hour and detector kind, and blocked secrets'
-- fingerprints per day and user: what the dashboard and
-- `audit agents`/`top` read for whole days and hours, so a page answers
-- from a few thousand rows instead of scanning a million. Partial hours at
-- a window's edges still come from audit_log, so answers are exact
-- (audit/src/rollup.rs).
--
-- Kept by triggers, so every way a row arrives counts it exactly once;
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

CREATE TRIGGER IF NOT EXISTS usage_add AFTER INSERT ON audit_log
BEGIN
    INSERT INTO usage_hourly (hour, machine_id, tool, "user", exe, provider, model, requests, input_tokens, output_tokens, cost_usd, blocked, redacted, first_ts, last_ts)
    VALUES (substr(NEW.ts, 1, 13), NEW.machine_id, COALESCE(NEW.tool, ''), COALESCE(NEW."user", ''),
            COALESCE(NEW.exe, ''), COALESCE(NEW.provider, ''), COALESCE(NEW.model, ''),
            1, COALESCE(NEW.input_tokens, 0), COALESCE(NEW.output_tokens, 0), COALESCE(NEW.cost_usd, 0.0),
            NEW.verdict = 'blocked', NEW.verdict = 'redacted', NEW.ts, NEW.ts)
    ON CONFLICT (hour, machine_id, tool, "user", exe, provider, model) DO UPDATE SET
        requests      = requests + 1,
        input_tokens  = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost_usd      = cost_usd + excluded.cost_usd,
        blocked       = blocked + excluded.blocked,
        redacted      = redacted + excluded.redacted,
        first_ts      = MIN(first_ts, excluded.first_ts),
        last_ts       = MAX(last_ts, excluded.last_ts);
    INSERT INTO usage_daily (day, machine_id, tool, "user", exe, provider, model, requests, input_tokens, output_tokens, cost_usd, blocked, redacted, first_ts, last_ts)
    VALUES (substr(NEW.ts, 1, 10), NEW.machine_id, COALESCE(NEW.tool, ''), COALESCE(NEW."user", ''),
            COALESCE(NEW.exe, ''), COALESCE(NEW.provider, ''), COALESCE(NEW.model, ''),
            1, COALESCE(NEW.input_tokens, 0), COALESCE(NEW.output_tokens, 0), COALESCE(NEW.cost_usd, 0.0),
            NEW.verdict = 'blocked', NEW.verdict = 'redacted', NEW.ts, NEW.ts)
    ON CONFLICT (day, machine_id, tool, "user", exe, provider, model) DO UPDATE SET
        requests      = requests + 1,
        input_tokens  = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost_usd      = cost_usd + excluded.cost_usd,
        blocked       = blocked + excluded.blocked,
        redacted      = redacted + excluded.redacted,
        first_ts      = MIN(first_ts, excluded.first_ts),
        last_ts       = MAX(last_ts, excluded.last_ts);
END;

CREATE TRIGGER IF NOT EXISTS kinds_add AFTER INSERT ON audit_log WHEN NEW.findings <> '{}'
BEGIN
    INSERT INTO kinds_hourly (hour, machine_id, kind, requests, input_tokens, output_tokens, cost_usd, blocked, redacted)
    SELECT substr(NEW.ts, 1, 13), NEW.machine_id, f.key, 1, COALESCE(NEW.input_tokens, 0),
           COALESCE(NEW.output_tokens, 0), COALESCE(NEW.cost_usd, 0.0),
           NEW.verdict = 'blocked', NEW.verdict = 'redacted'
    FROM json_each(NEW.findings) AS f WHERE true
    ON CONFLICT (hour, machine_id, kind) DO UPDATE SET
        requests      = requests + 1,
        input_tokens  = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost_usd      = cost_usd + excluded.cost_usd,
        blocked       = blocked + excluded.blocked,
        redacted      = redacted + excluded.redacted;
END;

CREATE TRIGGER IF NOT EXISTS fingerprints_add AFTER INSERT ON audit_log WHEN NEW.fingerprints <> '[]'
BEGIN
    INSERT INTO fingerprints_daily (day, machine_id, kind, fp, "user", times, first_ts, last_ts)
    SELECT substr(NEW.ts, 1, 10), NEW.machine_id, json_extract(f.value, '$.kind'), json_extract(f.value, '$.fp'),
           COALESCE(NEW."user", ''), 1, NEW.ts, NEW.ts
    FROM json_each(NEW.fingerprints) AS f WHERE true
    ON CONFLICT (day, machine_id, kind, fp, "user") DO UPDATE SET
        times    = times + 1,
        first_ts = MIN(first_ts, excluded.first_ts),
        last_ts  = MAX(last_ts, excluded.last_ts);
END;

INSERT INTO usage_hourly (hour, machine_id, tool, "user", exe, provider, model, requests, input_tokens, output_tokens, cost_usd, blocked, redacted, first_ts, last_ts)
SELECT substr(ts, 1, 13), machine_id, COALESCE(tool, ''), COALESCE("user", ''), COALESCE(exe, ''),
       COALESCE(provider, ''), COALESCE(model, ''), COUNT(*), SUM(COALESCE(input_tokens, 0)),
       SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost_usd, 0.0)), SUM(CASE WHEN verdict = 'blocked' THEN 1 ELSE 0 END),
       SUM(CASE WHEN verdict = 'redacted' THEN 1 ELSE 0 END), MIN(ts), MAX(ts)
FROM audit_log
GROUP BY 1, 2, 3, 4, 5, 6, 7;
INSERT INTO usage_daily (day, machine_id, tool, "user", exe, provider, model, requests, input_tokens, output_tokens, cost_usd, blocked, redacted, first_ts, last_ts)
SELECT substr(ts, 1, 10), machine_id, COALESCE(tool, ''), COALESCE("user", ''), COALESCE(exe, ''),
       COALESCE(provider, ''), COALESCE(model, ''), COUNT(*), SUM(COALESCE(input_tokens, 0)),
       SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost_usd, 0.0)), SUM(CASE WHEN verdict = 'blocked' THEN 1 ELSE 0 END),
       SUM(CASE WHEN verdict = 'redacted' THEN 1 ELSE 0 END), MIN(ts), MAX(ts)
FROM audit_log
GROUP BY 1, 2, 3, 4, 5, 6, 7;
INSERT INTO kinds_hourly (hour, machine_id, kind, requests, input_tokens, output_tokens, cost_usd, blocked, redacted)
SELECT substr(a.ts, 1, 13), a.machine_id, f.key, COUNT(*), SUM(COALESCE(a.input_tokens, 0)),
       SUM(COALESCE(a.output_tokens, 0)), SUM(COALESCE(a.cost_usd, 0.0)),
       SUM(a.verdict = 'blocked'), SUM(a.verdict = 'redacted')
FROM audit_log AS a, json_each(a.findings) AS f
WHERE a.findings <> '{}'
GROUP BY 1, 2, 3;

INSERT INTO fingerprints_daily (day, machine_id, kind, fp, "user", times, first_ts, last_ts)
SELECT substr(a.ts, 1, 10), a.machine_id, json_extract(f.value, '$.kind'), json_extract(f.value, '$.fp'),
       COALESCE(a."user", ''), COUNT(*), MIN(a.ts), MAX(a.ts)
FROM audit_log AS a, json_each(a.fingerprints) AS f
WHERE a.fingerprints <> '[]'
GROUP BY 1, 2, 3, 4, 5;

-- The rows at a window's edges with findings or fingerprints.
CREATE INDEX IF NOT EXISTS audit_log_with_findings ON audit_log (ts) WHERE findings <> '{}';
CREATE INDEX IF NOT EXISTS audit_log_with_fingerprints ON audit_log (ts) WHERE fingerprints <> '[]';

-- The Live page's filters by user and by verdict walk these backwards
-- instead of every row (tool has audit_log_tool; providers are few).
CREATE INDEX IF NOT EXISTS audit_log_user ON audit_log ("user", ts);
CREATE INDEX IF NOT EXISTS audit_log_verdict ON audit_log (verdict, ts);
