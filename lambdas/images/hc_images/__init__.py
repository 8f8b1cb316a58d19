"""Build the researcher images at deploy time: the custom resource handlers (handler.py)."""
