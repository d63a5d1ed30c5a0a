"""`estate-gateway user ...`: manage console/API users on the store of a site config (or a SQLite file).

Passwords come from stdin (`--password-stdin`, one line) or an interactive prompt, never from argv
(argv shows in `ps` and in shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.auth import AccountError, Accounts, PasswordPolicyError
from gateway.auth.jobs import JOBS, job_label
from gateway.config import ConfigError, load_config
from gateway.store import PostgresStore, SqliteStore, build_store

__all__ = ["add_user_parser", "cmd_user"]


def add_user_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("user", help="manage users (console logins and API key owners)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-c", "--config", help="site config (its store is used)")
    where.add_argument("--db", help="SQLite store file")
    users = p.add_subparsers(dest="user_command", required=True)
    add = users.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument(
        "--role",
        choices=["viewer", "operator", "supervisor", "admin", "regulator"],
        help="rank, or regulator (KPIs of every estate only); default: the job's rank",
    )
    add.add_argument(
        "--job",
        choices=list(JOBS),
        help="guard 保安, shift_leader 班长, engineer 工程, fire_control 消防中控, manager 经理",
    )
    add.add_argument(
        "--estates", required=True, help="comma-separated estate ids, company:<id>, or '*' for all"
    )
    add.add_argument("--display-name", default="")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    users.add_parser("list", help="list users")
    for verb in ("disable", "enable"):
        users.add_parser(verb, help=f"{verb} a user").add_argument("name")
    passwd = users.add_parser("passwd", help="set a new password (revokes sessions and keys)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def _store(args: argparse.Namespace) -> SqliteStore | PostgresStore:
    if args.db:
        return SqliteStore(args.db)
    return build_store(load_config(args.config).store, Path.cwd())  # SQLite or PostgreSQL, as configured


async def _run(args: argparse.Namespace) -> int:
    store = _store(args)
    await store.open()
    try:
        accounts = Accounts(store)
        command = args.user_command
        if command == "add":
            estates = [e.strip() for e in args.estates.split(",") if e.strip()]
            user = await accounts.add_user(
                args.name, args.role, estates, _password(args.password_stdin), args.display_name, args.job
            )
            job = f", job {user.job} {job_label(user.job)}" if user.job else ""
            print(f"added {user.username} ({user.role}{job}, estates {','.join(user.estates)})")
        elif command == "list":
            print(f"{'username':<24} {'role':<10} {'state':<9} {'estates':<24} {'job':<13} display name")
            for u in await accounts.list_users():
                state = "disabled" if u.disabled else "enabled"
                scope, job = ",".join(u.estates), u.job or "-"
                print(f"{u.username:<24} {u.role:<10} {state:<9} {scope:<24} {job:<13} {u.display_name}")
        elif command in ("disable", "enable"):
            user = await accounts.update_user(args.name, disabled=command == "disable")
            when = datetime.fromtimestamp(user.updated_at, UTC).isoformat(timespec="seconds")
            print(f"{user.username} {command}d at {when}")
        elif command == "passwd":
            await accounts.update_user(args.name, password=_password(args.password_stdin))
            print(f"password of {args.name} changed; its sessions and keys are revoked")
        return 0
    finally:
        await store.close()


def cmd_user(args: argparse.Namespace) -> int:
    """Run a `user` sub-command; exit 2 with a message on any refusal (unknown user, weak password)."""
    try:
        return asyncio.run(_run(args))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
    except (AccountError, PasswordPolicyError) as exc:
        print(f"estate-gateway user {args.user_command}: {exc}", file=sys.stderr)
    return 2
