"""One process running the whole live path: bridge → Redis bus → web app.

``pbx-core demo`` runs it against the built-in simulator with an embedded Redis; ``pbx-core
serve`` against the Asterisk in ``PBX_AMI_URL`` and the Redis in ``PBX_REDIS_URL``. Both are
only wiring: every part is the same object the single-purpose commands (``bridge``, ``web``)
run on their own, so what the demo shows is what production does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import BaseRoute

from .ami.client import AmiOptions
from .bridge import Bridge, engine_settings
from .bus import BusPublisher, redis_url_or_embedded
from .bus.tenants import LiveHooks, bus_forgetter
from .callbacks.shell import Callbacks, callbacks_for
from .config import AmiUrl, Settings
from .history.writer import HistoryWriter
from .signals import on_stop_signals
from .web.app import CallbackRequester, create_app, thresholds_for
from .web.auth import TokenVerifier
from .web.hub import LabelsFor
from .web.provisioning import wallboard_labels
from .web.revocation import recheck_announcer, revocation_announcer
from .web.server import listen_or_explain, serving

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Stack:
    """The running parts, for status output and tests."""

    bridge: Bridge
    bridge_task: asyncio.Task[None]
    publisher: BusPublisher
    redis_url: str
    base_url: str
    callbacks: Callbacks | None = None
    history: HistoryWriter | None = None

    def stats(self) -> dict[str, Any]:
        """Read at scrape time by /metrics and /healthz, and by the demo's status line."""
        out = {**self.bridge.stats(), "bus": self.publisher.stats.as_dict()}
        if self.history is not None:
            out["history"] = self.history.stats.as_dict()
        return out


@contextlib.asynccontextmanager
async def running_stack(
    settings: Settings,
    ami_url: AmiUrl,
    verifier: TokenVerifier,
    *,
    host: str | None = None,
    port: int | None = None,
    summary_every_s: float | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    callback_requester: CallbackRequester | None = None,
    callback_sessions: async_sessionmaker[AsyncSession] | None = None,
    listener: socket.socket | None = None,
    live_hooks: LiveHooks | None = None,
    labels: LabelsFor | None = None,
    history_sessions: async_sessionmaker[AsyncSession] | None = None,
) -> AsyncIterator[Stack]:
    """Start Redis (or use PBX_REDIS_URL), the bus publisher, the bridge (with its callbacks part
    when ``callback_sessions``, the provisioning database, is given) and the web app; stop them
    in reverse order when the block ends. ``listener``: the web port, already bound. The callbacks
    share the bridge's AMI session and engine task, and their per-queue counts go out through its
    publisher in the same ordered stream. ``live_hooks`` (the API's): a deleted tenant leaves
    Redis and this bridge at once, and an applied one is resynced at once. ``labels``: the
    wallboard's names (default: from ``callback_sessions`` when given). ``history_sessions``
    (the provisioning database): the history writer runs too, on the same Redis."""
    host = host or settings.http_host
    port = settings.http_port if port is None else port
    # First: a busy port fails before anything starts. (``demo`` binds even earlier and passes it.)
    listener = listener or listen_or_explain(host, port)
    async with contextlib.AsyncExitStack() as exits:
        exits.callback(listener.close)
        redis_url = await exits.enter_async_context(redis_url_or_embedded(settings.redis_url))
        publisher = BusPublisher.from_settings(settings, redis_url)
        await publisher.start()
        exits.push_async_callback(publisher.close)
        history: HistoryWriter | None = None
        if history_sessions is not None:
            history = HistoryWriter(history_sessions, redis_url, batch_max=settings.history_batch,
                                    retention_months=settings.history_retention_months)  # fmt: skip
            await history.start()
            exits.push_async_callback(history.close)
        callbacks: Callbacks | None = None
        if callback_sessions is not None:
            callbacks = await exits.enter_async_context(callbacks_for(settings, sessions=callback_sessions))
        bridge = Bridge(
            ami_url,
            ami=AmiOptions.from_settings(settings),
            engine=engine_settings(settings),
            sinks=[publisher],
            summary_every_s=summary_every_s,
            parts=[callbacks] if callbacks is not None else [],
        )
        publisher.on_tenant_reset = bridge.forget_deleted_tenant
        if live_hooks is not None:
            live_hooks.forgotten.add(bus_forgetter(publisher.redis))
            live_hooks.forgotten.add(bridge.forget_tenant)
            live_hooks.applied.add(bridge.queues_changed)
        bridge_task = asyncio.create_task(bridge.run(fail_fast_auth=True), name="bridge")
        exits.push_async_callback(_stop_bridge, bridge, bridge_task)

        stack = Stack(bridge, bridge_task, publisher, redis_url, "", callbacks, history)
        app = create_app(
            verifier=verifier,
            redis_url=redis_url,
            stats_provider=stack.stats,
            thresholds=thresholds_for(settings.wallboard_thresholds),
            extra_routes=extra_routes,
            callback_requester=callback_requester,
            metrics_token=settings.metrics_token,
            recheck_s=settings.wallboard_recheck_s,
            labels=labels or (wallboard_labels(callback_sessions) if callback_sessions is not None else None),
        )
        if live_hooks is not None:
            live_hooks.revoked.add(revocation_announcer(app.state.redis))
            live_hooks.forgotten.add(recheck_announcer(app.state.redis))
        stack.base_url = await exits.enter_async_context(
            serving(app, host, port, sock=listener, trusted_proxies=settings.trusted_proxies)
        )
        yield stack


async def _stop_bridge(bridge: Bridge, task: asyncio.Task[None]) -> None:
    bridge.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def until_signal_or(task: asyncio.Task[Any] | None = None) -> None:
    """Wait for SIGINT/SIGTERM (or for ``task`` to end, e.g. a bridge whose login was refused)."""
    stop = asyncio.Event()
    with on_stop_signals(stop.set):
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait())}
        if task is not None:
            waiters.add(task)
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for fut in pending:
            if fut is not task:
                fut.cancel()
