"""The development identity provider: a real OpenID Connect provider (NanoIDP, from the ``nanoidp``
wheel of the ``embedded`` extra) that ``eda dev`` and the tests run beside NATS and PostgreSQL.

It issues RFC 9068-style JWT access tokens (``iss``, ``sub``, ``aud``, ``exp``, ``scope``, ``client_id``)
signed with RS256 keys it keeps in ``<data_dir>/idp/keys`` (rotatable, old keys stay in its JWKS), and
serves discovery and JWKS; the API verifies its tokens like any issuer's and does not know it is a dev
one. Owned here: its configuration (JSON is YAML), its secrets, the process and ``eda dev``'s banner;
``app.dev.issuer.DevIssuer`` is the client that mints tokens from it.

Layout under ``<data_dir>/idp``: ``settings.yaml``, ``users.yaml``, ``keys/``, ``nanoidp.log`` and
``dev-issuer.json`` (0600: issuer URL, the CLI client's secret, the management secret, the console
login's users and passwords) — what ``eda token`` reads to find the running dev issuer.
Clients: ``eda-cli`` (confidential; password grant for minting) and ``eda-console`` (public, PKCE, the
console's login).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.auth.scopes import ALL_SCOPES, CUSTOMER_SCOPES, OPERATOR_SCOPES
from app.dev import process
from app.dev.issuer import (
    AUDIENCE,
    CLI_CLIENT,
    CONSOLE_CLIENT,
    CUSTOMER,
    OIDC_SCOPES,
    OPERATOR,
    TOKEN_MINUTES,
    DevIssuer,
)
from app.dev.process import HOST, DevstackError, Popen, free_port


def _secrets(path: Path, issuer: str) -> dict[str, Any]:
    """The dev issuer's secrets, made once and kept (tokens and console logins survive restarts)."""
    try:
        known: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    known.setdefault("client_secret", secrets.token_urlsafe(24))
    known.setdefault("management_secret", secrets.token_urlsafe(24))
    known.setdefault("session_secret", secrets.token_urlsafe(32))
    known.setdefault("users", {OPERATOR: secrets.token_urlsafe(9), CUSTOMER: secrets.token_urlsafe(9)})
    known["issuer"] = issuer
    path.write_text(json.dumps(known, indent=2))
    path.chmod(0o600)
    return known


@dataclass
class DevIdentityProvider:
    """One NanoIDP process on 127.0.0.1. ``console_origins``: where the console's login may return;
    ``issuer_aliases``: also answer as ``http://localhost:<port>`` with that issuer (tests of a token
    from another issuer)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    console_origins: tuple[str, ...] = ()
    issuer_aliases: bool = False
    _proc: Popen | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()

    @property
    def home(self) -> Path:
        return self.data_dir / "idp"

    @property
    def issuer(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "nanoidp.log"

    def client(self) -> DevIssuer:
        return DevIssuer.load(self.data_dir)

    def _settings(self, known: dict[str, Any]) -> dict[str, Any]:
        ours = sorted(ALL_SCOPES)
        oauth: dict[str, Any] = {
            "issuer": self.issuer,
            "audience": AUDIENCE,
            "token_expiry_minutes": TOKEN_MINUTES,
            "scopes_supported": OIDC_SCOPES + ours,
            "clients": [
                {"client_id": CLI_CLIENT, "client_secret": known["client_secret"], "description": "eda CLI"},
                {
                    "client_id": CONSOLE_CLIENT,
                    "token_endpoint_auth_method": "none",
                    "description": "eda web console",
                    "redirect_uris": [f"{origin}/ui/" for origin in self.console_origins],
                    "allowed_scopes": OIDC_SCOPES + ours,
                },
            ],
        }
        if self.issuer_aliases:
            alias = f"http://localhost:{self.port}"
            oauth |= {"issuer_from_request": True, "issuer_allowlist": [self.issuer, alias]}
        return {
            "config_version": 1,
            "server": {"host": HOST, "port": self.port},
            "oauth": oauth,
            "jwt": {"keys_dir": str(self.home / "keys"), "max_previous_keys": 2},
            "session": {
                "secret_key": known["session_secret"],
                "management_secret": known["management_secret"],
            },
            "logging": {"level": "WARNING", "log_token_requests": False, "verbose_logging": False},
        }

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        known = _secrets(self.home / "dev-issuer.json", self.issuer)
        users = {
            name: {"password": password, "email": f"{name}@eda.invalid"}
            for name, password in known["users"].items()
        }
        for name, content in (
            ("settings.yaml", self._settings(known)),  # JSON is YAML
            ("users.yaml", {"config_version": 1, "users": users}),
        ):
            target = self.home / name
            target.write_text(json.dumps(content, indent=2))
            target.chmod(0o600)

    async def start(self, timeout: float = 60.0) -> None:
        if self.pid is not None:
            return
        await asyncio.to_thread(self._write_config)
        args = [sys.executable, "-m", "nanoidp", "--config", str(self.home)]
        args += ["--host", HOST, "--port", str(self.port)]
        self._proc = await asyncio.to_thread(process.spawn, args, self.log_path, self.home)
        url = f"{self.issuer}/.well-known/openid-configuration"
        if await process.answers(self._proc, lambda: asyncio.to_thread(process.http_ok, url), timeout, 0.1):
            return
        await self.stop()
        tail = process.log_tail(self.log_path)
        raise DevstackError(f"nanoidp did not start on {self.issuer}; log tail:\n{tail}")

    async def stop(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            await process.terminate(self._proc, signal.SIGTERM, timeout)
            self._proc = None

    @property
    def pid(self) -> int | None:
        return process.alive(self._proc)


def nanoidp_installed() -> bool:
    """Whether the ``nanoidp`` package (extra ``embedded``) is there to be started."""
    return importlib.util.find_spec("nanoidp") is not None


@contextlib.asynccontextmanager
async def dev_identity(
    data_dir: Path, api_port: int, port: int | None = None
) -> AsyncIterator[DevIdentityProvider]:
    """``eda dev``'s provider, started for the block; its console login returns to the API on ``api_port``."""
    if not nanoidp_installed():
        raise DevstackError("nanoidp is not installed: install eda-platform[embedded]")
    origins = (f"http://{HOST}:{api_port}", f"http://localhost:{api_port}")
    provider = DevIdentityProvider(data_dir, console_origins=origins)
    provider.port = port or provider.port
    async with process.started(provider):
        yield provider


def banner(provider: DevIdentityProvider, api_url: str) -> str:
    """What ``eda dev`` prints about authentication: the issuer, two ready tokens, a curl line."""
    issuer = provider.client()
    customer = issuer.mint(CUSTOMER, " ".join(sorted(CUSTOMER_SCOPES)))
    operator = issuer.mint(OPERATOR, " ".join(sorted(OPERATOR_SCOPES)))
    body = '{"items": [{"product_id": 1, "quantity": 2}]}'
    return "\n".join(
        [
            f"OIDC issuer (dev, NanoIDP): {provider.issuer}  audience: {AUDIENCE}",
            f"  console login at {api_url}/ui: {OPERATOR} / {issuer.users[OPERATOR]}",
            "  without a token, requests from this machine act as the ANONYMOUS DEV PRINCIPAL (every scope);",
            "  only `eda dev` does that: `eda api` and the Helm chart always require a token.",
            f"customer {CUSTOMER} ({' '.join(sorted(CUSTOMER_SCOPES))}):",
            f"  export TOKEN={customer}",
            f"operator ({' '.join(sorted(OPERATOR_SCOPES))}):",
            f"  export OPERATOR_TOKEN={operator}",
            f"  curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n"
            f"       -d '{body}' {api_url}/api/v1/orders",
            '  more: eda token --sub 456 --scope "orders:write orders:read"',
        ]
    )
