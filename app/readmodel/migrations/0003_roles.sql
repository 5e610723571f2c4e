-- Group roles (NOLOGIN) for least privilege; each deployment's login user is a member of one:
--   eda_migrator  owns the schemas and tables (DDL: migrations, rebuilds, the operator)
--   eda_projector SELECT/INSERT/UPDATE/DELETE on the read-model tables (checkpoints included), no DDL
--   eda_api       SELECT on the read-model tables, DML on eda.idempotency_keys
-- e.g. CREATE ROLE api_login LOGIN PASSWORD '...' IN ROLE eda_api; (see docs/kubernetes.md).
-- Read-model privileges are in 0004_readmodel_grants.sql (replayed into every rebuild's shadow schema).
--
-- Roles are cluster-wide while migrations (and their advisory lock) are per database: two databases
-- migrating at once may both see a role missing, so "already exists" is not an error. A migrating user
-- without CREATEROLE skips creation (a DBA creates the roles beforehand).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['eda_migrator', 'eda_projector', 'eda_api'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
           AND (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by another database's migration
            END;
        END IF;
    END LOOP;
END $$;

-- Without the roles (no CREATEROLE, none created by a DBA) nothing below applies: one user does it all.
-- Ownership moves to eda_migrator only when the migrating user holds its privileges (superuser, or a
-- login in eda_migrator); otherwise the migrating user stays the owner.
DO $$
DECLARE
    t regclass;
BEGIN
    IF to_regrole('eda_api') IS NULL OR to_regrole('eda_projector') IS NULL OR to_regrole('eda_migrator') IS NULL THEN
        RETURN;
    END IF;
    GRANT USAGE ON SCHEMA eda TO eda_api, eda_projector;
    -- every role runs `migrate` at start-up: it must see that nothing is left to apply
    GRANT SELECT ON eda.schema_migrations TO eda_api, eda_projector;
    GRANT SELECT, INSERT, UPDATE, DELETE ON eda.idempotency_keys TO eda_api;
    BEGIN
        IF pg_has_role(current_user, 'eda_migrator', 'USAGE') THEN
            ALTER SCHEMA eda OWNER TO eda_migrator;
            FOR t IN SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'eda'::regnamespace AND c.relkind IN ('r', 'p') LOOP
                EXECUTE format('ALTER TABLE %s OWNER TO eda_migrator', t);
            END LOOP;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'eda: schema eda left owned by %', current_user;
    END;
END $$;
