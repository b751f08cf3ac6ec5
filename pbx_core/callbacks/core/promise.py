"""Callback promises: the window a callback is promised when it is booked, from the line ahead.

A fixed "within an hour" is a promise the line cannot always keep. The window is computed from
what the line holds at booking:

- **work ahead**, in agent-seconds: the live callers and in-line callbacks ahead of it, each a
  recent AHT (talk + wrap-up), shared by the staffed agents: ``places x AHT / staffed``. A fill
  callback (a caller who hung up, served on spare capacity) also waits for the fill callbacks
  ahead of it, at the rate fill work has recently gone out (at least ``fill_share`` of the
  agents' capacity);
- **opening hours**: work only happens while the queue is open, so the expected time is walked
  through the opening spans; a window that runs past closing continues at the next opening
  ("tomorrow morning after 08:30");
- **a margin**: the window opens at ``(1 - early)`` of the expected time and closes at
  ``(1 + late)`` of it plus ``slack_s`` (ringing, one quick retry), at least ``min_width_s``
  wide, rounded out to ``round_s`` so it can be said ("between 10:40 and 11:00").

The end of the window is the callback's due-by: the scheduler serves fill callbacks nearing it past
its pacing gates (``urgent_before_s``), and one completed after it counts as late.
Pure: time comes in, nothing is read from a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .hours import HoursSpec, current_close, next_opening


@dataclass(frozen=True, slots=True)
class PromiseRules:
    """How wide a promise is (per queue, part of the queue's policy)."""

    early: float = 0.5  # the window opens at this share below the expected time
    late: float = 0.5  # ... and closes at this share above it (a callback in line)
    fill_late: float = 1.0  # ... (a fill callback: its pace depends on spare capacity to come)
    slack_s: float = 300.0  # plus this: agent and customer ringing, a quick retry
    min_width_s: float = 1200.0  # never narrower than this
    round_s: float = 300.0  # window edges on whole 5 minutes (said as clock times)
    # Fill work (callbacks to callers who hung up) goes out on spare capacity, at the rate the
    # queue has recently been serving it, and never assumed slower than this share of the
    # staffed agents working on it (in overload there is no spare capacity at all).
    fill_share: float = 0.01
    # Fill callbacks this close to their due-by go out past the pacing's SL and load gates (the
    # agents reserved for live callers stay free): the promise is kept where it can be (0: never).
    urgent_before_s: float = 900.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.early < 1.0 and self.late >= 0.0 and self.fill_late >= 0.0):
            raise ValueError("promise margins: early must be in [0, 1), late at least 0")
        if min(self.slack_s, self.min_width_s, self.urgent_before_s) < 0 or self.round_s <= 0:
            raise ValueError("promise durations must not be negative (round_s positive)")
        if not 0.0 < self.fill_share <= 1.0:
            raise ValueError("fill_share must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class LineAhead:
    """What is ahead of a callback being booked."""

    places: int = 0  # live callers and in-line callbacks ahead of it
    fill: int = 0  # fill callbacks ahead of it (counted for a fill callback only)
    staffed: int = 0  # agents working the line now
    aht_s: float | None = None  # smoothed talk + wrap-up; None: no call handled yet
    fill_rate: float | None = None  # fill callbacks dialled per second recently (None: unknown)


@dataclass(frozen=True, slots=True)
class Window:
    """A promise: the callback is made between ``start`` and ``end`` (its due-by).

    ``later``: a later slot the caller chose: nothing is dialled before ``start``. The earliest
    window is a forecast of when the line reaches them: dialling before it is welcome."""

    start: float
    end: float
    later: bool = False

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("a promise window must not end before it starts")


def expected_work_s(line: LineAhead, tier: int, rules: PromiseRules) -> float | None:
    """Open-time seconds until an agent is free for the callback; None when nothing honest can
    be said (no staffed agent, or no handle time known yet)."""
    if line.staffed <= 0 or line.aht_s is None:
        return None
    in_line = (line.places + 1) * line.aht_s / line.staffed
    if tier == 0:
        return in_line
    floor = line.staffed * rules.fill_share / line.aht_s  # fill callbacks per second, at least
    rate = max(floor, line.fill_rate or 0.0)
    return in_line + (line.fill + 1) / rate


def after_open_time(hours: HoursSpec | None, start: float, seconds: float) -> float | None:
    """The moment ``seconds`` of open time after ``start`` have passed (None: never opens)."""
    t = next_opening(hours, start)
    left = max(0.0, seconds)
    for _ in range(400):  # spans; a schedule this fragmented is not a real one
        if t is None:
            return None
        close = current_close(hours, t)
        if close is None or t + left <= close:
            return t + left
        left -= close - t
        t = next_opening(hours, close)
    return None


def promise(
    rules: PromiseRules,
    hours: HoursSpec | None,
    at: float,
    line: LineAhead,
    tier: int,
    *,
    fallback_s: float,
) -> Window:
    """The window to promise a callback booked at ``at`` with ``line`` ahead of it.
    ``fallback_s``: the expected time when nothing is known (the queue's ``due_within_s``)."""
    work = expected_work_s(line, tier, rules)
    expected = fallback_s if work is None else work
    early = expected * (1.0 - rules.early)
    late = expected * (1.0 + (rules.late if tier == 0 else rules.fill_late)) + rules.slack_s
    start = after_open_time(hours, at, early)
    end = after_open_time(hours, at, late)
    if start is None or end is None:
        raise ValueError("the queue's business hours never open: no callback can be promised")
    step = rules.round_s
    # On whole 5 minutes, so it can be said: "between 10:40 and 11:00" (said at 10:42 too).
    start = math.floor(start / step) * step
    if next_opening(hours, start) != start:  # rounded back into closed time: the opening it is
        start = next_opening(hours, start) or start
    end = math.ceil(max(end, max(start, at) + rules.min_width_s) / step) * step  # wide enough from now
    return Window(start, end)


def later_slot(window: Window, hours: HoursSpec | None, hours_later: float) -> Window:
    """The same window ``hours_later`` hours of open time later: the offer menu's "later"
    choice. Nothing is dialled before its start."""
    shift = 3600.0 * hours_later
    start = after_open_time(hours, window.start, shift)
    end = after_open_time(hours, window.end, shift)
    if start is None or end is None:
        raise ValueError("the queue's business hours never open: no later slot")
    return Window(start, max(end, start + (window.end - window.start)), later=True)


# --------------------------------------------------------------------------- the dialplan's quote

LATER_SLOT_HOURS = 2.0  # the offer menu's "later" choice: the same window, two open hours on
QUOTE_SEPARATOR = "/"


def day_word(t: float, at: float, timezone: str) -> str:
    """How the dialplan names the day of ``t`` for a caller at ``at``: today, tomorrow, later."""
    zone = ZoneInfo(timezone)
    day, now = datetime.fromtimestamp(t, zone).date(), datetime.fromtimestamp(at, zone).date()
    return "today" if day == now else "tomorrow" if day == now + timedelta(days=1) else "later"


def quote_value(window: Window, later: Window, at: float, timezone: str) -> str:
    """The ``PBX_CBQ_{slug}_{queue}`` global the dialplan reads when a caller books:
    ``from/to/day/later from/later to/later day`` (epoch seconds; day: today, tomorrow, later).
    It says the window, offers the later one, and books with what the caller chose."""
    parts = (
        int(window.start), int(window.end), day_word(window.start, at, timezone),
        int(later.start), int(later.end), day_word(later.start, at, timezone),
    )
    return QUOTE_SEPARATOR.join(str(p) for p in parts)


def heard_window(start: float | None, end: float | None, later: bool, at: float) -> Window | None:
    """The window a booking event says the caller heard, if it is one that can be kept: it ends
    after the booking and starts within two weeks of it. None: the core promises one itself."""
    if start is None or end is None or not (start <= end and end > at and start < at + 14 * 86400):
        return None
    return Window(start, end, later=later)


# --------------------------------------------------------------------------- saying it

_WORDS = {
    "en": {"between": "between {a} and {b}", "after": "{day} after {a}", "today": "today",
           "tomorrow": "tomorrow", "morning": "morning", "afternoon": "afternoon", "evening": "evening",
           "days": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")},
    "nl": {"between": "tussen {a} en {b}", "after": "{day} na {a}", "today": "vandaag",
           "tomorrow": "morgen", "morning": "ochtend", "afternoon": "middag", "evening": "avond",
           "days": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")},
}


def describe(window: Window, at: float, timezone: str, language: str = "en") -> str:
    """What the caller hears (nl or en): "between 10:40 and 11:00" on the day of booking,
    "tomorrow morning after 08:30" (or a weekday) for a later day."""
    words = _WORDS.get(language, _WORDS["en"])
    zone = ZoneInfo(timezone)
    start, end, now = (datetime.fromtimestamp(t, zone) for t in (window.start, window.end, at))
    a, b = start.strftime("%H:%M"), end.strftime("%H:%M")
    if start.date() == now.date() and end.date() == now.date():
        return str(words["between"]).format(a=a, b=b)
    part = "morning" if start.hour < 12 else "afternoon" if start.hour < 18 else "evening"
    if start.date() == now.date():
        day = f"{words['today']}"
    elif start.date() == now.date() + timedelta(days=1):
        day = f"{words['tomorrow']}{'' if language == 'nl' else ' '}{words[part]}"
    else:
        day = f"{words['days'][start.weekday()]}{'' if language == 'nl' else ' '}{words[part]}"
    return str(words["after"]).format(day=day, a=a)
