"""The AMI client: connect + checked Login, ping watchdog, reconnect + resync, actions, events.

What it promises (DESIGN.md, "panoramisk 1.4, wrapped"):

* A wrong secret is an :class:`AmiAuthError` naming user and host, never a silent hang; a refused
  or timed-out connect is an :class:`AmiConnectError`.
* After ``ping_interval_s`` of silence the watchdog sends a Ping; no reply within
  ``ping_timeout_s`` aborts the transport (a half-open socket is found within seconds).
* ``run()`` reconnects with capped exponential backoff and jitter. A refused login while
  reconnecting is logged at ERROR every time and retried: someone may be fixing manager.conf
  right now, and a bridge that quietly gave up would need a restart nobody remembers to do.
  ``run(fail_fast_auth=True)`` raises instead if the *first* login is refused (a CLI typo).
* Actions wait for their reply with a timeout (:class:`AmiTimeout` names the action) and fail
  at once with :class:`AmiDisconnected` when the connection drops.
* The socket callback only enqueues onto :attr:`events` and never raises. The queue is bounded by
  ``queue_size`` *events*; on overflow events are dropped and counted, and once the engine has
  caught up a QueueStatus resync is requested. Snapshots are never dropped, so the asyncio queue
  itself is unbounded and the bound is enforced here.
* After every login: an optional server-side event Filter, then a QueueStatus whose completed
  listing is pushed as a :class:`StatusSnapshot` at its position in the stream.
* After every reload of app_queue (the ``Reload`` event, class ``system``, for ``app_queue``,
  ``app_queue.so`` or ``All``) a QueueStatus resync too: app_queue deletes a queue that left
  queues.conf (and a static member that left it) without any event, so the listing that
  follows the reload is the only way to learn it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from panoramisk.message import Message  # type: ignore[import-untyped]  # no type hints

from ..config import AmiUrl, Settings
from ..domain.events import HANDLED_EVENTS, StatusSnapshot, TenantRemoved, status_snapshot
from ..tasks import cancel_and_wait
from .backoff import backoff_delay
from .clock import AsteriskClock
from .errors import (
    AmiActionError,
    AmiAuthError,
    AmiConnectError,
    AmiDisconnected,
    AmiError,
    AmiTimeout,
)
from .framing import DEFAULT_MAX_FRAME_BYTES, QUEUE_EVENTS, Frame
from .listings import DEFAULT_MAX_LIST_ITEMS, Listing
from .protocol import ActionHeaders, AmiProtocol, Pending, Reply
from .stats import AmiCounters

log = logging.getLogger(__name__)

USER_EVENT = "UserEvent"

EngineItem = Frame | StatusSnapshot | TenantRemoved
"""What the engine queue carries: a raw event frame, a resync snapshot, or (put there by the
bridge) a deleted tenant to forget."""

Listener = Callable[[Frame], None]


def event_filter(
    extra_events: frozenset[str] = frozenset(), user_events: frozenset[str] = frozenset()
) -> str:
    """The Filter action's regex: the queue events plus ``extra_events``, plus the UserEvents
    named in ``user_events`` (Asterisk matches the regex against the whole event, so a UserEvent
    is let through by its ``UserEvent: <name>`` header, the others never leave Asterisk).

    One regex filter rather than one per event: Asterisk has no "remove filter", so a whitelist
    that was only partly accepted would silently lose events. One action is all or nothing."""
    if not user_events:
        return "Event: (" + "|".join(sorted(HANDLED_EVENTS | extra_events)) + ")"
    regex = "Event: (" + "|".join(sorted((HANDLED_EVENTS | extra_events) - {USER_EVENT})) + ")"
    return regex + "|UserEvent: (" + "|".join(sorted(user_events)) + ")"


EVENT_FILTER = event_filter()

# Events the client acts on itself (never queued for the engine): main/loader.c's ``Reload``.
CONTROL_EVENTS: frozenset[str] = frozenset({"Reload"})
QUEUE_MODULES = frozenset({"app_queue", "app_queue.so", "all"})


@dataclass(frozen=True, slots=True)
class AmiOptions:
    connect_timeout_s: float = 5.0
    ping_interval_s: float = 2.0
    ping_timeout_s: float = 3.0
    action_timeout_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    queue_size: int = 100_000
    event_filter: bool = True
    # The client feeds a live state: resync from QueueStatus after every login and after every
    # app_queue reload. Off for short action-only sessions (apply, member changes).
    resync_on_connect: bool = True
    max_list_items: int = DEFAULT_MAX_LIST_ITEMS
    # Events to deliver on ``events`` besides the queue events (e.g. OriginateResponse). They are
    # in the decoder's keep-list and the Filter regex from the first byte of every session, and
    # count against ``queue_size`` like every event: a PBX cannot grow the queue without bound.
    extra_events: frozenset[str] = frozenset()
    # UserEvents to deliver, by name (their ``UserEvent:`` header): pbx-core's own, e.g. the
    # callback dialplan's. Any other UserEvent is dropped in the socket callback, and a non-empty
    # set makes ``UserEvent`` an extra event.
    user_events: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> AmiOptions:
        return cls(
            connect_timeout_s=settings.ami_connect_timeout_s,
            ping_interval_s=settings.ami_ping_interval_s,
            ping_timeout_s=settings.ami_ping_timeout_s,
            action_timeout_s=settings.ami_action_timeout_s,
            reconnect_min_s=min(0.5, settings.ami_reconnect_max_s),
            reconnect_max_s=settings.ami_reconnect_max_s,
            max_frame_bytes=settings.ami_max_frame_bytes,
            queue_size=settings.ami_queue_size,
            max_list_items=settings.ami_max_list_items,
            event_filter=settings.ami_event_filter,
        )


class AmiClient:
    """One logical AMI session to one Asterisk, kept alive across reconnects."""

    def __init__(
        self,
        url: AmiUrl,
        options: AmiOptions | None = None,
        *,
        events: asyncio.Queue[EngineItem] | None = None,
    ) -> None:
        self.url = url
        self.options = options or AmiOptions()
        self.peer = f"{url.host}:{url.port}"
        self.events: asyncio.Queue[EngineItem] = events if events is not None else asyncio.Queue()
        self.counters = AmiCounters()
        self.clock = AsteriskClock()  # survives reconnects, like the counters
        self._protocol: AmiProtocol | None = None
        self._listeners: list[Listener] = []
        self._closing = False
        self._closed = asyncio.Event()
        self._connected = asyncio.Event()
        self._overflowing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._abort_reason = ""
        opts = self.options
        self._extra_events = opts.extra_events | ({USER_EVENT} if opts.user_events else frozenset())

    # ----------------------------------------------------------------- state

    @property
    def connected(self) -> bool:
        return self.counters.connected

    def stats(self) -> dict[str, Any]:
        """Connection state and counters, flat, for logs and metrics."""
        return self.counters.as_dict()

    def add_listener(self, listener: Listener) -> None:
        """Also call ``listener(frame)`` for every event, synchronously in the socket callback.

        For cheap observers (metrics, debugging). An exception is counted and logged, and the
        connection and the engine queue carry on as if the listener were not there."""
        self._listeners.append(listener)

    async def wait_connected(self) -> None:
        await self._connected.wait()

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> AmiClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """One connect + Login + session setup. Raises AmiConnectError or AmiAuthError."""
        if self._protocol is not None and not self._protocol.closed:
            raise AmiError(f"already connected to AMI at {self.peer}")
        self._closing = False
        self._closed.clear()
        try:
            proto = await self._open_and_login()
        except AmiAuthError as exc:
            self.counters.auth_failures += 1
            self.counters.last_error = str(exc)
            raise
        except AmiError as exc:
            self.counters.connect_failures += 1
            self.counters.last_error = str(exc)
            raise
        self._protocol = proto
        self.counters.connected = True
        self.counters.connects += 1
        assert proto.lost is not None
        proto.lost.add_done_callback(lambda fut: self._on_lost(proto, fut))
        self._watchdog = asyncio.create_task(self._watch(proto), name=f"ami-watchdog {self.peer}")
        log.info("AMI connected to %s (%s)", self.peer, proto.decoder.banner or "no banner")
        self._connected.set()
        try:
            if self.options.event_filter:
                await self._install_filter(proto)
            if self.options.resync_on_connect:
                # Asterisk's Ping reply carries its Timestamp: learn its clock before the
                # QueueStatus is stamped with it (status items carry no Timestamp of their own).
                with contextlib.suppress(AmiTimeout):
                    await self._request(proto, {"Action": "Ping"}, self.options.action_timeout_s)
                await self._resync(proto)
        except AmiDisconnected:
            pass  # run() sees the loss and reconnects

    async def run(self, *, fail_fast_auth: bool = False) -> None:
        """Stay connected until :meth:`close`. Returns after close(); raises only AmiAuthError
        on the first login with ``fail_fast_auth``."""
        loop = asyncio.get_running_loop()
        attempt = 0
        first = True
        while not self._closing:
            try:
                await self.connect()
            except AmiAuthError as exc:
                if first and fail_fast_auth:
                    raise
                log.error("%s; retrying with backoff (fix the AMI user/secret, no restart needed)", exc)
            except AmiError as exc:
                log.warning("%s", exc)
            else:
                if self._closing:  # close() ran while we were logging in: it missed this socket
                    await self.close()
                    break
                proto = self._protocol
                assert proto is not None and proto.lost is not None
                started = loop.time()
                await asyncio.shield(proto.lost)
                # A session that lasted resets the backoff; a flapping one keeps growing it.
                if loop.time() - started >= max(self.options.reconnect_max_s, 1.0):
                    attempt = 0
            first = False
            if self._closing:
                break
            delay = backoff_delay(attempt, self.options.reconnect_min_s, self.options.reconnect_max_s)
            attempt += 1
            log.info("reconnecting to AMI at %s in %.2fs", self.peer, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)

    async def close(self) -> None:
        """Log off, close the socket and stop :meth:`run`. Safe to call more than once."""
        self._closing = True
        self._closed.set()
        proto = self._protocol
        if proto is not None and not proto.closed:
            with contextlib.suppress(AmiError):
                await self._request(proto, {"Action": "Logoff"}, min(1.0, self.options.action_timeout_s))
            proto.close()
            assert proto.lost is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proto.lost), 1.0)
            if not proto.closed:
                proto.abort()
        tasks = [*self._tasks, *([self._watchdog] if self._watchdog else [])]
        await cancel_and_wait(tasks)

    # ----------------------------------------------------------------- actions

    async def action(
        self,
        headers: ActionHeaders,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per-action, so AmiTimeout can name it
        check: bool = True,
    ) -> Message:
        """Send one action; return its reply. ``check``: a ``Response: Error`` raises
        :class:`AmiActionError` (else it is returned). For an EventList action this returns the
        opening reply once the list is complete; use :meth:`listing` for the items."""
        proto = self._live_protocol()
        reply = await self._request(proto, headers, timeout or self.options.action_timeout_s)
        message = Message(reply.response) if isinstance(reply, Listing) else reply
        if check and not message.success:
            raise _action_error(headers, message, self.peer)
        return message

    async def listing(
        self,
        headers: ActionHeaders,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - per-action, so AmiTimeout can name it
    ) -> list[Message]:
        """Send an EventList action (QueueStatus, QueueSummary, ...); return its items in order.
        An ``Error`` reply raises :class:`AmiActionError` at once."""
        proto = self._live_protocol()
        reply = await self._request(proto, headers, timeout or self.options.action_timeout_s)
        if isinstance(reply, Listing):
            return [Message(item) for item in reply.items]
        if not reply.success:
            raise _action_error(headers, reply, self.peer)
        return []  # a plain Success without a list

    def request_resync(self) -> bool:
        """Ask for a QueueStatus resync now. False if not connected (the next login resyncs)."""
        proto = self._protocol
        if proto is None or proto.closed:
            return False
        self._spawn(self._resync(proto))
        return True

    def _live_protocol(self) -> AmiProtocol:
        proto = self._protocol
        if proto is None or proto.closed:
            raise AmiDisconnected(f"not connected to AMI at {self.peer}")
        return proto

    async def _request(self, proto: AmiProtocol, headers: ActionHeaders, wait_s: float) -> Reply:
        return await self._await(proto, proto.send_action(headers), wait_s)

    async def _await(self, proto: AmiProtocol, pending: Pending, wait_s: float) -> Reply:
        try:
            async with asyncio.timeout(wait_s):
                return await pending.future
        except TimeoutError:
            raise AmiTimeout(
                f"AMI action {pending.name!r} got no reply from {self.peer} within {wait_s:g}s "
                f"(ActionID {pending.action_id})"
            ) from None
        finally:
            proto.forget(pending)

    # ----------------------------------------------------------------- session setup

    async def _open_and_login(self) -> AmiProtocol:
        loop = asyncio.get_running_loop()
        timeout = self.options.connect_timeout_s
        proto = AmiProtocol(
            on_event=self._on_event,
            on_status=self._on_status,
            counters=self.counters,
            clock=self.clock,
            max_frame_bytes=self.options.max_frame_bytes,
            wanted=QUEUE_EVENTS | CONTROL_EVENTS | self._extra_events,
            peer=self.peer,
            max_list_items=self.options.max_list_items,
        )
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: proto, self.url.host, self.url.port)
        except TimeoutError:
            raise AmiConnectError(f"timed out after {timeout:g}s connecting to AMI at {self.peer}") from None
        except OSError as exc:
            raise AmiConnectError(f"cannot connect to AMI at {self.peer}: {exc.strerror or exc}") from None
        login = {"Action": "Login", "Username": self.url.username, "Secret": self.url.secret}
        try:
            reply = await self._request(proto, login, max(0.01, deadline - loop.time()))
        except AmiTimeout:
            proto.abort()
            raise AmiConnectError(
                f"AMI at {self.peer} did not answer the Login within {timeout:g}s "
                "(is this Asterisk's manager port?)"
            ) from None
        except AmiDisconnected:
            why = proto.abort_reason or "closed the connection during login"
            raise AmiConnectError(f"AMI at {self.peer}: {why}") from None
        assert isinstance(reply, Message)
        if not reply.success:
            proto.close()
            reason = reply.message or reply.response or "no reason given"
            raise AmiAuthError(f"AMI login refused for user {self.url.username!r} at {self.peer}: {reason}")
        return proto

    async def _install_filter(self, proto: AmiProtocol) -> None:
        regex = event_filter(self.options.extra_events | CONTROL_EVENTS, self.options.user_events)
        filter_action = {"Action": "Filter", "Operation": "Add", "Filter": regex}
        try:
            reply = await self._request(proto, filter_action, self.options.action_timeout_s)
        except AmiTimeout as exc:
            log.warning("%s; filtering events locally", exc)
            return
        if isinstance(reply, Message) and not reply.success:
            # Usually "Permission denied": Filter needs `system` write permission. Harmless.
            self.counters.filter_denied += 1
            log.info(
                "Asterisk refused the AMI event filter (%s); filtering events locally",
                reply.message or reply.response,
            )

    async def _resync(self, proto: AmiProtocol) -> None:
        """QueueStatus; the protocol pushes the snapshot when its listing completes.

        One at a time per connection: a request while one is in flight asks for one more after
        it (its listing may predate what changed), however many requests come. So a flood of
        Reload events (each asks for a resync) costs at most two QueueStatus, not one each."""
        if proto.resync_running:
            proto.resync_wanted = True
            return
        proto.resync_running = True
        try:
            while True:
                proto.resync_wanted = False
                await self._resync_once(proto)
                if not proto.resync_wanted or proto.closed:
                    return
        finally:
            proto.resync_running = False

    async def _resync_once(self, proto: AmiProtocol) -> None:
        try:
            pending = proto.send_action({"Action": "QueueStatus"}, resync=True)
            reply = await self._await(proto, pending, self.options.action_timeout_s)
        except AmiTimeout as exc:
            # The unfinished listing was dropped with the wait (it is bounded, a wait is not
            # forever): start over on a fresh connection, which resyncs, rather than run unsynced.
            proto.abort_reason = (
                f"resync: {exc}; reconnecting to resync (raise PBX_AMI_ACTION_TIMEOUT_S if this "
                "Asterisk is merely slow to list its queues)"
            )
            log.error("AMI at %s: %s", self.peer, proto.abort_reason)
            proto.abort()
            return
        except AmiDisconnected:
            return
        if isinstance(reply, Message) and not reply.success:
            self.counters.last_error = f"QueueStatus refused: {reply.message}"
            log.error(
                "Asterisk refused QueueStatus (%s): the live state cannot resync; the AMI user "
                "needs read permission 'agent'",
                reply.message or reply.response,
            )

    # ----------------------------------------------------------------- watchdog

    async def _watch(self, proto: AmiProtocol) -> None:
        loop = asyncio.get_running_loop()
        interval, timeout = self.options.ping_interval_s, self.options.ping_timeout_s
        while not proto.closed:
            idle = loop.time() - proto.last_rx
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            sent = loop.time()
            self.counters.pings += 1
            try:
                await self._request(proto, {"Action": "Ping"}, timeout)
            except AmiDisconnected:
                return
            except AmiTimeout:
                if proto.last_rx > sent:
                    continue  # data is flowing, the socket is alive; Asterisk is only slow
                self.counters.ping_timeouts += 1
                self._abort_reason = (
                    f"half-open: no reply to Ping within {timeout:g}s after {interval:g}s of silence"
                )
                log.warning("AMI at %s: %s; aborting the connection", self.peer, self._abort_reason)
                proto.abort()
                return

    # ----------------------------------------------------------------- socket callbacks

    def _on_event(self, frame: Frame) -> None:
        # Called from data_received: enqueue only; never raise, never block.
        for listener in self._listeners:
            try:
                listener(frame)
            except Exception:
                self.counters.internal_errors += 1
                log.exception("AMI event listener %r raised; ignored", listener)
        name = frame.name
        if name in HANDLED_EVENTS:
            self._put(frame)
        elif name == USER_EVENT and self.options.user_events:
            if frame.get(USER_EVENT) in self.options.user_events:
                self._put(frame, recoverable=False)
            else:
                self.counters.user_events_ignored += 1
        elif name in self._extra_events:
            self._put(frame, recoverable=False)
        elif name == "Reload":
            self._on_reload(frame)
        elif name == "Shutdown":
            log.warning("Asterisk at %s is shutting down (%s)", self.peer, frame.get("Shutdown", ""))

    def _on_reload(self, frame: Frame) -> None:
        module = frame.get("Module", "")
        if not self.options.resync_on_connect or module.lower() not in QUEUE_MODULES:
            return
        log.info("Asterisk at %s reloaded %s (status %s): resyncing the queues from QueueStatus",
                 self.peer, module, frame.get("Status", "?"))  # fmt: skip
        self.request_resync()

    def _on_status(self, listing: Listing, requested_ts: float) -> None:
        snapshot = status_snapshot(listing.items, ts=self.clock.now(), requested_ts=requested_ts)
        self.counters.resyncs += 1
        self._put(snapshot, control=True)

    def _put(self, item: EngineItem, *, control: bool = False, recoverable: bool = True) -> None:
        """Queue an item for the engine. Events count against ``queue_size``; past it they are
        dropped until the engine catches up, then a resync repairs the queue state. An extra
        event (``recoverable=False``) cannot be brought back by a resync: its loss is logged."""
        if not control:
            if self._overflowing or self.events.qsize() >= self.options.queue_size:
                self.counters.dropped_overflow += 1
                if not recoverable:
                    self.counters.dropped_extra += 1
                    log.error(
                        "engine queue full: dropped a %s event, which no resync brings back",
                        _describe_frame(item),
                    )
                if not self._overflowing:
                    self._overflowing = True
                    log.warning(
                        "engine queue full (%d events): dropping events until it catches up, then resyncing",
                        self.options.queue_size,
                    )
                    self._spawn(self._recover_from_overflow())
                return
            self.counters.events_queued += 1
        self.events.put_nowait(item)

    async def _recover_from_overflow(self) -> None:
        # Hysteresis: resume at half full, so a slow engine does not flap in and out of overflow.
        low = self.options.queue_size // 2
        # asyncio.Queue has no "drained below" signal and the consumer is not ours: poll.
        while self.events.qsize() > low and not self._closing:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        self._overflowing = False
        log.warning(
            "engine caught up (%d events dropped in total); resyncing from QueueStatus",
            self.counters.dropped_overflow,
        )
        self.request_resync()

    def _on_lost(self, proto: AmiProtocol, fut: asyncio.Future[BaseException | None]) -> None:
        if proto is not self._protocol:
            return
        self.counters.connected = False
        self.counters.disconnects += 1
        self._connected.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._closing:
            log.info("AMI connection to %s closed", self.peer)
            return
        exc = None if fut.cancelled() else fut.result()
        reason = (
            self._abort_reason
            or proto.abort_reason
            or (f"connection lost: {exc}" if exc else "connection closed by Asterisk")
        )
        self._abort_reason = ""
        self.counters.last_error = reason
        log.warning("AMI connection to %s ended: %s", self.peer, reason)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _describe_frame(item: EngineItem) -> str:
    if isinstance(item, StatusSnapshot):
        return "QueueStatus snapshot"
    name = item.get("Event", "?")
    return f"{name} {item.get(USER_EVENT)}" if name == USER_EVENT else name


def _action_error(headers: ActionHeaders, reply: Message, peer: str) -> AmiActionError:
    name = str(headers.get("Action") or headers.get("action") or "?")
    reason = reply.message or reply.response or "no reason given"
    return AmiActionError(f"AMI action {name!r} failed at {peer}: {reason}", name, reply.message)
