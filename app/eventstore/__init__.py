"""The event store: envelope and codec, upcasting, the JetStream adapter and the snapshot store."""
