"""``pbx-core asterisk render|apply``: a tenant's Asterisk configuration from the provisioning
database (PBX_DATABASE_URL), previewed or applied to Asterisk (PBX_ASTERISK_CONFIG_DIR, PBX_AMI_URL).

``apply`` prints one line per tenant and exits 1 if any tenant failed (its files are restored).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ConfigError, Settings

if TYPE_CHECKING:
    from ..ami.client import AmiClient
    from ..provisioning.schemas import TenantConfig
    from .apply import ApplyResult
    from .members import MemberSyncResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "asterisk",
        help="render or apply tenants' Asterisk configuration",
        description="Render a tenant's Asterisk configuration from the provisioning database "
        "(PBX_DATABASE_URL), or apply it: write the changed files under PBX_ASTERISK_CONFIG_DIR, "
        "reload the affected Asterisk modules over AMI (PBX_AMI_URL), check that Asterisk loaded "
        "them (restoring the previous files if not), and sync queue members.",
    )
    cmds = p.add_subparsers(dest="asterisk_command", metavar="ACTION", required=True)

    render = cmds.add_parser("render", help="print (or write) a tenant's generated files")
    render.add_argument("--tenant", required=True, metavar="SLUG", help="the tenant to render (its slug)")
    render.add_argument(
        "--out", type=Path, metavar="DIR", help="write the files under DIR instead of printing"
    )
    render.set_defaults(func=_render)

    apply = cmds.add_parser("apply", help="apply tenants' configuration to Asterisk")
    which = apply.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", metavar="SLUG", action="append", help="a tenant (repeatable)")
    which.add_argument("--all", action="store_true", help="every tenant in the database")
    apply.add_argument(
        "--no-reload",
        action="store_true",
        help="only write the files (no AMI needed); Asterisk picks them up on its next reload",
    )
    apply.set_defaults(func=_apply)


# --------------------------------------------------------------------------- render


def _render(args: argparse.Namespace) -> int:
    from ..provisioning.cli import run_db
    from ..provisioning.db import safe_url
    from .files import atomic_write
    from .render import render_tenant

    settings = Settings.from_env()

    async def work() -> int:
        config = await _load(settings.database_url, [args.tenant])
        if config is None:
            return 1
        try:
            files = render_tenant(config[0])
        except ValueError as exc:  # render.UnsafeValue
            print(f"pbx-core: tenant {args.tenant!r} cannot be rendered: {exc}", file=sys.stderr)
            return 1
        if args.out is None:
            for rel, data in files.items():
                print(f"==> {rel} <==")
                sys.stdout.write(data.decode())
            return 0
        for rel, data in files.items():
            atomic_write(args.out / rel, data)
            print(f"wrote {args.out / rel}")
        return 0

    return run_db(safe_url(settings.database_url), work)


# --------------------------------------------------------------------------- apply


def _apply(args: argparse.Namespace) -> int:
    from ..provisioning.cli import run_db
    from ..provisioning.db import safe_url

    settings = Settings.from_env()
    if settings.ami_url is None and not args.no_reload:
        raise ConfigError(
            "PBX_AMI_URL is not set: `pbx-core asterisk apply` reloads Asterisk over AMI "
            "(set PBX_AMI_URL=ami://user:secret@host:5038, or pass --no-reload to only write the files)"
        )
    config_dir = Path(settings.asterisk_config_dir)
    sounds_dir = Path(settings.asterisk_sounds_dir) if settings.asterisk_sounds_dir else None

    async def work() -> int:
        slugs = await _all_slugs(settings.database_url) if args.all else args.tenant
        configs = await _load(settings.database_url, slugs)
        if configs is None:
            return 1
        if not configs:
            print("no tenants in the database: nothing to apply")
            return 0
        if args.no_reload:
            return await _apply_all(None, config_dir, configs, sounds_dir)
        from ..ami.client import AmiClient, AmiOptions

        assert settings.ami_url is not None
        options = AmiOptions(resync_on_connect=False, event_filter=False)
        async with AmiClient(settings.ami_url, options) as ami:
            return await _apply_all(ami, config_dir, configs, sounds_dir)

    return run_db(safe_url(settings.database_url), work)


async def _apply_all(
    ami: AmiClient | None, config_dir: Path, configs: Sequence[TenantConfig], sounds_dir: Path | None
) -> int:
    from .tenant_apply import apply_tenant_with_members

    failed = 0
    for config in configs:
        applied = await apply_tenant_with_members(ami, config_dir, config, sounds_dir=sounds_dir)
        result, members = applied.files, applied.members
        line = _line(config.slug, result, members)
        if applied.prompts is not None and (applied.prompts.spoken or applied.prompts.removed):
            line += f"; prompts spoken {len(applied.prompts.spoken)}, removed {len(applied.prompts.removed)}"
        print(line)
        failed += result.status == "failed" or (members is not None and not members.ok)
    return 1 if failed else 0


def _line(slug: str, result: ApplyResult, members: MemberSyncResult | None) -> str:
    if result.status == "failed":
        parts = [f"{slug}: FAILED: {result.error}"]
        if members is not None and members.changed:
            parts.append(f"queue members restored +{len(members.added)} -{len(members.removed)} "
                         f"~{len(members.penalties)}")
        return "; ".join([*parts, *(f"MEMBER ERROR: {e}" for e in (members.errors if members else []))])
    parts = [f"{slug}: {result.status}"]
    if result.changed:
        parts.append(f"changed {', '.join(result.changed)}")
    if result.reloads:
        parts.append(f"reloaded {', '.join(result.reloads)}")
    if result.note:
        parts.append(result.note)
    if members is not None:
        parts.append(f"members +{len(members.added)} -{len(members.removed)} ~{len(members.penalties)}")
        parts += [f"MEMBER ERROR: {e}" for e in members.errors]
    return "; ".join(parts)


# --------------------------------------------------------------------------- database


async def _all_slugs(url: str) -> list[str]:
    from sqlalchemy import select

    from ..provisioning.db import open_sessions
    from ..provisioning.models import Tenant

    async with open_sessions(url) as sessions, sessions() as session:
        return list((await session.scalars(select(Tenant.slug).order_by(Tenant.slug))).all())


async def _load(url: str, slugs: Sequence[str]) -> list[TenantConfig] | None:
    """The tenants' configurations; None (after saying why on stderr) if one does not exist."""
    from ..provisioning.db import open_sessions, safe_url
    from ..provisioning.snapshot import load_tenant_config

    async with open_sessions(url) as sessions, sessions() as session:
        configs = []
        for slug in slugs:
            try:
                configs.append(await load_tenant_config(session, slug))
            except LookupError:
                print(f"pbx-core: no tenant {slug!r} in database {safe_url(url)}", file=sys.stderr)
                return None
        return configs
