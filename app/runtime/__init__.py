"""Composition roots, above every role: ``roles`` builds each role's adapters from settings (and
``eda dev``: all of them in one process on embedded servers); ``maintenance`` runs ``eda rebuild`` and
``eda snapshot`` once with a progress display."""
