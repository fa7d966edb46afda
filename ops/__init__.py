"""Operational tools for running the deployed service (not deployed themselves)."""
