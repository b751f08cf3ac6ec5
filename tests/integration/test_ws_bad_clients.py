"""Clients that leave abruptly or send garbage cost a bounded number of log lines and never a
traceback (issue 11, item 13: 2,000 early closes were 2,000 tracebacks, 8.8 MB of log).

Real TCP against the real app: the wallboard's API-key verifier over a real (SQLite) database,
so a refusal's close really races the client's departure, and uvicorn's own websocket protocol
decodes the frames. The log is captured from the root logger and uvicorn's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pbx_core.bus import EmbeddedRedis
from pbx_core.config import Settings
from pbx_core.provisioning.db import upgrade
from pbx_core.provisioning.keys import create_reseller_key
from pbx_core.web import create_app, serving
from pbx_core.web.hub import Hub
from pbx_core.web.provisioning import provisioning
from pbx_core.web.ratelog import BAD_CLIENTS
from pbx_core.web.server import CLIENT_FRAME_MAX
from tests import conftest

GUARD_S = 60  # hang guard only
ABRUPT = 200
UPGRADE = (
    "GET /ws/wallboard?token={token} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.extend(self.format(record).splitlines())  # a traceback's lines count too


@contextlib.contextmanager
def captured_log() -> Iterator[Captured]:
    handler = Captured()
    root, uvicorn_log = logging.getLogger(), logging.getLogger("uvicorn")  # uvicorn's do not propagate
    old_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    uvicorn_log.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        uvicorn_log.removeHandler(handler)
        root.setLevel(old_level)


@contextlib.asynccontextmanager
async def web(tmp_path: Path) -> AsyncIterator[tuple[str, str, Hub]]:
    """The web app over a real database; yields (http base, a valid wallboard key, hub)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'pbx.db'}"
    await upgrade(url)
    settings = Settings.from_env({"PBX_DATABASE_URL": url})
    async with EmbeddedRedis() as redis, provisioning(settings, database_url=url) as prov:
        async with prov.sessions() as session:
            reseller = await create_reseller_key(session, "Reseller", "main")
            await session.commit()
        app = create_app(verifier=prov.verifier, redis_url=redis.url, extra_routes=prov.routes)
        async with serving(app) as http:
            import httpx

            headers = {"Authorization": f"Bearer {reseller}"}
            async with httpx.AsyncClient(base_url=f"{http}/api/v1", headers=headers) as api:
                assert (await api.post("/tenants", json={"slug": "t1", "name": "T1"})).status_code == 201
                r = await api.post("/tenants/t1/api-keys", json={"name": "wall", "role": "supervisor"})
                assert r.status_code == 201, r.text
            yield http, r.json()["key"], app.state.hub


async def abrupt(http: str, token: str, rng: random.Random) -> None:
    """Upgrade, read the 101, then vanish (no close frame) at once or a moment later."""
    host, port = http.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(UPGRADE.format(token=token).encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    if rng.random() < 0.5:
        await asyncio.sleep(rng.random() * 0.02)
    writer.transport.abort()


async def bad_frame(ws_url: str, frame: str | bytes, text: bool) -> int | None:
    """Send a bad frame (three times where the socket stays open); the close code the server
    sent, if it closed the socket itself."""
    async with connect(ws_url, proxy=None, open_timeout=GUARD_S) as ws:
        for _ in range(3):  # several bad frames from one client: still one line for it
            await ws.send(frame, text=text)
            if (text and isinstance(frame, bytes)) or len(frame) > CLIENT_FRAME_MAX:
                with contextlib.suppress(ConnectionClosed):  # the server closes at the first
                    async with asyncio.timeout(GUARD_S):
                        while True:
                            await ws.recv()
                return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None
        with contextlib.suppress(Exception):
            await ws.close()
    return None


async def test_abrupt_clients_and_bad_frames_log_no_traceback_and_a_bounded_number_of_lines(
    tmp_path: Path,
) -> None:
    rng = random.Random(11)
    async with web(tmp_path) as (http, key, hub):
        ws_url = http.replace("http://", "ws://") + "/ws/wallboard?token=" + key
        before = BAD_CLIENTS.total
        with captured_log() as log:
            # Half with unknown keys (refused: the close races the departure), half valid.
            tokens = [key if i % 2 else f"pbx_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
                      for i in range(ABRUPT)]
            await asyncio.gather(*(abrupt(http, t, rng) for t in tokens))
            bad: list[tuple[str | bytes, bool]] = [
                ("[" * 20_000 + "]" * 20_000, True),  # nested past the JSON parser's depth
                (json.dumps({"a": 1})[:-1], True),  # truncated JSON
                ("[1, 2]", True),  # JSON, but not an object
                (b"\xff\xfe\xfd", True),  # a text frame that is not UTF-8
                (b"\x00\x01binary", False),
            ] * 6
            # Past the frame limit: closed (1009) before it is parsed, with no line at all.
            assert await bad_frame(ws_url, "x" * (CLIENT_FRAME_MAX + 1), True) == 1009
            assert await bad_frame(ws_url, b"\xff", True) == 1007
            await asyncio.gather(*(bad_frame(ws_url, f, t) for f, t in bad))
            await conftest.wait_until(lambda: hub.client_count == 0, "every socket to be gone",
                                      limit_s=GUARD_S)
            await conftest.wait_until(
                lambda: BAD_CLIENTS.total - before >= len(bad) + 1 or any(r.exc_info for r in log.records),
                "a line (or a count) for every bad client", limit_s=GUARD_S)

        text = "\n".join(log.lines)
        assert "Traceback" not in text, text[:3000]
        assert not [r for r in log.records if r.exc_info], "a record carries a traceback"
        # Each bad client counted once, however many frames (+1: the lone non-UTF-8 client).
        assert BAD_CLIENTS.total - before == len(bad) + 1
        # At most two rate-limit windows (full budget each, one summary line each) plus the few
        # lines of starting and stopping: never one per client.
        assert len(log.lines) <= 2 * (BAD_CLIENTS.limit + 1) + 10, text[:3000]
        assert len(log.lines) < len(bad) + ABRUPT


def test_the_rate_limited_log_keeps_its_budget_and_reports_what_it_suppressed() -> None:
    from pbx_core.web.ratelog import RateLimitedLog

    now = [0.0]
    logger = logging.getLogger("tests.ratelog")
    handler = Captured()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        rl = RateLimitedLog(logger, limit=3, interval_s=10.0, clock=lambda: now[0])
        for i in range(10):
            rl.warn("bad client %d", i)
        assert [r.getMessage() for r in handler.records] == ["bad client 0", "bad client 1", "bad client 2"]
        assert rl.suppressed == 7 and rl.total == 10
        now[0] = 10.5  # the next window: the summary first, then the new line
        rl.warn("bad client %d", 10)
        assert [r.getMessage() for r in handler.records[3:]] == [
            "... suppressed 7 similar line(s) about bad websocket clients in the last 10 s", "bad client 10"
        ]
        now[0] = 30.0
        rl.flush()  # nothing suppressed in that window: no summary
        assert len(handler.records) == 5
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
