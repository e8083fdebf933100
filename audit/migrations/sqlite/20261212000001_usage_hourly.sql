-- Usage per hour and per (machine, tool, user, exe, provider, model,
-- verdict): what the dashboard's Agents, Spend and Protection pages and
-- `audit agents`/`top` read for whole hours, so they answer from a few
-- thousand rows instead of scanning a million. Partial hours at a window's
-- edges still come from audit_log, so answers are exact.
--
-- Kept by a trigger, so every way a row arrives (the writer, shipping,
-- tests) counts it once; `prune` rebuilds the hours it touched. Unknown
-- attributes are stored as '' (a key column cannot be NULL and still
-- conflict) and read back as NULL.
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

CREATE TRIGGER IF NOT EXISTS usage_hourly_add AFTER INSERT ON audit_log
BEGIN
    INSERT INTO usage_hourly (hour, machine_id, tool, "user", exe, provider, model, verdict,
                              requests, input_tokens, output_tokens, cost_usd, first_ts, last_ts)
    VALUES (substr(NEW.ts, 1, 13), NEW.machine_id, COALESCE(NEW.tool, ''), COALESCE(NEW."user", ''),
            COALESCE(NEW.exe, ''), COALESCE(NEW.provider, ''), COALESCE(NEW.model, ''), NEW.verdict,
            1, COALESCE(NEW.input_tokens, 0), COALESCE(NEW.output_tokens, 0), COALESCE(NEW.cost_usd, 0.0),
            NEW.ts, NEW.ts)
    ON CONFLICT (hour, machine_id, tool, "user", exe, provider, model, verdict) DO UPDATE SET
        requests      = requests + 1,
        input_tokens  = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost_usd      = cost_usd + excluded.cost_usd,
        first_ts      = MIN(first_ts, excluded.first_ts),
        last_ts       = MAX(last_ts, excluded.last_ts);
END;

INSERT INTO usage_hourly (hour, machine_id, tool, "user", exe, provider, model, verdict,
                          requests, input_tokens, output_tokens, cost_usd, first_ts, last_ts)
SELECT substr(ts, 1, 13), machine_id, COALESCE(tool, ''), COALESCE("user", ''), COALESCE(exe, ''),
       COALESCE(provider, ''), COALESCE(model, ''), verdict,
       COUNT(*), SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0)),
       SUM(COALESCE(cost_usd, 0.0)), MIN(ts), MAX(ts)
FROM audit_log
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;

-- The Protection page reads only rows with findings or fingerprints: a few
-- percent of a store.
CREATE INDEX IF NOT EXISTS audit_log_with_findings ON audit_log (ts) WHERE findings <> '{}';
CREATE INDEX IF NOT EXISTS audit_log_with_fingerprints ON audit_log (ts) WHERE fingerprints <> '[]';
