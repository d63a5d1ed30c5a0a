"""Evidence on incidents: camera links around alarms, plate and scene pictures kept with retention."""

from gateway.evidence.config import CameraLinkConfig, EvidenceConfig
from gateway.evidence.incident import EvidenceService, picture_route
from gateway.evidence.links import CameraLink, camera_link
from gateway.evidence.pictures import Picture, PictureStore

__all__ = [
    "CameraLink",
    "CameraLinkConfig",
    "EvidenceConfig",
    "EvidenceService",
    "Picture",
    "PictureStore",
    "camera_link",
    "picture_route",
]
