-- Routing of each exchange (see the SQLite migration of the same name).
-- routing is TEXT, not JSONB: JSONB re-encodes the text (key order,
-- whitespace, numbers) and the hash chain covers the exact text the agent
-- wrote. Agents insert the columns with the rest of the row; the INSERT
-- grant and the row-level security policies of deploy/postgres-roles.sql
-- cover them as is.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS route TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS upstream TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS routing TEXT;
CREATE INDEX IF NOT EXISTS audit_log_route ON audit_log (route);
