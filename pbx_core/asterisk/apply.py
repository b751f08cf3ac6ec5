"""Apply a tenant's rendered Asterisk configuration: write what changed, reload only the modules
that read it, and check that Asterisk really loaded the tenant's objects.

Why the check: a reload that "succeeds" proves little. ``module reload res_pjsip.so`` and
``module reload app_queue.so`` report success even when the file they read was invalid (both log
the problem and keep what they had), and ``dialplan reload`` prints "Dialplan reloaded." whatever
happened. So after reloading we ask Asterisk for the tenant's endpoints, queues and contexts; if
one is missing, the previous files are put back byte for byte, the modules are reloaded again,
and the result says which module and what Asterisk answered.

Reloads go through the AMI ``Command`` action (``module reload X``) because its output names the
outcome per module (main/cli.c): "Module 'X' reloaded successfully.", "The module 'X' reported a
reload failure", "No such module 'X'", ... The dialplan is reloaded as ``module reload
pbx_config.so`` rather than ``dialplan reload``, which ignores pbx_config's result.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..ami.errors import AmiError
from .files import ConfigError, Section, diff, parse_text, write_files

if TYPE_CHECKING:
    from ..ami.client import AmiClient
    from ..provisioning.schemas import TenantConfig

log = logging.getLogger(__name__)

# Generated file (by base name) -> the module that reads it, in the order they are reloaded:
# endpoints and mailboxes before the dialplan that dials them, queues before Queue().
MODULE_OF: dict[str, str] = {
    "pjsip.conf": "res_pjsip.so",
    "voicemail.conf": "app_voicemail.so",
    "queues.conf": "app_queue.so",
    "extensions.conf": "pbx_config.so",
}
RELOAD_ORDER: tuple[str, ...] = tuple(MODULE_OF.values())
TENANT_FILES: tuple[str, ...] = tuple(sorted(MODULE_OF))
SLUG_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")

Status = Literal["ok", "unchanged", "written", "failed"]


@dataclass(frozen=True)
class ApplyResult:
    """``ok``: written and Asterisk loaded it; ``unchanged``: nothing to do; ``written``: files
    written, Asterisk not reloaded (no AMI configured); ``failed``: see ``error`` (files restored)."""

    status: Status
    changed: list[str] = field(default_factory=list)
    reloads: list[str] = field(default_factory=list)
    error: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class Check:
    """After ``module`` was reloaded, ``command``'s output must match every pattern of ``expect``."""

    module: str
    command: str
    expect: tuple[tuple[str, re.Pattern[str]], ...]  # (what, pattern), e.g. ("queue acme-support", ...)


@dataclass(frozen=True)
class CliReply:
    ok: bool
    output: str


class ReloadError(Exception):
    """Asterisk did not accept the new files; the message says which module and what it said."""


_locks: dict[tuple[int, Path], asyncio.Lock] = {}


def _lock(config_dir: Path) -> asyncio.Lock:
    # Two applies on one directory must not interleave their writes, reloads and rollbacks.
    # (Per event loop: an asyncio.Lock belongs to the loop it first waited in.)
    key = (id(asyncio.get_running_loop()), config_dir.resolve())
    return _locks.setdefault(key, asyncio.Lock())


# --------------------------------------------------------------------------- public API


async def apply_tenant(
    ami: AmiClient | None,
    config_dir: Path,
    config: TenantConfig,
    *,
    all_slugs: Sequence[str] | None = None,
    rendered: Mapping[str, bytes] | None = None,
) -> ApplyResult:
    """Render ``config`` and apply it under ``config_dir`` (the ``pbx-core`` directory Asterisk
    includes). The index files list every tenant directory present (plus this tenant); a slug in
    ``all_slugs`` without files is left out, since an ``#include`` of a missing file makes Asterisk
    refuse the whole file. ``rendered``: bytes to write instead of the rendered files (how a test
    hands Asterisk a file it rejects); what Asterisk must show is still what ``config`` renders to."""
    from .render import render_index, render_tenant

    try:
        expected = render_tenant(config)
    except ValueError as exc:  # render.UnsafeValue: a value that must never reach Asterisk
        return ApplyResult("failed", error=f"tenant {config.slug!r} cannot be rendered: {exc}")
    tenant_files = dict(rendered) if rendered is not None else expected
    slugs = set(present_slugs(config_dir)) | {config.slug}
    for slug in all_slugs or ():
        if slug not in slugs:
            log.info("tenant %r not applied yet (no files under %s): not in the index", slug, config_dir)
    files: dict[str, bytes | None] = {**tenant_files, **render_index(sorted(slugs))}
    return await apply_files(ami, config_dir, files, checks=tenant_checks(config.slug, expected))


async def remove_tenant(ami: AmiClient | None, config_dir: Path, slug: str) -> ApplyResult:
    """Delete the tenant's generated files, drop it from the index files and reload."""
    from .render import render_index

    if not SLUG_RE.match(slug):
        return ApplyResult("failed", error=f"invalid tenant slug {slug!r}")
    tenant_dir = config_dir / slug
    files: dict[str, bytes | None] = {}
    if tenant_dir.is_dir():
        files.update({f"{slug}/{p.name}": None for p in tenant_dir.iterdir() if p.is_file()})
    remaining = sorted(s for s in present_slugs(config_dir) if s != slug)
    files.update(render_index(remaining))
    return await apply_files(ami, config_dir, files)


async def apply_files(
    ami: AmiClient | None,
    config_dir: Path,
    files: Mapping[str, bytes | None],
    *,
    checks: Sequence[Check] = (),
) -> ApplyResult:
    """Make the files under ``config_dir`` equal ``files`` (relative path -> bytes; None deletes)
    and reload the modules that read the changed ones. Independent of rendering, so it can be
    tested with any file contents."""
    async with _lock(config_dir):
        changes = diff(config_dir, files)
        if not changes:
            return ApplyResult("unchanged")
        # Tenant files before the index that includes them; deletions after the index stops
        # including them: Asterisk may reload at any moment and must never see a dangling #include.
        order = [
            *sorted(r for r, d in changes.items() if d is not None and "/" in r),
            *sorted(r for r, d in changes.items() if d is not None and "/" not in r),
            *sorted(r for r, d in changes.items() if d is None),
        ]
        txn = write_files(config_dir, changes, order=order)
        changed = txn.changed
        if ami is None:
            return ApplyResult(
                "written",
                changed=changed,
                note="files written; Asterisk was not reloaded (no AMI connection configured, PBX_AMI_URL)",
            )
        modules = [m for m in RELOAD_ORDER if any(_module(r) == m for r in changed)]
        attempted: list[str] = []
        try:
            await _reload_and_check(ami, modules, [c for c in checks if c.module in modules], attempted)
        except (ReloadError, AmiError) as exc:
            txn.restore()
            # Only the modules that read the new files read the old ones again; the others never
            # saw the change.
            rollback = await _reload_quietly(ami, attempted)
            return ApplyResult(
                "failed",
                changed=changed,
                reloads=attempted,
                error=f"{exc}. The previous configuration files were restored{rollback}.",
            )
        return ApplyResult("ok", changed=changed, reloads=modules)


def present_slugs(config_dir: Path) -> list[str]:
    """Tenant directories under ``config_dir`` that hold all generated files, sorted."""
    if not config_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in config_dir.iterdir()
        if p.is_dir() and SLUG_RE.match(p.name) and all((p / f).is_file() for f in TENANT_FILES)
    )


def tenant_checks(slug: str, tenant_files: Mapping[str, bytes | None]) -> list[Check]:
    """What Asterisk must show once the tenant's files are loaded: its endpoints, queues and
    dialplan contexts, read from the rendered files themselves (so the check follows the renderer)."""
    sections = {name: _sections(tenant_files.get(f"{slug}/{name}")) for name in MODULE_OF}
    checks: list[Check] = []
    endpoints = [s.name for s in sections["pjsip.conf"] if not s.template and s.get("type") == "endpoint"]
    if endpoints:
        checks.append(
            Check(
                "res_pjsip.so",
                f"pjsip show endpoints like ^{slug}-",
                tuple(
                    (f"endpoint {e}", re.compile(rf"^\s*Endpoint:\s+{re.escape(e)}(?:/\S*)?\s", re.M))
                    for e in endpoints
                ),
            )
        )
    for q in (s.name for s in sections["queues.conf"] if not s.template and s.name != "general"):
        checks.append(
            Check(
                "app_queue.so",
                f"queue show {q}",
                ((f"queue {q}", re.compile(rf"^{re.escape(q)} has ", re.M)),),
            )
        )
    for ctx in (s.name for s in sections["extensions.conf"] if s.name not in ("general", "globals")):
        pattern = re.compile(rf"\[ Context '{re.escape(ctx)}' created by ")
        checks.append(Check("pbx_config.so", f"dialplan show {ctx}", ((f"dialplan context {ctx}", pattern),)))
    return checks


async def cli(ami: AmiClient, command: str) -> CliReply:
    """Run one CLI command over AMI. Asterisk 22 answers ``Response: Success`` (or ``Error`` when
    the command failed) with ``Message: Command output follows`` and one ``Output:`` header per
    line, which the frame parser joins with newlines."""
    reply = await ami.action({"Action": "Command", "Command": command}, check=False)
    output = reply.get("Output") or ""
    if not reply.success and not output:
        output = reply.get("Message") or "no reason given"
    return CliReply(reply.success, output)


# --------------------------------------------------------------------------- internals


def _module(rel: str) -> str | None:
    return MODULE_OF.get(Path(rel).name)


def _sections(data: bytes | None) -> list[Section]:
    if not data:
        return []
    try:
        return parse_text(data.decode("utf-8", "replace"))
    except ConfigError:
        return []  # the reload and the checks will say what is wrong


async def _reload(ami: AmiClient, module: str) -> None:
    command = f"module reload {module}"
    reply = await cli(ami, command)
    said = reply.output.strip() or "(no output)"
    if not (reply.ok and f"Module '{module}' reloaded successfully" in reply.output):
        raise ReloadError(f"Asterisk refused `{command}`: {_one_line(said)}")


async def _reload_and_check(
    ami: AmiClient, modules: Sequence[str], checks: Sequence[Check], attempted: list[str]
) -> None:
    for module in modules:
        attempted.append(module)
        await _reload(ami, module)
    for check in checks:
        reply = await cli(ami, check.command)
        for what, pattern in check.expect:
            if not pattern.search(reply.output):
                raise ReloadError(
                    f"Asterisk did not load {what} after `module reload {check.module}` "
                    f"(`{check.command}` answered: {_one_line(reply.output.strip() or '(no output)')}); "
                    "the Asterisk log names the line it rejected"
                )


async def _reload_quietly(ami: AmiClient, modules: Sequence[str]) -> str:
    problems = []
    for module in modules:
        try:
            await _reload(ami, module)
        except (ReloadError, AmiError) as exc:
            problems.append(str(exc))
    if problems:
        log.error("reloading the restored configuration failed: %s", "; ".join(problems))
        return f", but reloading them failed too ({'; '.join(problems)})"
    return " and reloaded"


def _one_line(text: str, limit: int = 300) -> str:
    flat = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


__all__ = [
    "MODULE_OF",
    "ApplyResult",
    "Check",
    "CliReply",
    "ReloadError",
    "apply_files",
    "apply_tenant",
    "cli",
    "present_slugs",
    "remove_tenant",
    "tenant_checks",
]
