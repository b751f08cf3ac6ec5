"""``pbx-core db upgrade|current|check|revision``: the provisioning schema (PBX_DATABASE_URL).

Every database failure becomes one line on stderr and exit code 1: the person running this is
deploying a product, not debugging it (``-v`` shows alembic's own log).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from ..config import ConfigError, Settings
from . import db

UPGRADE_HINT = "run pbx-core db upgrade"


def database_error(exc: BaseException) -> str:
    """A one-line reason for a failed database operation (no traceback, no password)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def run_db(label: str, work: Callable[[], Awaitable[int]]) -> int:
    """Run ``work`` and turn database/connection failures into ``pbx-core: ...`` and exit 1."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # alembic's chatter only with -v
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return asyncio.run(work())
    except CommandError as exc:  # alembic: e.g. a revision this version does not know
        print(f"pbx-core: database {label}: {exc}", file=sys.stderr)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        print(f"pbx-core: cannot use database {label}: {database_error(exc)}", file=sys.stderr)
    return 1


async def schema_problem(url: str) -> str | None:
    """None when the database is at our head revision, else what is wrong and what to do."""
    current = await db.current_revision(url)
    head = db.head_revision()
    if current == head:
        return None
    if current is None:
        return f"has no pbx-core schema yet: {UPGRADE_HINT}"
    if not _known(current):
        return _unknown(current)
    return f"is at revision {current}, this pbx-core needs {head}: {UPGRADE_HINT}"


async def ensure_schema(url: str) -> None:
    """For the long-running commands (web, serve, worker): refuse a database that is not at our
    schema, saying what to run, rather than fail on the first request."""
    try:
        problem = await schema_problem(url)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        reason = database_error(exc)
        raise ConfigError(f"PBX_DATABASE_URL: cannot open {db.safe_url(url)}: {reason}") from None
    if problem is not None:
        problem = problem.replace(UPGRADE_HINT, "run `pbx-core db upgrade` first")
        raise ConfigError(f"database {db.safe_url(url)} {problem}")


def _unknown(revision: str) -> str:
    return f"is at revision {revision}, which this pbx-core does not know (made by a newer version?)"


def _known(revision: str) -> bool:
    try:
        ScriptDirectory.from_config(db.alembic_config()).get_revision(revision)
    except CommandError:
        return False
    return True


def _upgrade(args: argparse.Namespace) -> int:
    url = Settings.from_env().database_url
    label = db.safe_url(url)

    async def work() -> int:
        before = await db.current_revision(url)
        if before is not None and not _known(before):  # never "upgrade" a newer schema
            print(f"pbx-core: database {label} {_unknown(before)}", file=sys.stderr)
            return 1
        await db.upgrade(url)
        after = await db.current_revision(url)
        if before == after:
            print(f"database {label}: already at {after} (head), nothing to do")
        elif before is None:
            print(f"database {label}: upgraded to {after}")
        else:
            print(f"database {label}: upgraded from {before} to {after}")
        return 0

    return run_db(label, work)


def _current(args: argparse.Namespace) -> int:
    url = Settings.from_env().database_url
    label = db.safe_url(url)

    async def work() -> int:
        current = await db.current_revision(url)
        head = db.head_revision()
        if current is None:
            print(f"database {label}: no schema (head is {head}; {UPGRADE_HINT})")
        elif current == head:
            print(f"database {label}: at {current} (head)")
        else:
            print(f"database {label}: at {current} (head is {head})")
        return 0

    return run_db(label, work)


def _check(args: argparse.Namespace) -> int:
    url = Settings.from_env().database_url
    label = db.safe_url(url)

    async def work() -> int:
        problem = await schema_problem(url)
        if problem is not None:
            print(f"pbx-core: database {label} {problem}", file=sys.stderr)
            return 1
        print(f"database {label}: up to date ({db.head_revision()})")
        return 0

    return run_db(label, work)


def _revision(args: argparse.Namespace) -> int:
    url = Settings.from_env().database_url
    label = db.safe_url(url)

    async def work() -> int:
        problem = await schema_problem(url)
        if problem is not None:  # autogenerate diffs against this database: it must be at head
            print(f"pbx-core: database {label} {problem}", file=sys.stderr)
            return 1
        path = await db.autogenerate_revision(url, args.message, args.id)
        print(f"wrote {path}: read it over before committing it")
        return 0

    return run_db(label, work)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "db",
        help="create or upgrade the provisioning database schema",
        description="Manage the schema of the provisioning database named by PBX_DATABASE_URL "
        "(default sqlite:///pbx-core.db).",
    )
    actions = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    actions.add_parser(
        "upgrade", help="apply all migrations (safe to run on every start)"
    ).set_defaults(func=_upgrade)
    actions.add_parser("current", help="print the database's schema revision").set_defaults(func=_current)
    actions.add_parser(
        "check", help=f"exit 1 unless the database is at the latest revision ({UPGRADE_HINT})"
    ).set_defaults(func=_check)
    rev = actions.add_parser(
        "revision",
        help="(development) autogenerate a migration from the models against an up-to-date database",
    )
    rev.add_argument("-m", "--message", required=True, help="what the migration does")
    rev.add_argument("--id", required=True, metavar="REV", help="revision id, e.g. 0002_add_queue_color")
    rev.set_defaults(func=_revision)
