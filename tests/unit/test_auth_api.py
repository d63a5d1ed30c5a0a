"""Logins, cookie sessions, CSRF, API keys, lock-out and the audit trail through the real app (ASGI
transport) on a real SQLite store, with the clock driven by the test."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.api.auth import CSRF_COOKIE, SESSION_COOKIE
from gateway.auth import AuthSettings
from tests.integration.test_api_security import PASSWORD, World, world

ME = "/auth/me"


@pytest.fixture
async def w() -> AsyncIterator[World]:
    async with world() as made:
        yield made


def client(w: World, address: str = "10.0.0.5", base: str = "http://gateway") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=w.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=base)


def cookies_of(reply: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name (whole header, attributes included)."""
    return {h.split("=", 1)[0]: h for h in reply.headers.get_list("set-cookie")}


def jar(reply: httpx.Response) -> dict[str, str]:
    """The cookie values a browser would send back."""
    return {name: h.split("=", 1)[1].split(";", 1)[0] for name, h in cookies_of(reply).items()}


def cookie_header(values: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in values.items())}


async def login(c: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await c.post("/auth/login", json={"username": username, "password": password})


async def session(c: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Headers of a logged-in browser: its cookies and the CSRF header its page script sends."""
    reply = await login(c, username)
    assert reply.status_code == 200, reply.text
    values = jar(reply)
    return {**cookie_header(values), "X-CSRF-Token": values[CSRF_COOKIE]}


async def test_json_login_sets_strict_cookies_and_me_answers(w: World) -> None:
    async with client(w) as c:
        reply = await login(c, "Alpha-Operator")  # usernames are case-insensitive
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body == {"username": "alpha-operator", "display_name": "alpha-operator", "role": "operator",
                        "estates": ["alpha"], "job": None, "via": "session",
                        "csrf": body["csrf"]}  # fmt: skip
        cookies = cookies_of(reply)
        session_cookie, csrf_cookie = cookies[SESSION_COOKIE].lower(), cookies[CSRF_COOKIE].lower()
        for attr in ("httponly", "samesite=strict", "path=/"):
            assert attr in session_cookie
        assert "secure" not in session_cookie  # plain http: a Secure cookie would never come back
        assert "httponly" not in csrf_cookie and "samesite=strict" in csrf_cookie
        assert jar(reply)[SESSION_COOKIE] not in reply.text
        me = await c.get(ME, headers=cookie_header(jar(reply)))
        assert me.status_code == 200
        assert me.json()["csrf"] == jar(reply)[CSRF_COOKIE] == body["csrf"]
    async with client(w, base="https://gateway") as c:
        reply = await login(c, "alpha-operator")
        assert "secure" in cookies_of(reply)[SESSION_COOKIE].lower()


async def test_form_login_redirects_only_to_same_origin_paths(w: World) -> None:
    async with client(w) as c:
        for nxt, expected in (
            ("/console/incidents/1", "/console/incidents/1"),
            ("//evil.example.com/x", "/"),
            ("https://evil.example.com/", "/"),
            ("/\\evil.example.com", "/"),
        ):
            form = {"username": "alpha-viewer", "password": PASSWORD, "next": nxt}
            reply = await c.post("/auth/login", data=form)
            assert reply.status_code == 303, reply.text
            assert reply.headers["location"] == expected
            assert SESSION_COOKIE in cookies_of(reply)
        reply = await c.post("/auth/login", data={"username": "alpha-viewer", "password": "wrong-password-9"})
        assert reply.status_code == 303
        assert reply.headers["location"].startswith("/console/login?error=invalid")
        assert SESSION_COOKIE not in cookies_of(reply)
        evil = await c.post("/auth/login", data={"username": "alpha-viewer", "password": PASSWORD},
                            headers={"Origin": "https://evil.example.com"})  # fmt: skip
        assert evil.status_code == 403
        proxied = await c.post("/auth/login", data={"username": "alpha-viewer", "password": PASSWORD},
                               headers={"Origin": "https://gateway"})  # fmt: skip
        assert proxied.status_code == 303  # TLS ended at a proxy: same host, other scheme


async def test_cookie_sessions_need_the_csrf_header_on_unsafe_calls(w: World) -> None:
    ack = f"/incidents/{w.incidents['alpha']}/ack"
    async with client(w) as c:
        headers = await session(c, "alpha-operator")
        cookies_only = {"Cookie": headers["Cookie"]}
        assert (await c.post(ack, headers=cookies_only)).status_code == 403
        wrong = {**cookies_only, "X-CSRF-Token": "0" * 64}
        assert (await c.post(ack, headers=wrong)).status_code == 403
        assert (await c.get(ME, headers=cookies_only)).status_code == 200  # safe methods need none
        assert (await c.post(ack, headers=headers)).status_code == 200
        # A bearer caller carries no ambient credential: no CSRF header needed.
        bearer = w.callers["alpha-operator-key"].headers
        shelve = f"/incidents/{w.incidents['alpha']}/shelve"
        reply = await c.post(shelve, headers=bearer, json={"minutes": 5, "reason": "maintenance"})
        assert reply.status_code == 200, reply.text


async def test_sessions_end_when_idle_at_their_lifetime_and_on_logout(w: World) -> None:
    idle, lifetime = w.accounts.settings.session_idle, w.accounts.settings.session_max
    async with client(w) as c:
        headers = await session(c, "alpha-viewer")
        w.clock.advance(idle - 5)
        assert (await c.get(ME, headers=headers)).status_code == 200  # a call resets the idle timer
        w.clock.advance(idle - 5)
        assert (await c.get(ME, headers=headers)).status_code == 200
        w.clock.advance(idle + 1)
        assert (await c.get(ME, headers=headers)).status_code == 401

        headers = await session(c, "alpha-viewer")
        started = w.clock.now()
        for _ in range(int(lifetime // (idle / 2)) + 2):  # busy all day: the absolute lifetime still ends it
            w.clock.advance(idle / 2)
            if (await c.get(ME, headers=headers)).status_code == 401:
                break
        assert lifetime <= w.clock.now() - started < lifetime + idle / 2

        headers = await session(c, "alpha-viewer")
        out = await c.post("/auth/logout", headers=headers)
        assert out.status_code == 204
        assert all("max-age=0" in h.lower() or "expires=" in h.lower() for h in cookies_of(out).values())
        assert (await c.get(ME, headers=headers)).status_code == 401


async def test_api_keys_are_shown_once_and_die_when_revoked_or_expired(w: World) -> None:
    async with client(w) as c:
        admin = await session(c, "all-admin")
        body = {"name": "bms", "owner": "alpha-operator", "expires_in_days": 1}
        made = await c.post("/auth/keys", headers=admin, json=body)
        assert made.status_code == 201, made.text
        key, key_id = made.json()["key"], made.json()["key_id"]
        bearer = {"Authorization": f"Bearer {key}"}
        me = await c.get(ME, headers=bearer)
        assert me.json()["role"] == "operator" and me.json()["via"] == "key"
        listed = await c.get("/auth/keys", headers=admin)
        assert key not in listed.text and key_id in listed.text
        [mine] = [k for k in listed.json() if k["key_id"] == key_id]
        assert mine["last_used_at"] == w.clock.now()
        # The owner lists their own keys; a viewer without keys lists none.
        own = await c.get("/auth/keys", headers=await session(c, "alpha-operator"))
        assert key_id in own.text and {k["owner"] for k in own.json()} == {"alpha-operator"}
        assert (await c.get("/auth/keys", headers=await session(c, "alpha-viewer"))).json() == []
        w.clock.advance(86400 + 1)
        assert (await c.get(ME, headers=bearer)).status_code == 401  # expired
        admin = await session(c, "all-admin")  # its session idled out meanwhile

        made = await c.post("/auth/keys", headers=admin, json={"name": "bms2", "owner": "alpha-operator"})
        bearer = {"Authorization": f"Bearer {made.json()['key']}"}
        assert (await c.get(ME, headers=bearer)).status_code == 200
        gone = await c.delete(f"/auth/keys/{made.json()['key_id']}", headers=admin)
        assert gone.status_code == 204
        assert (await c.get(ME, headers=bearer)).status_code == 401  # revoked
        # A key cannot have more than its owner, nor see estates its owner cannot.
        for extra in ({"role": "admin"}, {"estates": ["bravo"]}, {"estates": ["*"]}):
            reply = await c.post(
                "/auth/keys", headers=admin, json={"name": "x", "owner": "alpha-operator", **extra}
            )
            assert reply.status_code == 422, (extra, reply.text)


async def test_a_disabled_user_loses_sessions_keys_and_login(w: World) -> None:
    async with client(w) as c:
        admin = await session(c, "all-admin")
        user = await session(c, "alpha-operator")
        key = w.callers["alpha-operator-key"].headers
        assert (await c.get(ME, headers=key)).status_code == 200
        reply = await c.patch("/users/alpha-operator", headers=admin, json={"disabled": True})
        assert reply.status_code == 200 and reply.json()["disabled"] is True
        assert (await c.get(ME, headers=user)).status_code == 401
        assert (await c.get(ME, headers=key)).status_code == 401
        refused, unknown = await login(c, "alpha-operator"), await login(c, "no-such-user")
        assert refused.status_code == unknown.status_code == 401
        assert refused.json() == unknown.json() == {"detail": "invalid username or password"}
        # Enabled again: logins work, but the revoked key stays revoked.
        await c.patch("/users/alpha-operator", headers=admin, json={"disabled": False})
        assert (await login(c, "alpha-operator")).status_code == 200
        assert (await c.get(ME, headers=key)).status_code == 401


async def test_lock_out_after_repeated_failures_even_with_the_right_password(w: World) -> None:
    policy = w.accounts.settings.lockout
    async with client(w) as c:
        for _ in range(policy.failures - 1):
            assert (await login(c, "alpha-viewer", "wrong-password-1")).status_code == 401
        assert (await login(c, "alpha-viewer", "wrong-password-1")).status_code == 429  # the Nth locks
        locked = await login(c, "alpha-viewer")
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        # Unknown names lock the same way: the answer says nothing about existence.
        for _ in range(policy.failures - 1):
            assert (await login(c, "ghost-user", "wrong-password-1")).status_code == 401
        assert (await login(c, "ghost-user", "wrong-password-1")).status_code == 429
        assert (await login(c, "alpha-operator")).status_code == 200  # other users are not affected
        w.clock.advance(policy.duration + 1)
        assert (await login(c, "alpha-viewer")).status_code == 200


async def test_one_address_guessing_many_names_is_throttled(w: World) -> None:
    policy = w.accounts.settings.lockout
    async with client(w, address="203.0.113.9") as attacker, client(w, address="10.0.0.7") as guard:
        for i in range(policy.address_failures - 1):
            assert (await login(attacker, f"name-{i}", "wrong-password-1")).status_code == 401
        assert (await login(attacker, "name-last", "wrong-password-1")).status_code == 429
        assert (await login(attacker, "alpha-viewer")).status_code == 429
        assert (await login(guard, "alpha-viewer")).status_code == 200
        w.clock.advance(policy.duration + 1)
        assert (await login(attacker, "alpha-viewer")).status_code == 200


async def test_every_unsafe_call_is_audited_once_with_who_where_and_outcome(w: World) -> None:
    incident = w.incidents["alpha"]
    async with client(w, address="10.0.0.8") as c:
        await login(c, "alpha-operator", "wrong-password-2")
        operator = await session(c, "alpha-operator")
        assert (await c.post(f"/incidents/{incident}/ack", headers=operator)).status_code == 200
        assert (await c.post(f"/incidents/{incident}/close", headers=operator)).status_code == 403
        command = {"command": "start", "reason": "月度试机 monthly test"}
        sent = await c.post("/devices/alpha/alpha-gen/commands", headers=operator, json=command)
        assert sent.json()["outcome"] == "refused"  # this world's generator takes no commands
        supervisor = await session(c, "all-supervisor")
        trail = (await c.get("/audit", headers=supervisor, params={"limit": 50})).json()
        by_action = {(e["action"], e["outcome"]): e for e in trail}
        failed = by_action["POST /auth/login", "refused:invalid"]
        assert failed["actor"] == "alpha-operator" and failed["source"] == "10.0.0.8"
        assert "wrong-password-2" not in str(trail)
        ack = by_action["POST /incidents/{incident_id}/ack", "ok"]
        assert (ack["actor"], ack["estate"], ack["target"]) == ("alpha-operator", "alpha", str(incident))
        assert ack["detail"]["via"] == "session" and ack["detail"]["status"] == 200
        assert by_action["POST /incidents/{incident_id}/close", "403"]["estate"] == "alpha"
        assert sum(1 for e in trail if e["action"] == "POST /incidents/{incident_id}/ack") == 1
        # A route that knows more names the action itself; still one entry per call.
        [cmd] = [e for e in trail if e["detail"].get("route") == "POST /devices/{estate}/{device}/commands"]
        assert (cmd["action"], cmd["outcome"], cmd["estate"], cmd["target"]) == (
            "command:start",
            "refused",
            "alpha",
            "alpha-gen",
        )
        assert cmd["detail"]["reason"] == "月度试机 monthly test" and cmd["source"] == "10.0.0.8"
        # A scoped supervisor reads only its estates' entries; another estate is a 404.
        scoped = await session(c, "alpha-supervisor")
        mine = (await c.get("/audit", headers=scoped)).json()
        assert mine and {e["estate"] for e in mine} == {"alpha"}
        assert (await c.get("/audit", headers=scoped, params={"estate": "bravo"})).status_code == 404


async def test_proxy_addresses_are_believed_only_from_trusted_proxies() -> None:
    async with world(AuthSettings(trusted_proxies=frozenset({"192.0.2.1"}))) as w:
        forwarded = {"X-Forwarded-For": "198.51.100.7, 192.0.2.1"}
        async with client(w, address="192.0.2.1") as proxy, client(w, address="192.0.2.2") as other:
            await proxy.post(
                "/auth/login", json={"username": "x1", "password": "wrong-pw-3"}, headers=forwarded
            )
            await other.post(
                "/auth/login", json={"username": "x2", "password": "wrong-pw-3"}, headers=forwarded
            )
        trail = await w.store.list_audit(None, 10)
        sources = {e.actor: e.source for e in trail}
        assert sources == {"x1": "198.51.100.7", "x2": "192.0.2.2"}  # an untrusted peer's header is ignored


async def test_no_secret_in_any_response_or_log_line(w: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [PASSWORD, "$argon2id$", "New-password-2026!"]
    bodies: list[str] = []
    async with client(w) as c:
        reply = await login(c, "alpha-operator")
        secrets.append(jar(reply)[SESSION_COOKIE])
        bodies.append(reply.text)
        headers = {**cookie_header(jar(reply)), "X-CSRF-Token": jar(reply)[CSRF_COOKIE]}
        admin_reply = await login(c, "all-admin")
        secrets.append(jar(admin_reply)[SESSION_COOKIE])
        admin = {**cookie_header(jar(admin_reply)), "X-CSRF-Token": jar(admin_reply)[CSRF_COOKIE]}
        made = await c.post("/auth/keys", headers=admin, json={"name": "bms", "owner": "alpha-operator"})
        key = made.json()["key"]
        secrets.append(key)  # shown once, in `made`; nowhere else
        new_user = {
            "username": "new-guard",
            "password": "New-password-2026!",
            "role": "viewer",
            "estates": ["alpha"],
        }
        for reply in (
            await c.get(ME, headers=headers),
            await c.get(ME, headers={"Authorization": f"Bearer {key}"}),
            await c.post(f"/incidents/{w.incidents['alpha']}/ack", headers=headers),
            await c.get("/users", headers=admin),
            await c.post("/users", headers=admin, json=new_user),
            await c.patch("/users/new-guard", headers=admin, json={"password": "New-password-2026!x"}),
            await c.get("/auth/keys", headers=admin),
            await c.get("/audit", headers=admin),
            await login(c, "alpha-operator", "wrong-" + PASSWORD),
            await c.post("/auth/logout", headers=headers),
        ):  # fmt: skip
            bodies.append(reply.text + str({k: v for k, v in reply.headers.items() if k != "set-cookie"}))
    secrets.append("wrong-" + PASSWORD)
    records = [r.getMessage() + str(r.args) for r in caplog.records]
    assert records, "expected some log lines (logins are logged)"
    for secret in secrets:
        for text in bodies + records:
            assert secret not in text, f"a secret leaked: {text[:200]}"


async def test_a_key_never_has_more_than_its_owner_has_now(w: World) -> None:
    key = w.callers["alpha-operator-key"].headers
    async with client(w) as c:
        admin = await session(c, "all-admin")
        assert (await c.get(ME, headers=key)).json()["role"] == "operator"
        demoted = await c.patch("/users/alpha-operator", headers=admin, json={"role": "viewer"})
        assert demoted.status_code == 200
        assert (await c.get(ME, headers=key)).json()["role"] == "viewer"
        ack = await c.post(f"/incidents/{w.incidents['alpha']}/ack", headers=key)
        assert ack.status_code == 403


async def test_a_scoped_admin_manages_only_users_within_its_estates(w: World) -> None:
    async with client(w) as c:
        admin = await session(c, "alpha-admin")
        names = {u["username"] for u in (await c.get("/users", headers=admin)).json()}
        assert "alpha-viewer" in names and not names & {"bravo-dummy", "all-admin", "all-viewer"}
        for body in ({"estates": ["*"]}, {"estates": ["bravo"]}):
            assert (await c.patch("/users/alpha-viewer", headers=admin, json=body)).status_code == 404
        assert (await c.patch("/users/all-viewer", headers=admin, json={"disabled": True})).status_code == 404
        new = {"username": "alpha-root", "password": PASSWORD, "role": "admin", "estates": ["*"]}
        assert (await c.post("/users", headers=admin, json=new)).status_code == 404
        weak = {"username": "alpha-guard", "password": "short", "role": "viewer", "estates": ["alpha"]}
        assert (await c.post("/users", headers=admin, json=weak)).status_code == 422
        self_disable = await c.patch("/users/alpha-admin", headers=admin, json={"disabled": True})
        assert self_disable.status_code == 409
