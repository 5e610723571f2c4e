"""Development infrastructure: embedded nats-server and PostgreSQL (``stack``) and a 3-node JetStream
cluster on loopback (``cluster``). Imported only by the CLI (``eda dev``, ``eda infra``), the dev
composition root (``app.runtime.roles.dev``) and tests — never by a production role."""
