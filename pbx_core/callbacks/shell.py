"""The callbacks' imperative shell, on the bridge's one AMI session and one engine task.

:class:`Callbacks` is an engine part (``pbx_core.bridge.EnginePart``). Its pure side,
:class:`~.core.service.CallbackService`, runs *inside* the bridge's engine task: it reads the
live state and the deltas the engine just made, and the dialplan's UserEvents and
OriginateResponses at their place among them. Its shell, :meth:`Callbacks.run`, is a task beside
the engine that does the I/O the service asks for, in order and through the bridge's own
client: the SQL store, QueuePause / Originate / Hangup / Setvar, the Status listing that finds
live calls after a restart. What the I/O learns goes back into the engine queue as an input
(:data:`~.core.service.Input`), so the service sees it in stream order too.

Why one session and one task, not a worker beside the bridge: on one AMI connection the queue
events and the callback events arrive in Asterisk's order (an agent's pause, the originate's
outcome and the member's next state are never seen out of order); "free agent" is the
wallboard's own state, not a second copy parsed from a second login; and the callbacks' counts
reach the bus in the same ordered stream as the queues' deltas.

Never twice: a :class:`~.core.scheduler.Dial` is saved as ``dialling`` (with its originate id)
*before* the Originate is sent. A bridge that dies in between restarts into a ``dialling`` record,
finds the call by its channel variable (AMI ``Status``) and waits for its result instead of
dialling again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..ami.errors import AmiActionError, AmiDisconnected, AmiError, AmiTimeout
from ..domain.queue_state import Delta, LiveState
from .ami import (
    NOT_FOUND,
    ewt_variable,
    live_callback_channels,
    marker_action,
    offer_variable,
    originate_action,
    pause_action,
    quote_variable,
    setvar_action,
    status_action,
)
from .core import scheduler as sched
from .core.announce import WaitForecast, spoken_s
from .core.events import CALLBACK_EVENTS, CALLBACK_USER_EVENTS, PAUSE_REASON, WATCHED_EVENTS
from .core.live import forecast_now
from .core.model import VAR_CALLBACK_ID, VAR_ORIGINATE_ID, Callback
from .core.policy import QueuePolicy
from .core.promise import LATER_SLOT_HOURS, later_slot, quote_value
from .core.service import (
    FORGET_CLOSED_AFTER_S,
    CallbackService,
    Command,
    DialFailed,
    Forgotten,
    Mark,
    PoliciesLoaded,
    Reconciled,
    Restored,
    StoreChanged,
    StoredWins,
    Unpause,
)
from .settings import load_queue_infos
from .store import CallbackStore, DuplicateCallback

if TYPE_CHECKING:
    from ..ami.client import AmiClient
    from ..config import Settings

log = logging.getLogger(__name__)

POLL_OVERLAP_S = 5.0  # the store's stamps come from other processes' clocks
_FAILED = object()  # a marker lookup Asterisk did not answer
RESTART_DELAY_S = 5.0  # after a shell failure (database down): restore again after this


class Host(Protocol):
    """What the callbacks need of the bridge (``pbx_core.bridge.Bridge``)."""

    client: AmiClient

    @property
    def state(self) -> LiveState: ...

    def post(self, item: Any) -> None: ...

    def now(self) -> float: ...


class Store(Protocol):
    """What the shell needs of :class:`~.store.CallbackStore`."""

    async def load_open(self, tenant: str | None = None) -> list[Callback]: ...

    async def save(self, cb: Callback, change: str, *, at: float | None = None) -> bool | None: ...

    async def get(self, callback_id: str) -> Callback | None: ...

    async def updated_since(self, since: datetime, tenant: str | None = None) -> list[Callback]: ...


@dataclass(frozen=True, slots=True)
class CallbackOptions:
    refresh_s: float = 5.0  # re-send every PBX_EWT_/PBX_OFFER_ global (they vanish on a restart)
    globals_every_s: float = 1.0  # look for changed globals this often
    store_poll_s: float = 1.0  # pick up callbacks booked through REST / the wallboard
    policies_every_s: float = 30.0  # re-read queue settings and hours
    reconcile_every_s: float = 30.0  # look for lost dials (no channel, no result)


@dataclass(slots=True)
class ShellCounters:
    originates: int = 0
    originate_errors: int = 0
    setvars: int = 0
    restarts: int = 0  # the shell failed (e.g. the database) and restored again


class Callbacks:
    """The callbacks of one PBX, as a part of its bridge:

    >>> callbacks = Callbacks(CallbackStore(sessions), sessions)
    >>> bridge = Bridge(url, ..., parts=[callbacks])   # one AMI session, one engine task
    >>> await bridge.run()

    ``callbacks.ready`` is set once the records are restored from SQL and the first reconcile
    listing is applied: it is serving.
    """

    name = "callbacks"  # its counters' key in the bridge's stats (and /metrics)
    extra_events = CALLBACK_EVENTS
    user_events = CALLBACK_USER_EVENTS
    watched_events = WATCHED_EVENTS

    def __init__(
        self,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
        *,
        options: CallbackOptions | None = None,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.options = options or CallbackOptions()
        self.service = CallbackService()
        self.shell_counters = ShellCounters()
        self.ready = asyncio.Event()
        self._host: Host | None = None
        self._outbox: deque[Command] = deque()
        self._wake = asyncio.Event()
        self._sent: dict[str, str] = {}  # global variable -> value last sent
        self._last_full = float("-inf")
        self._seen_lost: set[str] = set()  # dials past their timeout already reconciled for

    # ----------------------------------------------------------------- as an engine part

    def bind(self, bridge: Host) -> None:
        self._host = bridge

    @property
    def host(self) -> Host:
        if self._host is None:
            raise RuntimeError("Callbacks is not part of a bridge: Bridge(..., parts=[callbacks])")
        return self._host

    @property
    def client(self) -> AmiClient:
        return self.host.client

    def clock(self) -> float:
        """The engine's clock (the PBX's time)."""
        return self.host.now()

    def step(
        self, state: LiveState, deltas: list[Delta], marks: Sequence[Mark], now: float, ticked: bool
    ) -> list[Delta]:
        """In the engine task, after each batch: the pure service decides; its commands queue up
        for the shell task, in order."""
        out, commands = self.service.step(state, deltas, marks, now, ticked)
        if commands:
            self._outbox.extend(commands)
            self._wake.set()
        if self.service.ready and not self.ready.is_set():
            self.ready.set()
        return out

    # The scheduler's state and counters, for status output, tests and /metrics.

    @property
    def state(self) -> sched.SchedulerState:
        return self.service.state

    @property
    def counters(self) -> dict[str, int]:
        return {**asdict(self.service.counters), **asdict(self.shell_counters)}

    def forget_closed(self, now: float) -> int:
        return self.service.forget_closed(now)

    # ----------------------------------------------------------------- the shell task

    async def run(self) -> None:
        """Restore, then serve; after a failure (the database went away) start again from what
        the database holds: crash-only, without taking the bridge down with it."""
        while True:
            try:
                await self._serve()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.shell_counters.restarts += 1
                log.exception("callbacks: failed; restoring from the database in %gs", RESTART_DELAY_S)
                self._reset()
                await asyncio.sleep(RESTART_DELAY_S)

    def _reset(self) -> None:
        # The engine task is not inside step() now (one thread): swapping the state is safe, and
        # inputs of the previous run still queued carry the old epoch, so they are dropped.
        epoch = self.service.epoch + 1
        counters = self.service.counters
        self.service = CallbackService(epoch=epoch, counters=counters)
        self._outbox.clear()
        self._sent.clear()
        self.ready.clear()

    def _post(self, item: Any) -> None:
        self.host.post(item)

    async def _serve(self) -> None:
        client = self.client
        epoch = self.service.epoch
        await client.wait_connected()
        infos = await load_queue_infos(self.sessions)
        records = await self.store.load_open()
        # Today's closed callbacks too: the wallboard's "completed / on time today" must not start
        # again from zero after a restart. (updated_at is the database writers' wall clock.)
        since = datetime.now(UTC) - timedelta(seconds=FORGET_CLOSED_AFTER_S)
        closed = [c for c in await self.store.updated_since(since) if not c.is_open]
        self._post(Restored(epoch, tuple(records), tuple(closed), infos))
        polled_at = datetime.now(UTC) - timedelta(seconds=POLL_OVERLAP_S)
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + self.options.store_poll_s
        next_policies = loop.time() + self.options.policies_every_s
        next_reconcile = loop.time() + self.options.reconcile_every_s
        next_globals = loop.time()
        connects_seen = -1
        while True:
            if client.connected and client.counters.connects != connects_seen:
                # A (re)connect: calls may have ended while we were away; find what is still up.
                connects_seen = client.counters.connects
                await self._reconcile(epoch, always=True)
            await self._run_commands(epoch)
            now = loop.time()
            if now >= next_poll:
                next_poll = now + self.options.store_poll_s
                polled_at = await self._poll_store(epoch, polled_at)
            if now >= next_policies:
                next_policies = now + self.options.policies_every_s
                await self._load_policies(epoch)
            lost = self._newly_lost()
            if now >= next_reconcile or lost:
                # Every reconcile_every_s, and at once when a dial passes its timeout unresolved.
                next_reconcile = now + self.options.reconcile_every_s
                await self._reconcile(epoch)
            if now >= next_globals and self.service.restored:
                next_globals = now + self.options.globals_every_s
                await self._refresh_globals()
            if self._outbox:
                continue
            wait = min(next_poll, next_policies, next_reconcile, next_globals) - loop.time()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wait)):
                    await self._wake.wait()

    # ----------------------------------------------------------------- commands out

    async def _run_commands(self, epoch: int) -> None:
        while self._outbox:
            command = self._outbox.popleft()
            if isinstance(command, sched.Save):
                await self._save(epoch, command.callback, command.change)
            elif isinstance(command, sched.Dial):
                await self._dial(epoch, command)
            elif isinstance(command, sched.Hangup):
                await self._hangup(command)
            elif isinstance(command, Unpause):
                await self._unpause(command)

    async def _save(self, epoch: int, callback: Callback, change: str) -> bool:
        """Persist; False when the database says otherwise (closed through the API meanwhile, or
        a duplicate booked at the same moment): the database wins and the state follows it."""
        try:
            written = await self.store.save(callback, change, at=self.clock())
        except DuplicateCallback:
            log.info("callbacks: %s duplicates an open callback; keeping the stored one", callback.id)
            self._post(Forgotten(epoch, callback))
            return False
        # Any other error propagates (crash-only): the shell restores what the database holds.
        if written is False:
            stored = await self.store.get(callback.id)
            if stored is not None:
                self._post(StoredWins(epoch, stored))
            return False
        return True

    async def _dial(self, epoch: int, dial: sched.Dial) -> None:
        cb = dial.callback
        if not await self._save(epoch, cb, "dialling"):  # before the Originate: what makes a restart safe
            return  # cancelled through the API meanwhile: never dialled
        try:
            await self.client.action(pause_action(cb.tenant, cb.queue, dial.agent, True))
        except (AmiActionError, AmiDisconnected, AmiTimeout) as exc:
            log.info("callbacks: cannot reserve agent %s for %s: %s", dial.agent, cb.id, exc)
            self._post(DialFailed(epoch, cb.id, dial.originate_id, "agent_unavailable", self.clock(), False))
            return
        try:
            await self.client.action(originate_action(cb, dial.agent, dial.originate_id))
            self.shell_counters.originates += 1
            log.info("callbacks: dialling %s for %s-%s via %s", cb.id, cb.tenant, cb.queue, dial.agent)
        except (AmiActionError, ValueError) as exc:
            self.shell_counters.originate_errors += 1
            log.error("callbacks: Originate for %s refused: %s", cb.id, exc)
            self._post(DialFailed(epoch, cb.id, dial.originate_id, "failed", self.clock(), True))
        except (AmiDisconnected, AmiTimeout) as exc:
            # It may or may not have reached Asterisk: the record stays ``dialling`` and the
            # reconcile after the reconnect decides (live channel, or lost after dial_timeout_s).
            self.shell_counters.originate_errors += 1
            log.warning("callbacks: Originate for %s unconfirmed: %s", cb.id, exc)

    async def _hangup(self, command: sched.Hangup) -> None:
        cb = command.callback
        try:
            items = await self.client.listing(status_action(VAR_ORIGINATE_ID))
            for item in items:
                variables = item.get("Variable", "")
                if f"{VAR_ORIGINATE_ID}={command.originate_id}" in variables.split("\n"):
                    hangup = {"Action": "Hangup", "Channel": item.get("Channel", "")}
                    await self.client.action(hangup, check=False)
        except AmiError as exc:
            log.warning("callbacks: hanging up cancelled %s failed: %s", cb.id, exc)
        if cb.agent:
            await self._unpause(Unpause(cb.tenant, cb.queue, cb.agent))

    async def _unpause(self, command: Unpause) -> None:
        q = self.host.state.queues.get(f"{command.tenant}-{command.queue}")
        member = q.members.get(command.agent) if q is not None else None
        if member is not None and member.paused and member.paused_reason != PAUSE_REASON:
            return  # the agent took a break meanwhile: theirs to end, not ours
        try:
            await self.client.action(pause_action(command.tenant, command.queue, command.agent, False))
        except AmiError as exc:
            log.warning("callbacks: unpausing %s after a callback failed: %s", command.agent, exc)

    # ----------------------------------------------------------------- restart and drift

    def _newly_lost(self) -> bool:
        """A dial passed its timeout without a result since the last look."""
        if not self.service.restored:
            return False
        lost = {c.originate_id for c in self.service.lost_dials(self.clock())}
        new = bool(lost - self._seen_lost)
        self._seen_lost = {oid for oid in lost if oid is not None}
        return new

    async def _reconcile(self, epoch: int, *, always: bool = False) -> None:
        """List the live callback channels; the engine applies the listing after every event
        Asterisk sent before it (the socket callback enqueues in stream order, then completes
        the listing), so a call that ended just before it has its result applied first, and
        "no channel" is never read without it."""
        if not always and not (self.service.restored and self.service.lost_dials_possible(self.clock())):
            return
        try:
            items = await self.client.listing(status_action(VAR_CALLBACK_ID))
        except AmiError as exc:
            log.warning("callbacks: cannot list live channels (%s); reconciling later", exc)
            return
        live = frozenset(live_callback_channels(items))
        # Dials without a channel: what the dialplan wrote down for them (their result events may
        # have come and gone while this bridge was down).
        markers: dict[str, str | None] = {}
        if self.service.restored:
            for callback in self.service.state.in_flight():
                if callback.id not in live and callback.originate_id is not None:
                    found = await self._marker(callback)
                    if found is not _FAILED:
                        markers[callback.originate_id] = found  # type: ignore[assignment]
        self._post(Reconciled(epoch, live, self.clock(), markers))

    async def _marker(self, callback: Callback) -> str | object | None:
        """The attempt's AstDB marker: its value, None when it is not there, _FAILED when Asterisk
        could not be asked (the reconcile then counts the attempt as unconfirmed, never failed)."""
        try:
            items = await self.client.listing(marker_action(callback))
        except AmiActionError as exc:
            if NOT_FOUND.lower() in str(exc).lower():
                return None
            log.error(
                "callbacks: DBGet of %s's marker refused (%s): the AMI user needs write class "
                "'reporting' (see asterisk-config/manager.conf); its outcome stays unconfirmed",
                callback.id, exc,
            )
            return _FAILED
        except AmiError as exc:
            log.warning("callbacks: DBGet of %s's marker failed: %s", callback.id, exc)
            return _FAILED
        values = [item.get("Val", "") for item in items if item.get("Event") == "DBGetResponse"]
        return values[0] if values else None

    async def _poll_store(self, epoch: int, since: datetime) -> datetime:
        """Changes made outside the engine: bookings through REST or the wallboard, API cancels."""
        next_since = datetime.now(UTC) - timedelta(seconds=POLL_OVERLAP_S)
        try:
            rows = await self.store.updated_since(since)
        except Exception as exc:  # a database blip: the next poll tries again
            log.warning("callbacks: polling the store failed: %s", exc)
            return since
        if rows:
            self._post(StoreChanged(epoch, tuple(rows)))
        return next_since

    async def _load_policies(self, epoch: int) -> None:
        try:
            infos = await load_queue_infos(self.sessions)
        except Exception as exc:
            log.warning("callbacks: re-reading queue settings failed (%s); keeping the last ones", exc)
            return
        self._post(PoliciesLoaded(epoch, infos, self.clock()))

    # ----------------------------------------------------------------- globals for the dialplan

    def expected_wait(self, key: tuple[str, str]) -> WaitForecast | None:
        """Read between engine batches (same loop): the live state and the line as they are."""
        now = self.clock()
        rate = self.service.pacing.queue(key).abandons.rate(now)
        waiting = self.service.waiting(key)
        return forecast_now(self.host.state, key, self.service.estimator(key), waiting, rate, now)

    def quote(self, key: tuple[str, str], policy: QueuePolicy, timezone: str, now: float) -> str:
        """What a caller booking now hears: the window (at the back of the line; a caller who
        keeps their place is served no later) and the later slot the menu offers."""
        window = self.service.quote(self.host.state, key, now)
        if window is None:
            return ""
        try:
            later = later_slot(window, policy.hours, LATER_SLOT_HOURS)
        except ValueError:
            return ""
        return quote_value(window, later, now, timezone)

    async def _refresh_globals(self) -> None:
        now = self.clock()
        full = now - self._last_full >= self.options.refresh_s or now < self._last_full
        if full:
            self._last_full = now
        for key, info in sorted(self.service.infos.items()):
            forecast = self.expected_wait(key)
            ewt = None if forecast is None else forecast.mean_s
            offer = info.policy.offer and ewt is not None and ewt >= info.policy.offer_after_s
            # What the dialplan says: "less than a minute" or whole minutes, the value the wait is
            # likeliest to be within the band of.
            said = spoken_s(forecast)
            values = {
                ewt_variable(*key): "" if said is None else str(round(said)),
                offer_variable(*key): "1" if offer else "0",
                quote_variable(*key): self.quote(key, info.policy, info.timezone, now),
            }
            for variable, value in values.items():
                if not full and self._sent.get(variable) == value:
                    continue
                try:
                    await self.client.action(setvar_action(variable, value))
                except AmiError as exc:
                    log.warning("callbacks: Setvar %s failed: %s", variable, exc)
                    self._sent.pop(variable, None)
                    continue
                self.shell_counters.setvars += 1
                self._sent[variable] = value


@contextlib.asynccontextmanager
async def callbacks_for(
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    options: CallbackOptions | None = None,
) -> AsyncIterator[Callbacks]:
    """The callbacks part for a bridge, over ``sessions`` (default: PBX_DATABASE_URL, checked to
    be at our schema first). ``Bridge(..., parts=[callbacks])`` then runs it."""
    from ..provisioning import db
    from ..provisioning.cli import ensure_schema

    async with contextlib.AsyncExitStack() as exits:
        if sessions is None:
            await ensure_schema(settings.database_url)
            sessions = await exits.enter_async_context(db.open_sessions(settings.database_url))
        yield Callbacks(CallbackStore(sessions), sessions, options=options)
