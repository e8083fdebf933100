-- Per-install identity: ids restart at 1 in a new store, so after a purge
-- and reinstall (same /etc/machine-id) the fleet key (machine_id, id) would
-- collide with the old install's rows. Rows carry the store's install id.
CREATE TABLE IF NOT EXISTS audit_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- A new store gets a random id. A store that already holds rows keeps the
-- empty id: its rows are hashed without one and its ids never restart, so
-- it cannot collide with itself, and only a new store can be a reinstall.
INSERT OR IGNORE INTO audit_meta (key, value)
SELECT 'install_id',
       CASE WHEN EXISTS (SELECT 1 FROM audit_log) OR EXISTS (SELECT 1 FROM audit_checkpoint)
            THEN '' ELSE lower(hex(randomblob(16))) END;

ALTER TABLE audit_log ADD COLUMN install_id TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS audit_log_chain ON audit_log (machine_id, install_id, id);

-- Chains are per (machine_id, install_id): so are prune checkpoints.
CREATE TABLE audit_checkpoint_v2 (
    machine_id  TEXT    NOT NULL,
    install_id  TEXT    NOT NULL DEFAULT '',
    last_id     INTEGER NOT NULL,
    last_hash   TEXT    NOT NULL,
    pruned_rows INTEGER NOT NULL,
    ts          TEXT    NOT NULL,
    PRIMARY KEY (machine_id, install_id)
);
INSERT INTO audit_checkpoint_v2 (machine_id, install_id, last_id, last_hash, pruned_rows, ts)
SELECT machine_id, '', last_id, last_hash, pruned_rows, ts FROM audit_checkpoint;
DROP TABLE audit_checkpoint;
ALTER TABLE audit_checkpoint_v2 RENAME TO audit_checkpoint;

-- Rows the central store rejected (invalid for PostgreSQL): recorded here
-- with the reason and a copy of the row, skipped so shipping goes on, and
-- listed by `promptwall audit verify`.
CREATE TABLE IF NOT EXISTS audit_quarantine (
    central     TEXT    NOT NULL,
    id          INTEGER NOT NULL,
    machine_id  TEXT    NOT NULL,
    install_id  TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    sqlstate    TEXT,
    reason      TEXT    NOT NULL,
    ts          TEXT    NOT NULL,
    row_json    TEXT    NOT NULL,
    PRIMARY KEY (central, id)
);
