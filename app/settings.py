"""Runtime configuration: every ``EDA_*`` environment variable, read once per process by ``Settings()``.

Nothing here is read at import time; each role builds a ``Settings`` in its entry point and passes it down.
"""

from __future__ import annotations

from typing import Literal

import limits
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def user_inbox(user: str) -> str:
    """The reply-inbox prefix of a NATS user's connections: the generated NATS permissions let each
    user subscribe to its own only (``app.deploy.natsauth``)."""
    return f"_INBOX_{user}"


class Settings(BaseSettings):
    """All settings of all roles; unknown ``EDA_*`` variables are ignored."""

    model_config = SettingsConfigDict(env_prefix="EDA_", extra="ignore", populate_by_name=True)

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS server URL(s); several comma-separated URLs for a cluster.",
    )
    nats_user: str | None = Field(default=None, description="NATS user name (optional).")
    nats_password: SecretStr | None = Field(default=None, description="NATS password (optional).")
    nats_creds: str | None = Field(default=None, description="Path to a NATS .creds file (optional).")
    nats_tls_ca: str | None = Field(default=None, description="CA file to verify the NATS server's TLS cert.")
    nats_inbox_prefix: str | None = Field(
        default=None,
        pattern=r"^_INBOX[A-Za-z0-9_-]*$",
        description="Prefix of this process's reply inboxes; default _INBOX_<EDA_NATS_USER> with a user "
        "(each role's NATS user may subscribe to its own prefix only), else _INBOX.",
    )
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/eda"),
        description="PostgreSQL DSN of the read model.",
    )
    stream_replicas: int = Field(default=1, ge=1, le=5, description="Replicas of the JetStream streams.")
    snapshot_every: int = Field(default=100, ge=1, description="Take a snapshot every N events.")
    payment_decline_above: float = Field(default=10000.0, ge=0, description="Payments above are declined.")
    saga_step_timeout_s: float = Field(default=10.0, gt=0, description="Saga step timeout in seconds.")
    log_level: str = Field(default="INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")
    # -- read side and API (issue 3) --
    readmodel_schema: str = Field(
        default="readmodel",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of the rebuildable read model (orders, timeline, checkpoints).",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200, description="asyncpg pool size per process.")
    gc_gen0_threshold: int = Field(
        default=20_000,
        ge=0,
        description="Allocations between young GC collections once a role has started (the start-up heap "
        "is frozen too); 0 keeps Python's defaults.",
    )
    health_port: int = Field(
        default=8081, ge=0, le=65535, description="Health/metrics port of non-API roles."
    )
    projector_batch: int = Field(
        default=500, ge=1, le=5000, description="Max events per projector transaction."
    )
    projector_max_deliver: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Attempts at an event the projector cannot apply before dead-lettering it.",
    )
    projector_backoff: str = Field(
        default="0.5,1,2,5",
        pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$",
        description="Seconds between the projector's attempts at a failing event (comma list; last repeats).",
    )
    min_version_wait_s: float = Field(
        default=2.0, ge=0, le=30, description="Max wait of GET ?min_version= for the read model to catch up."
    )
    projection_lag_degraded: int = Field(
        default=10000,
        ge=0,
        validation_alias=AliasChoices("EDA_PROJECTION_LAG_DEGRADED", "EDA_READYZ_MAX_LAG"),
        description="/readyz reports status degraded (still 200: reads fall back to the event store) when "
        "the projection is more events behind; EDA_READYZ_MAX_LAG is the old name.",
    )
    idempotency_ttl_s: int = Field(default=86400, ge=60, description="How long Idempotency-Key results live.")
    max_body_bytes: int = Field(default=65536, ge=1024, description="Larger request bodies get 413.")
    connect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="How long eda migrate, rebuild and snapshot wait for NATS and PostgreSQL to answer.",
    )

    # -- web console (issue 9) --
    ui_enabled: bool = Field(default=False, description="Serve the read-only web console at /ui.")
    jaeger_ui_url: str | None = Field(
        default=None, description="Base URL of the Jaeger UI; the console links to <url>/trace/<trace_id>."
    )

    # -- authentication and authorization of the public surface (issue 14; docs/security.md) --
    auth_mode: Literal["oidc", "disabled"] = Field(
        default="oidc",
        description="oidc: every /api/v1 and /ui/api request needs a bearer JWT of EDA_AUTH_ISSUER; "
        "disabled (only when set explicitly): no authentication at all, every caller has every scope.",
    )
    auth_issuer: str | None = Field(default=None, description="The OIDC issuer URL (the tokens' iss).")
    auth_audience: str = Field(default="eda-api", min_length=1, description="The tokens' required aud.")
    auth_jwks_url: str | None = Field(
        default=None, description="JWKS URL; unset: jwks_uri of <issuer>/.well-known/openid-configuration."
    )
    auth_algorithms: str = Field(
        default="RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA",
        description="Accepted signature algorithms (asymmetric only: never none, never HMAC).",
    )
    auth_leeway_s: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")
    auth_subject_claim: str = Field(default="sub", min_length=1, description="Claim naming the caller.")
    auth_scope_claim: str = Field(
        default="scope", min_length=1, description="Claim with the scopes (space-separated or a list)."
    )
    auth_roles_claim: str | None = Field(
        default=None, description="Dotted path of a roles claim (Keycloak: realm_access.roles); unset: off."
    )
    auth_role_scopes: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"role": "scope scope"}: scopes granted by a role; a role named like a scope '
        "grants that scope.",
    )
    auth_jwks_refresh_s: int = Field(default=600, ge=10, description="Re-read the JWKS this often.")
    auth_jwks_cooldown_s: float = Field(
        default=30.0, ge=0, description="An unknown kid refetches the JWKS at most once per this many s."
    )
    auth_open_endpoints: str = Field(
        default="",
        pattern=r"^\s*((metrics|docs)\s*(,\s*(metrics|docs)\s*)*)?$",
        description="Served without a token: metrics (/metrics), docs (/docs, /redoc, /openapi.json); "
        "else they need a token with admin:read.",
    )
    ui_oidc_client_id: str | None = Field(
        default=None,
        description="Public OIDC client of the console's login (authorization code + PKCE); unset: the "
        "console expects an auth proxy to forward the bearer token.",
    )
    default_price: str | None = Field(
        default=None,
        pattern=r"^\d{1,12}(\.\d{1,2})?$",
        description="Price of a product never priced via PUT /api/v1/catalog (eda dev: 99.99); unset: "
        "such a product cannot be ordered.",
    )

    # -- rollouts and load limits (issue 17; docs/kubernetes.md § Rollouts, docs/security.md § Abuse) --
    shutdown_drain_s: float = Field(
        default=0.0,
        ge=0,
        le=120,
        description="After SIGTERM the API keeps serving this long with /readyz failing and Connection: "
        "close on every response, then stops accepting (the chart's preStop sleep does this before SIGTERM).",
    )
    shutdown_grace_s: int = Field(
        default=30,
        gt=0,
        le=600,
        description="How long the API lets in-flight requests finish once it stops accepting (longer than "
        "an append's 15 s retry); the chart derives terminationGracePeriodSeconds from it.",
    )
    http_max_concurrency: int = Field(
        default=512,
        ge=8,
        le=100_000,
        description="Open connections + in-flight requests per API process (uvicorn limit_concurrency); "
        "past it a 503 problem (overloaded); /livez and /readyz are exempt.",
    )
    http_keepalive_s: int = Field(
        default=75,
        ge=1,
        le=3600,
        description="Idle keep-alive connections close after this many seconds; keep it above the idle "
        "timeout of the balancer in front (ingress-nginx and AWS ALB: 60 s), or it reuses a connection the "
        "API is closing and answers 502.",
    )
    admission_saga_backlog: int = Field(
        default=20_000,
        ge=0,
        le=10_000_000,
        description="New orders are refused (503 saga-backlog + Retry-After) while more events than this "
        "wait undelivered for the saga orchestrator (its capacity is exceeded); 0: off. Reads, cancels "
        "and accepted orders are unaffected.",
    )
    rate_limit: str = Field(
        default="50/second;1000/minute",
        description="Requests per client (the token's subject, else the peer address) to /api/v1 and "
        "/ui/api, per API process (limits syntax, ';'-separated); past it 429 + Retry-After; empty: off.",
    )
    rate_limit_trusted: str = Field(
        default="1000/second",
        description="The same for a trusted backend (a token with orders:write:any); empty: unlimited.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated proxy addresses/CIDRs (or *) whose X-Forwarded-For/-Proto is believed: "
        "the client address of rate limits and logs; empty: the TCP peer is the client.",
    )
    db_command_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="The API's PostgreSQL statement timeout (asyncpg) → 503."
    )
    db_acquire_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="Max wait for a connection of the API's pool; past it a 503 problem (overloaded).",
    )
    ui_max_streams: int = Field(
        default=100,
        ge=0,
        le=10_000,
        description="Concurrent console live-feed (SSE) streams per API process (at most half of "
        "EDA_HTTP_MAX_CONCURRENCY); past it a 503 problem.",
    )

    @field_validator("rate_limit", "rate_limit_trusted")
    @classmethod
    def _rate_limits_parse(cls, value: str) -> str:
        if value.strip():
            try:
                limits.parse_many(value)
            except ValueError as exc:
                raise ValueError(f"not a rate limit like '50/second;1000/minute': {value!r}") from exc
        return value

    def stream_cap(self) -> int:
        """The console's concurrent streams: ``EDA_UI_MAX_STREAMS``, at most half of
        ``EDA_HTTP_MAX_CONCURRENCY`` (a stream holds a connection for minutes: streams alone must never
        fill the server)."""
        return min(self.ui_max_streams, self.http_max_concurrency // 2)

    def trusted_proxy_list(self) -> list[str]:
        """``EDA_TRUSTED_PROXIES`` as a list (empty: trust no forwarding header)."""
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: str) -> str:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
        names = {a.strip() for a in value.split(",") if a.strip()}
        if not names or not names <= allowed:
            raise ValueError(f"auth_algorithms must be a non-empty subset of {sorted(allowed)}")
        return value

    def auth_algorithm_list(self) -> list[str]:
        """``EDA_AUTH_ALGORITHMS`` as a list."""
        return [a.strip() for a in self.auth_algorithms.split(",") if a.strip()]

    def open_endpoints(self) -> frozenset[str]:
        """``EDA_AUTH_OPEN_ENDPOINTS`` as a set (``metrics``, ``docs``)."""
        return frozenset(e.strip() for e in self.auth_open_endpoints.split(",") if e.strip())

    # -- fulfilment saga and workers (issue 4) --
    default_stock: int = Field(
        default=0, ge=0, description="Stock of a product never set via PUT /inventory (eda dev: 1000)."
    )
    payment_fault_delay_s: float = Field(
        default=0.0, ge=0, description="Fault injection: the payment worker waits this long before charging."
    )
    payment_fault_fail_rate: float = Field(
        default=0.0, ge=0, le=1, description="Fault injection: share of payment commands failing transiently."
    )
    shipping_fail_user_ids: str = Field(
        default="", description="Fault injection: comma-separated user ids whose shipments fail."
    )
    worker_concurrency: int = Field(default=64, ge=1, le=4096, description="In-flight commands per worker.")
    saga_concurrency: int = Field(default=256, ge=1, le=8192, description="In-flight saga reactions.")

    # -- backup and disaster recovery (issue 18) --
    backup_dir: str = Field(
        default="/var/lib/eda/backups",
        description="Root directory of the operator's backups (each Backup object writes below it).",
    )
    mirror_url: str | None = Field(
        default=None,
        description="NATS URL of the disaster-recovery mirror's cluster (backups check its lag).",
    )
    mirror_creds: str | None = Field(default=None, description="NATS .creds file for the mirror's cluster.")
    mirror_stream: str = Field(default="EVENTS", description="Name of the mirror stream on the mirror side.")
    mirror_max_lag_s: float | None = Field(
        default=None, ge=0, description="A backup fails when the mirror is further behind (seconds)."
    )

    def shipping_failing_users(self) -> frozenset[int]:
        """``EDA_SHIPPING_FAIL_USER_IDS`` as a set of user ids."""
        return frozenset(int(u) for u in self.shipping_fail_user_ids.split(",") if u.strip())

    def inbox_prefix(self) -> str:
        """``EDA_NATS_INBOX_PREFIX``, else ``_INBOX_<user>`` with a NATS user, else nats' ``_INBOX``."""
        if self.nats_inbox_prefix:
            return self.nats_inbox_prefix
        return user_inbox(self.nats_user) if self.nats_user else "_INBOX"

    def nats_servers(self) -> list[str]:
        """The NATS URLs as a list (``EDA_NATS_URL`` may hold several, comma-separated)."""
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]
