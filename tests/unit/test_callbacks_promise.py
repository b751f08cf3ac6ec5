"""Callback promises and wait announcements, pure: the window from the line ahead and the opening
hours, how it is said, how the scheduler keeps it; the announcement and Asterisk's baseline."""

from __future__ import annotations

import math
import random
import statistics
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pbx_core.callbacks.core import announce
from pbx_core.callbacks.core.hours import HoursSpec
from pbx_core.callbacks.core.model import Callback, Status
from pbx_core.callbacks.core.policy import QueuePolicy
from pbx_core.callbacks.core.promise import LineAhead, PromiseRules, Window, describe, later_slot, promise
from pbx_core.callbacks.core.scheduler import (
    CallbackRequest,
    QueueLoad,
    SchedulerState,
    decide,
    on_result,
    request,
)
from pbx_core.callbacks.core.service import summary

TZ = "Europe/Amsterdam"
HOURS = HoursSpec.build(TZ, [(["mon", "tue", "wed", "thu", "fri"], "08:30", "17:00")])
KEY = ("acme", "support")
RULES = PromiseRules()


def at(hhmm: str, day: str = "2025-03-03") -> float:  # a Monday
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=ZoneInfo(TZ)).timestamp()


def clock(t: float) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(TZ)).strftime("%a %H:%M")


def test_the_window_follows_the_line_ahead() -> None:
    # 9 ahead + the callback = 10 places, 240 s each over 4 agents: 600 s expected.
    line = LineAhead(places=9, staffed=4, aht_s=240.0)
    w = promise(RULES, HOURS, at("10:22"), line, 0, fallback_s=3600)
    # opens at half of it (10:27 -> 10:25), closes at 1.5 x + 5 min slack (10:42), at least 20 min
    # wide, on whole 5 minutes.
    assert (clock(w.start), clock(w.end)) == ("Mon 10:25", "Mon 10:45")
    busier = LineAhead(places=39, staffed=4, aht_s=240.0)
    longer = promise(RULES, HOURS, at("10:22"), busier, 0, fallback_s=3600)
    assert longer.end > w.end and longer.start > w.start
    assert describe(w, at("10:22"), TZ, "en") == "between 10:25 and 10:45"
    assert describe(w, at("10:22"), TZ, "nl") == "tussen 10:25 en 10:45"


def test_a_window_past_closing_continues_at_the_next_opening() -> None:
    line = LineAhead(places=29, staffed=2, aht_s=300.0)  # 75 min of work, booked at 16:40
    w = promise(RULES, HOURS, at("16:40"), line, 0, fallback_s=3600)
    assert clock(w.start).startswith("Tue 0") and w.start >= at("08:30", "2025-03-04")
    assert describe(w, at("16:40"), TZ, "en").startswith("tomorrow morning after 0")
    assert describe(w, at("16:40"), TZ, "nl").startswith("morgenochtend na 0")
    # Booked while closed (Friday evening): the work starts at Monday's opening.
    friday = at("19:00", "2025-03-07")
    weekend = promise(RULES, HOURS, friday, LineAhead(places=0, staffed=4, aht_s=240.0), 0, fallback_s=3600)
    assert weekend.start == at("08:30", "2025-03-10")
    assert describe(weekend, friday, TZ, "en") == "Monday morning after 08:30"


def test_nothing_known_falls_back_to_the_queues_due_within() -> None:
    w = promise(RULES, None, at("10:00"), LineAhead(), 0, fallback_s=3600)
    assert w.end - at("10:00") >= 3600  # with the margin on top, never tighter than the fixed one


def test_fill_callbacks_are_promised_at_the_pace_fill_work_goes_out() -> None:
    quiet = LineAhead(places=0, fill=5, staffed=10, aht_s=240.0, fill_rate=10 / 3600)  # 10 an hour
    overload = LineAhead(places=0, fill=5, staffed=10, aht_s=240.0, fill_rate=0.0)  # none lately
    w_quiet = promise(RULES, None, at("10:00"), quiet, 1, fallback_s=3600)
    w_over = promise(RULES, None, at("10:00"), overload, 1, fallback_s=3600)
    assert w_quiet.end - at("10:00") < 2 * 3600 < w_over.end - at("10:00")


def test_a_later_slot_is_never_dialled_before_it_starts() -> None:
    first = Window(at("10:25"), at("10:45"))
    later = later_slot(first, HOURS, 2)
    assert (clock(later.start), clock(later.end), later.later) == ("Mon 12:25", "Mon 12:45", True)
    state = SchedulerState(policies={KEY: QueuePolicy(hours=HOURS)})
    req = CallbackRequest("cb1", *KEY, "0612345678", "queue_offer", at("10:20"), at("10:10"), window=later)
    cb, _ = request(state, req)
    assert (cb.promised_from, cb.due_by, cb.not_before) == (later.start, later.end, later.start)
    free = {KEY: QueueLoad(free_agents=("a1",))}
    assert decide(state, at("11:00"), free) == []  # an agent is free, but the caller asked for later
    assert [c.agent for c in decide(state, at("12:26"), free) if hasattr(c, "agent")] == ["a1"]


def test_a_retry_that_would_miss_the_promise_comes_inside_it() -> None:
    policy = QueuePolicy(retry_base_s=1800.0)
    state = SchedulerState(policies={KEY: policy})
    window = Window(at("10:00"), at("10:40"))
    req = CallbackRequest("cb1", *KEY, "0612345678", "rest", at("10:00"), window=window)
    request(state, req)
    (dial,) = decide(state, at("10:05"), {KEY: QueueLoad(free_agents=("a1",))})
    on_result(state, "cb1", dial.originate_id, "no_answer", at("10:06"))  # type: ignore[union-attr]
    retry = state.callbacks["cb1"]
    # The back-off (30 min) would land after 10:40: it comes at 10:35, inside the window.
    assert retry.not_before == at("10:40") - policy.promise.slack_s
    on_result(state, "cb1", "cb1:1", "no_answer", at("10:07"))  # a repeat changes nothing


def test_the_summary_counts_callbacks_at_risk_and_late_ones() -> None:
    now = at("11:00")
    def cb(cb_id: str, **kw: object) -> Callback:
        base = dict(tenant="acme", queue="support", number=f"06{cb_id}", source="rest",
                    requested_at=at("10:00"), place_at=at("10:00"), due_by=at("12:00"))
        return Callback(cb_id, **{**base, **kw})  # type: ignore[arg-type]
    callbacks = [
        cb("1", due_by=now + 600),  # pending, 10 minutes left: at risk
        cb("2", due_by=now + 3600),  # pending, plenty of time
        cb("3", status=Status.COMPLETED, closed_at=now - 60, due_by=now - 120),  # late
        cb("4", status=Status.COMPLETED, closed_at=now - 60, due_by=now),  # on time
    ]
    data = summary(callbacks, KEY, now, TZ, QueuePolicy())
    assert (data["pending"], data["at_risk"], data["completed_today"], data["late_today"]) == (2, 1, 2, 1)
    assert data["on_time_pct"] == 50.0
    assert [n["at_risk"] for n in data["next"]] == [True, False]


# --------------------------------------------------------------------------- announcements


def test_the_expected_wait_counts_agents_and_callers_ahead_who_hang_up() -> None:
    assert announce.expected_wait_s(4, 2, 120.0) == 240.0  # 4 x 120 s / 2 agents
    faster = announce.expected_wait_s(4, 2, 120.0, abandon_rate=1 / 180)
    assert faster is not None and faster < 240.0
    assert announce.expected_wait_s(1, 0, 120.0) is None and announce.expected_wait_s(1, 2, None) is None


@pytest.mark.parametrize(
    ("expected", "said"), [(None, None), (20.0, 30.0), (55.0, 60.0), (60.0, 60.0), (480.0, 480.0)]
)
def test_a_wait_known_for_certain_is_said_as_the_nearest_true_value(
    expected: float | None, said: float | None
) -> None:
    """(The rule before said 0.8 x any estimate: 8 minutes certain was said as 6.)"""
    assert announce.spoken_s(expected) == said


def _line_waits(ahead: str, staffed: int, aht_s: float, rate: float, n: int) -> list[float]:
    """The line played out (``ahead``: "L" a live caller, "C" a callback, first is next) for a
    caller who stays: agents finish calls at ``staffed / aht_s``, each live caller ahead hangs up
    at ``rate``."""
    rng = random.Random(3)
    waits: list[float] = []
    for _ in range(n):
        line, t = list(ahead), 0.0
        while True:
            live = line.count("L")
            total = staffed / aht_s + live * rate
            t += rng.expovariate(total)
            u = rng.random() * total
            if u < staffed / aht_s:
                if not line:
                    waits.append(t)
                    break
                line.pop(0)
            else:
                line.pop([i for i, x in enumerate(line) if x == "L"][rng.randrange(live)])
    return waits


@pytest.mark.parametrize("ahead", ["CCCCCCLLL", "LCLCLCLCLC", "CCCCCCCCCCCC", "LL"])
def test_what_is_said_is_true_as_often_as_the_line_allows(ahead: str) -> None:
    """Callbacks ahead keep their place without hanging up: the forecast's mean is the played-out
    mean, what is said is within the band at least as often as 0.8 x the old estimate (every
    caller ahead hanging up) was, by far when callbacks hold places, and as often as the
    forecast says."""
    rate, aht = 1 / 180, 240.0
    waits = _line_waits(ahead, 10, aht, rate, 20_000)
    forecast = announce.forecast_wait(len(ahead) + 1, 10, aht, rate, callbacks_ahead=ahead.count("C"))
    assert forecast is not None
    # (Within a few %: the forecast knows how many callbacks are ahead, not where they stand.)
    assert forecast.mean_s == pytest.approx(statistics.mean(waits), rel=0.07)
    old_estimate = sum(1 / (10 / aht + j * rate) for j in range(len(ahead) + 1))
    old = 30.0 if 0.8 * old_estimate < 45 else 60.0 * max(1, round(0.8 * old_estimate / 60))

    def share(said: float | None) -> float:
        return sum(announce.within_band(said, w) for w in waits) / len(waits)

    said = announce.spoken_s(forecast)
    assert share(said) >= share(old)
    assert share(said) == pytest.approx(forecast.within(said), abs=0.04)  # the forecast is calibrated
    if ahead.count("C") >= 6:
        assert share(said) >= share(old) + 0.2


def test_callbacks_ahead_do_not_hang_up() -> None:
    all_callbacks = announce.forecast_wait(5, 2, 120.0, 1 / 180, callbacks_ahead=4)
    assert all_callbacks is not None and all_callbacks.mean_s == pytest.approx(300.0)  # 5 x 120 / 2
    live = announce.expected_wait_s(5, 2, 120.0, 1 / 180)
    assert live is not None and live < 300.0  # live callers ahead hang up: the line moves faster
    assert announce.expected_wait_s(5, 2, 120.0, 1 / 180, callbacks_ahead=2) == pytest.approx(
        sum(1 / (2 / 120 + j * 0.5 / 180) for j in range(5))  # half of those ahead may hang up
    )


@pytest.mark.parametrize(("shape", "x"), [(1, 0.5), (3, 2.5), (3, 9.0), (12, 4.0), (12, 15.0), (40, 38.0)])
def test_the_gamma_cdf_is_the_erlang_cdf_for_whole_shapes(shape: int, x: float) -> None:
    erlang = 1.0 - math.exp(-x) * sum(x**n / math.factorial(n) for n in range(shape))
    assert announce.WaitForecast(shape * 10.0, shape * 100.0).cdf(x * 10.0) == pytest.approx(erlang, abs=1e-9)


def test_the_hindsight_bound_takes_the_best_value_per_place() -> None:
    # Place 1: "less than a minute" ([0, 60]) holds for 10, 20, 50 s; place 2: 3 minutes for 200 s.
    assert announce.hindsight_within_pct([(1, 10.0), (1, 20.0), (1, 50.0), (1, 100.0), (2, 200.0)]) == 80.0
    assert announce.hindsight_within_pct([]) is None


def test_asterisks_announce_holdtime_is_app_queues_exponential_average() -> None:
    holdtime = announce.asterisk_holdtime(None, 100)  # the first answered call sets it
    assert holdtime == 100
    holdtime = announce.asterisk_holdtime(holdtime, 300)
    assert holdtime == (3 * 100 + 300) >> 2 == 150
    assert announce.asterisk_announcement_s(150) == 180.0  # (150 + 30) // 60 = 3 minutes
    assert announce.asterisk_announcement_s(20) is None  # under a minute: says nothing
    assert announce.asterisk_announcement_s(None) is None


def test_the_band_and_the_accuracy() -> None:
    assert announce.within_band(600.0, 780.0) and not announce.within_band(600.0, 781.0)  # +-30%
    assert announce.within_band(60.0, 90.0) and announce.within_band(None, 25.0)  # +-30 s when short
    acc = announce.accuracy([(600.0, 700.0), (60.0, 200.0), (None, 10.0)])
    assert (acc.callers, acc.within, acc.within_pct, acc.median_error_s) == (3, 2, 66.7, 100.0)


def test_free_agents_and_agents_in_wrap_up_come_first() -> None:
    assert announce.expected_wait_s(2, 4, 240.0, free=2) == 0.0  # an agent is free for them
    assert announce.expected_wait_s(3, 4, 240.0, free=2, soon=(12.0, 40.0)) == 12.0  # wrap-up ends
    assert announce.expected_wait_s(5, 4, 240.0, free=2, soon=(12.0, 40.0)) == 60.0  # then 240/4
    assert announce.spoken_s(0.0) is None  # nothing to say: answered at once


def test_the_summary_says_what_became_of_each_number_today() -> None:
    """For the wallboard's abandoned list: the newest callback of each number booked today (or
    still open), keyed as the number is de-duplicated; yesterday's closed ones are left out."""
    now = at("11:00")

    def cb(cb_id: str, number: str, requested: float, **kw: object) -> Callback:
        base = dict(tenant="acme", queue="support", number=number, source="rest",
                    requested_at=requested, place_at=requested, due_by=requested + 3600)
        return Callback(cb_id, **{**base, **kw})  # type: ignore[arg-type]

    callbacks = [
        cb("1", "0612345678", at("09:00"), status=Status.NO_ANSWER, closed_at=at("09:30")),
        cb("2", "0612345678", at("10:00"), status=Status.DIALLING),  # the newest for this number
        cb("3", "+31 20 123 4567", at("10:10"), status=Status.COMPLETED, closed_at=at("10:20")),
        cb("4", "0201111111", at("10:20")),  # pending
        cb("5", "0209999999", now - 86400, status=Status.COMPLETED, closed_at=now - 86000),  # yesterday
        cb("6", "0208888888", now - 86400, status=Status.OVERDUE),  # yesterday's, still open
        cb("7", "0207777777", at("10:30"), queue="sales"),  # another queue
    ]
    data = summary(callbacks, KEY, now, TZ, QueuePolicy())
    assert data["numbers"] == {
        "0612345678": "dialling", "+31201234567": "completed",
        "0201111111": "pending", "0208888888": "overdue",
    }  # fmt: skip
