"""Request and response models per resource: Create/Update bodies and Public views, kept apart."""
