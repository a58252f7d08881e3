"""``ruuhka crew``: manage crew accounts and API tokens in the hub's crew database.

Only argparse is imported here at module level, so that ``ruuhka --help`` stays
light; the database and argon2 are loaded when a command runs.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.config import HubSettings
    from hub.crew.accounts import Accounts


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="hub TOML file with [crew]")
    sub = parser.add_subparsers(dest="crew_command", required=True)

    def scope_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--facility", action="append", default=[], metavar="ID")
        p.add_argument("--team", action="append", default=[], metavar="NAME")
        p.add_argument("--all", action="store_true", help="every facility of this hub")

    p = sub.add_parser("add", help="add a crew (asks for its password)")
    p.add_argument("name")
    scope_args(p)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = sub.add_parser("remove", help="remove a crew; its logged entries stay")
    p.add_argument("name")
    p = sub.add_parser("passwd", help="set a crew's password (ends its sessions)")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p = sub.add_parser("scope", help="set which facilities a crew looks after")
    p.add_argument("name")
    scope_args(p)
    sub.add_parser("list", help="list crews, their scopes and tokens")
    p = sub.add_parser("token", help="create an API token for integrations (shown once)")
    p.add_argument("name")
    p.add_argument("label", help="what the token is for, e.g. snowplow-gps")
    p.add_argument("--revoke", action="store_true", help="delete the token instead")
    parser.set_defaults(func=run)


def _scope(args: argparse.Namespace, settings: HubSettings) -> list[str]:
    ids = {f.id for f in settings.facilities}
    teams = settings.crew.teams if settings.crew else {}
    for facility in args.facility:
        if facility not in ids:
            raise SystemExit(f"ruuhka crew: no facility {facility!r} in {args.config}")
    for team in args.team:
        if team not in teams:
            raise SystemExit(f"ruuhka crew: no team {team!r} under [crew.teams] in {args.config}")
    scope = [f"facility:{f}" for f in args.facility] + [f"team:{t}" for t in args.team]
    return ["*"] if args.all else scope


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("ruuhka crew: no terminal to ask the password on; use --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("ruuhka crew: the passwords differ")
    return first


def _run(args: argparse.Namespace, accounts: Accounts, settings: HubSettings) -> None:
    now = datetime.now(UTC)
    command = args.crew_command
    if command == "add":
        crew = accounts.add(args.name, _password(args), _scope(args, settings), now)
        print(f"added crew {crew.name} ({', '.join(crew.scope)})")
    elif command == "remove":
        accounts.remove(args.name)
        print(f"removed crew {args.name}; its entries stay in the log")
    elif command == "passwd":
        accounts.set_password(args.name, _password(args), now)
        print(f"new password for {args.name}; its sessions ended")
    elif command == "scope":
        scope = _scope(args, settings)
        accounts.set_scope(args.name, scope)
        print(f"crew {args.name} now looks after: {', '.join(scope)}")
    elif command == "list":
        for crew in accounts.list():
            tokens = accounts.tokens(crew.name)
            print(f"{crew.name}\t{', '.join(crew.scope)}\ttokens: {', '.join(tokens) or '-'}")
    elif command == "token" and args.revoke:
        accounts.remove_token(args.name, args.label)
        print(f"revoked token {args.label} of {args.name}")
    elif command == "token":
        token = accounts.add_token(args.name, args.label, now)
        print(token)
        print(f"API token {args.label} for {args.name}; it is shown only now.", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from hub.config import HubSettings
    from hub.crew.accounts import AccountError, Accounts
    from hub.crew.db import CrewDB
    from ruuhka.settings import load_settings

    settings = load_settings(HubSettings, args.config)
    if settings.crew is None:
        print(f"ruuhka crew: {args.config} has no [crew] section (add: db = ...)", file=sys.stderr)
        return 2
    db = CrewDB.from_url(settings.crew.db)
    try:
        _run(args, Accounts(db, settings.crew), settings)
    except AccountError as exc:
        print(f"ruuhka crew: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0
