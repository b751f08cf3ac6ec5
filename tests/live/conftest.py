"""The live suite runs against a real Asterisk 22, and only when told where it is.

``PBX_TEST_AMI_URL=ami://user:secret@host:port`` enables it: the ``pbx-core`` user of
asterisk-config/manager.conf (read ``agent,call,user``, write ``agent,originate,call,command``).
``PBX_TEST_ASTERISK_CONFIG_DIR`` is the directory that Asterisk reads as
``/etc/asterisk/pbx-core`` (its base files are asterisk-config/), writable by the tests. That is
all: every test that needs queues, endpoints or dialplan provisions a throwaway tenant through
pbx-core's own apply (:func:`provisioned`) and removes it again, so a fresh PBX is enough.
Without the URL every live test is skipped; without the directory, the ones that provision.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions
from pbx_core.asterisk.tenant_apply import (
    TenantApplied,
    apply_tenant_with_members,
    remove_tenant_with_prompts,
)
from pbx_core.config import AmiUrl, parse_ami_url
from pbx_core.provisioning.schemas import (
    DeviceConfig,
    MemberConfig,
    QueueConfig,
    TenantConfig,
    UserConfig,
)

LIVE_URL = os.environ.get("PBX_TEST_AMI_URL", "")
SKIP_REASON = "live Asterisk suite: set PBX_TEST_AMI_URL=ami://user:secret@host:port to run it"
CONFIG_DIR_ENV = "PBX_TEST_ASTERISK_CONFIG_DIR"
# A plain session for actions and Command (no resync, no filter), patient with a real PBX.
ACTION_OPTIONS = AmiOptions(resync_on_connect=False, event_filter=False, action_timeout_s=20.0)


@pytest.fixture
def ami_url() -> AmiUrl:
    return parse_ami_url(LIVE_URL, "PBX_TEST_AMI_URL")


@pytest.fixture
def config_dir() -> Path:
    """The directory the Asterisk under test reads as /etc/asterisk/pbx-core (provisioning)."""
    value = os.environ.get(CONFIG_DIR_ENV, "")
    if not value:
        pytest.skip(f"set {CONFIG_DIR_ENV} to the directory Asterisk reads as /etc/asterisk/pbx-core")
    path = Path(value)
    assert path.is_dir(), f"{CONFIG_DIR_ENV}={value} is not a directory"
    return path


@pytest.fixture
async def ami(ami_url: AmiUrl) -> AsyncIterator[AmiClient]:
    async with AmiClient(ami_url, ACTION_OPTIONS) as client:
        yield client


def throwaway_slug(prefix: str = "lt") -> str:
    """A tenant slug no real tenant has (tenant slugs are [a-z][a-z0-9]{0,15})."""
    return f"{prefix}{secrets.token_hex(4)}"


@contextlib.asynccontextmanager
async def provisioned(
    ami_url: AmiUrl,
    config_dir: Path,
    config: TenantConfig,
    *,
    rendered: Mapping[str, bytes] | None = None,
    sounds_dir: Path | None = None,
) -> AsyncIterator[TenantApplied]:
    """Apply ``config`` as pbx-core does (prompts, files, reloads, checks, members), and remove
    the tenant from Asterisk again afterwards, whatever happened in between."""
    try:
        async with AmiClient(ami_url, ACTION_OPTIONS) as ami:
            applied = await apply_tenant_with_members(ami, config_dir, config, rendered=rendered,
                                                      sounds_dir=sounds_dir)
        assert applied.files.status == "ok", applied.files.error
        assert applied.members is not None and applied.members.ok, applied.members
        yield applied
    finally:
        async with AmiClient(ami_url, ACTION_OPTIONS) as ami:
            removed = await remove_tenant_with_prompts(ami, config_dir, config.slug, sounds_dir=sounds_dir)
        assert removed.ok, removed.error


@dataclass(frozen=True)
class LiveTenant:
    config: TenantConfig
    queue: str  # its queue's name in Asterisk
    member: str  # the interface of its queue member


@pytest.fixture
async def live_tenant(ami_url: AmiUrl, config_dir: Path) -> AsyncIterator[LiveTenant]:
    """A throwaway tenant with one queue and one member (whose phone never registers)."""
    slug = throwaway_slug()
    config = TenantConfig(
        slug=slug,
        name="pbx-core live test",
        users=(UserConfig(extension="201", name="Live Tester", devices=(
            DeviceConfig(name="desk", kind="desk", secret=secrets.token_urlsafe(24)),)),),
        queues=(QueueConfig(name="support"),),
        members=(MemberConfig(queue="support", extension="201"),),
    )
    async with provisioned(ami_url, config_dir, config):
        yield LiveTenant(config, f"{slug}-support", f"Local/201@{slug}-agents/n")
