"""Authentication and authorization primitives of the public surface (docs/security.md).

- ``scopes``: the scopes and the ``Principal`` (who is calling, with which scopes).
- ``errors``: ``AuthError`` and its kinds (401 / 403 / 503), with their RFC 6750 ``WWW-Authenticate``.
- ``jwks``: the issuer's signing keys, fetched without blocking the loop, cached, refetched on an
  unknown ``kid`` at most once per cooldown.
- ``verifier``: a bearer JWT → ``Principal`` (signature, algorithm allowlist, ``iss``/``aud``/``exp``/
  ``nbf``, claim mapping), with a bounded cache of verified tokens.
- ``authenticator``: an ``Authorization`` header (and the peer address) → ``Principal`` per the mode.

Framework-free: the API (``app.api.security``) and the console (``app.ui``) call it; nothing here knows
FastAPI, and nothing here knows which issuer it talks to (``eda dev``'s provider is just an issuer).
"""
