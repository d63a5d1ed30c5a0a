"""Duty rosters: who is on duty at a moment, in the estate's local time; config errors with their lines.

Config errors go through gateway.config.loader, so the file:line messages are the ones a site file gets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from ruamel.yaml import YAML

from gateway.config import ConfigError, parse_config
from gateway.config.duty import DutyConfig
from gateway.escalation.roster import Directory, Roster, people_finder

DUTY = """\
people:
  - {id: li, name: 李明, phone: "+8613800000001"}
  - {id: zhang, name: 张伟, phone: "+8613800000002"}
  - {id: wang, name: 王芳}
  - {id: zhao, name: 赵强}
  - {id: sun, name: 孙丽}
  - {id: chen, name: 陈刚, email: chen@example.com}
  - {id: liu, name: 刘洋, im: {dingtalk: liu01}}
shifts:
  day: 08:00-20:00
  night: 20:00-08:00
  24h: 08:00-08:00+1
  office: 09:00-18:00
roles:
  control_room: {day: [li], night: [zhang]}
  duty_manager: {rotation: [wang, zhao, sun], every_days: 1, starting: 2026-11-01, shift: 24h}
  estate_manager: {office: [chen]}
  engineer_on_call: {rotation: [liu, [zhao, sun]], every_days: 7, starting: 2026-11-02, shift: 24h}
  patrol_guard: {day: [], night: []}
  fire_liaison: {24h: [chen]}
overrides:
  - {date: 2027-02-06, until: 2027-02-12, role: duty_manager, people: [chen], note: 春节值班}
swaps:
  - {date: 2026-11-03, a: li, b: zhang, note: 李明 请假}
"""


def duty_config(text: str = DUTY) -> DutyConfig:
    return DutyConfig.model_validate(YAML(typ="safe").load(text))


def roster(timezone: str = "Asia/Shanghai") -> Roster:
    return Roster(duty_config(), timezone)


def local(moment: str, timezone: str = "Asia/Shanghai") -> float:
    return datetime.fromisoformat(moment).replace(tzinfo=ZoneInfo(timezone)).timestamp()


def utc(moment: str) -> float:
    return datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp()


def ids(r: Roster, role: str, at: float) -> list[str]:
    return [p.id for p in r.on_duty(role, at)]


# --- who is on duty -----------------------------------------------------------------------------------


def test_three_am_belongs_to_last_nights_shift() -> None:
    r = roster()
    assert ids(r, "control_room", local("2026-11-02T03:00")) == ["zhang"]
    span = r.shift_at(local("2026-11-02T03:00"), "control_room")
    assert span is not None
    assert (span.name, span.day.isoformat()) == ("night", "2026-11-01")
    assert (span.start, span.end) == (local("2026-11-01T20:00"), local("2026-11-02T08:00"))
    assert ids(r, "control_room", local("2026-11-02T07:59:59")) == ["zhang"]
    assert ids(r, "control_room", local("2026-11-02T08:00")) == ["li"]
    assert ids(r, "control_room", local("2026-11-02T19:59:59")) == ["li"]
    assert ids(r, "control_room", local("2026-11-02T20:00")) == ["zhang"]


def test_24_hour_duty_rotation_changes_at_eight() -> None:
    r = roster()
    assert ids(r, "duty_manager", local("2026-11-01T08:00")) == ["wang"]
    assert ids(r, "duty_manager", local("2026-11-02T03:00")) == ["wang"]  # still the 1st's duty
    assert ids(r, "duty_manager", local("2026-11-02T07:59:59")) == ["wang"]
    assert ids(r, "duty_manager", local("2026-11-02T08:00")) == ["zhao"]
    assert ids(r, "duty_manager", local("2026-11-03T08:00")) == ["sun"]
    assert ids(r, "duty_manager", local("2026-11-04T08:00")) == ["wang"]  # round again
    assert ids(r, "duty_manager", local("2026-10-31T12:00")) == ["sun"]  # before `starting`: backwards
    span = r.shift_at(local("2026-11-02T03:00"), "duty_manager")
    assert span is not None and span.end == local("2026-11-02T08:00")
    # a weekly rotation of one person, then a team of two
    assert ids(r, "engineer_on_call", local("2026-11-09T07:59")) == ["liu"]
    assert ids(r, "engineer_on_call", local("2026-11-09T08:00")) == ["zhao", "sun"]


def test_spring_festival_override_covers_its_dates_then_the_rotation_resumes() -> None:
    r = roster()
    assert ids(r, "duty_manager", local("2027-02-06T07:59")) == ["wang"]  # the 5th's duty (day 96)
    duty = r.duty("duty_manager", local("2027-02-06T10:00"))
    assert [p.id for p in duty.people] == ["chen"]
    assert duty.notes == ("春节值班",)
    assert ids(r, "duty_manager", local("2027-02-13T03:00")) == ["chen"]  # the 12th's duty, last of it
    assert ids(r, "duty_manager", local("2027-02-13T08:00")) == ["sun"]  # day 104 of the rotation
    assert ids(r, "control_room", local("2027-02-06T10:00")) == ["li"]  # other roles untouched


def test_swap_exchanges_two_people_in_the_shifts_of_that_date() -> None:
    r = roster()
    day = r.duty("control_room", local("2026-11-03T10:00"))
    assert [p.id for p in day.people] == ["zhang"]
    assert day.notes == ("李明 请假",)
    assert ids(r, "control_room", local("2026-11-04T03:00")) == ["li"]  # the 3rd's night: li covers
    assert ids(r, "control_room", local("2026-11-04T10:00")) == ["li"]  # the 4th: as planned
    assert ids(r, "duty_manager", local("2026-11-03T10:00")) == ["sun"]  # not named in the swap


def test_nobody_on_duty_is_an_empty_answer() -> None:
    r = roster()
    at = local("2026-11-02T21:00")
    assert r.on_duty("patrol_guard", at) == []  # staffed shift, nobody listed
    assert r.duty("patrol_guard", at).shift is not None
    assert r.on_duty("estate_manager", at) == []  # office hours are over: a gap in the cover
    assert r.shift_at(at, "estate_manager") is None
    assert r.on_duty("security_chief", at) == []  # not a configured role
    assert ids(r, "estate_manager", local("2026-11-02T09:00")) == ["chen"]
    assert r.roles() == [
        "control_room", "duty_manager", "estate_manager", "engineer_on_call", "patrol_guard", "fire_liaison"
    ]  # fmt: skip
    assert r.label("fire_liaison") == "消防联络人"


def test_next_change_and_shift_without_role() -> None:
    r = roster()
    at = local("2026-11-02T03:00")
    assert r.next_change(at) == local("2026-11-02T08:00")
    assert r.next_change(local("2026-11-02T08:00")) == local("2026-11-02T09:00")  # office opens
    span = r.shift_at(at)  # night and 24h both end at 08:00: the one that started last
    assert span is not None and span.name == "night"
    assert r.shift_at(local("2026-11-02T12:00")) == r.shift_at(local("2026-11-02T12:00"), "estate_manager")


def test_shanghai_has_no_dst_every_24_hour_duty_is_24_hours() -> None:
    r = roster()
    for day in ("2026-03-28", "2026-03-29", "2026-10-24", "2026-10-25"):
        span = r.shift_at(local(f"{day}T12:00"), "duty_manager")
        assert span is not None and span.end - span.start == 24 * 3600


def test_berlin_shifts_follow_the_wall_clock_across_dst() -> None:
    r = roster("Europe/Berlin")
    # summer: 08:00 CEST is 06:00 UTC; winter: 08:00 CET is 07:00 UTC
    assert ids(r, "duty_manager", utc("2026-11-02T06:59:59")) == ["wang"]
    assert ids(r, "duty_manager", utc("2026-11-02T07:00")) == ["zhao"]
    assert ids(r, "control_room", utc("2026-07-02T05:59:59")) == ["zhang"]
    assert ids(r, "control_room", utc("2026-07-02T06:00")) == ["li"]
    # clocks go back on 25 Oct 2026: that night shift lasts 13 h and the 24-hour duty 25 h
    night = r.shift_at(local("2026-10-25T03:30", "Europe/Berlin"), "control_room")
    assert night is not None and (night.start, night.end) == (
        utc("2026-10-24T18:00"),
        utc("2026-10-25T07:00"),
    )
    duty = r.shift_at(utc("2026-10-25T06:30"), "fire_liaison")
    assert duty is not None and duty.end - duty.start == 25 * 3600
    # clocks go forward on 29 Mar 2026: that night shift lasts 11 h
    night = r.shift_at(utc("2026-03-29T05:00"), "control_room")
    assert night is not None and night.end - night.start == 11 * 3600
    assert night.end == utc("2026-03-29T06:00")


def test_directory_and_engine_lookup() -> None:
    r = roster()
    chen = r.directory.get("chen")
    assert chen is not None and chen.email == "chen@example.com" and chen.phone is None
    liu = r.directory.get("liu")
    assert liu is not None and liu.im == {"dingtalk": "liu01"}
    assert "li" in r.directory and "nobody" not in r.directory and len(r.directory) == 7
    assert isinstance(Directory(list(r.directory)).get("li"), type(chen))
    find = people_finder({"sunshine": r})
    assert [p.id for p in find("sunshine", "control_room", local("2026-11-02T03:00"))] == ["zhang"]
    assert [p.id for p in find("sunshine", "person:chen", 0.0)] == ["chen"]
    assert find("sunshine", "person:nobody", 0.0) == []
    assert find("elsewhere", "control_room", 0.0) == []


# --- config errors, with the file's line numbers --------------------------------------------------------


SITE = """\
estates:
  - id: sunshine
    name: {zh: 阳光花园, en: Sunshine Garden}
    duty:
"""  # the duty block starts on line 5


def site_errors(duty: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    block = "".join(f"      {line}\n" for line in duty.splitlines())
    with pytest.raises(ConfigError) as caught:
        parse_config(SITE + block, "site.yaml", {})
    return [str(issue) for issue in caught.value.issues]


def line_of(text: str, duty: str = DUTY) -> int:
    return 5 + next(i for i, line in enumerate(duty.splitlines()) if text in line)


def test_the_demo_block_parses_through_the_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    block = "".join(f"      {line}\n" for line in DUTY.splitlines())
    config = parse_config(SITE + block, "site.yaml", {})
    estate = config.estates[0]
    assert estate.duty == duty_config()


def test_unknown_person(monkeypatch: pytest.MonkeyPatch) -> None:
    duty = DUTY.replace("night: [zhang]}", "night: [lee]}")
    assert site_errors(duty, monkeypatch) == [
        f"site.yaml:{line_of('roles:')} estates[0].duty.roles: control_room.night[0]: unknown person 'lee' "
        "(people: chen, li, liu, sun, wang, zhang, zhao)"
    ]
    duty = DUTY.replace("people: [chen]", "people: [chen, lee]").replace("b: zhang", "b: zhangwei")
    assert site_errors(duty, monkeypatch) == [
        f"site.yaml:{line_of('overrides:')} estates[0].duty.overrides: [0].people[1]: unknown person 'lee' "
        "(people: chen, li, liu, sun, wang, zhang, zhao)",
        f"site.yaml:{line_of('swaps:')} estates[0].duty.swaps: [0].b: unknown person 'zhangwei' "
        "(people: chen, li, liu, sun, wang, zhang, zhao)",
    ]


def test_overlapping_shifts_of_one_role(monkeypatch: pytest.MonkeyPatch) -> None:
    duty = DUTY.replace("night: 20:00-08:00", "night: 19:00-08:00")
    assert site_errors(duty, monkeypatch) == [
        f"site.yaml:{line_of('roles:')} estates[0].duty.roles: control_room: shifts day (08:00-20:00) and "
        "night (19:00-08:00) overlap (both cover 19:00): who is on duty would be ambiguous; "
        "patrol_guard: shifts day (08:00-20:00) and night (19:00-08:00) overlap (both cover 19:00): "
        "who is on duty would be ambiguous"
    ]
    # shifts that no role holds together may overlap: the 24h duty and the day shift do
    assert duty_config().shifts["24h"].covers() >= duty_config().shifts["day"].covers()


def test_zero_length_and_malformed_shifts(monkeypatch: pytest.MonkeyPatch) -> None:
    duty = DUTY.replace("24h: 08:00-08:00+1", "24h: 08:00-08:00").replace(
        "office: 09:00-18:00", "office: 9-18"
    )
    assert site_errors(duty, monkeypatch) == [
        f"site.yaml:{line_of('24h: 08')} estates[0].duty.shifts.24h: '08:00-08:00': shift of zero length "
        "(a 24-hour duty is written 08:00-08:00+1)",
        f"site.yaml:{line_of('office: 09')} estates[0].duty.shifts.office: '9-18': a shift looks like "
        "HH:MM-HH:MM, e.g. 08:00-20:00, 20:00-08:00 or 08:00-08:00+1",
    ]
    duty = DUTY.replace("office: 09:00-18:00", "office: 09:00-18:00+1")
    assert site_errors(duty, monkeypatch) == [
        f"site.yaml:{line_of('office: 09')} estates[0].duty.shifts.office: '09:00-18:00+1': "
        "a shift lasts at most 24 hours"
    ]


def test_rotation_with_no_people_and_unknown_shift(monkeypatch: pytest.MonkeyPatch) -> None:
    duty = DUTY.replace("rotation: [wang, zhao, sun]", "rotation: []").replace(
        "fire_liaison: {24h: [chen]}", "fire_liaison: {allday: [chen]}"
    )
    assert site_errors(duty, monkeypatch) == [
        f"site.yaml:{line_of('duty_manager:')} estates[0].duty.roles.duty_manager: rotation has no people"
    ]  # the roles field failed, so the unknown shift is reported once that is fixed
    duty = DUTY.replace("fire_liaison: {24h: [chen]}", "fire_liaison: {allday: [chen]}")
    assert site_errors(duty, monkeypatch) == [
        f"site.yaml:{line_of('roles:')} estates[0].duty.roles: fire_liaison: unknown shift 'allday' "
        "(shifts: day, night, 24h, office)"
    ]


def test_override_and_swap_mistakes(monkeypatch: pytest.MonkeyPatch) -> None:
    duty = (
        DUTY.replace("role: duty_manager, people: [chen]", "role: duty_manger, people: [chen]")
        .replace("a: li, b: zhang", "a: li, b: li")
        .replace('phone: "+8613800000001"', "phone: +8613800000001")
    )
    assert site_errors(duty, monkeypatch) == [
        f"site.yaml:{line_of('id: li,')} estates[0].duty.people[0].phone: write the number in quotes, "
        'e.g. "+8613800000001"',
        f"site.yaml:{line_of('overrides:')} estates[0].duty.overrides: [0].role: unknown role 'duty_manger' "
        "(roles: control_room, duty_manager, estate_manager, engineer_on_call, patrol_guard, fire_liaison)",
        f"site.yaml:{line_of('- {date: 2026')} estates[0].duty.swaps[0]: a swap needs two different people, "
        "not 'li' twice",
    ]  # every mistake at once; person references wait until `people` itself parses
    duty = DUTY.replace("people: [chen], note", "shift: day, people: [chen], note")
    assert site_errors(duty, monkeypatch) == [
        f"site.yaml:{line_of('overrides:')} estates[0].duty.overrides: [0].shift: role duty_manager is not "
        "staffed in shift 'day' (its shifts: 24h)"
    ]
