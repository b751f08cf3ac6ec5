"""``pbx-core keys create|list|revoke``: reseller API keys, from the server's shell.

This is how the first key of a reseller comes to exist (every API call needs one). Tenant keys
are made through the API itself.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select

from ..config import Settings
from . import db
from .cli import UPGRADE_HINT, run_db, schema_problem
from .keys import create_reseller_key, list_reseller_keys, revoke_key
from .models import Tenant
from .schemas import Text

_TEXT = TypeAdapter(Text)


def _label(value: str, option: str) -> str:
    """Reseller and key names are shown in lists and audit lines: same rules as API text."""
    try:
        return _TEXT.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise SystemExit(f"pbx-core: {option} {value!r}: {reason}") from None


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    # SQLite hands back naive datetimes; everything is stored in UTC.
    value = value.astimezone(UTC) if value.tzinfo else value
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


async def _ready(url: str, label: str) -> bool:
    problem = await schema_problem(url)
    if problem is not None:
        print(f"pbx-core: database {label} {problem.replace(UPGRADE_HINT, UPGRADE_HINT + ' first')}",
              file=sys.stderr)
        return False
    return True


def _create(args: argparse.Namespace) -> int:
    reseller = _label(args.reseller, "--reseller")
    name = _label(args.name, "--name")
    settings = Settings.from_env()
    url = settings.database_url
    label = db.safe_url(url)
    example = f"http://{settings.http_host}:{settings.http_port}/api/v1/tenants"

    async def work() -> int:
        if not await _ready(url, label):
            return 1
        async with db.open_sessions(url) as sessions, sessions() as session, session.begin():
            key = await create_reseller_key(session, reseller, name)
        print(f"API key for reseller {reseller!r} ({name}):")
        print()
        print(f"  {key}")
        print()
        print("It is shown only this once (only a hash is stored): copy it now. Use it as a bearer token:")
        print(f'  curl -H "Authorization: Bearer {key}" {example}')
        return 0

    return run_db(label, work)


def _list(args: argparse.Namespace) -> int:
    url = Settings.from_env().database_url
    label = db.safe_url(url)

    async def work() -> int:
        if not await _ready(url, label):
            return 1
        async with db.open_sessions(url) as sessions, sessions() as session:
            try:
                keys = await list_reseller_keys(session, args.reseller)
            except LookupError as exc:
                print(f"pbx-core: {exc.args[0]}", file=sys.stderr)
                return 1
            tenant_ids = {k.tenant_id for k in keys if k.tenant_id is not None}
            found = await session.execute(select(Tenant.id, Tenant.slug).where(Tenant.id.in_(tenant_ids)))
            slugs = dict(found.tuples().all())
        rows = [("ID", "NAME", "ROLE", "TENANT", "CREATED", "REVOKED")] + [
            (k.public_id, k.name, k.role, slugs.get(k.tenant_id, "-") if k.tenant_id is not None else "-",
             _when(k.created_at), _when(k.revoked_at))
            for k in keys
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        return 0

    return run_db(label, work)


async def _announce(public_id: str) -> None:
    """Close the key's open wallboard sockets on every web process at once (through the Redis at
    PBX_REDIS_URL); without it they close at the web processes' next re-check."""
    from ..bus.keys import REDIS_ERRORS, connect
    from ..web.revocation import announce_revoked

    url = Settings.from_env().redis_url
    if not url:
        print("note: open wallboard sockets of this key close at the web processes' next re-check "
              "(PBX_WALLBOARD_RECHECK_S); set PBX_REDIS_URL to close them at once", file=sys.stderr)
        return
    redis = connect(url, socket_timeout=5.0)
    try:
        await announce_revoked(redis, public_id)
    except REDIS_ERRORS as exc:
        print(f"pbx-core: could not tell the web processes through Redis ({exc}); open wallboard "
              "sockets of this key close at their next re-check (PBX_WALLBOARD_RECHECK_S)", file=sys.stderr)
    finally:
        await redis.aclose()


def _revoke(args: argparse.Namespace) -> int:
    url = Settings.from_env().database_url
    label = db.safe_url(url)

    async def work() -> int:
        if not await _ready(url, label):
            return 1
        async with db.open_sessions(url) as sessions, sessions() as session, session.begin():
            try:
                key, changed = await revoke_key(session, args.id)
            except LookupError as exc:
                print(f"pbx-core: {exc.args[0]}", file=sys.stderr)
                return 1
        state = "revoked" if changed else f"was already revoked at {_when(key.revoked_at)}"
        print(f"key {key.public_id} ({key.name}) {state}")
        await _announce(key.public_id)
        return 0

    return run_db(label, work)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keys",
        help="create, list or revoke reseller API keys",
        description="Reseller API keys for the REST API (PBX_DATABASE_URL; run `pbx-core db upgrade` "
        "first). Tenant keys are created through the API.",
    )
    actions = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a reseller key (and the reseller if new); shown once")
    create.add_argument("--reseller", required=True, metavar="NAME", help="reseller name")
    create.add_argument("--name", default="cli", metavar="LABEL", help="label of the key (default: cli)")
    create.set_defaults(func=_create)
    listing = actions.add_parser("list", help="list a reseller's keys (never their secrets)")
    listing.add_argument("--reseller", required=True, metavar="NAME", help="reseller name")
    listing.set_defaults(func=_list)
    revoke = actions.add_parser("revoke", help="revoke a key by its id (see `keys list`)")
    revoke.add_argument("id", metavar="ID", help="the key's public id")
    revoke.set_defaults(func=_revoke)
