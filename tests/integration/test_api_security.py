"""Role × estate matrix for every route of the API, generated from `app.routes`, on a real SQLite store.

The world: estates alpha and bravo, each with an incident, devices, a visitor pass, a user and an API
key; users of every role scoped to alpha and users of every role over all estates, logged in through
real cookie sessions (CSRF header included), plus an alpha-scoped API key and a config token. For every
route, principal and target estate:
  no credentials → 401 (public routes excepted), below the declared role → 403,
  another estate → 404, allowed → neither 401/403/404 nor 5xx,
and an alpha-scoped caller never gets a byte of bravo in any answer (ids and names carry "bravo").
Each case runs on a fresh world, so one case's change (a revoked key, a cancelled pass) cannot hide
another's outcome.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute

from drivers.anpr.registry import Category, Vehicle, VehicleRegistry
from drivers.stats import StatsRegistry
from gateway.alerts import DeviceInfo
from gateway.alerts.instance import Transition
from gateway.api import ApiContext, create_app
from gateway.api.auth import (
    CSRF_COOKIE,
    ROLE_RANK,
    SESSION_COOKIE,
    TokenAuth,
    route_admits_regulator,
    route_policy,
    route_spans_every_estate,
    routes_of,
)
from gateway.auth import Accounts, AuthSettings, Passwords
from gateway.auth.records import REGULATOR
from gateway.auth.two_person import CommandRequest
from gateway.config import ApiTokenConfig
from gateway.escalation.roster import Roster
from gateway.incidents import IncidentService
from gateway.model import ManualClock, Priority, VisitorPass
from gateway.runtime.broker import MosquittoProcess
from gateway.store import SqliteStore
from tests.integration.stack import estate_stack
from tests.unit.test_roster import duty_config

ESTATES = ("alpha", "bravo")
ROLES = tuple(ROLE_RANK)
PASSWORD = "Matrix-pass-2026!"
CONFIG_TOKEN = "config-token-operator-0123456789"
CHEAP = Passwords(time_cost=1, memory_cost=8, parallelism=1)  # argon2id, cheap: hundreds of logins
PLATES = {"alpha": "粤A11111", "bravo": "粤B22222"}
# Public routes: no credentials needed (the signed ack link is its own credential).
DUTY = duty_config()
# Routes anyone may call: health, login, signed ack links (the link is the credential), and the
# console's own entry points. Any other public route is a console page that redirects to login.
OPEN_PATHS = {"/health", "/auth/login", "/ack/{token}", "/", "/login", "/console", "/console/login",
              "/console/lang"}  # fmt: skip
# What only bravo's data holds (its incident, plate, device location, user key, pass).
BRAVO_DATA = (
    "bravo 市电失电",
    "bravo mains out",
    PLATES["bravo"],
    "bravo 3号楼",
    "bravo-key",
    "bravo visitor",
)


@dataclass
class Caller:
    name: str
    role: str
    estates: frozenset[str] | None
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    app: FastAPI
    store: SqliteStore
    accounts: Accounts
    clock: ManualClock
    incidents: dict[str, int] = field(default_factory=dict)
    passes: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # estate → key id of its dummy user's key
    callers: dict[str, Caller] = field(default_factory=dict)


async def _seed(service: IncidentService, clock: ManualClock) -> dict[str, int]:
    ids = {}
    for estate in ESTATES:
        key = f"{estate}/{estate}-gen/mains_failed"
        transition = Transition(key, estate, f"{estate}-gen", "mains_failed", Priority.HIGH, True,
                                clock.now(), True, f"{estate} 市电失电", f"{estate} mains out")  # fmt: skip
        [change] = await service.apply([transition])
        ids[estate] = change.incident.id
    return ids


def _context(service: IncidentService, auth: TokenAuth, registries: dict[str, VehicleRegistry]) -> ApiContext:
    devices = [
        DeviceInfo(estate, f"{estate}-{kind}", family, location=f"{estate} 3号楼", points=("mains_ok",))
        for estate in ESTATES
        for kind, family in (("gen", "generator"), ("gate", "access_gate"))
    ]
    return ApiContext(
        service,
        devices,
        StatsRegistry(),
        auth,
        command_policy={(e, f"{e}-gen"): {"start": "operator"} for e in ESTATES},
        registries=registries,
        timezones=dict.fromkeys(ESTATES, "Asia/Shanghai"),
        rosters={e: Roster(DUTY) for e in ESTATES},
    )


@asynccontextmanager
async def world(settings: AuthSettings | None = None) -> AsyncIterator[World]:
    clock = ManualClock(time.time())
    store = SqliteStore(":memory:")
    await store.open()
    try:
        service = IncidentService(store, clock)
        await service.start()
        accounts = Accounts(store, settings or AuthSettings(), clock, CHEAP)
        token = ApiTokenConfig(name="control-room", token=CONFIG_TOKEN, role="operator", estates=["*"])
        auth = TokenAuth([token], accounts)
        registries = {e: VehicleRegistry() for e in ESTATES}
        w = World(create_app(_context(service, auth, registries)), store, accounts, clock)
        w.incidents = await _seed(service, clock)
        for estate in ESTATES:
            record = await store.add_visitor_pass(
                VisitorPass(None, estate, PLATES[estate], f"{estate} visitor", clock.now() - 60,
                            clock.now() + 3600, "seed", clock.now())
            )  # fmt: skip
            assert record.id is not None
            registries[estate].add(Vehicle(record.plate, Category.VISITOR, record.label, record.valid_from,
                                           record.valid_until, record.id))  # fmt: skip
            w.passes[estate] = record.id
            await store.add_command_request(  # a dangerous command waiting for a second person
                CommandRequest(f"{estate}-req", estate, f"{estate}-gen", "start", "seed", "seed",
                               ("admin", "operator", "supervisor"), clock.now(), clock.now() + 3600)
            )  # fmt: skip
            await accounts.add_user(f"{estate}-dummy", "viewer", [estate], PASSWORD)
            key, _ = await accounts.create_key(f"{estate}-key", f"{estate}-dummy", None, None, None, "seed")
            w.keys[estate] = key.key_id
        for scope, estates in (("alpha", ["alpha"]), ("all", ["*"])):
            for role in ROLES:
                name = f"{scope}-{role}"
                await accounts.add_user(name, role, estates, PASSWORD)
                login = await accounts.login(name, PASSWORD, "127.0.0.1")
                w.callers[name] = Caller(
                    name, role, None if scope == "all" else frozenset(estates),
                    headers={"X-CSRF-Token": login.csrf},
                    cookies={SESSION_COOKIE: login.token, CSRF_COOKIE: login.csrf},
                )  # fmt: skip
        # The regulator: no rank, every estate's KPIs and reports and nothing else (gateway/auth/tenancy.py).
        await accounts.add_user("all-regulator", REGULATOR, ["*"], PASSWORD)
        login = await accounts.login("all-regulator", PASSWORD, "127.0.0.1")
        w.callers["all-regulator"] = Caller(
            "all-regulator", REGULATOR, None, headers={"X-CSRF-Token": login.csrf},
            cookies={SESSION_COOKIE: login.token, CSRF_COOKIE: login.csrf},
        )  # fmt: skip
        _, secret = await accounts.create_key("alpha-bridge", "alpha-operator", None, None, None, "seed")
        w.callers["alpha-operator-key"] = Caller(
            "alpha-operator-key",
            "operator",
            frozenset({"alpha"}),
            headers={"Authorization": f"Bearer {secret}"},
        )
        w.callers["config-token"] = Caller(
            "config-token", "operator", None, headers={"Authorization": f"Bearer {CONFIG_TOKEN}"}
        )
        yield w
    finally:
        await store.close()


# -- building requests from the route and the OpenAPI schema --------------------------------------------
def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A minimal valid value for a JSON schema: required properties only, lower bounds, first choices."""
    if "$ref" in schema:
        return example(components[schema["$ref"].rsplit("/", 1)[1]], components)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            return example(options[0], components)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example(props[name], components) for name in schema.get("required", [])}
    if kind == "array":
        return [example(schema["items"], components) for _ in range(schema.get("minItems", 0))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = low + 1
        return min(value, schema.get("maximum", value))
    if kind == "boolean":
        return True
    return "matrix-" + "x" * max(0, schema.get("minLength", 0) - 7)


# Bodies whose generated minimum is valid but meaningless; merged over the generated one.
OVERRIDES: dict[tuple[str, str], Callable[[str], dict[str, Any]]] = {
    ("POST", "/devices/{estate}/{device}/commands"): lambda e: {"command": "start", "reason": "matrix test"},
    ("POST", "/estates/{estate}/visitor-passes"): lambda e: {"plate": "粤A88888"},
    ("POST", "/users"): lambda e: {"username": f"new-{e}-user", "password": PASSWORD, "role": "viewer",
                                   "estates": [e]},
    ("POST", "/auth/keys"): lambda e: {"name": "matrix", "owner": f"{e}-dummy"},
    ("POST", "/auth/login"): lambda e: {"username": "alpha-viewer", "password": PASSWORD},
}  # fmt: skip
# Routes whose target estate is in the body, not the path.
BODY_TARGETED = {("POST", "/users"), ("POST", "/auth/keys")}
QUERY_VALUES = {"plate": PLATES["alpha"], "point": "mains_ok"}


def path_value(param: str, estate: str, w: World) -> str:
    values = {
        "estate": estate,
        "device": f"{estate}-gen",
        "incident_id": str(w.incidents[estate]),
        "pass_id": str(w.passes[estate]),
        "username": f"{estate}-dummy",
        "key_id": w.keys[estate],
        "request_id": f"{estate}-req",  # a pending two-person command (gateway/api/confirmations.py)
        "token": "not-a-signed-link",  # ack links: the link is the credential; a bad one is refused
        "duty": f"{estate}-duty",  # maintenance duties: none in this world (503 for those allowed)
    }
    if param not in values:
        raise AssertionError(f"no fixture for path parameter {{{param}}}: add it to path_value()")
    return values[param]


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    policy: str
    targeted: bool  # some parameter (path, query `estate` or body) names the estate
    body_schema: dict[str, Any] | None
    query: tuple[tuple[str, Any], ...]  # required query parameters (schema) besides `estate`
    estate_query: bool
    every_estate: bool = False  # require(..., every_estate=True): scoped callers get 403
    regulator: bool = False  # require(..., regulator=True): the regulator passes (KPIs, reports)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    def request(self, estate: str, w: World, components: dict[str, Any]) -> dict[str, Any]:
        path = re.sub(r"\{(\w+)\}", lambda m: path_value(m.group(1), estate, w), self.path)
        params: dict[str, Any] = {name: QUERY_VALUES.get(name, value) for name, value in self.query}
        if self.estate_query:
            params["estate"] = estate
        kw: dict[str, Any] = {"params": params}
        if self.body_schema is not None:
            body = example(self.body_schema, components)
            body.update(OVERRIDES.get((self.method, self.path), lambda e: {})(estate))
            kw["json"] = body
        return {"method": self.method, "url": path, **kw}


def _cases(app: FastAPI) -> tuple[list[Case], list[str], dict[str, Any]]:
    spec = app.openapi()
    components = spec.get("components", {}).get("schemas", {})
    cases, undeclared = [], []
    for path, route in routes_of(app.routes):  # /docs, /openapi.json (FastAPI's own) are not API routes
        if isinstance(route, APIWebSocketRoute):
            if route_policy(route) is None:
                undeclared.append(f"WS {path}")
            continue
        policy = route_policy(route)
        for method in sorted(route.methods):
            if policy is None:
                undeclared.append(f"{method} {path}")
                continue
            op = spec["paths"].get(path, {}).get(method.lower(), {})  # {}: kept out of the schema
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            query = tuple(
                (p["name"], example(p["schema"], components))
                for p in op.get("parameters", [])
                if p["in"] == "query" and p.get("required") and p["name"] != "estate"
            )
            estate_query = any(p["in"] == "query" and p["name"] == "estate" for p in op.get("parameters", []))
            targeted = "{" in path or estate_query or (method, path) in BODY_TARGETED
            every = route_spans_every_estate(route)
            cases.append(Case(method, path, policy, targeted, body, query, estate_query, every,
                              route_admits_regulator(route)))  # fmt: skip
    return cases, undeclared, components


@pytest.fixture(scope="module")
def plan() -> tuple[list[Case], list[str], dict[str, Any]]:
    store = SqliteStore(":memory:")  # never opened: building the app reads nothing
    auth = TokenAuth([], Accounts(store, passwords=CHEAP))
    return _cases(create_app(_context(IncidentService(store, ManualClock()), auth, {})))


def test_every_route_declares_a_policy(plan: tuple[list[Case], list[str], dict[str, Any]]) -> None:
    cases, undeclared, _ = plan
    assert len(cases) >= 20
    assert not undeclared, f"routes without require(...) or public(): {undeclared}"


def _client(w: World, caller: Caller | None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=w.app, client=("127.0.0.1", 50000))
    headers = dict(caller.headers) if caller else {}
    if caller and caller.cookies:  # as a browser sends them (httpx's jar drops dotless hosts' cookies)
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in caller.cookies.items())
    return httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers)


def _expected(case: Case, caller: Caller, estate: str | None) -> str:
    if caller.role == REGULATOR:  # no rank: only the routes that name it, over every estate
        return "allowed" if case.policy == "public" or case.regulator else "forbidden"
    if case.policy != "public" and ROLE_RANK[caller.role] < ROLE_RANK[case.policy]:
        return "forbidden"
    if case.every_estate and caller.estates is not None:
        return "forbidden"
    if estate is not None and caller.estates is not None and estate not in caller.estates:
        return "hidden"
    return "allowed"


async def _run_case(case: Case, components: dict[str, Any], caller_name: str | None) -> list[str]:
    """Every target of one case, on one fresh world (a target's change never touches the other's
    objects); the list of what went wrong."""
    problems: list[str] = []
    async with world() as w:
        caller = w.callers[caller_name] if caller_name else None
        async with _client(w, caller) as client:
            for estate in ESTATES if case.targeted else (None,):
                reply = await client.request(**case.request(estate or "alpha", w, components))
                where = f"{case.id} as {caller_name or 'nobody'} on {estate or '-'}: {reply.status_code}"
                problems += _judge(case, caller, estate, reply, f"{where} {reply.text[:160]}")
    return problems


def _to_login(reply: httpx.Response) -> bool:
    return reply.status_code in (302, 303, 307) and "login" in reply.headers.get("location", "")


def _judge(
    case: Case, caller: Caller | None, estate: str | None, reply: httpx.Response, where: str
) -> list[str]:
    code = reply.status_code
    problems = []
    allowed = caller is not None and _expected(case, caller, estate) == "allowed"
    if code >= 500 and not (code == 503 and allowed):
        problems.append(f"server error: {where}")  # 503: a part this world does not run (KPI engine)
    elif caller is None:
        if case.policy != "public" and code != 401:
            problems.append(f"expected 401: {where}")
        elif case.path in OPEN_PATHS and code == 401:
            problems.append(f"public route asked for credentials: {where}")
        elif case.policy == "public" and case.path not in OPEN_PATHS and not _to_login(reply):
            # A console page: it checks the session itself and sends a stranger to the login page.
            problems.append(f"expected a redirect to the login page: {where}")
    elif case.policy != "public":  # public pages judge the caller themselves (console: own session check)
        expected = _expected(case, caller, estate)
        if expected == "forbidden" and code != 403:
            problems.append(f"expected 403: {where}")
        elif expected == "hidden" and code != 404:
            problems.append(f"expected 404: {where}")
        elif expected == "allowed" and code in (401, 403, 404):
            problems.append(f"expected success: {where}")
    if caller is not None and caller.estates == frozenset({"alpha"}):
        # Asked about bravo, a page may echo the id asked for, but nothing only bravo's data holds.
        markers = BRAVO_DATA if estate == "bravo" else ("bravo",)
        if any(m in reply.text for m in markers):
            problems.append(f"bravo's data leaked: {where}")
    return problems


CALLERS = [None, *(f"{s}-{r}" for s in ("alpha", "all") for r in ROLES), "alpha-operator-key", "config-token",
           "all-regulator"]  # fmt: skip


def _all_cases() -> list[Case]:
    store = SqliteStore(":memory:")
    auth = TokenAuth([], Accounts(store, passwords=CHEAP))
    cases, _, _ = _cases(create_app(_context(IncidentService(store, ManualClock()), auth, {})))
    return cases


@pytest.mark.parametrize("case", _all_cases(), ids=lambda c: c.id)
async def test_route_matrix(case: Case, plan: tuple[list[Case], list[str], dict[str, Any]]) -> None:
    _, _, components = plan
    problems = []
    for caller in CALLERS:
        problems += await _run_case(case, components, caller)
    assert not problems, "\n".join(problems)


async def test_a_console_session_over_real_http(broker: MosquittoProcess, tmp_path: Path) -> None:
    """The whole gateway (App, uvicorn on a free port, SQLite file): a user made in the store logs in,
    works with cookie + CSRF, stays inside its estate, logs out; the audit trail has it all."""
    async with estate_stack(broker, tmp_path) as s:
        assert s.app is not None and s.http is not None
        await Accounts(s.app.store).add_user("duty.li", "operator", ["sunshine"], PASSWORD, "李值班")
        reply = await s.http.post("/auth/login", json={"username": "duty.li", "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        values = {
            h.split("=", 1)[0]: h.split("=", 1)[1].split(";", 1)[0]
            for h in reply.headers.get_list("set-cookie")
        }
        cookie = {"Cookie": f"{SESSION_COOKIE}={values[SESSION_COOKIE]}; {CSRF_COOKIE}={values[CSRF_COOKIE]}"}
        me = await s.http.get("/auth/me", headers=cookie)
        assert me.json()["display_name"] == "李值班" and me.json()["estates"] == ["sunshine"]
        assert (await s.http.get("/incidents", params={"estate": "maple"}, headers=cookie)).status_code == 404
        assert (await s.http.get("/devices/maple/gate-b", headers=cookie)).status_code == 404
        assert (await s.http.post("/auth/logout", headers=cookie)).status_code == 403  # no CSRF header
        out = await s.http.post("/auth/logout", headers={**cookie, "X-CSRF-Token": values[CSRF_COOKIE]})
        assert out.status_code == 204
        assert (await s.http.get("/auth/me", headers=cookie)).status_code == 401
        trail = (await s.api("GET", "/audit", role="supervisor")).json()
        assert [(e["action"], e["actor"], e["outcome"]) for e in trail[:3]] == [
            ("POST /auth/logout", "duty.li", "ok"),
            ("POST /auth/logout", "duty.li", "403"),
            ("POST /auth/login", "duty.li", "ok"),
        ]
