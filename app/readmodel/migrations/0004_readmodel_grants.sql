-- readmodel: the group roles' privileges on the read-model schema (roles: 0003_roles.sql).
-- create_readmodel_schema replays this file into every rebuild's shadow schema, and privileges belong
-- to the objects (ALTER SCHEMA ... RENAME keeps them), so they survive the swap. Default privileges
-- cover tables later migrations add to this schema.
DO $$
DECLARE
    t regclass;
BEGIN
    IF to_regrole('eda_api') IS NULL OR to_regrole('eda_projector') IS NULL OR to_regrole('eda_migrator') IS NULL THEN
        RETURN;  -- no group roles in this cluster (see 0003_roles.sql)
    END IF;
    GRANT USAGE ON SCHEMA {{schema}} TO eda_api, eda_projector;
    GRANT SELECT ON ALL TABLES IN SCHEMA {{schema}} TO eda_api;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {{schema}} TO eda_projector;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {{schema}} TO eda_projector;
    ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} GRANT SELECT ON TABLES TO eda_api;
    ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO eda_projector;
    ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} GRANT USAGE, SELECT ON SEQUENCES TO eda_projector;
    BEGIN
        IF pg_has_role(current_user, 'eda_migrator', 'USAGE') THEN
            ALTER SCHEMA {{schema}} OWNER TO eda_migrator;
            FOR t IN SELECT c.oid FROM pg_class c WHERE c.relnamespace = to_regnamespace('{{schema}}') AND c.relkind IN ('r', 'p') LOOP
                EXECUTE format('ALTER TABLE %s OWNER TO eda_migrator', t);
            END LOOP;
            ALTER DEFAULT PRIVILEGES FOR ROLE eda_migrator IN SCHEMA {{schema}} GRANT SELECT ON TABLES TO eda_api;
            ALTER DEFAULT PRIVILEGES FOR ROLE eda_migrator IN SCHEMA {{schema}}
                GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO eda_projector;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'eda: read-model schema left owned by %', current_user;
    END;
END $$;
