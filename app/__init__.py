"""eda: an event-sourced order platform on NATS JetStream (Event Sourcing + CQRS + Sagas)."""

__version__ = "0.1.0"
