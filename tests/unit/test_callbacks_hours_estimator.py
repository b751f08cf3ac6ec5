"""Business hours as a pure value, the honest expected wait, and the offer rule, against the
provisioning schema they are built from."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbx_core.callbacks import (
    HoursSpec,
    QueuePolicy,
    RollingLoad,
    RollingServiceLevel,
    WaitEstimator,
    announce_minutes,
    backoff_s,
    callback_for_abandon,
    current_close,
    from_queue,
    from_schema,
    is_open,
    next_opening,
    should_offer,
)
from pbx_core.provisioning.schemas import HoursIn, QueueIn

TZ = "Europe/Amsterdam"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ)).timestamp()


HOURS = from_schema(
    HoursIn.model_validate(
        {
            "weekly": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "open": "08:30", "close": "12:00"},
                {"days": ["mon", "tue", "wed", "thu", "fri"], "open": "13:00", "close": "17:00"},
                {"days": ["sat"], "open": "10:00", "close": "24:00"},
            ],
            "holidays": [{"date": "2025-12-25", "name": "Christmas"}],
            "open_destination": {"type": "queue", "target": "support"},
        }
    ),
    TZ,
)


def test_is_open_follows_spans_lunch_breaks_midnight_and_holidays() -> None:
    assert not is_open(HOURS, at("2025-03-03T08:29:59"))
    assert is_open(HOURS, at("2025-03-03T08:30"))
    assert not is_open(HOURS, at("2025-03-03T12:30"))
    assert is_open(HOURS, at("2025-03-08T23:59"))  # Saturday until 24:00
    assert not is_open(HOURS, at("2025-03-09T00:00"))
    assert not is_open(HOURS, at("2025-12-25T10:00"))  # a Thursday, but a holiday
    assert is_open(None, at("2025-12-25T03:00"))  # no schedule: always open


def test_next_opening_skips_breaks_weekends_and_holidays_and_follows_daylight_saving() -> None:
    assert next_opening(HOURS, at("2025-03-03T12:15")) == at("2025-03-03T13:00")
    assert next_opening(HOURS, at("2025-03-03T10:00")) == at("2025-03-03T10:00")  # open: now
    assert next_opening(HOURS, at("2025-03-09T01:00")) == at("2025-03-10T08:30")  # Sunday -> Monday
    assert next_opening(HOURS, at("2025-12-24T18:00")) == at("2025-12-26T08:30")
    # Clocks go forward on 2025-03-30: Monday 08:30 comes 3 days less an hour after Friday 08:30.
    assert next_opening(HOURS, at("2025-03-29T00:30")) == at("2025-03-29T10:00")  # Saturday
    monday = next_opening(HOURS, at("2025-03-30T12:00"))
    assert monday is not None and monday - at("2025-03-28T08:30") == 3 * 86400 - 3600
    assert next_opening(HoursSpec.build(TZ, []), at("2025-03-03T10:00")) is None
    assert current_close(HOURS, at("2025-03-03T09:00")) == at("2025-03-03T12:00")
    assert current_close(HOURS, at("2025-03-08T22:00")) == at("2025-03-09T00:00")
    assert current_close(HOURS, at("2025-03-03T12:30")) is None


@given(st.integers(0, 14 * 24 * 60))
def test_next_opening_is_open_and_nothing_before_it_is(minute: int) -> None:
    start = at("2025-03-01T00:00") + 60 * minute
    opens = next_opening(HOURS, start)
    assert opens is not None and opens >= start and is_open(HOURS, opens)
    step = max(60.0, (opens - start) / 50)
    probe = start
    while probe < opens:
        assert not is_open(HOURS, probe)
        probe += step


def test_a_bad_span_or_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="open must be before close"):
        HoursSpec.build(TZ, [(["mon"], "17:00", "09:00")])
    with pytest.raises(Exception, match="Mars"):
        HoursSpec.build("Mars/Olympus", [])


def test_expected_wait_is_position_times_recent_aht_over_staffed_agents() -> None:
    est = WaitEstimator()
    assert est.expected_wait(3, 2) is None  # no AHT known yet: say nothing
    est.observe(200)
    assert est.expected_wait(3, 2) == 300.0
    est.observe(400)  # the mean of the calls handled lately
    assert est.aht_s == 300.0 and est.expected_wait(1, 3) == 100.0
    est.observe(-5)  # a clock step, not a call
    assert est.samples == 2
    assert est.expected_wait(2, 0) is None  # nobody staffed: no honest number
    assert (
        announce_minutes(None),
        announce_minutes(1.0),
        announce_minutes(60.0),
        announce_minutes(61.0),
    ) == (None, 1, 1, 2)
    with pytest.raises(ValueError, match="window"):
        WaitEstimator(window=0)


def test_one_long_call_does_not_swing_the_aht() -> None:
    """The AHT is the mean of the last ``window`` calls: one 20-minute call among 100 of 200 s
    moves it by 10 s, where the exponential average it replaces (alpha 0.2) jumped to 400 s."""
    est = WaitEstimator(window=100)
    for _ in range(100):
        est.observe(200.0)
    est.observe(1200.0)
    assert est.aht_s == pytest.approx(210.0)  # the oldest 200 s call left the window
    for _ in range(100):
        est.observe(300.0)  # the queue's calls got longer: the AHT follows within a window
    assert est.aht_s == pytest.approx(300.0)


@given(st.lists(st.floats(0, 3600), min_size=1, max_size=250), st.integers(1, 120))
def test_recent_aht_is_the_mean_of_the_last_calls(samples: list[float], window: int) -> None:
    est = WaitEstimator(window=window)
    for s in samples:
        est.observe(s)
    recent = samples[-window:]
    assert est.aht_s is not None
    assert est.aht_s == pytest.approx(sum(recent) / len(recent), rel=1e-9, abs=1e-6)
    assert min(samples) - 1e-6 <= est.aht_s <= max(samples) + 1e-6


def test_the_offer_follows_the_provisioned_queue_threshold() -> None:
    policy = from_queue(
        QueueIn(callback_offer=True, callback_offer_after_s=90, short_abandon_s=8), abandoned_callbacks=True
    )
    assert not should_offer(policy, 90.0) and should_offer(policy, 91.0)
    assert not should_offer(policy, None)
    assert not should_offer(from_queue(QueueIn()), 10_000.0)  # callback_offer is off by default
    assert not callback_for_abandon(policy, 7.9) and callback_for_abandon(policy, 8.0)
    assert not callback_for_abandon(from_queue(QueueIn()), 600.0)


def test_back_off_doubles_up_to_its_cap() -> None:
    policy = QueuePolicy(retry_base_s=300, retry_factor=2, retry_cap_s=1000)
    assert [backoff_s(policy, n) for n in (1, 2, 3, 4)] == [300, 600, 1000, 1000]
    with pytest.raises(ValueError, match="max_attempts"):
        QueuePolicy(max_attempts=0)


def test_holidays_come_from_the_schema() -> None:
    assert HOURS.holidays == frozenset({date(2025, 12, 25)})


def test_rolling_service_level_is_the_kpi_over_the_window_without_short_abandons() -> None:
    sl = RollingServiceLevel(service_level_s=30, short_abandon_s=5, window_s=900)
    assert sl.pct(0.0) is None  # nothing ended yet: nothing to pace by
    sl.answered(100.0, 30.0)  # within T (<= T, as the engine counts)
    sl.answered(200.0, 31.0)
    sl.abandoned(300.0, 4.9)  # short: counts nowhere
    sl.abandoned(400.0, 60.0)
    assert sl.pct(400.0) == pytest.approx(100 / 3)
    assert sl.pct(1000.0) == 0.0  # the one answer within T left the window
    assert sl.pct(1300.0) is None


def test_rolling_load_is_recent_arrivals_times_aht_over_the_staffed_agents() -> None:
    load = RollingLoad(window_s=600)
    for t in range(0, 600, 30):  # 20 arrivals in 10 minutes
        load.arrived(float(t))
    assert load.share(599.0, 240.0, 10) == pytest.approx(20 * 240 / (600 * 10))
    assert load.share(599.0, None, 10) is None and load.share(599.0, 240.0, 0) is None
    assert load.share(1200.0, 240.0, 10) == 0.0
