-- Request id of each exchange (see the SQLite migration of the same name).
-- Agents insert it with the rest of the row; the INSERT grant and the
-- row-level security policies of deploy/postgres-roles.sql cover it as is.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS request_id TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS audit_log_request_id ON audit_log (request_id);
