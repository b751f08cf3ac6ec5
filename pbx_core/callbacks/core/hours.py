"""Business hours as a pure value: is a queue open at a moment, and when does it next open.

Built from the provisioning schema's ``HoursIn`` (weekly spans + holidays) and the tenant's
timezone. Times in and out are epoch seconds; the wall-clock arithmetic happens in the tenant's
zone so daylight-saving changes move opening times the way people expect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEARCH_DAYS = 400  # a schedule closed for longer than this is treated as never opening


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True, slots=True)
class HoursSpec:
    """Opening minutes per weekday (0 = Monday) as sorted ``(open, close)`` minute pairs."""

    timezone: str
    weekly: tuple[tuple[tuple[int, int], ...], ...]  # 7 entries
    holidays: frozenset[date] = frozenset()

    @classmethod
    def build(
        cls, timezone: str, spans: Iterable[tuple[Iterable[str], str, str]], holidays: Iterable[date] = ()
    ) -> HoursSpec:
        """``spans``: (days like ``["mon", "tue"]``, ``"08:30"``, ``"17:00"``).

        ``"24:00"`` closes at midnight."""
        ZoneInfo(timezone)  # fail early on an unknown zone
        per_day: list[list[tuple[int, int]]] = [[] for _ in _DAYS]
        for days, opens, closes in spans:
            start, end = _minutes(opens), _minutes(closes)
            if start >= end:
                raise ValueError(f"opening span {opens}-{closes}: open must be before close")
            for day in days:
                per_day[_DAYS.index(day)].append((start, end))
        return cls(timezone, tuple(tuple(sorted(d)) for d in per_day), frozenset(holidays))


class _SpanLike(Protocol):
    @property
    def days(self) -> Sequence[str]: ...  # pragma: no cover - structural type only
    @property
    def open(self) -> str: ...  # pragma: no cover
    @property
    def close(self) -> str: ...  # pragma: no cover


class _HolidayLike(Protocol):
    @property
    def date(self) -> date: ...  # pragma: no cover


class _HoursLike(Protocol):
    @property
    def weekly(self) -> Sequence[_SpanLike]: ...  # pragma: no cover
    @property
    def holidays(self) -> Sequence[_HolidayLike]: ...  # pragma: no cover


def from_schema(hours: _HoursLike, timezone: str) -> HoursSpec:
    """A :class:`HoursSpec` from ``pbx_core.provisioning.schemas.HoursIn`` (or anything shaped like it)."""
    return HoursSpec.build(
        timezone, ((s.days, s.open, s.close) for s in hours.weekly), (h.date for h in hours.holidays)
    )


def _local(spec: HoursSpec, at: float) -> datetime:
    return datetime.fromtimestamp(at, ZoneInfo(spec.timezone))


def _spans_on(spec: HoursSpec, day: date) -> tuple[tuple[int, int], ...]:
    return () if day in spec.holidays else spec.weekly[day.weekday()]


def is_open(spec: HoursSpec | None, at: float) -> bool:
    """Whether the schedule is open at ``at``. No schedule (None) means always open."""
    if spec is None:
        return True
    local = _local(spec, at)
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in _spans_on(spec, local.date()))


def next_opening(spec: HoursSpec | None, at: float) -> float | None:
    """``at`` itself when open, else the start of the next opening span; None if it never opens."""
    if is_open(spec, at):
        return at
    assert spec is not None  # None is always open
    zone = ZoneInfo(spec.timezone)
    local = _local(spec, at)
    for offset in range(_SEARCH_DAYS):
        day = local.date() + timedelta(days=offset)
        for start, _end in _spans_on(spec, day):
            opens = datetime.combine(day, time(start // 60, start % 60), zone)
            if opens.timestamp() > at:
                return opens.timestamp()
    return None


def current_close(spec: HoursSpec | None, at: float) -> float | None:
    """When the span open at ``at`` closes (None: always open, or closed at ``at``)."""
    if spec is None or not is_open(spec, at):
        return None
    zone = ZoneInfo(spec.timezone)
    local = _local(spec, at)
    minute = local.hour * 60 + local.minute
    for start, end in _spans_on(spec, local.date()):
        if start <= minute < end:
            closes = datetime.combine(local.date(), time(0, 0), zone) + timedelta(minutes=end)
            return closes.timestamp()
    return None  # pragma: no cover - is_open said one span matches
