"""POST /tenants/{slug}/apply against the simulated Asterisk over real AMI (TCP): the files are
written where Asterisk includes them, the modules reloaded, the queue members synced; a refused
reload is a 502 with Asterisk's message and the previous files stay. Also /apply-runs, /config."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pbx_core.api import ApiContext
from pbx_core.simulator.server import SimulatedAsterisk
from tests.conftest import ROOT
from tests.integration.api.conftest import World, api_client, assert_error, auth

BASE_FILES = ("pjsip.conf", "queues.conf", "extensions.conf", "voicemail.conf")
TENANT_FILES = tuple(f"acme/{f}" for f in BASE_FILES)


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """A directory playing /etc/asterisk with the repository's base files."""
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    for name in BASE_FILES:
        shutil.copyfile(ROOT / "asterisk-config" / name, etc / name)
    return etc


@pytest.fixture
async def ast(etc: Path) -> AsyncIterator[SimulatedAsterisk]:
    async with SimulatedAsterisk(config_dir=etc) as server:
        yield server


@pytest.fixture
async def live(ctx: ApiContext, ast: SimulatedAsterisk, etc: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API with AMI configured: it applies to ``ast`` and writes under ``etc``."""
    async with api_client(ctx, ami_url=ast.url, asterisk_config_dir=etc / "pbx-core") as client:
        yield client


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


async def provision(client: httpx.AsyncClient, key: str, *, member: bool = True) -> None:
    h = auth(key)
    for path, body in (
        ("/tenants/acme/users/201", {"name": "Ann de Vries", "devices": [{"name": "desk", "kind": "desk"}]}),
        ("/tenants/acme/queues/support", {"strategy": "ringall"}),
        ("/tenants/acme/dids/+31201234567", {"destination": {"type": "queue", "target": "support"}}),
    ):
        r = await client.put(path, json=body, headers=h)
        assert r.status_code == 201, r.text
    if member:
        r = await client.put("/tenants/acme/queues/support/members/201", json={"penalty": 2}, headers=h)
        assert r.status_code == 201, r.text


async def test_apply_writes_reloads_and_syncs_members(
    live: httpx.AsyncClient, world: World, ast: SimulatedAsterisk, etc: Path
) -> None:
    await provision(live, world.admin, member=False)
    # The queue is not in Asterisk yet: a member added now is saved and pending the apply.
    early = await live.put(
        "/tenants/acme/queues/support/members/201", json={"penalty": 2}, headers=auth(world.admin)
    )
    assert early.status_code == 201 and early.json()["asterisk"] == "pending", early.text
    assert "acme-support" not in ast.queues

    r = await live.post("/tenants/acme/apply", headers=auth(world.admin))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert sorted(body["changed"]) == sorted([*TENANT_FILES, *BASE_FILES])
    assert body["reloads"] == ["res_pjsip.so", "app_voicemail.so", "app_queue.so", "pbx_config.so"]
    # The member saved while Asterisk refused it is made now.
    assert body["members"] == {
        "added": ["acme-support/Local/201@acme-agents/n"],
        "removed": [],
        "penalties": [],
        "errors": [],
    }
    assert ast.queues["acme-support"].strategy == "ringall"
    assert ast.queues["acme-support"].members["Local/201@acme-agents/n"].penalty == 2
    assert b"acme-201-desk" in (etc / "pbx-core" / "acme" / "pjsip.conf").read_bytes()

    again = await live.post("/tenants/acme/apply", headers=auth(world.admin))
    assert (
        again.status_code == 200 and again.json()["status"] == "unchanged" and again.json()["changed"] == []
    )

    runs = await live.get("/tenants/acme/apply-runs", headers=auth(world.supervisor))
    assert runs.status_code == 200
    assert [(x["status"], x["id"]) for x in runs.json()["items"]] == [
        ("unchanged", again.json()["run"]),
        ("ok", body["run"]),
    ]
    audit = await live.get("/tenants/acme/audit", headers=auth(world.admin))
    applies = [e for e in audit.json()["items"] if e["action"] == "apply"]
    assert [e["changes"]["status"] for e in applies] == ["unchanged", "ok"]


async def test_member_changes_reach_asterisk_at_once(
    live: httpx.AsyncClient, world: World, ast: SimulatedAsterisk
) -> None:
    await provision(live, world.admin, member=False)
    assert (await live.post("/tenants/acme/apply", headers=auth(world.admin))).status_code == 200
    iface = "Local/201@acme-agents/n"
    put = await live.put(
        "/tenants/acme/queues/support/members/201", json={"penalty": 1}, headers=auth(world.admin)
    )
    assert put.status_code == 201 and put.json()["asterisk"] == "updated", put.text
    member = ast.queues["acme-support"].members[iface]
    assert (member.penalty, member.name, member.state_interface) == (
        1,
        "Ann de Vries",
        "hint:201@acme-internal",
    )
    changed = await live.put(
        "/tenants/acme/queues/support/members/201", json={"penalty": 5}, headers=auth(world.admin)
    )
    assert changed.status_code == 200 and changed.json()["asterisk"] == "updated"
    assert ast.queues["acme-support"].members[iface].penalty == 5
    gone = await live.delete("/tenants/acme/queues/support/members/201", headers=auth(world.admin))
    assert gone.status_code == 200 and gone.json()["asterisk"] == "updated"
    assert iface not in ast.queues["acme-support"].members


async def test_refused_reload_is_502_and_keeps_the_previous_files(
    live: httpx.AsyncClient, world: World, ast: SimulatedAsterisk, etc: Path
) -> None:
    await provision(live, world.admin)
    assert (await live.post("/tenants/acme/apply", headers=auth(world.admin))).json()["status"] == "ok"
    before = snapshot(etc)
    r = await live.put("/tenants/acme/queues/support", json={"strategy": "linear"}, headers=auth(world.admin))
    assert r.status_code == 200
    ast.fail_next_reload("app_queue.so")

    failed = await live.post("/tenants/acme/apply", headers=auth(world.admin))

    error = assert_error(failed, 502, code="apply_failed")
    assert "app_queue.so" in error["message"] and "restored" in error["message"]
    assert snapshot(etc) == before  # byte for byte
    assert ast.queues["acme-support"].strategy == "ringall"
    runs = (await live.get("/tenants/acme/apply-runs", headers=auth(world.admin))).json()["items"]
    assert runs[0]["status"] == "failed" and "app_queue.so" in runs[0]["error"]
    assert runs[0]["changed"] == ["acme/queues.conf"]
    failed_only = await live.get(
        "/tenants/acme/apply-runs", params={"status": "failed"}, headers=auth(world.admin)
    )
    assert failed_only.json()["total"] == 1
    # The next try goes through.
    ok = await live.post("/tenants/acme/apply", headers=auth(world.admin))
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    assert ast.queues["acme-support"].strategy == "linear"


async def test_asterisk_refusing_the_login_is_502_and_nothing_is_written(
    ctx: ApiContext, world: World, ast: SimulatedAsterisk, etc: Path
) -> None:
    async with api_client(ctx, ami_url=ast.wrong_url(), asterisk_config_dir=etc / "pbx-core") as client:
        await provision(client, world.admin, member=False)
        error = assert_error(await client.post("/tenants/acme/apply", headers=auth(world.admin)), 502)
        assert "Asterisk" in error["message"]
    assert not (etc / "pbx-core").exists()


async def test_without_ami_files_are_written_and_members_pending(
    client: httpx.AsyncClient, world: World, ctx: ApiContext
) -> None:
    await provision(client, world.admin, member=False)
    put = await client.put("/tenants/acme/queues/support/members/201", json={}, headers=auth(world.admin))
    assert put.status_code == 201 and put.json()["asterisk"] == "pending" and "apply" in put.json()["note"]
    r = await client.post("/tenants/acme/apply", headers=auth(world.admin))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "written" and "not reloaded" in body["note"] and body["members"] is None
    assert (ctx.asterisk_config_dir / "acme" / "queues.conf").is_file()


async def test_config_preview_is_for_tenant_admins(client: httpx.AsyncClient, world: World) -> None:
    await provision(client, world.admin)
    r = await client.get("/tenants/acme/config", headers=auth(world.admin))
    assert r.status_code == 200
    files = r.json()
    assert sorted(files) == sorted(TENANT_FILES)
    user = (await client.get("/tenants/acme/users/201", headers=auth(world.admin))).json()
    assert user["devices"][0]["secret"] in files["acme/pjsip.conf"]
    assert "[acme-support]" in files["acme/queues.conf"]
    assert (await client.get("/tenants/acme/config", headers=auth(world.reseller_a))).status_code == 200
    assert_error(await client.get("/tenants/acme/config", headers=auth(world.supervisor)), 403)
    assert_error(await client.post("/tenants/acme/apply", headers=auth(world.supervisor)), 403)
    assert_error(await client.get("/tenants/acme/config", headers=auth(world.admin_b)), 404)


async def test_deleting_a_tenant_removes_it_from_asterisk(
    live: httpx.AsyncClient, world: World, ast: SimulatedAsterisk, etc: Path
) -> None:
    await provision(live, world.admin)
    assert (await live.post("/tenants/acme/apply", headers=auth(world.admin))).status_code == 200
    assert "acme-201-desk" in ast.config.loaded.endpoints and "acme-dids" in ast.config.loaded.contexts

    r = await live.delete("/tenants/acme", params={"force": "true"}, headers=auth(world.reseller_a))
    assert r.status_code == 204, r.text
    # Its files are gone, the index no longer includes it, and Asterisk reloaded without it.
    assert not (etc / "pbx-core" / "acme").exists()
    assert "acme" not in (etc / "pbx-core" / "extensions.conf").read_text()
    assert "acme-201-desk" not in ast.config.loaded.endpoints
    assert "acme-dids" not in ast.config.loaded.contexts


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                    reason="text-to-speech needs espeak-ng and sox (apt-get install espeak-ng sox)")
async def test_apply_speaks_the_menu_and_says_so_even_when_the_config_is_unchanged(
    ctx: ApiContext, ast: SimulatedAsterisk, etc: Path, world: World, tmp_path: Path
) -> None:
    sounds = tmp_path / "sounds"
    h = auth(world.admin)
    async with api_client(ctx, ami_url=ast.url, asterisk_config_dir=etc / "pbx-core",
                          asterisk_sounds_dir=sounds) as client:
        await provision(client, world.admin)
        menu = {"prompt": {"kind": "tts", "text": "Welkom bij Acme."},
                "options": {"1": {"type": "queue", "target": "support"}}}
        assert (await client.put("/tenants/acme/menus/main", json=menu, headers=h)).status_code == 201
        first = (await client.post("/tenants/acme/apply", headers=h)).json()
        assert first["status"] == "ok" and "tts/acme-main" in first["prompts"]["spoken"]
        assert (sounds / "tts" / "acme-main.wav").is_file()

        menu["prompt"]["text"] = "Goedemorgen, welkom bij Acme."
        r = await client.put("/tenants/acme/menus/main", json=menu, headers={**h, "If-Match": "*"})
        assert r.status_code == 200, r.text
        second = (await client.post("/tenants/acme/apply", headers=h)).json()
        # The dialplan plays the same sound name: the files are unchanged, the prompt is not.
        assert second["status"] == "unchanged"
        assert second["prompts"] == {"spoken": ["tts/acme-main"], "removed": []}
