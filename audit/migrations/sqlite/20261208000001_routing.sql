-- Routing of each exchange: the route rule that matched (indexed, so
-- `promptwall audit query --route NAME` is one lookup), the upstream
-- (`<upstream>/<account>`) that answered, and the routing detail as compact
-- JSON text (requested and upstream model, translation, attempts). Stored
-- as written, never re-encoded: the hash chain covers the exact text.
-- Rows written before it have '' / '' / NULL and hash without them.
ALTER TABLE audit_log ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN upstream TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN routing TEXT;
CREATE INDEX IF NOT EXISTS audit_log_route ON audit_log (route);
