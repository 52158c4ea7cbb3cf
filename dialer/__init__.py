"""The dialing brain: campaigns, prospects, calling windows, retry policy, DID allocation, dispatch."""

__version__ = "0.1.0"
