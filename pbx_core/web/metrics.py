"""``/metrics`` in the Prometheus text format, from a private registry.

Everything is read at scrape time from the objects that already count it (hub stats, the
bridge's stats provider, tenant boards), so the hot paths never touch prometheus_client.

The stats provider is the bridge's ``stats()`` when bridge and web share a process (``demo``,
``serve``): ``{"ami": AmiCounters.as_dict(), "engine": {...}, "bus": PublisherStats.as_dict(),
"history": WriterStats.as_dict()}``;
every key is optional. A web-only process has no provider and exports no AMI metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..domain.board import Board
from .hub import Hub

StatsProvider = Callable[[], Mapping[str, Any]]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_QUEUE_LABELS = ["tenant", "queue"]


def queue_gauges(board: Board, now: float) -> Iterator[tuple[str, dict[str, float]]]:
    """(queue, {metric: value}) for one board; a KPI without calls is left out, not 0."""
    for name, q in sorted(board.get("queues", {}).items()):
        stats = q.get("stats") or {}
        joins = [c["joined_at"] for c in q.get("waiting", []) if isinstance(c.get("joined_at"), int | float)]
        values: dict[str, float] = {
            "waiting": float(len(q.get("waiting", []))),
            "longest_wait_seconds": max(0.0, now - min(joins)) if joins else 0.0,
            "available_agents": float(sum(1 for m in q.get("members", []) if m.get("state") == "available")),
        }
        for key, metric in (
            ("sl_pct", "service_level_percent"),
            ("offered", "offered_today"),
            ("answered", "answered_today"),
            ("abandoned", "abandoned_today"),
            ("asa_s", "asa_seconds"),
        ):
            v = stats.get(key)
            if isinstance(v, int | float):
                values[metric] = float(v)
        callbacks = q.get("callbacks") or {}  # from the callback worker, when one runs
        for key, metric in (
            ("pending", "callbacks_pending"),
            ("in_progress", "callbacks_in_progress"),
            ("overdue", "callbacks_overdue"),
            ("completed_today", "callbacks_completed_today"),
            ("on_time_pct", "callbacks_on_time_percent"),
        ):
            v = callbacks.get(key)
            if isinstance(v, int | float):
                values[metric] = float(v)
        yield name, values


class WebCollector:
    """A prometheus_client collector over the hub, the stats provider and the current boards."""

    def __init__(self, hub: Hub, stats_provider: StatsProvider | None = None) -> None:
        self.hub = hub
        self.stats_provider = stats_provider
        self.boards: Mapping[str, Board] = {}  # set by the endpoint just before each scrape
        self.redis_up: bool | None = None  # likewise (None: not known)
        self.uptime_s: float | None = None

    def collect(self) -> Iterator[Metric]:
        s = self.hub.stats
        if self.redis_up is not None:
            yield _gauge("pbx_web_redis_up", "1 while this web process reaches the bus (Redis).",
                         float(self.redis_up))
        if self.uptime_s is not None:
            yield _gauge("pbx_web_uptime_seconds", "Seconds since this web process started.", self.uptime_s)
        yield _counter("pbx_web_bus_entries", "Bus stream entries applied to wallboard boards.", s.entries_in)
        yield _counter("pbx_web_bus_snapshots", "Tenant snapshots loaded from the bus.", s.snapshots_in)
        yield _counter("pbx_web_deltas_out", "Delta messages queued to wallboard clients.", s.deltas_out)
        yield _counter(
            "pbx_web_delta_frames", "Delta frames encoded (one per tenant and scope).", s.delta_frames
        )
        yield _counter(
            "pbx_web_snapshots_out", "Snapshot messages sent to wallboard clients.", s.snapshots_out
        )
        yield _counter(
            "pbx_web_dropped_messages",
            "Messages discarded from overflowing client queues.",
            s.dropped_messages,
        )
        resyncs = CounterMetricFamily(
            "pbx_web_resyncs", "Clients sent a fresh snapshot, by reason.", labels=["reason"]
        )
        for reason in ("overflow", "client", "reload"):
            resyncs.add_metric([reason], s.resyncs.get(reason, 0))
        yield resyncs
        refused = CounterMetricFamily(
            "pbx_web_refused", "Websockets refused, by close code.", labels=["code"]
        )
        for code in (4401, 4403):
            refused.add_metric([str(code)], s.refused.get(code, 0))
        yield refused
        revoked = CounterMetricFamily(
            "pbx_web_revoked", "Open websockets closed (4401) because their access went, by why.",
            labels=["why"],
        )
        for why in ("revoked", "expired"):
            revoked.add_metric([why], s.revoked.get(why, 0))
        yield revoked

        clients = GaugeMetricFamily("pbx_web_clients", "Connected wallboard websockets.", labels=["tenant"])
        lag = GaugeMetricFamily(
            "pbx_web_stream_lag_seconds",
            "Age of the newest bus entry when this process read it.",
            labels=["tenant"],
        )
        for tenant, feed in sorted(self.hub.feeds.items()):
            clients.add_metric([tenant], len(feed.clients))
            lag.add_metric([tenant], feed.lag_s)
        yield clients
        yield lag

        now = time.time()
        families = {
            "waiting": "Callers waiting now.",
            "longest_wait_seconds": "Longest current wait.",
            "available_agents": "Agents available now.",
            "service_level_percent": "Service level today (absent until a call is counted).",
            "offered_today": "Callers offered today.",
            "answered_today": "Calls answered today.",
            "abandoned_today": "Callers who abandoned today.",
            "asa_seconds": "Average speed of answer today.",
            "callbacks_pending": "Callbacks waiting to be dialled, not yet overdue.",
            "callbacks_in_progress": "Callbacks being dialled now.",
            "callbacks_overdue": "Open callbacks past their due-by time.",
            "callbacks_completed_today": "Callbacks completed today.",
            "callbacks_on_time_percent": "Callbacks completed by their due-by time today.",
        }
        gauges = {
            k: GaugeMetricFamily(f"pbx_queue_{k}", h, labels=_QUEUE_LABELS) for k, h in families.items()
        }
        for tenant, board in sorted(self.boards.items()):
            for queue, values in queue_gauges(board, now):
                for key, value in values.items():
                    gauges[key].add_metric([tenant, queue], value)
        yield from gauges.values()

        yield from self._bridge_metrics()

    def _bridge_metrics(self) -> Iterator[Metric]:
        if self.stats_provider is None:
            return
        stats = self.stats_provider()
        ami = stats.get("ami") or {}
        if ami:
            yield _gauge(
                "pbx_ami_connected", "1 while logged in to Asterisk AMI.", float(bool(ami.get("connected")))
            )
            yield _counter(
                "pbx_ami_events", "AMI events queued to the engine (events in).", ami.get("events_queued", 0)
            )
            yield _counter("pbx_ami_connects", "Successful AMI logins.", ami.get("connects", 0))
            yield _counter("pbx_ami_disconnects", "AMI sessions that ended.", ami.get("disconnects", 0))
            yield _counter(
                "pbx_ami_dropped_events",
                "AMI events dropped on engine queue overflow.",
                ami.get("dropped_overflow", 0),
            )
            yield from _ami_bounds(ami)
        engine = stats.get("engine") or {}
        if engine:
            yield _counter(
                "pbx_engine_deltas", "Deltas produced by the state engine.", engine.get("deltas", 0)
            )
        bus = stats.get("bus") or {}
        if bus:
            yield _gauge(
                "pbx_bus_redis_up", "1 while the bridge can write to Redis.", float(bool(bus.get("redis_up")))
            )
            yield _counter("pbx_bus_published", "Deltas written to the bus.", bus.get("published", 0))
            yield _counter("pbx_bus_dropped", "Deltas dropped from the outage buffer.", bus.get("dropped", 0))
            yield _counter("pbx_bus_outages", "Redis outages seen by the bridge.", bus.get("outages", 0))
            yield _gauge("pbx_bus_buffered", "Deltas waiting to be written to Redis.", bus.get("buffered", 0))
        history = stats.get("history") or {}
        if history:
            yield _gauge("pbx_history_redis_up", "1 while the history writer reads Redis.",
                         float(bool(history.get("redis_up"))))  # fmt: skip
            yield _gauge("pbx_history_db_up", "1 while the history writer can write to the database.",
                         float(bool(history.get("db_up"))))  # fmt: skip
            for key, doc in (
                ("entries", "Stream entries the history writer folded."),
                ("calls_written", "Call rows the history writer upserted."),
                ("sessions_written", "Agent-session rows the history writer upserted."),
                ("gaps", "Gaps the history writer saw in a stream (entries lost before it read them)."),
                ("anonymised", "Calls anonymised past the retention."),
            ):
                yield _counter(f"pbx_history_{key}", doc, history.get(key, 0))
        callbacks = stats.get("callbacks") or {}
        if callbacks:
            for key, doc in (
                ("originates", "Callback attempts originated (agent-first)."),
                ("originate_errors", "Callback Originate actions Asterisk refused."),
                ("results", "Callback attempt results received."),
                ("requests", "Callbacks booked from the dialplan (in-queue offer, after hours)."),
                ("requests_refused", "Callback bookings refused (duplicate, unknown queue)."),
            ):
                yield _counter(f"pbx_callbacks_{key}", doc, callbacks.get(key, 0))


def _ami_bounds(ami: Mapping[str, Any]) -> Iterator[Metric]:
    """What a hostile or broken PBX cost: bounds it overran (each dropped the connection),
    replies dropped unfinished, frames refused, UserEvents that were not ours."""
    limits = CounterMetricFamily(
        "pbx_ami_limits_exceeded",
        "AMI connections dropped (and resynced) because the PBX overran a buffer bound.",
        labels=["limit"],
    )
    for limit in ("listing_items", "open_listings", "banner"):
        limits.add_metric([limit], float((ami.get("limits_exceeded") or {}).get(limit, 0)))
    yield limits
    yield _counter(
        "pbx_ami_listings_dropped",
        "AMI EventList replies dropped unfinished when their action timed out.",
        ami.get("listings_dropped", 0),
    )
    yield _counter(
        "pbx_ami_user_events_ignored", "UserEvents dropped because they are not pbx-core's own.",
        ami.get("user_events_ignored", 0),
    )
    frames = CounterMetricFamily(
        "pbx_ami_frames_dropped", "AMI frames dropped by the decoder.", labels=["reason"]
    )
    for reason in ("oversized", "malformed"):
        frames.add_metric([reason], float(ami.get(reason, 0)))
    yield frames


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


class Metrics:
    """The registry plus the collector; ``render(boards)`` is the scrape."""

    def __init__(self, hub: Hub, stats_provider: StatsProvider | None = None) -> None:
        self.collector = WebCollector(hub, stats_provider)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    def render(self, boards: Mapping[str, Board], *, redis_up: bool | None = None,
               uptime_s: float | None = None) -> bytes:
        # Synchronous from here to the end: no other task can change the boards mid-scrape.
        self.collector.boards = boards
        self.collector.redis_up, self.collector.uptime_s = redis_up, uptime_s
        try:
            return generate_latest(self.registry)
        finally:
            self.collector.boards = {}
            self.collector.redis_up = self.collector.uptime_s = None
