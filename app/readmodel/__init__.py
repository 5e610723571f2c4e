"""The PostgreSQL read side: migrations, the order projection, the projector runner, queries.

Rebuildable tables live in the read-model schema (``EDA_READMODEL_SCHEMA``, default ``readmodel``);
tables that must survive rebuilds (idempotency keys, migration records) live in schema ``eda``.
"""
