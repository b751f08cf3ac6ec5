"""Running the app under uvicorn: one config for every command, and a test/demo helper that
serves on an already bound socket (port 0 = any free port, known before the first request)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import uvicorn

from ..config import ConfigError
from .ratelog import quiet_uvicorn_bad_frames
from .ws_protocol import WallboardWebSocketProtocol

CLIENT_FRAME_MAX = 64 * 1024


def uvicorn_config(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    trusted_proxies: Sequence[str] = (),
    **overrides: Any,
) -> uvicorn.Config:
    """``trusted_proxies`` (PBX_TRUSTED_PROXIES): the only peers whose X-Forwarded-For/-Proto are
    believed. uvicorn's own default believes loopback (or $FORWARDED_ALLOW_IPS), which would let
    anyone who reaches the port from the same host - or through a local proxy that passes the
    header on - choose the address failed logins are counted against."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "lifespan": "on",
        "log_level": "warning",
        "access_log": False,
        # Wallboard deltas are small and frequent: compression costs CPU and per-socket memory
        # (zlib state) for almost no bytes saved (DESIGN.md).
        "ws_per_message_deflate": False,
        # Protocol-level pings find half-open sockets of clients that never answer JSON pings.
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        # A browser sends pongs, resync and callback requests, all far below this; a bigger frame
        # is closed (1009) before it is buffered or parsed (uvicorn's default is 16 MiB).
        "ws_max_size": CLIENT_FRAME_MAX,
        "timeout_graceful_shutdown": 5,
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": list(trusted_proxies),
    }
    if WallboardWebSocketProtocol is not None:  # a non-UTF-8 frame: one line, not two tracebacks
        options["ws"] = WallboardWebSocketProtocol
    options.update(overrides)
    config = uvicorn.Config(app, **options)  # (re)configures uvicorn's loggers: filter after it
    quiet_uvicorn_bad_frames()
    return config


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def listen_or_explain(host: str, port: int) -> socket.socket:
    """Bind the web port before anything else starts, so a busy or impossible port is one line
    naming it, at once, instead of an error after Redis, the bridge and the simulator are up."""
    try:
        return bind(host, port)
    except (OSError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot listen on {host}:{port}: {reason} (choose another with --port or PBX_HTTP_PORT)"
        ) from None


@contextlib.asynccontextmanager
async def serving(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    sock: socket.socket | None = None,
    trusted_proxies: Sequence[str] = (),
    **overrides: Any,
) -> AsyncIterator[str]:
    """Serve ``app`` in this event loop while the block runs; yields ``http://host:port``.
    ``sock``: an already bound listening socket (see :func:`listen_or_explain`); closed at the end."""
    sock = sock if sock is not None else bind(host, port)
    actual = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host, actual, trusted_proxies=trusted_proxies, **overrides))
    # The caller owns signal handling (demo, tests): uvicorn must not replace its handlers.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error
                raise RuntimeError("uvicorn exited during startup")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{actual}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
