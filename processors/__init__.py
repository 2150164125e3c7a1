"""Continuum printer-fleet events through Kafka."""
