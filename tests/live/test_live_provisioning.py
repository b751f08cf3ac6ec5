"""Provisioning against a real Asterisk 22: generated files are loaded, verified and rolled back.

Needs ``PBX_TEST_AMI_URL`` (see conftest.py; the AMI user also needs write ``command``, for the
``Command`` action the applier reloads and checks with) and ``PBX_TEST_ASTERISK_CONFIG_DIR``: the
directory this Asterisk reads as ``/etc/asterisk/pbx-core``, writable by the test, with the base
files of asterisk-config/ installed in /etc/asterisk (they ``#tryinclude pbx-core/*.conf``).

A throwaway tenant with a random slug is applied, checked in Asterisk's own CLI output, given a
queue member (whose state must come from the hint), fed a queues.conf Asterisk cannot parse (the
applier must notice although app_queue reports the reload as a success, and restore the files),
and removed again, after which Asterisk must have forgotten it.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from pbx_core.ami.client import AmiClient
from pbx_core.asterisk.apply import apply_tenant, cli, remove_tenant
from pbx_core.asterisk.members import remove_member, sync_members
from pbx_core.asterisk.render import render_tenant
from pbx_core.asterisk.tenant_apply import apply_tenant_with_members
from pbx_core.provisioning.schemas import (
    DeviceConfig,
    MemberConfig,
    QueueConfig,
    TenantConfig,
    UserConfig,
)

from .conftest import LIVE_URL, SKIP_REASON

pytestmark = [pytest.mark.live, pytest.mark.skipif(not LIVE_URL, reason=SKIP_REASON)]

HANG_GUARD_S = 60.0




def throwaway_tenant(slug: str, *members: MemberConfig) -> TenantConfig:
    return TenantConfig(
        slug=slug,
        name="pbx-core live test",
        users=(
            UserConfig(
                extension="201",
                name="Live Tester",
                devices=(DeviceConfig(name="desk", kind="desk", secret=secrets.token_urlsafe(24)),),
            ),
        ),
        queues=(QueueConfig(name="support"),),
        members=members,
    )


async def member_penalties(ami: AmiClient, queue: str) -> dict[str, str]:
    """Asterisk's own list of the queue's members (QueueStatus): interface -> penalty."""
    items = await ami.listing({"Action": "QueueStatus", "Queue": queue})
    return {i["Location"]: i.get("Penalty", "") for i in items if i.get("Event") == "QueueMember"}


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


async def test_apply_check_members_rollback_and_remove(ami: AmiClient, config_dir: Path) -> None:
    slug = f"lt{secrets.token_hex(4)}"
    queue, endpoint, iface = f"{slug}-support", f"{slug}-201-desk", f"Local/201@{slug}-agents/n"
    config = throwaway_tenant(slug, MemberConfig(queue="support", extension="201", penalty=2))
    async with asyncio.timeout(HANG_GUARD_S):
        try:
            applied = await apply_tenant(ami, config_dir, config)
            assert applied.status == "ok", applied.error
            assert {"res_pjsip.so", "app_queue.so", "pbx_config.so"} <= set(applied.reloads)

            # Asterisk's own view, as an operator would ask for it.
            shown = (await cli(ami, f"pjsip show endpoint {endpoint}")).output
            assert f"Endpoint:  {endpoint}" in shown, shown
            assert f"{slug}-201-desk" in (await cli(ami, f"pjsip show endpoints like ^{slug}-")).output
            q = await cli(ami, f"queue show {queue}")
            assert q.output.startswith(f"{queue} has 0 calls"), q.output
            internal = await cli(ami, f"dialplan show {slug}-internal")
            assert internal.ok and f"[ Context '{slug}-internal' created by 'pbx_config' ]" in internal.output
            agents = await cli(ami, f"dialplan show {slug}-agents")
            assert agents.ok and "'201' =>" in agents.output, agents.output
            assert f"'{slug}-dids'" in (await cli(ami, "dialplan show pbx-dids")).output

            # Membership: added with the hint as state interface, which Asterisk must resolve.
            synced = await sync_members(ami, config)
            assert synced.ok and synced.added == [(queue, iface)], synced.errors
            items = await ami.listing({"Action": "QueueStatus", "Queue": queue})
            member = next(i for i in items if i.get("Event") == "QueueMember" and i.get("Location") == iface)
            assert member["StateInterface"] == f"hint:201@{slug}-internal"
            assert member["Penalty"] == "2" and member["Membership"] == "dynamic"
            # 4 is AST_DEVICE_INVALID: the hint did not resolve. An unregistered desk phone is 5.
            assert member["Status"] != "4", member
            again = await sync_members(ami, config)
            assert again.ok and not again.changed

            # A queues.conf Asterisk cannot parse at its first section: app_queue reads the included
            # file up to the bad line, destroys the queues after it and says "reloaded
            # successfully"; the applier must see the new queue missing and restore the files, and
            # the restored queue, which app_queue created anew without its dynamic members, must get
            # its member back from the database.
            before = snapshot(config_dir)
            bigger = config.model_copy(
                update={"queues": (QueueConfig(name="billing"), QueueConfig(name="support"))}
            )
            good = render_tenant(bigger)
            broken = dict(good)
            broken[f"{slug}/queues.conf"] = good[f"{slug}/queues.conf"].replace(
                f"[{slug}-billing]".encode(), f"[{slug}-billing".encode()
            )
            assert broken != good
            failed = await apply_tenant_with_members(ami, config_dir, bigger, rendered=broken)
            assert failed.files.status == "failed"
            error = failed.files.error
            assert error is not None and f"queue {slug}-billing" in error, error
            assert snapshot(config_dir) == before
            assert (await cli(ami, f"queue show {queue}")).output.startswith(f"{queue} has ")
            assert failed.members is not None and failed.members.ok, failed.members
            assert failed.members.skipped == [f"{slug}-billing"]
            # Asterisk lost the member (app_queue destroyed the queue and the rollback created it
            # anew); the apply put it back.
            assert failed.members.added == [(queue, iface)], failed.members
            assert await member_penalties(ami, queue) == {iface: "2"}

            await remove_member(ami, slug, "support", "201")
            assert await member_penalties(ami, queue) == {}
        finally:
            removed = await remove_tenant(ami, config_dir, slug)
        assert removed.status == "ok", removed.error
        assert not (config_dir / slug).exists()
        assert (await cli(ami, f"pjsip show endpoints like ^{slug}-")).output.startswith("No objects found")
        assert (await cli(ami, f"queue show {queue}")).output.startswith(f"No such queue: {queue}")
        assert not (await cli(ami, f"dialplan show {slug}-internal")).ok
