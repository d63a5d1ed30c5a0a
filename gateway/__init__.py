"""estate-gateway: IoT gateway and monitoring daemon for residential estates (小区).

Pipeline (one way): drivers → ingest → alerts → incidents → store / escalation / sinks → api.
"""

__version__ = "0.1.0"
