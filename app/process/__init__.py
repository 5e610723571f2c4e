"""A role's process lifecycle, below the roles themselves: start-up with retries and the health server
of a background role (``role``), health checks over HTTP (``health``), garbage-collector tuning
(``gctune``)."""
