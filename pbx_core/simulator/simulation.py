"""The simulator as one object: AMI server + seeded traffic, in the current event loop.

    async with Simulation(SimulationConfig(tenants=3, speed=10)) as sim:
        bridge = connect(sim.url)          # AmiUrl; sim.url_text is ami://user:secret@host:port
        ...
        sim.truth()                        # ground-truth counters per queue

This is what ``pbx-core simulate`` runs and what the demo embeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from ..config import AmiUrl
from .clock import SimClock
from .server import SimulatedAsterisk
from .traffic import Traffic, TrafficConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    speed: float = 1.0  # virtual seconds per real second
    start: float | None = None  # virtual epoch start; None: now
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    username: str = "pbx"
    secret: str = "s3cret"
    noise: bool = True  # send the channel/dialplan noise a real Asterisk sends
    # A directory playing /etc/asterisk: `module reload` over AMI loads what apply wrote there.
    config_dir: Path | None = None


def start_at_local_time(hhmm: str, timezone: str, *, today: datetime | None = None) -> float:
    """Today's ``HH:MM`` in ``timezone`` as an epoch second (for ``--start``)."""
    hour, _, minute = hhmm.partition(":")
    tz = ZoneInfo(timezone)
    day = (today or datetime.now(tz)).astimezone(tz).date()
    return datetime.combine(day, time(int(hour), int(minute or 0)), tzinfo=tz).timestamp()


class Simulation:
    def __init__(self, config: SimulationConfig | None = None) -> None:
        self.config = cfg = config or SimulationConfig()
        self.clock = SimClock(cfg.start, speed=cfg.speed)
        self.server = SimulatedAsterisk(
            username=cfg.username, secret=cfg.secret, host=cfg.host, port=cfg.port, clock=self.clock,
            config_dir=cfg.config_dir,
        )
        self.server.noise = cfg.noise
        self.traffic = Traffic(self.server, cfg.traffic)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> AmiUrl:
        return self.server.url

    @property
    def url_text(self) -> str:
        return self.server.url_text

    def truth(self) -> dict[str, dict[str, int]]:
        return self.server.truth_dict()

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for counters in self.server.truth_dict().values():
            for k, v in counters.items():
                out[k] = out.get(k, 0) + v
        return out

    def status_line(self) -> str:
        t = self.totals()
        waiting = sum(len(q.callers) for q in self.server.queues.values())
        now = datetime.fromtimestamp(self.clock.now(), ZoneInfo(self.config.traffic.timezone))
        return (
            f"sim {now:%H:%M:%S} | offered {t.get('offered', 0)} answered {t.get('answered', 0)} "
            f"abandoned {t.get('abandoned', 0)} (short {t.get('short_abandoned', 0)}) "
            f"waiting {waiting} | clients {len(self.server.live)}"
        )

    async def start(self, *, traffic: bool = True) -> None:
        """Open the AMI port; with ``traffic`` also start the real-time traffic."""
        self.traffic.setup()
        await self.server.start()
        if traffic:
            self.start_traffic()

    def start_traffic(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.traffic.run(), name="pbx-sim-traffic")
            self._task.add_done_callback(_report_crash)

    async def stop_traffic(self) -> None:
        """No more calls, answers or hangups (the AMI port stays open): a world that holds still,
        so what the bridge shows can be compared with it at leisure."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def fast_forward(self, seconds: float) -> None:
        """Play ``seconds`` of traffic as fast as connected clients read it, then carry on from
        there: the demo's warm-up, so a new wallboard has history and callers at once."""
        await self.traffic.advance_async(seconds)

    async def stop(self) -> None:
        await self.stop_traffic()
        await self.server.close()

    async def __aenter__(self) -> Simulation:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("simulator traffic stopped", exc_info=task.exception())
