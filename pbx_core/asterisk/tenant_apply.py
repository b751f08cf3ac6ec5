"""Apply one tenant the way every caller should (the REST API, ``pbx-core asterisk apply``, the
live suite): spoken prompts, configuration files, then queue members, whatever became of the files.

Prompts first: the new dialplan plays them the moment it is loaded. Prompts of menus the tenant
no longer has are removed once Asterisk accepted the configuration that stopped playing them.

Why members are synced after a *failed* apply too: when Asterisk rejects a tenant's queues.conf,
app_queue has already destroyed the queues whose sections it lost (a parse error in an included
file truncates it; ``reload_queues`` kills every queue it no longer finds), and the rollback's
reload creates them again, empty. Their dynamic members are gone from Asterisk while the
database (and astdb) still list them, and agents would stay out of their queue until the next
good apply. So after every apply, accepted or rolled back, the members of every tenant queue
Asterisk has are made equal to the database's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..ami.errors import AmiError
from .apply import ApplyResult, apply_tenant, remove_tenant
from .members import MemberSyncResult, sync_members
from .prompts import PromptSync, remove_stale_prompts, write_prompts
from .sounds import fixed_prompts, paths, tenant_prompts
from .tts import TtsError, find_engine

if TYPE_CHECKING:
    from ..ami.client import AmiClient
    from ..provisioning.schemas import TenantConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TenantApplied:
    """``files``: what became of the configuration files; ``members``: the member sync that
    followed (None without an AMI connection); ``prompts``: the spoken prompts (None when no
    sounds directory is configured)."""

    files: ApplyResult
    members: MemberSyncResult | None
    prompts: PromptSync | None = None

    @property
    def ok(self) -> bool:
        return self.files.ok and (self.members is None or self.members.ok)


async def apply_tenant_with_members(
    ami: AmiClient | None,
    config_dir: Path,
    config: TenantConfig,
    *,
    all_slugs: Sequence[str] | None = None,
    rendered: Mapping[str, bytes] | None = None,
    sounds_dir: Path | None = None,
) -> TenantApplied:
    """Prompts into ``sounds_dir`` (Asterisk's sounds directory), :func:`apply_tenant`, then
    :func:`sync_members` in every case (see the module docstring). After a rolled-back apply a
    queue the database has but Asterisk does not (a queue the failed apply was to create) is
    skipped, not an error."""
    wanted = tenant_prompts(config)
    prompts: PromptSync | None = None
    if sounds_dir is not None:
        try:
            engine = await find_engine()
            prompts = await write_prompts(engine, sounds_dir, [*fixed_prompts(), *wanted])
        except (TtsError, OSError) as exc:
            error = f"the prompts of tenant {config.slug!r} could not be spoken into {sounds_dir}: {exc}"
            return TenantApplied(ApplyResult("failed", error=error), None)
    files = await apply_tenant(ami, config_dir, config, all_slugs=all_slugs, rendered=rendered)
    if sounds_dir is not None and prompts is not None and files.ok:
        prompts.removed = remove_stale_prompts(sounds_dir, config.slug, keep=paths(wanted))
    elif sounds_dir is None and wanted:
        files = replace(files, note="; ".join(filter(None, [files.note, (
            f"{len(wanted)} text-to-speech prompt(s) were not spoken: set PBX_ASTERISK_SOUNDS_DIR to "
            "Asterisk's sounds directory, or menus play silence")])))
    if ami is None:
        return TenantApplied(files, None, prompts)
    try:
        members = await sync_members(ami, config, missing_queues="error" if files.ok else "skip")
    except AmiError as exc:
        members = MemberSyncResult(errors=[f"the queue members could not be checked over AMI: {exc}"])
    if not files.ok and members.changed:
        log.warning(
            "tenant %s: Asterisk refused the new configuration and lost queue members on the "
            "rollback; restored %d: %s",
            config.slug,
            len(members.added),
            ", ".join(f"{q}/{i}" for q, i in members.added),
        )
    return TenantApplied(files, members, prompts)


async def remove_tenant_with_prompts(
    ami: AmiClient | None, config_dir: Path, slug: str, *, sounds_dir: Path | None = None
) -> ApplyResult:
    """:func:`remove_tenant`, then (once Asterisk no longer plays them) the tenant's prompts."""
    result = await remove_tenant(ami, config_dir, slug)
    if result.ok and sounds_dir is not None:
        remove_stale_prompts(sounds_dir, slug)
    return result


__all__ = ["TenantApplied", "apply_tenant_with_members", "remove_tenant_with_prompts"]
