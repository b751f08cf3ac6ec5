"""Real-browser end-to-end fixtures: a wallboard server, the real engine, and headless Chromium.

The page under test is the real ``wallboard/`` directory, served by the real ``pbx_core.web``
app reading a real (private) Redis bus that ``BusPublisher`` fills with real engine output: the
recorded Asterisk 22 streams go through ``pbx_core.ingest.Ingest``, delta by delta, so a test
can stop at "caller joined" and look at the page. A TCP relay in front lets a test cut sockets.

``PBX_E2E_SERVER=hub`` runs the same tests against ``TestHub`` below instead: a minimal server
speaking the wallboard protocol, for telling a UI bug from a server bug.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from pbx_core.ami.framing import FrameDecoder
from pbx_core.domain.board import Board, apply_delta, delta_dict, empty_board
from pbx_core.domain.queue_state import Delta
from pbx_core.ingest import Ingest
from tests.conftest import ROOT, fixture_bytes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WALLBOARD_DIR = ROOT / "wallboard"
ARTIFACTS = ROOT / "test-artifacts"
TENANT = "t1"
TOKEN = "e2e-token-t1"
# Hang guard for server start/stop only; never a measurement.
GUARD_S = 20


class WallboardServer(Protocol):
    """What the browser tests need from a wallboard server."""

    base_url: str
    token: str
    board: Board  # the server's current board of the token's tenant

    async def publish(self, deltas: list[Delta]) -> None:
        """Make the server's clients receive these engine deltas (in order)."""

    async def drop_clients(self) -> None:
        """Cut every open wallboard socket, as a restart or network blip would."""


# --------------------------------------------------------------------------- test hub


class TestHub:
    """A one-tenant wallboard hub with the real protocol, for the page under test."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, tenant: str, token: str, thresholds: dict[str, Any] | None = None) -> None:
        self.tenant = tenant
        self.token = token
        self.thresholds = thresholds or {}
        self.board: Board = empty_board(tenant)
        self.seq = 0
        self.clock = 0.0  # engine time of the latest delta: the page's waits tick from it
        self.clients: dict[WebSocket, asyncio.Queue[str]] = {}
        self.base_url = ""

    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "snapshot",
            "seq": self.seq,
            "tenant": self.tenant,
            "board": self.board,
            "thresholds": self.thresholds,
            "server_time": self.clock,
            "pbx_time": self.clock,
        }

    async def publish(self, deltas: list[Delta]) -> None:
        for delta in deltas:
            d = delta_dict(delta)
            if d["tenant"] != self.tenant:
                continue
            self.seq += 1
            self.clock = max(self.clock, d["ts"])
            # Serialise before apply_delta: the board keeps a queue.resynced delta's data as the
            # queue itself and later deltas mutate it, which would corrupt a queued message.
            text = json.dumps({"type": "delta", "seq": self.seq, "delta": d, "server_time": self.clock,
                               "pbx_time": self.clock})
            apply_delta(self.board, d)
            for queue in self.clients.values():
                queue.put_nowait(text)
        await asyncio.sleep(0)  # let the senders run

    async def drop_clients(self) -> None:
        for ws in list(self.clients):
            with suppress(Exception):
                await ws.close(code=1012)

    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept()
        if ws.query_params.get("token") != self.token:
            # Accept first: a close before accept reaches the browser as 1006, not 4401.
            await ws.close(code=4401)
            return
        queue: asyncio.Queue[str] = asyncio.Queue()
        # Snapshot and registration with no await in between: no delta can fall in the gap.
        queue.put_nowait(json.dumps(self.snapshot()))
        self.clients[ws] = queue
        sender = asyncio.create_task(self._send(ws, queue))
        try:
            while True:
                msg = json.loads(await ws.receive_text())
                if msg.get("type") == "resync":
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(json.dumps(self.snapshot()))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.clients.pop(ws, None)
            sender.cancel()
            with suppress(asyncio.CancelledError):
                await sender

    @staticmethod
    async def _send(ws: WebSocket, queue: asyncio.Queue[str]) -> None:
        with suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await ws.send_text(await queue.get())

    def app(self) -> Starlette:
        return Starlette(routes=[
            WebSocketRoute("/ws/wallboard", self.endpoint),
            Mount("/", StaticFiles(directory=WALLBOARD_DIR, html=True)),
        ])  # fmt: skip


@asynccontextmanager
async def serve_test_hub(thresholds: dict[str, Any] | None = None) -> AsyncIterator[TestHub]:
    hub = TestHub(TENANT, TOKEN, thresholds)
    config = uvicorn.Config(
        hub.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off",
        ws="websockets-sansio", ws_per_message_deflate=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(GUARD_S):
        while not server.started:
            if task.done():
                task.result()  # surfaces the start-up error
            await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    hub.base_url = f"http://127.0.0.1:{port}"
    try:
        yield hub
    finally:
        await hub.drop_clients()
        server.should_exit = True
        async with asyncio.timeout(GUARD_S):
            await task


class RealApp:
    """``pbx_core.web``'s app behind a real Redis bus: deltas go Engine → BusPublisher → Redis
    Streams → the app's hub → the browser. A TCP relay in front of it lets a test cut every
    socket (``drop_clients``) without touching the app's internals."""

    def __init__(self, publisher: Any, tenant: str, token: str) -> None:
        self.publisher = publisher
        self.tenant = tenant
        self.token = token
        self.base_url = ""
        self.links: set[asyncio.StreamWriter] = set()

    @property
    def board(self) -> Board:
        return self.publisher.boards().get(self.tenant, empty_board(self.tenant))

    async def publish(self, deltas: list[Delta]) -> None:
        await self.publisher.publish(deltas)
        await self.publisher.flush()

    async def drop_clients(self) -> None:
        for writer in list(self.links):
            writer.close()

    async def relay(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        self.links.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            for w in (writer, up_writer):
                w.close()
                self.links.discard(w)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@asynccontextmanager
async def serve_real_app(thresholds: dict[str, Any] | None = None) -> AsyncIterator[RealApp]:
    from pbx_core.bus import BusPublisher, EmbeddedRedis
    from pbx_core.web import StaticTokens, create_app, serving

    async with EmbeddedRedis() as redis:
        publisher = BusPublisher(redis.url)
        await publisher.start()
        app = create_app(
            verifier=StaticTokens.parse(f"{TOKEN}={TENANT}"), redis_url=redis.url,
            thresholds=lambda tenant: thresholds or {}, wallboard_dir=WALLBOARD_DIR,
        )  # fmt: skip
        server = RealApp(publisher, TENANT, TOKEN)
        try:
            async with serving(app) as upstream:
                port = int(upstream.rsplit(":", 1)[1])
                relay = await asyncio.start_server(
                    lambda r, w: server.relay(port, r, w), "127.0.0.1", 0
                )  # fmt: skip
                server.base_url = f"http://127.0.0.1:{relay.sockets[0].getsockname()[1]}"
                try:
                    yield server
                finally:
                    await server.drop_clients()
                    relay.close()
        finally:
            await publisher.close()


# The browser tests run against the real app; PBX_E2E_SERVER=hub swaps in the minimal test hub.
serve_wallboard = serve_test_hub if os.environ.get("PBX_E2E_SERVER") == "hub" else serve_real_app


@pytest.fixture
async def wallboard_server() -> AsyncIterator[WallboardServer]:
    async with serve_wallboard() as server:
        yield server


def page_url(server: WallboardServer, token: str | None = None, **params: str) -> str:
    return f"{server.base_url}/?{urlencode({'token': token or server.token, **params})}"


# --------------------------------------------------------------------------- engine


class Recording:
    """The recorded Asterisk streams, fed frame by frame through one real ``Ingest``, so a test
    can stop at the moment it wants to look at (``feed_until``) and publish exactly that."""

    def __init__(self, *names: str) -> None:
        self.ingest = Ingest()
        self.frames = []
        for name in names:
            # One decoder per file: each recording starts with its own AMI banner and login.
            self.frames.extend(FrameDecoder().feed(fixture_bytes(name)))
        self.pos = 0

    def feed_until(self, done: Callable[[Delta], bool] | None = None) -> list[Delta]:
        """Deltas up to and including the first one ``done`` accepts; all the rest if None."""
        out: list[Delta] = []
        while self.pos < len(self.frames):
            deltas = self.ingest.frame(self.frames[self.pos])
            self.pos += 1
            out.extend(deltas)
            if done is not None and any(done(d) for d in deltas):
                return out
        if done is not None:
            raise AssertionError("the recording ended before the awaited delta")
        return out


# --------------------------------------------------------------------------- browser


def chromium_or_skip() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's Chromium "
            "(apt-get install -y --no-install-recommends chromium) to run the browser tests"
        )
    return CHROMIUM


@pytest.fixture
def artifacts() -> Iterator[Path]:
    ARTIFACTS.mkdir(exist_ok=True)
    yield ARTIFACTS


BrowserFactory = Callable[..., Any]


@pytest.fixture
async def browser_context(tmp_path: Path) -> AsyncIterator[BrowserFactory]:
    """Factory for headless Chromium contexts, each with a fresh user-data-dir:
    ``ctx = await browser_context(locale="nl-NL", viewport={...})``."""
    chromium = chromium_or_skip()
    from playwright.async_api import async_playwright

    contexts: list[Any] = []
    async with async_playwright() as pw:

        async def open_context(locale: str = "en-GB", **kwargs: Any) -> Any:
            profile = tmp_path / f"profile-{len(contexts)}"
            ctx = await pw.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(chromium),
                args=CHROMIUM_ARGS,
                headless=True,
                locale=locale,
                timezone_id="Europe/Amsterdam",
                **kwargs,
            )
            ctx.set_default_timeout(15000)  # hang guard for every wait
            contexts.append(ctx)
            return ctx

        try:
            yield open_context
        finally:
            for ctx in contexts:
                with suppress(Exception):
                    await ctx.close()
            for i in range(len(contexts)):
                shutil.rmtree(tmp_path / f"profile-{i}", ignore_errors=True)
