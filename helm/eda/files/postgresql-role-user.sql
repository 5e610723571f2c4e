-- Create (or update) one role's login user on the bundled PostgreSQL; run by the migrate Job's
-- `db-setup` step as the superuser, after postgresql-owner.sql:
--   psql -X -v ON_ERROR_STOP=1 -v login=eda_api_login -v grp=eda_api -f postgresql-role-user.sql
-- with the login's password in the environment variable EDA_LOGIN_PASSWORD (not on the command line).
-- Idempotent; the password is set on every run (rotating the Secret rotates the password).
\getenv password EDA_LOGIN_PASSWORD
-- the NOLOGIN group, in case it does not exist yet (postgresql-owner.sql creates the three)
SELECT format('CREATE ROLE %I NOLOGIN', :'grp')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'grp') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'login')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login') \gexec
ALTER ROLE :"login" WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
GRANT :"grp" TO :"login";
