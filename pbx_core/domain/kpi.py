"""Today's counters per queue and the KPIs derived from them, exactly as DESIGN.md defines them.

| KPI             | definition                                                          |
| offered         | callers who joined the queue                                        |
| answered        | AgentConnect; the caller's wait is its HoldTime                     |
| abandoned       | QueueCallerAbandon; short if wait < short_abandon_s                 |
| service level % | answered within T / (answered + abandoned - short abandons)        |
| ASA             | mean wait of answered calls                                         |
| abandon %       | (abandoned - short) / (offered - short)                             |
| longest wait    | now - earliest join among callers still waiting                     |
| AHT             | talk + wrap-up per handled call                                     |
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class Counters:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    answered_within_sl: int = 0
    # Left the queue unanswered without hanging up: timeout, exit key, a booked callback, or
    # vanished while the bridge was disconnected. Keeps offered = answered + abandoned +
    # waiting + other_exits true at every moment.
    other_exits: int = 0
    answered_wait_s: int = 0
    longest_wait_s: int = 0  # the longest wait seen among answered and abandoned callers
    handled: int = 0
    talk_s: int = 0
    wrapup_s: int = 0
    ring_no_answer: int = 0

    def as_dict(self) -> dict[str, int]:
        # Not dataclasses.asdict: it deep-copies and runs on every queue.stats delta (~30% of ingest).
        return {name: getattr(self, name) for name in _COUNTER_FIELDS}

    def is_consistent(self, waiting: int) -> bool:
        values = [getattr(self, f.name) for f in fields(self)]
        return min(values) >= 0 and self.offered == (
            self.answered + self.abandoned + waiting + self.other_exits
        )


_COUNTER_FIELDS = tuple(f.name for f in fields(Counters))


def pct(numerator: float, denominator: float) -> float | None:
    return round(100.0 * numerator / denominator, 1) if denominator > 0 else None


def mean(total: float, count: int) -> float | None:
    return round(total / count, 1) if count > 0 else None


def kpis(c: Counters) -> dict[str, float | None]:
    """KPIs for a counter set. None means "no calls yet", never a misleading 0 or 100."""
    counted = c.answered + c.abandoned - c.short_abandoned
    return {
        "sl_pct": pct(c.answered_within_sl, counted),
        "sl_answered_pct": pct(c.answered_within_sl, c.answered),
        "asa_s": mean(c.answered_wait_s, c.answered),
        "abandon_pct": pct(c.abandoned - c.short_abandoned, c.offered - c.short_abandoned),
        "aht_s": mean(c.talk_s + c.wrapup_s, c.handled),
    }
