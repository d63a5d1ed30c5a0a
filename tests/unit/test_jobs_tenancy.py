"""Job roles onto the permission model, company scopes and the regulator (gateway/auth/jobs.py,
tenancy.py), through Accounts and TokenAuth on a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from gateway.api.auth import Principal, TokenAuth, require
from gateway.api.confirmations import command_rules
from gateway.auth import AccountError, Accounts, Passwords
from gateway.auth.jobs import JOBS, job_label, may_command, may_maintain, role_for
from gateway.auth.tenancy import Company, Tenancy
from gateway.config import ConfigError, parse_config
from gateway.model import ManualClock
from gateway.store import SqliteStore

CHEAP = Passwords(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "Tenancy-pass-2026!"
TENANCY = Tenancy.of([
    Company("sunny-pm", "阳光物业", "Sunny Property", ("sunshine", "riverside")),
    Company("maple-co", "枫林物业", "Maple Property", ("maple",)),
])  # fmt: skip


def test_the_documented_job_table() -> None:
    table = {j.id: (j.zh, j.role) for j in JOBS.values()}
    assert table == {
        "guard": ("保安", "operator"),
        "shift_leader": ("班长", "supervisor"),
        "engineer": ("工程", "operator"),
        "fire_control": ("消防中控", "operator"),
        "manager": ("经理", "admin"),
    }
    assert role_for("shift_leader") == "supervisor"
    with pytest.raises(ValueError, match="job"):
        role_for("janitor")
    assert job_label("fire_control") == "消防中控" and job_label("fire_control", "en") == "Fire control room"
    assert job_label(None) == ""


def test_what_a_job_adds_to_its_rank() -> None:
    assert may_command("engineer", "generator", "supervisor") and may_command(
        "engineer", "fire_panel", "operator"
    )
    assert not may_command("engineer", "generator", "admin")  # never above supervisor
    assert may_command("fire_control", "fire_panel", "supervisor")
    assert not may_command("fire_control", "generator", "supervisor")
    assert not may_command("guard", "generator", "supervisor") and not may_command(
        None, "generator", "operator"
    )
    assert may_maintain("engineer") and not may_maintain("guard")


def test_company_scopes_expand_to_their_estates() -> None:
    assert TENANCY.scope(["company:sunny-pm"]) == {"sunshine", "riverside"}
    assert TENANCY.scope(["company:sunny-pm", "maple"]) == {"sunshine", "riverside", "maple"}
    assert TENANCY.scope(["company:nobody"]) == frozenset()
    assert TENANCY.scope(["*"]) is None
    company = TENANCY.company_of("maple")
    assert company is not None and company.en == "Maple Property"


@pytest.fixture
async def accounts() -> AsyncIterator[Accounts]:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        yield Accounts(store, clock=ManualClock(1000.0), passwords=CHEAP, tenancy=TENANCY)
    finally:
        await store.close()


async def test_users_with_jobs_companies_and_the_regulator(accounts: Accounts) -> None:
    guard = await accounts.add_user("guard.zhang", None, ["sunshine"], PASSWORD, "张保安", job="guard")
    assert (guard.role, guard.job) == ("operator", "guard")
    leader = await accounts.add_user("leader.li", "admin", ["sunshine"], PASSWORD, job="shift_leader")
    assert leader.role == "admin"  # an explicit role wins over the job's
    boss = await accounts.add_user("boss.wu", None, ["company:sunny-pm"], PASSWORD, job="manager")
    assert boss.role == "admin" and boss.estates == ("company:sunny-pm",)
    reg = await accounts.add_user("district", "regulator", ["sunshine"], PASSWORD)
    assert reg.estates == ("*",)  # a regulator reads every estate, whatever was asked
    with pytest.raises(AccountError, match="role"):
        await accounts.add_user("nobody.x", None, ["sunshine"], PASSWORD)
    with pytest.raises(AccountError, match="job"):
        await accounts.add_user("nobody.y", None, ["sunshine"], PASSWORD, job="janitor")
    with pytest.raises(AccountError, match="regulator"):
        await accounts.add_user("nobody.z", "regulator", ["*"], PASSWORD, job="guard")
    stored = await accounts.get_user("guard.zhang")
    assert stored is not None and stored.job == "guard"  # the job column survives the store
    changed = await accounts.update_user("guard.zhang", job="engineer")
    assert (changed.role, changed.job) == ("operator", "engineer")
    cleared = await accounts.update_user("guard.zhang", job="")
    assert cleared.job is None
    # A key of the company manager may narrow to one estate of the company, not reach another company.
    key, _ = await accounts.create_key("bms", "boss.wu", None, ["sunshine"], None, "boss.wu")
    assert key.estates == ("sunshine",)
    with pytest.raises(AccountError, match="estates"):
        await accounts.create_key("bad", "boss.wu", None, ["maple"], None, "boss.wu")
    with pytest.raises(AccountError, match="role"):
        await accounts.create_key("bad", "boss.wu", "regulator", None, None, "boss.wu")
    reg_key, _ = await accounts.create_key("stats", "district", None, None, None, "admin")
    assert (reg_key.role, reg_key.estates) == ("regulator", ("*",))


async def test_principals_and_route_checks(accounts: Accounts) -> None:
    await accounts.add_user("boss.wu", None, ["company:sunny-pm"], PASSWORD, job="manager")
    await accounts.add_user("district", "regulator", ["*"], PASSWORD)
    await accounts.add_user("fcr.wang", None, ["sunshine"], PASSWORD, job="fire_control")
    auth = TokenAuth([], accounts)
    app = FastAPI()

    @app.get("/kpi-like", dependencies=[require(auth, "viewer", regulator=True)])
    async def kpi_like() -> str:
        return "ok"

    @app.get("/viewer-only", dependencies=[require(auth, "viewer")])
    async def viewer_only() -> str:
        return "ok"

    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    seen: dict[str, Principal] = {}
    for name in ("boss.wu", "district", "fcr.wang"):
        _, secret = await accounts.create_key(name, name, None, None, None, "seed")
        async with httpx.AsyncClient(transport=transport, base_url="http://gw",
                                     headers={"Authorization": f"Bearer {secret}"}) as client:  # fmt: skip
            codes = [(await client.get(path)).status_code for path in ("/kpi-like", "/viewer-only")]
            assert codes == ([200, 403] if name == "district" else [200, 200]), name
        login = await accounts.login(name, PASSWORD, "127.0.0.1")
        assert login.user.username == name
        found = await accounts.key_user(secret)
        assert found is not None
        seen[name] = await TokenAuth._api_key(auth, accounts, secret) or Principal("-", "viewer", None)
    assert seen["boss.wu"].estates == {"sunshine", "riverside"} and seen["boss.wu"].role == "admin"
    assert seen["district"].estates is None and seen["district"].regulator
    assert not seen["district"].at_least("viewer")  # no rank at all
    assert seen["fcr.wang"].job == "fire_control" and seen["fcr.wang"].person == "fcr.wang"


SITE = """\
estates:
  - id: sunshine
    name: {zh: 阳光花园, en: Sunshine Garden}
    devices:
      - id: gen-1
        family: generator
        profile: dse_gencomm
        commands:
          start: supervisor
          stop: %s
        modbus: {host: 127.0.0.1, port: 5020}
  - id: maple
    name: {zh: 枫林苑, en: Maple Court}
companies: %s
"""


def test_config_of_two_person_rules_and_companies() -> None:
    stop = (
        "{role: supervisor, confirm_by: [supervisor, shift_leader], within: 90, when: {point: p, above: 0}}"
    )
    config = parse_config(
        SITE % (stop, "[{id: pm, name: {zh: 物业, en: PM}, estates: [sunshine]}]"), "s.yaml", {}
    )
    least, rules = command_rules((e.id, d) for e in config.estates for d in e.devices)
    assert least == {("sunshine", "gen-1"): {"start": "supervisor", "stop": "supervisor"}}
    rule = rules[("sunshine", "gen-1")]["stop"]
    assert (rule.confirm_by, rule.within, rule.point, rule.above) == (
        frozenset({"supervisor", "shift_leader"}),
        90,
        "p",
        0,
    )
    assert config.companies[0].estates == ["sunshine"]
    bad = {
        "{role: supervisor, confirm_by: [supervisor], when: {point: x, alarm: [fire_*], above: 1}}": "either",
        "{role: supervisor, confirm_by: [supervisor], when: {point: x}}": "exactly one",
        "{role: supervisor, confirm_by: [janitor]}": "confirm_by",
    }
    for policy, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            parse_config(SITE % (policy, "[]"), "s.yaml", {})
    for companies, message in (
        ("[{id: pm, name: {zh: 物业, en: PM}, estates: [nowhere]}]", "not configured"),
        ("[{id: a, name: {zh: 甲, en: A}, estates: [maple]}, {id: b, name: {zh: 乙, en: B}, "
         "estates: [maple]}]", "two companies"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            parse_config(SITE % ("supervisor", companies), "s.yaml", {})
