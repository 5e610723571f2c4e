-- Set up the bundled PostgreSQL for eda; run by the migrate Job's `db-setup` step as the superuser
-- (postgres), before `eda migrate`, on every release:
--   psql -X -v ON_ERROR_STOP=1 -v owner=eda -f postgresql-owner.sql   (PGDATABASE = the database)
-- with the owner's password in the environment variable EDA_OWNER_PASSWORD (not on the command line).
-- Idempotent; the password is set on every run (rotating the Secret rotates the password).
--
-- The owner runs the migrations and the operator's rebuilds: it owns the database and is a member of
-- eda_migrator (which owns the schemas), and it is NOT a superuser (no COPY ... TO PROGRAM, no reading
-- server files), cannot create roles or databases. The groups of 0003_roles.sql are created here, so
-- the migrations need no CREATEROLE.
\getenv password EDA_OWNER_PASSWORD
SELECT format('CREATE ROLE %I NOLOGIN', r)
  FROM unnest(ARRAY['eda_migrator', 'eda_projector', 'eda_api']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
SELECT format('CREATE ROLE %I LOGIN', :'owner')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner') \gexec
ALTER ROLE :"owner" WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'password';
GRANT eda_migrator TO :"owner";
SELECT format('ALTER DATABASE %I OWNER TO %I', current_database(), :'owner') \gexec
