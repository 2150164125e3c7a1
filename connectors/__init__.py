"""Vendor connectors."""
