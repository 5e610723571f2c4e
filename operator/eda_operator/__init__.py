"""eda's kopf operator: ``ProjectionRebuild`` and ``Snapshot`` custom resources (group ``eda.dev``)."""
