-- promptwall central audit store (PostgreSQL): roles and privileges.
--
-- Three roles, least privilege:
--   promptwall_owner    owns the tables; runs the schema migrations. Nobody
--                       logs in with it day to day.
--   promptwall_agent    every host agent ([audit.central] url). INSERT only:
--                       it can add rows but not read, change or delete any,
--                       so a compromised host cannot rewrite fleet history.
--                       (Shipping uses ON CONFLICT DO NOTHING without a
--                       conflict target precisely so no SELECT is needed.)
--   promptwall_auditor  the security team (`promptwall audit ... --db`).
--                       SELECT only.
--
-- Set-up, once:
--   1. As a superuser:
--        CREATE ROLE promptwall_owner LOGIN;
--        CREATE DATABASE promptwall OWNER promptwall_owner;
--   2. Create the schema as the owner:
--        promptwall audit migrate --db postgres://promptwall_owner@DBHOST/promptwall
--   3. In database promptwall, as the owner or a superuser:
--        psql -d promptwall -f postgres-roles.sql
--   4. Give the login roles passwords (never put them in this file or in
--      shell history; use psql's \password promptwall_agent), or use
--      certificate authentication in pg_hba.conf.
--
-- Re-running this file is harmless.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'promptwall_agent') THEN
        CREATE ROLE promptwall_agent LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'promptwall_auditor') THEN
        CREATE ROLE promptwall_auditor LOGIN;
    END IF;
END
$$;

-- Nobody gets anything by default; PostgreSQL < 15 let PUBLIC create in public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON audit_log, audit_checkpoint, _sqlx_migrations FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO promptwall_agent, promptwall_auditor;

GRANT INSERT ON audit_log TO promptwall_agent;

GRANT SELECT ON audit_log, audit_checkpoint TO promptwall_auditor;
