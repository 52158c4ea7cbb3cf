"""APScheduler wiring: campaign ticks, scheduled starts, reconciliation and housekeeping."""
