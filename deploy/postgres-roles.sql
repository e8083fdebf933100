-- promptwall central audit store (PostgreSQL): roles, privileges and
-- row-level security.
--
-- Roles, least privilege:
--   promptwall_owner    owns the tables; runs the schema migrations. Nobody
--                       logs in with it day to day.
--   promptwall_agent    a group (NOLOGIN) holding what agents may do:
--                       INSERT only, so a host can add rows but not read,
--                       change or delete any, and cannot rewrite fleet
--                       history. (Shipping uses ON CONFLICT DO NOTHING
--                       without a conflict target precisely so no SELECT is
--                       needed.)
--   one role per host   each agent logs in as its own role, named exactly
--                       after its machine id (config `machine_id`, else
--                       /etc/machine-id; at most 63 bytes), member of
--                       promptwall_agent. Row-level security lets it insert
--                       only rows whose machine_id is its login name, so a
--                       compromised host cannot write rows for another one:
--                         CREATE ROLE "4c2a...e9" LOGIN IN ROLE promptwall_agent;
--                       The agent logs in as that role by itself when the
--                       [audit.central] url names no user.
--   promptwall_auditor  the security team (`promptwall audit ... --db`).
--                       SELECT only.
--
-- Set-up, once:
--   1. As a superuser:
--        CREATE ROLE promptwall_owner LOGIN;
--        CREATE DATABASE promptwall OWNER promptwall_owner;
--   2. Create the schema as the owner:
--        promptwall audit migrate --db postgres://promptwall_owner@DBHOST/promptwall
--   3. In database promptwall, as a superuser (or the owner with CREATEROLE):
--        psql -d promptwall -f postgres-roles.sql
--   4. Per host: CREATE ROLE "<machine id>" LOGIN IN ROLE promptwall_agent;
--      authenticate it with a client certificate whose CN is the machine id
--      (pg_hba.conf `hostssl promptwall all 0.0.0.0/0 cert`; the agent's url
--      then carries ?sslmode=verify-full&sslcert=...&sslkey=...), or with a
--      per-host password (psql's \password, never in this file or in shell
--      history). Give promptwall_auditor a password the same way.
--
-- Re-running this file is harmless (it also upgrades the earlier layout, in
-- which every host shared the login role promptwall_agent: that role can no
-- longer log in, and its rows are kept).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'promptwall_agent') THEN
        CREATE ROLE promptwall_agent NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'promptwall_auditor') THEN
        CREATE ROLE promptwall_auditor LOGIN;
    END IF;
END
$$;
-- A shared login would let any host claim any machine id.
ALTER ROLE promptwall_agent NOLOGIN;

-- Nobody gets anything by default; PostgreSQL < 15 let PUBLIC create in public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON audit_log, audit_checkpoint, audit_meta, usage_hourly, usage_daily, kinds_hourly, fingerprints_daily, _sqlx_migrations FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO promptwall_agent, promptwall_auditor;

GRANT INSERT ON audit_log TO promptwall_agent;

-- The usage rollups are kept by a trigger running as the owner: agents need nothing on them.
GRANT SELECT ON audit_log, audit_checkpoint, usage_hourly, usage_daily, kinds_hourly, fingerprints_daily TO promptwall_auditor;

-- Row-level security: the owner (migrations, prune) is exempt; every other
-- role sees and writes only what a policy allows. session_user is the role
-- that logged in, which SET ROLE cannot change.
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS agent_inserts_own_machine ON audit_log;
CREATE POLICY agent_inserts_own_machine ON audit_log FOR INSERT TO promptwall_agent
    WITH CHECK (machine_id = session_user::text);
DROP POLICY IF EXISTS auditor_reads_all ON audit_log;
CREATE POLICY auditor_reads_all ON audit_log FOR SELECT TO promptwall_auditor
    USING (true);
