"""Helpers shared by the test packages (waiting for a condition, store harnesses, chaos tooling)."""
