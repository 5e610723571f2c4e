"""The event store: envelope and codec, upcasting, the port and its JetStream adapter, the snapshot store,
the raw JetStream API (``jsapi``) and the durable pull-consumer loop (``consumer``)."""
