"""Metrics sinks: the gateway's readings, events, alarms, incidents, KPIs and health to InfluxDB.

`lines` is the line-protocol contract the dashboards are built on; `spool` the bounded on-disk buffer;
`writer` the one seam to the server; `influx` the sink that ties them together.
"""

from gateway.sinks.influx import InfluxSink, KpiSource, OpenIncidentSource
from gateway.sinks.lines import LineEncoder, encode_line
from gateway.sinks.snapshots import open_incident_counts
from gateway.sinks.spool import Overflow, Spool, SpoolError
from gateway.sinks.writer import BatchWriter, InfluxWriter, SinkWriteError, WriteRejected, WriteUnavailable

__all__ = [
    "BatchWriter",
    "InfluxSink",
    "InfluxWriter",
    "KpiSource",
    "LineEncoder",
    "OpenIncidentSource",
    "Overflow",
    "SinkWriteError",
    "Spool",
    "SpoolError",
    "WriteRejected",
    "WriteUnavailable",
    "encode_line",
    "open_incident_counts",
]
