-- Per-install identity (see the SQLite migration of the same name).
CREATE TABLE IF NOT EXISTS audit_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO audit_meta (key, value)
SELECT 'install_id',
       CASE WHEN EXISTS (SELECT 1 FROM audit_log) OR EXISTS (SELECT 1 FROM audit_checkpoint)
            THEN '' ELSE md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text) END
ON CONFLICT (key) DO NOTHING;

-- The fleet key gains the install id, and the hash: a re-sent row (lost
-- acknowledgement) is the same row and is skipped, while a different row
-- claiming the same key (a cloned VM image, a forger) is kept next to the
-- first one, never dropped; `promptwall audit verify` reports the pair.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS install_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_pkey;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (machine_id, install_id, id, hash);

ALTER TABLE audit_checkpoint ADD COLUMN IF NOT EXISTS install_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_checkpoint DROP CONSTRAINT IF EXISTS audit_checkpoint_pkey;
ALTER TABLE audit_checkpoint ADD CONSTRAINT audit_checkpoint_pkey PRIMARY KEY (machine_id, install_id);
