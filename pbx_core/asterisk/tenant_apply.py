"""Apply one tenant the way every caller should (the REST API, ``pbx-core asterisk apply``, the
live suite): configuration files, then queue members, whatever became of the files.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..ami.errors import AmiError
from .apply import ApplyResult, apply_tenant
from .members import MemberSyncResult, sync_members

if TYPE_CHECKING:
    from ..ami.client import AmiClient
    from ..provisioning.schemas import TenantConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TenantApplied:
    """``files``: what became of the configuration files; ``members``: the member sync that
    followed (None without an AMI connection)."""

    files: ApplyResult
    members: MemberSyncResult | None

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
) -> TenantApplied:
    """:func:`apply_tenant`, then :func:`sync_members` in every case (see the module docstring).
    After a rolled-back apply a queue the database has but Asterisk does not (a queue the failed
    apply was to create) is skipped, not an error."""
    files = await apply_tenant(ami, config_dir, config, all_slugs=all_slugs, rendered=rendered)
    if ami is None:
        return TenantApplied(files, None)
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
    return TenantApplied(files, members)


__all__ = ["TenantApplied", "apply_tenant_with_members"]
