"""The two-person rule and the tenancy above the estate, through the whole gateway: App with its HTTP
API (uvicorn on a free port, SQLite file), the generator simulator speaking real Modbus TCP, a private
Mosquitto, real users in the store with API keys.

- a dangerous generator stop (on load) asked for by one supervisor answers 202, nothing reaches the
  generator, the request is audited; the requester, a guard, another estate's supervisor and a late
  confirmation are refused and audited; a second supervisor's confirmation stops the generator and the
  audit names both;
- the regulator reads KPIs and reports of every estate and nothing else; a company-scoped manager sees
  its company's estates only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from drivers.sim.fire_panel import FirePanelModel
from drivers.sim.generator import GeneratorModel
from drivers.sim.host import SimulationHost
from gateway.auth import Accounts, Passwords
from gateway.config import parse_config
from gateway.runtime.broker import MosquittoProcess, free_port
from tests.integration.stack import Stack, site_yaml

pytestmark = pytest.mark.integration
CHEAP = Passwords(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "Two-person-2026!"
STOP = """          stop:
            role: supervisor
            confirm_by: [supervisor, admin]
            within: 120
            when: {point: total_power, above: 0}
"""
MANUAL = "          manual: {role: supervisor, confirm_by: [supervisor], within: 1}\n"
COMPANIES = """companies:
  - {id: sunny-pm, name: {zh: 阳光物业, en: Sunny Property}, estates: [sunshine]}
  - {id: maple-co, name: {zh: 枫林物业, en: Maple Property}, estates: [maple]}
"""
USERS = {  # name: (role, job, estates)
    "duty.a": ("supervisor", None, ["sunshine"]),
    "duty.b": (None, "shift_leader", ["sunshine"]),
    "guard.c": (None, "guard", ["sunshine"]),
    "maple.sup": ("supervisor", None, ["maple"]),
    "district": ("regulator", None, ["*"]),
    "boss.wu": (None, "manager", ["company:sunny-pm"]),
}


@asynccontextmanager
async def two_person_stack(broker: MosquittoProcess, tmp_path: Path) -> AsyncIterator[Stack]:
    text = site_yaml(broker.port, free_port(), tmp_path / "gw.db", f"eg-test-{uuid.uuid4().hex[:8]}",
                     rules=COMPANIES, poll=0.3)  # fmt: skip
    assert "          stop: supervisor\n" in text and "          manual: supervisor\n" in text
    text = text.replace("          stop: supervisor\n", STOP).replace(
        "          manual: supervisor\n", MANUAL
    )
    config = parse_config(text, "site.yaml", {})
    async with SimulationHost(config, heartbeat_interval=1.0) as host:
        stack = Stack(config, host)
        try:
            await stack.start_gateway()
            yield stack
        finally:
            await stack.stop_gateway()


async def _keys(s: Stack) -> dict[str, dict[str, str]]:
    """A bearer header per user, each user real in the store (argon2id, cheap parameters)."""
    assert s.app is not None
    accounts = Accounts(s.app.store, passwords=CHEAP)
    headers = {}
    for name, (role, job, estates) in USERS.items():
        await accounts.add_user(name, role, estates, PASSWORD, job=job)
        _, secret = await accounts.create_key(f"{name}-test", name, None, None, None, "test")
        headers[name] = {"Authorization": f"Bearer {secret}"}
    return headers


async def _call(s: Stack, who: dict[str, str], method: str, path: str, **kw: Any) -> Any:
    assert s.http is not None
    return await s.http.request(method, path, headers=who, **kw)


async def test_a_dangerous_stop_waits_for_a_second_person(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with two_person_stack(broker, tmp_path) as s:
        assert s.app is not None
        gen = s.host.models["gen-1"]
        assert isinstance(gen, GeneratorModel)
        key = await _keys(s)
        gen.mains_ok, gen.engine = False, "running"  # mains failed, the generator carries the load
        recent = s.app.recent

        def on_load() -> bool:
            sample = recent.latest("sunshine", "gen-1").get("total_power") if recent else None
            return sample is not None and float(sample.value) > 0

        await s.until(on_load, 5, "the gateway reads the generator on load")
        url = "/devices/sunshine/gen-1/commands"
        asked = await _call(s, key["duty.a"], "POST", url, json={"command": "stop", "reason": "检修 service"})
        assert asked.status_code == 202, asked.text
        pending = asked.json()
        assert pending["state"] == "pending" and pending["requested_by"] == "duty.a"
        await asyncio.sleep(1.0)  # three polls: had anything been written, the model would show it
        assert gen.mode == "auto" and gen.engine == "running"

        listed = await _call(s, key["guard.c"], "GET", "/commands/pending", params={"estate": "sunshine"})
        assert [p["id"] for p in listed.json()] == [pending["id"]]
        assert (await _call(s, key["maple.sup"], "GET", "/commands/pending")).json() == []
        other = await _call(s, key["maple.sup"], "GET", "/commands/pending", params={"estate": "sunshine"})
        assert other.status_code == 404

        confirm = f"/commands/pending/{pending['id']}/confirm"
        assert (await _call(s, key["duty.a"], "POST", confirm)).status_code == 403  # the same person
        assert (await _call(s, key["guard.c"], "POST", confirm)).status_code == 403  # a guard may not
        assert (await _call(s, key["maple.sup"], "POST", confirm)).status_code == 404  # another estate
        assert gen.mode == "auto"
        done = await _call(s, key["duty.b"], "POST", confirm)  # 班长: a supervisor by job
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "confirmed" and done.json()["outcome"] == "ok"
        assert gen.mode == "stop"
        assert (await _call(s, key["duty.b"], "POST", confirm)).status_code == 409  # once only

        late = await _call(s, key["duty.a"], "POST", url, json={"command": "manual", "reason": "试机 test"})
        assert late.status_code == 202
        await asyncio.sleep(1.1)  # within: 1 s
        expired = await _call(s, key["duty.b"], "POST", f"/commands/pending/{late.json()['id']}/confirm")
        assert expired.status_code == 410 and gen.mode == "stop"

        # Every estate's entries (the maple supervisor's refusal is filed under maple, which sunshine's
        # supervisors do not read): straight from the store.
        trail = [
            {"action": e.action, "actor": e.actor, "outcome": e.outcome, "detail": e.detail,
             "estate": e.estate, "target": e.target}
            for e in await s.app.store.list_audit(None, 50)
        ]  # fmt: skip
        mine = [(e["action"], e["actor"].split("/")[0], e["outcome"]) for e in reversed(trail)
                if e["action"].startswith("command")]  # fmt: skip
        assert mine == [
            ("command.requested", "duty.a", "pending"),
            ("command.confirm", "duty.a", "refused:same_user"),
            ("command.confirm", "guard.c", "refused:wrong_role"),
            ("command.confirm", "maple.sup", "refused:not_found"),
            ("command:stop", "duty.b", "ok"),
            ("command.confirm", "duty.b", "refused:decided"),
            ("command.requested", "duty.a", "pending"),
            ("command.confirm", "duty.b", "refused:expired"),
        ]
        executed = next(e for e in trail if e["action"] == "command:stop")
        assert (
            executed["detail"]["requested_by"] == "duty.a" and executed["detail"]["confirmed_by"] == "duty.b"
        )
        assert executed["estate"] == "sunshine" and executed["target"] == "gen-1"
        first, second = [e for e in reversed(trail) if e["action"] == "command.requested"]
        assert first["detail"]["condition"] == "total_power > 0" and second["detail"]["condition"] == "always"
        assert first["detail"]["request_id"] == pending["id"] and first["detail"]["command"] == "stop"

        gen.mains_ok, gen.mode, gen.engine = True, "auto", "stopped"  # off load: stop is not dangerous
        await s.until(lambda: not on_load(), 5, "the generator off load")
        direct = await _call(s, key["duty.a"], "POST", url, json={"command": "stop", "reason": "收尾 done"})
        assert direct.status_code == 200 and direct.json()["outcome"] == "ok" and gen.mode == "stop"


async def test_the_regulator_and_a_company_manager(broker: MosquittoProcess, tmp_path: Path) -> None:
    async with two_person_stack(broker, tmp_path) as s:
        key = await _keys(s)
        reg = key["district"]
        kpis = await _call(s, reg, "GET", "/kpis")
        assert kpis.status_code == 200 and {k["estate"] for k in kpis.json()} == {"sunshine", "maple"}
        for estate in ("sunshine", "maple"):
            report = await _call(s, reg, "GET", f"/estates/{estate}/report", params={"format": "csv"})
            assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
        assert (await _call(s, reg, "GET", "/auth/me")).json()["role"] == "regulator"
        denied = [
            ("GET", "/incidents"), ("GET", "/devices"), ("GET", "/devices/sunshine/gen-1"),
            ("GET", "/feed/devices"), ("GET", "/devices/sunshine/gen-1/readings?point=fuel_level"),
            ("GET", "/commands/pending"), ("GET", "/users"), ("GET", "/audit"), ("GET", "/auth/keys"),
            ("GET", "/estates/sunshine/duty"), ("GET", "/estates/sunshine/vehicles"),
        ]  # fmt: skip
        for method, path in denied:
            reply = await _call(s, reg, method, path)
            assert reply.status_code == 403, (path, reply.status_code)
        command = await _call(s, reg, "POST", "/devices/sunshine/gen-1/commands",
                              json={"command": "auto", "reason": "regulator"})  # fmt: skip
        assert command.status_code == 403
        page = await _call(s, reg, "GET", "/console/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/console/kpis"

        boss = key["boss.wu"]  # 经理 of the company that runs sunshine: admin there, nothing of maple
        devices = (await _call(s, boss, "GET", "/devices")).json()
        assert devices and {d["estate"] for d in devices} == {"sunshine"}
        assert (await _call(s, boss, "GET", "/devices/maple/gate-b")).status_code == 404
        assert {k["estate"] for k in (await _call(s, boss, "GET", "/kpis")).json()} == {"sunshine"}
        users = {u["username"]: u for u in (await _call(s, boss, "GET", "/users")).json()}
        assert "maple.sup" not in users and users["guard.c"]["job"] == "guard"
        made = await _call(
            s,
            boss,
            "POST",
            "/users",
            json={
                "username": "guard.new",
                "password": PASSWORD,
                "job": "guard",
                "estates": ["company:sunny-pm"],
            },
        )
        assert made.status_code == 201 and made.json()["role"] == "operator", made.text
        other = await _call(
            s,
            boss,
            "POST",
            "/users",
            json={
                "username": "guard.maple",
                "password": PASSWORD,
                "job": "guard",
                "estates": ["company:maple-co"],
            },
        )
        assert other.status_code == 404


FIRE_COMMANDS = """        profile: notifier_demo_loop1
        commands:
          silence: operator
          reset:
            role: operator
            confirm_by: [fire_control, supervisor]
            within: 120
            when: {alarm: ["fire_*"]}
"""


async def test_a_fire_panel_reset_during_a_fire_waits_for_the_fire_control_room(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    """The issue's third dangerous command: a reset while a fire alarm is active hides the fire, so a
    guard's request waits for 消防中控 (or a supervisor); silencing the buzzer needs nobody else. The
    panel is the Notifier simulator over Modbus TCP, obeying the profile's register commands."""
    text = site_yaml(
        broker.port, free_port(), tmp_path / "gw.db", f"eg-test-{uuid.uuid4().hex[:8]}", poll=0.3
    )
    assert text.count("        profile: notifier_demo_loop1\n") == 1
    config = parse_config(
        text.replace("        profile: notifier_demo_loop1\n", FIRE_COMMANDS), "site.yaml", {}
    )
    async with SimulationHost(config, heartbeat_interval=1.0) as host:
        s = Stack(config, host)
        try:
            await s.start_gateway()
            assert s.app is not None
            panel = host.models["fire-1"]
            assert isinstance(panel, FirePanelModel)
            accounts = Accounts(s.app.store, passwords=CHEAP)
            key: dict[str, dict[str, str]] = {}
            for name, job in (("guard.f", "guard"), ("fcc.zhou", "fire_control")):
                await accounts.add_user(name, None, ["sunshine"], PASSWORD, job=job)
                _, secret = await accounts.create_key(f"{name}-test", name, None, None, None, "test")
                key[name] = {"Authorization": f"Bearer {secret}"}
            url = "/devices/sunshine/fire-1/commands"

            silenced = await _call(
                s, key["guard.f"], "POST", url, json={"command": "silence", "reason": "消音 buzzer"}
            )
            assert silenced.status_code == 200 and silenced.json()["outcome"] == "ok", silenced.text
            assert panel.commands == ["silence"]

            panel.set("L1-D002.fire", True)  # smoke in the lift lobby: a fire incident opens
            app = s.app
            await s.until(
                lambda: any(i.rule.id.startswith("fire_") and i.active for i in app.engine.instances
                            if i.device == "fire-1"), 5, "the fire alarm",
            )  # fmt: skip
            asked = await _call(
                s, key["guard.f"], "POST", url, json={"command": "reset", "reason": "误报 复位"}
            )
            assert asked.status_code == 202, asked.text
            await asyncio.sleep(1.0)  # three polls: a reset written would show in the panel's command log
            assert panel.commands == ["silence"] and panel.values["L1-D002.fire"] is True
            confirm = f"/commands/pending/{asked.json()['id']}/confirm"
            assert (await _call(s, key["guard.f"], "POST", confirm)).status_code == 403  # not by the asker
            done = await _call(s, key["fcc.zhou"], "POST", confirm)
            assert done.status_code == 200 and done.json()["outcome"] == "ok", done.text
            assert panel.commands == ["silence", "reset"] and panel.values["L1-D002.fire"] is False
            await s.until(
                lambda: not any(i.rule.id.startswith("fire_") and i.active for i in app.engine.instances
                                if i.device == "fire-1"), 5, "the fire point back to normal",
            )  # fmt: skip
            trail = [(e.action, e.actor, e.outcome) for e in await app.store.list_audit(None, 20)]
            executed = [t for t in trail if t[0].startswith("command") and "reset" in str(t)]
            assert executed, trail
        finally:
            await s.stop_gateway()
