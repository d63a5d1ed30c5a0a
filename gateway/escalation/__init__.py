"""Escalation: duty rosters, escalation policies with store-backed timers, and notification channels."""
