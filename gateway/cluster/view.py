"""What the API needs from the cluster runtime (gateway/runtime/cluster.py), without importing it."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.cluster.forward import Owner

__all__ = ["ClusterView"]


class ClusterView(Protocol):
    instance: str

    async def owner_of(self, estate: str) -> Owner: ...

    def view(self) -> dict[str, Any]: ...

    async def post_to(self, url: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        """POST JSON to a peer's API as the caller (forwarded credentials); its JSON answer. Raises
        ConnectionError when the peer does not answer or refuses."""
