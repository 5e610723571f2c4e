-- Every rebuild and snapshot run (CLI `eda rebuild`/`eda snapshot` and the operator), so the console's
-- Health page can show running and finished runs without Kubernetes access (see app/readmodel/runs.py).
-- In schema "eda": history of the platform, not part of the rebuildable read model.
CREATE TABLE IF NOT EXISTS eda.maintenance_runs (
    id            text        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('rebuild', 'snapshot')),
    target        text        NOT NULL,  -- projection (rebuild) or aggregate type (snapshot)
    source        text        NOT NULL CHECK (source IN ('cli', 'operator')),
    k8s_namespace text,                  -- the custom resource's namespace/name when source = 'operator'
    k8s_name      text,
    status        text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    phase         text        NOT NULL,  -- the engine's phase: Pending, Waiting, Running, CatchingUp, ...
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    progress      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    message       text
);
CREATE INDEX IF NOT EXISTS maintenance_runs_started_idx ON eda.maintenance_runs (started_at DESC);
CREATE INDEX IF NOT EXISTS maintenance_runs_running_idx ON eda.maintenance_runs (updated_at)
    WHERE finished_at IS NULL;

-- Privileges (roles: 0003_roles.sql). The API only reads it. The writers are the operator and the CLI,
-- which connect as a login in eda_migrator (the owner); eda_projector gets nothing.
DO $$
BEGIN
    IF to_regrole('eda_api') IS NULL OR to_regrole('eda_projector') IS NULL OR to_regrole('eda_migrator') IS NULL THEN
        RETURN;
    END IF;
    GRANT SELECT ON eda.maintenance_runs TO eda_api;
    BEGIN
        IF pg_has_role(current_user, 'eda_migrator', 'USAGE') THEN
            ALTER TABLE eda.maintenance_runs OWNER TO eda_migrator;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'eda: eda.maintenance_runs left owned by %', current_user;
    END;
END $$;
