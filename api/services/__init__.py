"""Use cases the routes call: validation across fields, storage calls in order, response shaping."""
