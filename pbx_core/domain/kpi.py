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
from typing import Any


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
        return {
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "answered_within_sl": self.answered_within_sl,
            "other_exits": self.other_exits,
            "answered_wait_s": self.answered_wait_s,
            "longest_wait_s": self.longest_wait_s,
            "handled": self.handled,
            "talk_s": self.talk_s,
            "wrapup_s": self.wrapup_s,
            "ring_no_answer": self.ring_no_answer,
        }

    def is_consistent(self, waiting: int) -> bool:
        values = [getattr(self, f.name) for f in fields(self)]
        return min(values) >= 0 and self.offered == (
            self.answered + self.abandoned + waiting + self.other_exits
        )


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


class KpiMemo:
    """The last inputs and value of each KPI of one queue.

    ``round`` is most of the cost of a KPI and a queue.stats delta usually moves one or two
    counters, so the KPIs whose inputs did not move are reused. Keyed by the inputs themselves, so
    a stale memo can never give a wrong value (a day roll-over needs no reset).
    """

    __slots__ = ("abandon", "aht", "asa", "sl", "sl_answered")

    def __init__(self) -> None:
        none: tuple[int, int, float | None] = (0, 0, None)  # every KPI is None at 0/0
        self.sl = self.sl_answered = self.asa = self.abandon = self.aht = none


def counters_and_kpis(c: Counters, memo: KpiMemo | None = None) -> dict[str, Any]:
    """``c.as_dict()`` followed by ``kpis(c)``, as one dict.

    Built in one literal with ``pct``/``mean`` inlined: it runs on every queue.stats delta, about
    a third of all deltas, and must stay equal to the two-step form (tests/unit/test_kpi.py).
    """
    m = memo if memo is not None else KpiMemo()
    answered = c.answered
    within = c.answered_within_sl
    short = c.short_abandoned
    counted = answered + c.abandoned - short
    if m.sl[0] != within or m.sl[1] != counted:
        m.sl = (within, counted, round(100.0 * within / counted, 1) if counted > 0 else None)
    if m.sl_answered[0] != within or m.sl_answered[1] != answered:
        m.sl_answered = (within, answered, round(100.0 * within / answered, 1) if answered > 0 else None)
    wait = c.answered_wait_s
    if m.asa[0] != wait or m.asa[1] != answered:
        m.asa = (wait, answered, round(wait / answered, 1) if answered > 0 else None)
    lost = c.abandoned - short
    not_short = c.offered - short
    if m.abandon[0] != lost or m.abandon[1] != not_short:
        m.abandon = (lost, not_short, round(100.0 * lost / not_short, 1) if not_short > 0 else None)
    work = c.talk_s + c.wrapup_s
    handled = c.handled
    if m.aht[0] != work or m.aht[1] != handled:
        m.aht = (work, handled, round(work / handled, 1) if handled > 0 else None)
    return {
        "offered": c.offered,
        "answered": answered,
        "abandoned": c.abandoned,
        "short_abandoned": short,
        "answered_within_sl": within,
        "other_exits": c.other_exits,
        "answered_wait_s": wait,
        "longest_wait_s": c.longest_wait_s,
        "handled": handled,
        "talk_s": c.talk_s,
        "wrapup_s": c.wrapup_s,
        "ring_no_answer": c.ring_no_answer,
        "sl_pct": m.sl[2],
        "sl_answered_pct": m.sl_answered[2],
        "asa_s": m.asa[2],
        "abandon_pct": m.abandon[2],
        "aht_s": m.aht[2],
    }
