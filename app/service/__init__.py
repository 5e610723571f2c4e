"""The service layer between the edges and the event store: loading and saving aggregates
(``repository``), the cache of recently used aggregate states (``statecache``) and the snapshot
engine (``snapshotter``)."""
