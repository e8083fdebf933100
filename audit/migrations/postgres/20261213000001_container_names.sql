-- The container a client ran in, by name and image (from its runtime's
-- records), beside the id that was already kept. Rows written before it
-- have NULL and hash without them.
ALTER TABLE audit_log ADD COLUMN container_name TEXT;
ALTER TABLE audit_log ADD COLUMN container_image TEXT;
