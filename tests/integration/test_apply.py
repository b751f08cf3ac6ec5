"""Applying rendered tenant configuration over real AMI (TCP) to the simulated Asterisk, which reads
the files from its own config directory on ``module reload`` exactly as Asterisk includes them:
the repository's base files (asterisk-config/*.conf) ``#tryinclude`` the generated ``pbx-core/``."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx_core.ami.client import AmiClient, AmiOptions
from pbx_core.asterisk.apply import (
    apply_files,
    apply_tenant,
    cli,
    present_slugs,
    remove_tenant,
    tenant_checks,
)
from pbx_core.asterisk.render import render_tenant
from pbx_core.provisioning import db
from pbx_core.provisioning.models import Device, Queue, QueueMember, User
from pbx_core.provisioning.schemas import (
    DeviceConfig,
    MemberConfig,
    QueueConfig,
    QueueIn,
    TenantConfig,
    UserConfig,
)
from pbx_core.simulator.server import SimulatedAsterisk
from tests.conftest import ROOT
from tests.integration.cli_runner import PBX_CORE
from tests.integration.databases import new_tenant

HANG_GUARD_S = 30
OPTIONS = AmiOptions(resync_on_connect=False, event_filter=False, ping_interval_s=5.0)
BASE_FILES = ("pjsip.conf", "queues.conf", "extensions.conf", "voicemail.conf")


def tenant(slug: str = "acme", *, queues: tuple[str, ...] = ("support", "sales"), strategy: str = "rrmemory"):
    return TenantConfig(
        slug=slug,
        name="Acme BV",
        users=(
            UserConfig(
                extension="201",
                name="Ann de Vries",
                devices=(
                    DeviceConfig(name="desk", kind="desk", secret="a" * 32),
                    DeviceConfig(name="soft", kind="softphone", secret="b" * 32),
                ),
            ),
            UserConfig(
                extension="202",
                name="Bob",
                devices=(DeviceConfig(name="desk", kind="desk", secret="c" * 32),),
            ),
        ),
        queues=tuple(QueueConfig(name=q, strategy=strategy) for q in queues),
        members=(MemberConfig(queue=queues[0], extension="201"),),
    )


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """A directory playing /etc/asterisk, with the repository's base files."""
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    for name in BASE_FILES:
        source = ROOT / "asterisk-config" / name
        assert source.is_file(), f"base file {source} is missing"
        shutil.copyfile(source, etc / name)
    return etc


@pytest.fixture
async def ast(etc: Path) -> AsyncIterator[SimulatedAsterisk]:
    async with SimulatedAsterisk(config_dir=etc) as server:
        yield server


@pytest.fixture
async def ami(ast: SimulatedAsterisk) -> AsyncIterator[AmiClient]:
    async with asyncio.timeout(HANG_GUARD_S), AmiClient(ast.url, OPTIONS) as client:
        yield client


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def reload_commands(ast: SimulatedAsterisk) -> list[str]:
    return [
        a["Command"]
        for s in ast.sessions
        for a in s.actions
        if a.get("Action") == "Command" and a["Command"].startswith("module reload")
    ]


async def test_the_simulator_answers_command_and_reload_as_asterisk_22_does(
    ast: SimulatedAsterisk, ami: AmiClient
) -> None:
    """Shapes the applier relies on: Command output as ``Output:`` lines (joined by the parser),
    ``Response: Error`` for a failing CLI command, and the Reload action's replies."""
    ok = await ami.action({"Action": "Command", "Command": "module reload app_queue.so"})
    assert (ok["Response"], ok["Message"]) == ("Success", "Command output follows")
    assert ok["Output"] == "Module 'app_queue.so' reloaded successfully."
    two = await ami.action({"Action": "Command", "Command": "module reload res_pjsip.so nonesuch.so"})
    assert two["Output"].split("\n") == [
        "Module 'res_pjsip.so' reloaded successfully.",
        "No such module 'nonesuch.so'",
    ]
    bad = await ami.action({"Action": "Command", "Command": "frobnicate now"}, check=False)
    assert bad["Response"] == "Error"
    hint = "(type 'core show help frobnicate now' for other possible commands)"
    assert bad["Output"] == f"No such command 'frobnicate now' {hint}"
    reloaded = await ami.action({"Action": "Reload", "Module": "pbx_config.so"})
    assert reloaded["Message"] == "Module Reloaded"
    unknown = await ami.action({"Action": "Reload", "Module": "nonesuch.so"}, check=False)
    assert (unknown["Response"], unknown["Message"]) == ("Error", "No such module")
    ast.fail_next_reload()
    refused = await ami.action({"Action": "Command", "Command": "module reload pbx_config.so"})
    assert refused["Output"] == "The module 'pbx_config.so' reported a reload failure"


async def test_first_apply_writes_files_reloads_and_asterisk_shows_the_tenant(
    ast: SimulatedAsterisk, ami: AmiClient, etc: Path
) -> None:
    gen = etc / "pbx-core"
    config = tenant()
    assert "acme-support" not in ast.queues

    result = await apply_tenant(ami, gen, config)

    assert result.status == "ok", result.error
    assert result.reloads == ["res_pjsip.so", "app_voicemail.so", "app_queue.so", "pbx_config.so"]
    assert reload_commands(ast) == [f"module reload {m}" for m in result.reloads]
    assert sorted(result.changed) == sorted([*(f"acme/{f}" for f in BASE_FILES), *BASE_FILES])
    # On disk: exactly the rendered bytes, and the index includes the tenant.
    for rel, data in render_tenant(config).items():
        assert (gen / rel).read_bytes() == data
    assert b"#include pbx-core/acme/queues.conf" in (gen / "queues.conf").read_bytes()
    assert present_slugs(gen) == ["acme"]
    # What Asterisk shows, asked through AMI like an operator would.
    endpoints = (await cli(ami, "pjsip show endpoints")).output
    for name in ("acme-201-desk", "acme-201-soft", "acme-202-desk"):
        assert f" Endpoint:  {name}" in endpoints
    shown = await cli(ami, "queue show acme-support")
    assert shown.ok and shown.output.startswith("acme-support has 0 calls")
    assert "'rrmemory' strategy" in shown.output
    context = await cli(ami, "dialplan show acme-internal")
    assert context.ok and "[ Context 'acme-internal' created by 'pbx_config' ]" in context.output
    assert (await cli(ami, "dialplan show pbx-dids")).output.count("'acme-dids'") == 1
    # The queues exist for QueueAdd/QueueStatus.
    assert {"acme-support", "acme-sales"} <= set(ast.queues)
    items = await ami.listing({"Action": "QueueStatus", "Queue": "acme-sales"})
    assert [i["Event"] for i in items] == ["QueueParams"]


async def test_second_apply_of_the_same_config_is_unchanged_without_reloads(
    ast: SimulatedAsterisk, ami: AmiClient, etc: Path
) -> None:
    gen = etc / "pbx-core"
    assert (await apply_tenant(ami, gen, tenant())).status == "ok"
    before = snapshot(gen)
    reloads = len(reload_commands(ast))

    again = await apply_tenant(ami, gen, tenant())

    assert (again.status, again.changed, again.reloads, again.error) == ("unchanged", [], [], None)
    assert len(reload_commands(ast)) == reloads
    assert snapshot(gen) == before


async def test_changing_only_a_queue_reloads_only_app_queue(
    ast: SimulatedAsterisk, ami: AmiClient, etc: Path
) -> None:
    gen = etc / "pbx-core"
    assert (await apply_tenant(ami, gen, tenant())).status == "ok"
    reloads = len(reload_commands(ast))

    result = await apply_tenant(ami, gen, tenant(strategy="ringall"))

    assert result.status == "ok", result.error
    assert result.changed == ["acme/queues.conf"]
    assert result.reloads == ["app_queue.so"]
    assert reload_commands(ast)[reloads:] == ["module reload app_queue.so"]
    assert "'ringall' strategy" in (await cli(ami, "queue show acme-support")).output
    assert ast.queues["acme-support"].strategy == "ringall"


async def test_a_failed_reload_restores_the_previous_files_byte_for_byte(
    ast: SimulatedAsterisk, ami: AmiClient, etc: Path
) -> None:
    gen = etc / "pbx-core"
    assert (await apply_tenant(ami, gen, tenant())).status == "ok"
    before = snapshot(gen)
    ast.fail_next_reload("app_queue.so")

    result = await apply_tenant(ami, gen, tenant(queues=("support", "sales", "billing")))

    assert result.status == "failed"
    assert result.error is not None
    assert "module reload app_queue.so" in result.error
    assert "The module 'app_queue.so' reported a reload failure" in result.error
    assert "restored" in result.error
    assert snapshot(gen) == before
    # Asterisk was given the restored files again and still has the old queues, not the new one.
    assert result.reloads == ["app_queue.so"]  # pbx_config never saw the new files
    assert reload_commands(ast)[-2:] == ["module reload app_queue.so"] * 2
    assert (await cli(ami, "queue show acme-billing")).output == "No such queue: acme-billing."
    assert "acme-sales" in ast.queues


async def test_a_file_asterisk_cannot_parse_is_caught_by_the_object_check_and_rolled_back(
    ast: SimulatedAsterisk, ami: AmiClient, etc: Path
) -> None:
    """app_queue reports a reload of an unparseable queues.conf as a success and keeps its old
    queues; only asking for the queue shows the new file was not taken."""
    gen = etc / "pbx-core"
    assert (await apply_tenant(ami, gen, tenant())).status == "ok"
    before = snapshot(gen)
    files = dict(render_tenant(tenant(queues=("support", "sales", "billing"))))
    files["acme/queues.conf"] = files["acme/queues.conf"].replace(b"[acme-billing]", b"[acme-billing")
    good = render_tenant(tenant(queues=("support", "sales", "billing")))
    result = await apply_files(ami, gen, files, checks=tenant_checks("acme", good))

    assert result.status == "failed"
    assert result.error is not None and "queue acme-billing" in result.error
    assert "No such queue: acme-billing." in result.error
    assert snapshot(gen) == before
    assert any("no closing ']'" in e for e in ast.config.errors)


async def test_a_dialplan_syntax_error_in_a_tenant_file_loses_the_contexts_after_it(
    ast: SimulatedAsterisk, ami: AmiClient, etc: Path
) -> None:
    """As Asterisk does with an ``#include``d file: pbx_config reads it up to the bad line, drops
    the rest and reports the reload as a success; asking for the contexts shows what was lost."""
    gen = etc / "pbx-core"
    assert (await apply_tenant(ami, gen, tenant())).status == "ok"
    before = snapshot(gen)
    good = render_tenant(tenant())
    files = dict(good)
    files["acme/extensions.conf"] = good["acme/extensions.conf"].replace(b"[acme-agents]", b"[acme-agents")

    result = await apply_files(ami, gen, files, checks=tenant_checks("acme", good))

    assert result.status == "failed"
    assert result.reloads == ["pbx_config.so"]
    assert result.error is not None and "dialplan context acme-agents" in result.error
    assert snapshot(gen) == before
    assert (await cli(ami, "dialplan show acme-agents")).ok  # the restored dialplan is loaded again
    assert any("no closing ']', line" in e and "acme/extensions.conf" in e for e in ast.config.errors)


async def test_a_top_level_file_asterisk_cannot_parse_fails_the_pbx_config_reload(
    ast: SimulatedAsterisk, ami: AmiClient, etc: Path
) -> None:
    gen = etc / "pbx-core"
    assert (await apply_tenant(ami, gen, tenant())).status == "ok"
    (etc / "extensions.conf").write_bytes((etc / "extensions.conf").read_bytes() + b"\n[broken\n")

    reloaded = await cli(ami, "module reload pbx_config.so")

    assert reloaded.output == "The module 'pbx_config.so' reported a reload failure"
    assert (await cli(ami, "dialplan show acme-internal")).ok  # the old dialplan is still loaded


async def test_without_ami_files_are_written_and_the_result_says_so(etc: Path) -> None:
    gen = etc / "pbx-core"
    result = await apply_tenant(None, gen, tenant())
    assert result.status == "written"
    assert result.note is not None and "not reloaded" in result.note
    assert result.reloads == []
    assert present_slugs(gen) == ["acme"]


async def test_two_tenants_share_the_index_and_removing_one_keeps_the_other(
    ast: SimulatedAsterisk, ami: AmiClient, etc: Path
) -> None:
    gen = etc / "pbx-core"
    assert (await apply_tenant(ami, gen, tenant("acme"))).status == "ok"
    second = await apply_tenant(ami, gen, tenant("beta"))
    assert second.status == "ok", second.error
    assert present_slugs(gen) == ["acme", "beta"]
    index = (gen / "extensions.conf").read_text()
    assert index.index("pbx-core/acme/") < index.index("pbx-core/beta/")
    assert {"acme-support", "beta-support"} <= set(ast.queues)

    removed = await remove_tenant(ami, gen, "acme")

    assert removed.status == "ok", removed.error
    assert not (gen / "acme").exists()
    assert present_slugs(gen) == ["beta"]
    assert "acme" not in (gen / "pjsip.conf").read_text()
    assert (await cli(ami, "pjsip show endpoints like ^acme-")).output.startswith("No objects found.")
    assert (await cli(ami, "queue show acme-support")).output == "No such queue: acme-support."
    assert not (await cli(ami, "dialplan show acme-internal")).ok
    assert " Endpoint:  beta-201-desk" in (await cli(ami, "pjsip show endpoints")).output
    assert "beta-support" in ast.queues


# --------------------------------------------------------------------------- the CLI


async def seed_database(url: str) -> None:
    await db.upgrade(url)
    async with db.open_sessions(url) as sessions, sessions() as session, session.begin():
        acme = await new_tenant(session)
        ann = User(tenant_id=acme.id, extension="201", name="Ann de Vries", role="agent")
        session.add(ann)
        await session.flush()
        session.add(Device(user_id=ann.id, name="desk", kind="desk", secret="d" * 32))
        support = Queue(tenant_id=acme.id, name="support", settings=QueueIn().model_dump(mode="json"))
        session.add(support)
        await session.flush()
        session.add(QueueMember(queue_id=support.id, user_id=ann.id, penalty=1))


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """The installed console script as a subprocess, while this loop keeps serving the simulator."""
    proc = await asyncio.create_subprocess_exec(
        str(PBX_CORE), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_renders_and_applies_a_tenant_from_the_database(
    ast: SimulatedAsterisk, etc: Path, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pbx.db'}"
    await seed_database(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    env |= {"PBX_DATABASE_URL": url, "PBX_ASTERISK_CONFIG_DIR": str(etc / "pbx-core")}

    code, out, err = await run_cli("asterisk", "render", "--tenant", "acme", env=env)
    assert code == 0, err
    assert "==> acme/pjsip.conf <==" in out and "[acme-201-desk]" in out
    assert not (etc / "pbx-core").exists()  # render only shows

    code, out, err = await run_cli("asterisk", "apply", "--tenant", "acme", env=env)
    assert code == 2 and "PBX_AMI_URL is not set" in err

    code, out, err = await run_cli("asterisk", "apply", "--all", env=env | {"PBX_AMI_URL": ast.url_text})
    assert code == 0, err
    assert out.startswith("acme: ok; changed ")
    assert "reloaded res_pjsip.so, app_voicemail.so, app_queue.so, pbx_config.so" in out
    assert "members +1 -0 ~0" in out
    assert present_slugs(etc / "pbx-core") == ["acme"]
    member = ast.queues["acme-support"].members["Local/201@acme-agents/n"]
    assert (member.name, member.penalty) == ("Ann de Vries", 1)

    code, out, err = await run_cli(
        "asterisk", "apply", "--tenant", "acme", env=env | {"PBX_AMI_URL": ast.url_text}
    )
    assert (code, out.strip()) == (0, "acme: unchanged; members +0 -0 ~0"), err

    code, out, err = await run_cli(
        "asterisk", "apply", "--tenant", "nope", env=env | {"PBX_AMI_URL": ast.url_text}
    )
    assert code == 1 and "no tenant 'nope'" in err
