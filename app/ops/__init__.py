"""Operating the platform: JetStream health, the metrics sampler, ``eda status``."""
