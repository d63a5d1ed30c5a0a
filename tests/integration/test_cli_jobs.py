"""`estate-gateway user add` with a job, a company scope and the regulator role: a real subprocess on a
real SQLite file; the store keeps the job (migration), `list` shows it."""

from __future__ import annotations

from pathlib import Path

from gateway.store import SqliteStore
from tests.integration.test_cli_users import PASSWORD, cli


async def test_jobs_company_scopes_and_the_regulator(tmp_path: Path) -> None:
    db = str(tmp_path / "gw.db")
    guard = cli("--db", db, "add", "guard.zhang", "--job", "guard", "--estates", "sunshine",
                "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert guard.returncode == 0, guard.stderr
    assert "operator, job guard 保安" in guard.stdout
    boss = cli("--db", db, "add", "boss.wu", "--job", "manager", "--estates", "company:sunny-pm",
               "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert boss.returncode == 0 and "admin, job manager 经理" in boss.stdout, boss.stderr
    reg = cli("--db", db, "add", "district", "--role", "regulator", "--estates", "sunshine",
              "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert reg.returncode == 0 and "estates *" in reg.stdout, reg.stderr
    nothing = cli("--db", db, "add", "who.ever", "--estates", "sunshine", "--password-stdin",
                  stdin=PASSWORD + "\n")  # fmt: skip
    assert nothing.returncode == 2 and "role" in nothing.stderr
    bad = cli("--db", db, "add", "who.else", "--job", "janitor", "--estates", "sunshine")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr

    lines = {line.split()[0]: line.split() for line in cli("--db", db, "list").stdout.splitlines()[1:]}
    assert lines["guard.zhang"][1:5] == ["operator", "enabled", "sunshine", "guard"]
    assert lines["boss.wu"][1:5] == ["admin", "enabled", "company:sunny-pm", "manager"]
    assert lines["district"][1:5] == ["regulator", "enabled", "*", "-"]
    store = SqliteStore(db)
    await store.open()
    try:
        user = await store.get_user("guard.zhang")
        assert user is not None and user.job == "guard"
    finally:
        await store.close()
