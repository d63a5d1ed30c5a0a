"""MQTT cameras (generic JSON, Frigate LPR): the profile's decoder, then the registry's verdict.

The profile turns a message into `plate_read` events like any MQTT device; this decoder hands each one
to the estate's classifier, so an MQTT camera yields the same `plate_resident` / `plate_visitor` /
`plate_unknown` / `plate_blacklisted` events as a pushing camera, and an open decision pulses the lane's
barrier relay at once (the barrier must not wait for the incident commit).
"""

from __future__ import annotations

from typing import Any

from drivers.anpr.classifier import PLATE_READ, PlateClassifier, Verdict
from drivers.anpr.receiver import Opener, PictureSink
from drivers.mqtt_device import MqttJsonDecoder
from drivers.profiles.schema import MqttProfile
from drivers.stats import DeviceStats
from gateway.model import DeviceEvent, Item


class PlateDecoder(MqttJsonDecoder):
    def __init__(
        self,
        estate: str,
        device: str,
        profile: MqttProfile,
        stats: DeviceStats,
        classifier: PlateClassifier,
        opener: Opener | None = None,
        pictures: PictureSink | None = None,
    ) -> None:
        super().__init__(estate, device, profile, stats)
        self.classifier, self.opener, self.pictures = classifier, opener, pictures

    def decode(self, topic: str, payload: bytes, now_ns: int) -> list[Item]:
        return self._classified(super().decode(topic, payload, now_ns))

    def decode_object(self, topic: str, data: dict[str, Any], size: int, now_ns: int) -> list[Item]:
        return self._classified(super().decode_object(topic, data, size, now_ns))

    def _classified(self, items: list[Item]) -> list[Item]:
        return [self._verdict(i) if isinstance(i, DeviceEvent) and i.kind == PLATE_READ else i for i in items]

    def _verdict(self, read: DeviceEvent) -> DeviceEvent:
        verdict: Verdict = self.classifier.classify(read)
        if verdict.decision.open and self.opener is not None:
            self.opener(verdict)
        if self.pictures is not None:  # MQTT cameras link their pictures (profile attributes picture_*)
            attrs = verdict.event.attributes
            links = {
                k: url for k in ("plate", "scene")
                if isinstance(url := attrs.get(f"picture_{k}"), str) and url.startswith(("http://", "https://"))
            }  # fmt: skip
            if links:
                refs = self.pictures(self.estate, self.device, verdict.event.ts_ns, attrs["plate"], links)
                attrs.update({f"picture_{kind}": ref for kind, ref in refs.items()})
        return verdict.event
