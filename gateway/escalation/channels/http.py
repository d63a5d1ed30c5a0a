"""The one HTTP seam of the channels: httpx exceptions and status codes become Deliveries here.

    request() ─▶ HttpReply            the server answered (any status)
              └▶ Delivery(failed)     no answer: timeout / connection error (retryable),
                                      or a request that can never work: bad URL (not retryable)

    status_failure(reply) ─▶ None (2xx) | Delivery(failed, retryable for 408/425/429/5xx)

The httpx.AsyncClient is injected and owned by the runtime (one connection pool for every channel).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.escalation.types import Delivery

__all__ = ["RETRYABLE_STATUS", "HttpReply", "failed", "request", "status_failure"]

log = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({408, 425, 429})  # and every 5xx
_SNIPPET = 200


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def snippet(self) -> str:
        return self.body[:_SNIPPET].decode("utf-8", "replace")


def failed(detail: str, *, retryable: bool) -> Delivery:
    return Delivery("failed", retryable=retryable, detail=detail)


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    seconds: float,
    **kwargs: Any,
) -> HttpReply | Delivery:
    """Send one request; every failure to get an answer becomes a failed Delivery (never raises)."""
    try:
        response = await client.request(method, url, timeout=seconds, **kwargs)
    except httpx.TimeoutException as exc:
        return failed(f"timeout after {seconds:g}s ({type(exc).__name__})", retryable=True)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        return failed(f"bad URL: {exc}", retryable=False)
    except httpx.TransportError as exc:  # connect refused/reset, DNS, protocol errors
        return failed(f"{type(exc).__name__}: {exc}", retryable=True)
    except httpx.HTTPError as exc:
        return failed(f"{type(exc).__name__}: {exc}", retryable=False)
    return HttpReply(response.status_code, response.content)


def status_failure(reply: HttpReply) -> Delivery | None:
    """None for a 2xx; else a failed Delivery, retryable when the server may accept it later."""
    if 200 <= reply.status < 300:
        return None
    retryable = reply.status >= 500 or reply.status in RETRYABLE_STATUS
    return failed(f"HTTP {reply.status}: {reply.snippet()}", retryable=retryable)
