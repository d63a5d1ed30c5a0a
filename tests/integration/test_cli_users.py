"""`estate-gateway user ...` as an operator runs it: a real subprocess on a real SQLite file, then the
API on that same file refuses the disabled user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from drivers.stats import StatsRegistry
from gateway.api import ApiContext, create_app
from gateway.api.auth import TokenAuth
from gateway.auth import Accounts, Passwords
from gateway.incidents import IncidentService
from gateway.model import ManualClock
from gateway.store import SqliteStore

PASSWORD = "Gatehouse-Night-2026"


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.runtime.cli", "user", *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def login(db: Path, username: str, password: str) -> httpx.Response:
    store = SqliteStore(db)
    await store.open()
    try:
        auth = TokenAuth([], Accounts(store, passwords=Passwords()))
        app = create_app(ApiContext(IncidentService(store, ManualClock()), [], StatsRegistry(), auth))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.post("/auth/login", json={"username": username, "password": password})
    finally:
        await store.close()


async def test_add_list_disable_then_the_api_refuses_the_user(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    added = cli("--db", str(db), "add", "zhang.wei", "--role", "operator", "--estates", "sunshine,maple",
                "--display-name", "张伟", "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    admin = cli("--db", str(db), "add", "li.ming", "--role", "admin", "--estates", "*", "--password-stdin",
                stdin=PASSWORD + "-x\n")  # fmt: skip
    assert admin.returncode == 0, admin.stderr
    listed = cli("--db", str(db), "list")
    assert listed.returncode == 0
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert lines["zhang.wei"].split()[1:4] == ["operator", "enabled", "maple,sunshine"]
    assert "张伟" in lines["zhang.wei"] and "$argon2" not in listed.stdout
    assert (await login(db, "zhang.wei", PASSWORD)).status_code == 200

    disabled = cli("--db", str(db), "disable", "zhang.wei")
    assert disabled.returncode == 0, disabled.stderr
    assert "disabled" in cli("--db", str(db), "list").stdout
    refused = await login(db, "zhang.wei", PASSWORD)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "invalid username or password"}
    assert (await login(db, "li.ming", PASSWORD + "-x")).status_code == 200

    assert cli("--db", str(db), "enable", "zhang.wei").returncode == 0
    changed = cli("--db", str(db), "passwd", "zhang.wei", "--password-stdin", stdin="Another-Shift-2027\n")
    assert changed.returncode == 0, changed.stderr
    assert (await login(db, "zhang.wei", PASSWORD)).status_code == 401
    assert (await login(db, "zhang.wei", "Another-Shift-2027")).status_code == 200


def test_refusals_exit_2_with_a_reason(tmp_path: Path) -> None:
    db = str(tmp_path / "gw.db")
    weak = cli(
        "--db", db, "add", "wang", "--role", "viewer", "--estates", "*", "--password-stdin", stdin="123\n"
    )
    assert weak.returncode == 2 and "at least 10" in weak.stderr and "123" not in weak.stderr
    assert cli("--db", db, "disable", "nobody").returncode == 2
    bad_role = cli("--db", db, "add", "wang", "--role", "root", "--estates", "*", "--password-stdin")
    assert bad_role.returncode == 2  # argparse: not a role
    # The password never goes on the command line: there is no option for it.
    assert "--password " not in cli("--db", db, "add", "--help").stdout


def test_the_store_of_a_site_config_is_used(tmp_path: Path) -> None:
    db = tmp_path / "site.db"
    site = tmp_path / "site.yaml"
    estates = "estates:\n  - id: sunshine\n    name: {zh: 阳光花园, en: Sunshine Garden}\n"
    site.write_text(f'store: {{path: "{db}"}}\n{estates}', encoding="utf-8")
    added = cli("-c", str(site), "add", "guard1", "--role", "viewer", "--estates", "sunshine",
                "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert db.exists()
    assert "guard1" in cli("--db", str(db), "list").stdout
