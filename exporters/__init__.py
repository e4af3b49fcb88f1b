"""Metrics, their exposition, and the other exporters of the services' work."""
