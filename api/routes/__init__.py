"""Routers per resource; ``api.app`` includes them all."""
