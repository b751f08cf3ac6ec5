"""Request bodies over real HTTP (uvicorn on a free port): anonymous bodies are refused before
they are read, bodies over PBX_API_MAX_BODY_BYTES are refused (declared or chunked) without being
buffered, and JSON nested too deep is a 422 - while the server's memory stays flat.

The server runs in this process, so its RSS is this process's: the client streams its bodies
from one reused chunk and buffers nothing, so growth is the server's buffering."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import psutil

from pbx_core.api import ApiContext
from tests.integration.api.conftest import World, assert_error, auth, served

MB = 1024 * 1024
CHUNK = b" " * MB  # whitespace: a valid start of a JSON document, so nothing is refused for syntax
LIMIT = 64 * 1024
MEMORY_MARGIN = 64 * MB  # the bodies below total 800 MB; buffering even one would exceed this
GUARD_S = 120


@dataclass
class Upload:
    """A body of ``size`` bytes streamed from one reused chunk, counting what was taken."""

    size: int
    sent: int = 0

    async def stream(self) -> AsyncIterator[bytes]:
        while self.sent < self.size:
            n = min(len(CHUNK), self.size - self.sent)
            self.sent += n
            yield CHUNK if n == len(CHUNK) else CHUNK[:n]


@dataclass
class PeakRss:
    """The highest RSS of this process while the block runs (sampled every 20 ms)."""

    before: int = 0
    peak: int = 0
    samples: list[int] = field(default_factory=list)

    @property
    def growth(self) -> int:
        return self.peak - self.before


@contextlib.asynccontextmanager
async def peak_rss() -> AsyncIterator[PeakRss]:
    proc = psutil.Process()
    result = PeakRss(before=proc.memory_info().rss)
    result.peak = result.before

    async def sample() -> None:
        while True:
            result.peak = max(result.peak, proc.memory_info().rss)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(sample())
    try:
        yield result
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        result.peak = max(result.peak, proc.memory_info().rss)


async def send(http: httpx.AsyncClient, path: str, upload: Upload, headers: dict[str, str],
               declare_length: bool = True) -> int | str:
    """The status, or how the connection ended if the server dropped it before answering."""
    if declare_length:
        headers = {**headers, "Content-Length": str(upload.size)}
    try:
        headers = {**headers, "Content-Type": "application/json"}
        r = await http.put(path, content=upload.stream(), headers=headers)
    except httpx.TransportError as exc:
        return type(exc).__name__
    return r.status_code


# Refused while the client still sends: it reads the 401 or finds the connection closed under it.
REFUSED = {401, "ReadError", "WriteError", "RemoteProtocolError"}


def client(api: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api, timeout=GUARD_S)


async def test_anonymous_big_bodies_are_refused_before_they_are_read(ctx: ApiContext, world: World) -> None:
    async with served(ctx, max_body_bytes=LIMIT) as api, client(api) as http:
        await http.get("/tenants", headers=auth(world.reseller_a))  # warm up: pool, first request paths
        uploads = [Upload(200 * MB) for _ in range(4)]
        async with peak_rss() as rss:
            statuses = await asyncio.gather(*(
                send(http, "/tenants/acme", u, {"Authorization": "Bearer pbx_nope"} if i % 2 else {})
                for i, u in enumerate(uploads)
            ))
        assert set(statuses) <= REFUSED, statuses
        for u in uploads:  # what the socket buffers took before the server closed: a few MB at most
            assert u.sent < 32 * MB, [u.sent // MB for u in uploads]
        assert rss.growth < MEMORY_MARGIN, f"server RSS grew {rss.growth // MB} MB"
        # A body small enough to discard: the client reads a proper 401, and the connection
        # stays usable for the next request.
        assert await send(http, "/tenants/acme", Upload(512 * 1024), {}) == 401
        r = await http.get("/tenants/acme", headers=auth(world.reseller_a))
        assert r.status_code == 200


async def test_a_client_that_expects_100_continue_never_sends_its_body(ctx: ApiContext) -> None:
    """The guard answers from the headers: the server never asks for the body (no 100 Continue),
    so a client that waits for it - curl does for big bodies - sends nothing."""
    async with served(ctx, max_body_bytes=LIMIT) as api:
        url = httpx.URL(api)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            writer.write(
                f"PUT {url.path}/tenants/acme HTTP/1.1\r\nHost: {url.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {200 * MB}\r\n"
                "Expect: 100-continue\r\n\r\n".encode()
            )
            await writer.drain()
            async with asyncio.timeout(GUARD_S):
                status_line = await reader.readline()
                head = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
        assert status_line.startswith(b"HTTP/1.1 401 "), status_line
        assert b"connection: close" in head.lower()


async def test_bodies_over_the_limit_are_refused_without_being_buffered(
    ctx: ApiContext, world: World
) -> None:
    key = auth(world.reseller_a)
    async with served(ctx, max_body_bytes=LIMIT) as api, client(api) as http:
        await http.get("/tenants", headers=key)
        declared, chunked = Upload(100 * MB), Upload(100 * MB)
        async with peak_rss() as rss:
            by_length = await send(http, "/tenants/acme", declared, key)
            without_length = await send(http, "/tenants/acme", chunked, key, declare_length=False)
        assert by_length in REFUSED - {401} | {413}, by_length
        assert declared.sent < 32 * MB
        # Chunked: no length to look at, so it is read until it passes the limit, then refused.
        assert without_length in REFUSED - {401} | {413}, without_length
        assert chunked.sent < 32 * MB
        assert rss.growth < MEMORY_MARGIN, f"server RSS grew {rss.growth // MB} MB"

        r = await http.put("/tenants/acme", content=b" " * (LIMIT + 1) + b'{"name": "Acme"}',
                           headers={**key, "Content-Type": "application/json"})
        err = assert_error(r, 413, code="payload_too_large")
        assert f"larger than {LIMIT} bytes" in err["message"] and "PBX_API_MAX_BODY_BYTES" in err["message"]
        # A chunked body a little over the limit: refused as it passes it, the rest discarded
        # (not kept), answered, and the connection stays usable.
        r = await http.put("/tenants/acme", content=Upload(LIMIT + 10_000).stream(),
                           headers={**key, "Content-Type": "application/json"})
        assert_error(r, 413, code="payload_too_large")
        assert "connection" not in r.headers
        assert (await http.get("/tenants/acme", headers=key)).status_code == 200
        # Up to the limit is fine (whitespace padding is valid JSON).
        body = b'{"name": "Acme"}'
        r = await http.put("/tenants/acme", content=body + b" " * (LIMIT - len(body)),
                           headers={**key, "Content-Type": "application/json"})
        assert r.status_code == 200, r.text


async def test_json_nested_too_deep_is_a_clear_422(ctx: ApiContext, world: World) -> None:
    key = {**auth(world.reseller_a), "Content-Type": "application/json"}
    async with served(ctx, max_body_bytes=LIMIT) as api, client(api) as http:
        for depth in (33, 20_000):
            body = '{"name": ' + "[" * depth + "]" * depth + "}"
            err = assert_error(await http.put("/tenants/acme", content=body, headers=key), 422, field="body")
            assert "JSON nested deeper than 32 levels" in err["message"]
        # Brackets inside strings (escaped quotes too) are text, not nesting: 55 of them here.
        name = '\\"[' * 20 + "{" * 35
        r = await http.put("/tenants/acme", content='{"name": "' + name + '"}', headers=key)
        assert r.status_code == 200, r.text  # acme exists (the world fixture): replaced
        assert r.json()["name"] == json.loads(f'"{name}"')
        # 32 levels are allowed through the guard (the schema then says what it thinks of them).
        body = '{"name": "Acme", "limits": ' + "[" * 31 + "]" * 31 + "}"
        r = await http.put("/tenants/acme", content=body, headers=key)
        err = assert_error(r, 422, field="body.limits")
        assert "nested" not in err["message"]
