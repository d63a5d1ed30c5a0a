"""Signed one-click acknowledge links: they name one incident and one person, expire, and resist edits."""

from __future__ import annotations

import pytest

from gateway.escalation.links import AckLinks, InvalidLink
from gateway.model import ManualClock

SECRET = "link-secret-0123456789"


def test_a_link_round_trips_and_expires() -> None:
    clock = ManualClock(1_800_000_000.0)
    links = AckLinks("https://gw.example.com/", SECRET, 24, clock)
    url = links.url(42, "王经理")
    assert url.startswith("https://gw.example.com/ack/42.")
    claim = links.verify(url.rsplit("/", 1)[1])
    assert (claim.incident_id, claim.person) == (42, "王经理")
    clock.advance(24 * 3600 + 1)
    with pytest.raises(InvalidLink, match="expired"):
        links.verify(url.rsplit("/", 1)[1])


def test_edited_or_foreign_links_are_refused() -> None:
    clock = ManualClock(1_800_000_000.0)
    links = AckLinks("https://gw", SECRET, 24, clock)
    token = links.token(42, "li")
    incident, person, expires, signature = token.split(".")
    for forged in (
        f"43.{person}.{expires}.{signature}",  # another incident
        f"{incident}.{person}.{int(expires) + 9999}.{signature}",  # a longer life
        f"{incident}.{person}.{expires}.{signature[:-2]}xx",
    ):
        with pytest.raises(InvalidLink, match="not valid"):
            links.verify(forged)
    other = AckLinks("https://gw", "another-secret-0123456789", 24, clock)
    with pytest.raises(InvalidLink, match="not valid"):
        other.verify(token)
    for junk in ("", "a.b", "x.y.z.w"):
        with pytest.raises(InvalidLink):
            links.verify(junk)
