"""Queue membership kept in sync over real AMI (TCP) with the simulated Asterisk: QueueStatus, then
QueueAdd / QueueRemove / QueuePenalty for the difference. The queues come from an applied tenant
configuration, and a second AMI session fed through the engine sees the member events."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions
from pbx_core.asterisk.apply import apply_tenant
from pbx_core.asterisk.members import MemberError, add_member, remove_member, sync_members
from pbx_core.asterisk.render import render_tenant
from pbx_core.asterisk.tenant_apply import apply_tenant_with_members
from pbx_core.ingest import Ingest
from pbx_core.provisioning.schemas import (
    DeviceConfig,
    MemberConfig,
    QueueConfig,
    TenantConfig,
    UserConfig,
)
from pbx_core.simulator.server import SimulatedAsterisk
from tests.conftest import ROOT, wait_until

HANG_GUARD_S = 30
OPTIONS = AmiOptions(resync_on_connect=False, ping_interval_s=5.0)
ANN = "Local/201@acme-agents/n"
BOB = "Local/202@acme-agents/n"


def tenant(*members: MemberConfig) -> TenantConfig:
    return TenantConfig(
        slug="acme",
        name="Acme BV",
        users=(
            UserConfig(
                extension="201",
                name="Ann; de Vries, [x]",  # separators never reach Asterisk's MemberName
                devices=(DeviceConfig(name="desk", kind="desk", secret="a" * 32),),
            ),
            UserConfig(
                extension="202",
                name="Bob",
                devices=(DeviceConfig(name="desk", kind="desk", secret="b" * 32),),
            ),
        ),
        queues=(QueueConfig(name="sales"), QueueConfig(name="support")),
        members=members,
    )


@pytest.fixture
async def ast(tmp_path: Path) -> AsyncIterator[SimulatedAsterisk]:
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    for name in ("pjsip.conf", "queues.conf", "extensions.conf", "voicemail.conf"):
        shutil.copyfile(ROOT / "asterisk-config" / name, etc / name)
    async with SimulatedAsterisk(config_dir=etc) as server:
        yield server


@pytest.fixture
async def ami(ast: SimulatedAsterisk) -> AsyncIterator[AmiClient]:
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, OPTIONS) as client:
        yield client


@pytest.fixture
async def applied(ast: SimulatedAsterisk, ami: AmiClient) -> SimulatedAsterisk:
    assert ast.config.root is not None
    result = await apply_tenant(ami, ast.config.root / "pbx-core", tenant())
    assert result.status == "ok", result.error
    return ast


class Engine:
    """A second AMI session (as the bridge has) whose events go through the queue engine."""

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.ingest = Ingest()

    def pump(self) -> None:
        while not self.client.events.empty():
            item = self.client.events.get_nowait()
            if isinstance(item, dict):
                self.ingest.frame(item)

    def members(self, queue: str) -> dict[str, int]:
        self.pump()
        q = self.ingest.state.queues.get(queue)
        return {} if q is None else {m.interface: m.penalty for m in q.members.values() if m.logged_in}


@pytest.fixture
async def engine(ast: SimulatedAsterisk) -> AsyncIterator[Engine]:
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, OPTIONS) as client:
        yield Engine(client)


async def status(ami: AmiClient, queue: str) -> dict[str, tuple[str, str, int]]:
    items = await ami.listing({"Action": "QueueStatus", "Queue": queue})
    return {
        i["Location"]: (i["Name"], i["StateInterface"], int(i["Penalty"]))
        for i in items
        if i.get("Event") == "QueueMember"
    }


async def test_sync_adds_removes_and_repenalises_the_difference(
    applied: SimulatedAsterisk, ami: AmiClient, engine: Engine
) -> None:
    first = await sync_members(ami, tenant(MemberConfig(queue="support", extension="201")))

    assert first.ok, first.errors
    assert first.added == [("acme-support", ANN)] and not first.removed and not first.penalties
    assert await status(ami, "acme-support") == {ANN: ("Ann de Vries x", "hint:201@acme-internal", 0)}
    assert await status(ami, "acme-sales") == {}
    await wait_until(lambda: engine.members("acme-support") == {ANN: 0}, "the engine sees Ann join support")

    second = await sync_members(
        ami,
        tenant(
            MemberConfig(queue="support", extension="202", penalty=3),
            MemberConfig(queue="sales", extension="201", penalty=1),
        ),
    )

    assert second.ok, second.errors
    assert sorted(second.added) == [("acme-sales", ANN), ("acme-support", BOB)]
    assert second.removed == [("acme-support", ANN)]
    assert await status(ami, "acme-support") == {BOB: ("Bob", "hint:202@acme-internal", 3)}
    assert {k: v[2] for k, v in (await status(ami, "acme-sales")).items()} == {ANN: 1}
    await wait_until(
        lambda: engine.members("acme-support") == {BOB: 3} and engine.members("acme-sales") == {ANN: 1},
        "the engine sees Ann move to sales and Bob join support",
    )

    third = await sync_members(
        ami,
        tenant(
            MemberConfig(queue="support", extension="202", penalty=3),
            MemberConfig(queue="sales", extension="201", penalty=4),
        ),
    )
    assert third.ok and third.penalties == [("acme-sales", ANN, 4)]
    assert not third.added and not third.removed
    assert (await status(ami, "acme-sales"))[ANN][2] == 4
    assert applied.queues["acme-sales"].members[ANN].penalty == 4

    again = await sync_members(
        ami,
        tenant(
            MemberConfig(queue="support", extension="202", penalty=3),
            MemberConfig(queue="sales", extension="201", penalty=4),
        ),
    )
    assert again.ok and not again.changed


async def test_sync_leaves_static_members_alone(applied: SimulatedAsterisk, ami: AmiClient) -> None:
    from pbx_core.simulator.world import SimMember

    applied.add_member("acme-support", SimMember("PJSIP/acme-999-desk", "static one", membership="static"))
    result = await sync_members(ami, tenant())
    assert result.ok and not result.removed
    assert "PJSIP/acme-999-desk" in applied.queues["acme-support"].members


async def test_one_change_at_a_time_is_idempotent(applied: SimulatedAsterisk, ami: AmiClient) -> None:
    config = tenant()
    member = MemberConfig(queue="support", extension="201", penalty=2)
    ann = config.users[0]

    await add_member(ami, "acme", member, ann)
    await add_member(ami, "acme", member.model_copy(update={"penalty": 5}), ann)  # "Already there"

    assert await status(ami, "acme-support") == {ANN: ("Ann de Vries x", "hint:201@acme-internal", 5)}
    await remove_member(ami, "acme", "support", "201")
    await remove_member(ami, "acme", "support", "201")  # "Not there"
    assert await status(ami, "acme-support") == {}


async def test_a_queue_asterisk_does_not_have_is_a_clear_error(
    ast: SimulatedAsterisk, ami: AmiClient
) -> None:
    config = tenant(MemberConfig(queue="support", extension="201"))
    with pytest.raises(MemberError, match="queue acme-support does not exist in Asterisk"):
        await add_member(ami, "acme", config.members[0], config.users[0])

    result = await sync_members(ami, config)

    assert not result.ok and not result.changed
    assert result.errors == [
        "queue acme-support does not exist in Asterisk; apply the tenant's configuration first"
    ]


# --------------------------------------------------------------------------- a rejected apply


def with_billing(config: TenantConfig) -> TenantConfig:
    return config.model_copy(update={"queues": (QueueConfig(name="billing"), *config.queues)})


def broken_queues_conf(config: TenantConfig) -> dict[str, bytes]:
    """The tenant's files with a queues.conf Asterisk cannot parse at its first section header,
    ``[acme-billing`` (sections are sorted: billing comes first), so every queue after it is lost."""
    files = dict(render_tenant(config))
    files["acme/queues.conf"] = files["acme/queues.conf"].replace(b"[acme-billing]", b"[acme-billing")
    assert files["acme/queues.conf"] != render_tenant(config)["acme/queues.conf"]
    return files


async def test_a_queues_conf_asterisk_rejects_loses_the_queues_after_the_bad_line(
    applied: SimulatedAsterisk, ami: AmiClient
) -> None:
    """The simulator behaves as app_queue does: the included file is read up to its bad line and
    the queues after it are destroyed; the rollback's reload creates them again, empty."""
    config = tenant(MemberConfig(queue="support", extension="201"),
                    MemberConfig(queue="sales", extension="202"))
    assert (await sync_members(ami, config)).added
    assert applied.config.root is not None
    gen = applied.config.root / "pbx-core"

    bigger = with_billing(config)
    result = await apply_tenant(ami, gen, bigger, rendered=broken_queues_conf(bigger))

    assert result.status == "failed" and "queue acme-billing" in (result.error or "")
    assert any("no closing ']'" in e for e in applied.config.errors)
    # The queues are back (the restored files were reloaded) but their dynamic members are not.
    assert await status(ami, "acme-support") == {}
    assert await status(ami, "acme-sales") == {}


async def test_after_a_rolled_back_apply_the_members_equal_the_database_again(
    applied: SimulatedAsterisk, ami: AmiClient
) -> None:
    config = tenant(MemberConfig(queue="support", extension="201", penalty=3),
                    MemberConfig(queue="sales", extension="202"))
    assert (await sync_members(ami, config)).ok
    assert applied.config.root is not None
    gen = applied.config.root / "pbx-core"
    bigger = with_billing(config).model_copy(
        update={"members": (*config.members, MemberConfig(queue="billing", extension="201"))}
    )

    applied_result = await apply_tenant_with_members(ami, gen, bigger, rendered=broken_queues_conf(bigger))

    assert applied_result.files.status == "failed"
    members = applied_result.members
    assert members is not None
    assert members.ok, members.errors
    # billing was never created (the apply was refused): skipped, not a member error.
    assert members.skipped == ["acme-billing"]
    assert sorted(members.added) == [("acme-sales", BOB), ("acme-support", ANN)]
    assert await status(ami, "acme-support") == {ANN: ("Ann de Vries x", "hint:201@acme-internal", 3)}
    assert await status(ami, "acme-sales") == {BOB: ("Bob", "hint:202@acme-internal", 0)}


async def test_a_good_apply_through_the_same_path_syncs_members_and_reports_missing_queues(
    applied: SimulatedAsterisk, ami: AmiClient
) -> None:
    config = tenant(MemberConfig(queue="support", extension="201"))
    assert applied.config.root is not None
    gen = applied.config.root / "pbx-core"

    first = await apply_tenant_with_members(ami, gen, config)
    again = await apply_tenant_with_members(ami, gen, config)

    assert first.ok and first.files.status == "unchanged"
    assert first.members is not None and first.members.added == [("acme-support", ANN)]
    assert again.ok and again.members is not None and not again.members.changed
    assert (await apply_tenant_with_members(None, gen, config)).members is None
