"""FastAPI app: routes, auth, errors, /health and /metrics."""
