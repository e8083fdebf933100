-- Request id of each exchange (also sent to the client in a response
-- header), indexed so a developer's failed request is found in one query.
-- Rows written before it have '' and hash without it.
ALTER TABLE audit_log ADD COLUMN request_id TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS audit_log_request_id ON audit_log (request_id);
