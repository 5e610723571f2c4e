"""Backup, restore and disaster recovery of everything the system owns (``eda backup``/``eda restore``).

The streams go through JetStream's own snapshot/restore API (``plan`` says which, in which order around
the cut), the non-rebuildable PostgreSQL state as a COPY dump of schema ``eda``; a manifest records
configs, sequences, counts and a SHA-256 per chunk. See docs/operations.md.
"""
