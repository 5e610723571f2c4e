"""Per-role PostgreSQL users for the bundled PostgreSQL (``postgresql.roleUsers``): the api and the
projector connect as their own login (members of the NOLOGIN groups of ``0003_roles.sql``) with the URL
from their own key of a generated Secret; the `db-user` initContainer creates the login after
`eda migrate` (owner). Its script (from the rendered ConfigMap, run exactly as the container runs it) is
executed against a real PostgreSQL, and each login then has its group's rights and no more."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from deploytools import Installed, Obj

from app.readmodel import db
from app.readmodel.migrations import migrate

pytestmark = pytest.mark.timeout(600)

OWN_LOGIN = {"api": "eda_api_login", "projector": "eda_projector_login"}
OWNER_ROLES = ["saga", "worker-inventory", "worker-payment", "worker-shipping", "operator"]


def env_of(container: Obj) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def pod_spec(release: Installed, role: str) -> Obj:
    spec: Obj = release.get("Deployment", f"eda-{role}")["spec"]["template"]["spec"]
    return spec


def secret_data(release: Installed, name: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in release.get("Secret", name)["data"].items()}


def test_each_role_gets_its_database_url_from_its_own_secret_key(default_release: Installed) -> None:
    owner = {"secretKeyRef": {"name": "eda-postgresql", "key": "database-url"}}
    for role, login in OWN_LOGIN.items():
        spec = pod_spec(default_release, role)
        env = env_of(spec["containers"][0])
        assert env["EDA_DATABASE_URL"] == {
            "secretKeyRef": {"name": "eda-postgresql-roles", "key": f"{role}-database-url"}
        }
        migrate_init, user_init = spec["initContainers"]
        assert migrate_init["args"] == ["migrate"]
        assert env_of(migrate_init)["EDA_DATABASE_URL"] == owner  # DDL: the owner
        init_env = env_of(user_init)
        assert init_env["EDA_LOGIN"] == login
        assert init_env["EDA_GROUP"] == f"eda_{role}"
        assert init_env["PGPASSWORD"] == {"secretKeyRef": {"name": "eda-postgresql", "key": "password"}}
        assert init_env["EDA_LOGIN_PASSWORD"] == {
            "secretKeyRef": {"name": "eda-postgresql-roles", "key": f"{role}-password"}
        }
        assert "EDA_DATABASE_URL" not in init_env
        volume = next(v for v in spec["volumes"] if v["name"] == "db-user-sql")
        assert volume["configMap"]["name"] == "eda-postgresql-roles"
    for role in OWNER_ROLES:
        spec = pod_spec(default_release, role)
        assert env_of(spec["containers"][0])["EDA_DATABASE_URL"] == owner, role
        assert [c["name"] for c in spec["initContainers"]] == ["migrate"], role
    data = secret_data(default_release, "eda-postgresql-roles")
    assert sorted(data) == sorted(
        ["api-password", "api-database-url", "projector-password", "projector-database-url"]
    )
    for role, login in OWN_LOGIN.items():
        url = urlsplit(data[f"{role}-database-url"])
        assert (url.username, url.password) == (login, data[f"{role}-password"])
        assert (url.hostname, url.port, url.path) == ("eda-postgresql.default.svc", 5432, "/eda")
        assert len(data[f"{role}-password"]) == 32
    assert data["api-password"] != data["projector-password"]
    owner_password = secret_data(default_release, "eda-postgresql")["password"]
    assert owner_password not in {data["api-password"], data["projector-password"]}


def test_role_users_off_or_external_database_use_the_one_url(
    production_release: Installed, install_chart: Any
) -> None:
    result = install_chart({"postgresql": {"roleUsers": {"enabled": False}}})
    assert result["ok"], result.get("error")
    off = Installed(result)
    for release in (production_release, off):
        assert not [o for o in release.objects if o["metadata"]["name"] == "eda-postgresql-roles"]
        for role in [*OWN_LOGIN, *OWNER_ROLES]:
            spec = pod_spec(release, role)
            ref = env_of(spec["containers"][0])["EDA_DATABASE_URL"]["secretKeyRef"]
            assert ref["name"] != "eda-postgresql-roles"
            assert "db-user" not in [c["name"] for c in spec.get("initContainers", [])]


def _run_db_user_init(container: Obj, sql_dir: str, dsn: str, owner_password: str, password: str) -> None:
    """Run the initContainer's own command (``sh -c``) with its env, PG* pointing at our PostgreSQL."""
    url = urlsplit(dsn)
    env = {k: v for k, v in env_of(container).items() if isinstance(v, str)}
    env |= {
        "PATH": os.environ["PATH"],
        "PGHOST": url.hostname or "",
        "PGPORT": str(url.port),
        "PGUSER": url.username or "",
        "PGDATABASE": url.path.lstrip("/"),
        "PGPASSWORD": owner_password,
        "EDA_LOGIN_PASSWORD": password,
    }
    script = container["args"][0].replace("/etc/eda/sql", sql_dir)
    done = subprocess.run(
        [*container["command"], script], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql not installed")
async def test_db_user_init_creates_logins_with_their_groups_rights(
    default_release: Installed, fresh_db: str, tmp_path: Any
) -> None:
    sql = default_release.get("ConfigMap", "eda-postgresql-roles")["data"]["role-user.sql"]
    (tmp_path / "role-user.sql").write_text(sql)
    owner = await db.connect(fresh_db)
    try:
        await migrate(owner, "readmodel")  # the migrate initContainer, as the owner
        owner_password = urlsplit(fresh_db).password or ""
        passwords = {"api": "api-Secret-1", "projector": "projector-Secret-1"}
        for role in OWN_LOGIN:
            init = pod_spec(default_release, role)["initContainers"][1]
            for _ in range(2):  # idempotent (pods restart, replicas start together)
                _run_db_user_init(init, str(tmp_path), fresh_db, owner_password, passwords[role])
        url = urlsplit(fresh_db)

        async def login(role: str, password: str) -> asyncpg.Connection:
            return await asyncpg.connect(
                host=url.hostname,
                port=url.port,
                user=OWN_LOGIN[role],
                password=password,
                database=url.path.lstrip("/"),
            )

        api = await login("api", passwords["api"])
        projector = await login("projector", passwords["projector"])
        try:
            assert await api.fetchval("SELECT count(*) FROM readmodel.orders") == 0
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await api.execute("UPDATE readmodel.orders SET status = 'x'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await api.execute("CREATE TABLE readmodel.evil (x int)")
            await projector.execute("UPDATE readmodel.orders SET status = 'x'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await projector.execute("DROP TABLE readmodel.orders")
            flags = await owner.fetch(
                "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles"
                " WHERE rolname = ANY($1::text[])",
                list(OWN_LOGIN.values()),
            )
            assert {tuple(r.values())[1:] for r in flags} == {(False, False, False, True)}
        finally:
            await api.close()
            await projector.close()
        # a rotated Secret: the next run of the initContainer sets the new password (the test
        # PostgreSQL trusts local connections, so the stored verifier is compared, not a login refused)
        verifier = "SELECT rolpassword FROM pg_authid WHERE rolname = 'eda_api_login'"
        before = await owner.fetchval(verifier)
        init = pod_spec(default_release, "api")["initContainers"][1]
        _run_db_user_init(init, str(tmp_path), fresh_db, owner_password, "api-Secret-2")
        after = await owner.fetchval(verifier)
        assert before.startswith("SCRAM-SHA-256$")
        assert after.startswith("SCRAM-SHA-256$")
        assert after != before
    finally:
        await owner.close()
