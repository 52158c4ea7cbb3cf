"""Settings and shipped data (regional calling rules)."""
