"""Deployment artefacts computed from code: the per-role NATS permissions the Helm chart ships
(``natsauth``, rendered into ``helm/eda/files/nats-permissions.json``). No role imports this package."""
