"""The bounded queue between drivers and the alert core."""

from gateway.ingest.queue import IngestQueue
from gateway.model import Envelope, Item

__all__ = ["Envelope", "IngestQueue", "Item"]
