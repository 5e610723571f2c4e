"""Build-time tools (not shipped in the image): the Grafana dashboard generator and its renderer."""
