"""The one-literal, memoised stats view equals the plain two-step definition for any counters."""

from __future__ import annotations

from dataclasses import fields

from hypothesis import given
from hypothesis import strategies as st

from pbx_core.domain.kpi import Counters, KpiMemo, counters_and_kpis, kpis

_NAMES = [f.name for f in fields(Counters)]
counter_sets = st.lists(
    st.fixed_dictionaries({n: st.integers(-3, 40) for n in _NAMES}), min_size=1, max_size=25
)


def test_as_dict_lists_every_counter_in_field_order() -> None:
    c = Counters(*range(1, len(_NAMES) + 1))
    assert list(c.as_dict().items()) == [(n, getattr(c, n)) for n in _NAMES]


@given(counter_sets)
def test_counters_and_kpis_equals_as_dict_plus_kpis(sets: list[dict[str, int]]) -> None:
    memo = KpiMemo()  # one memo across the sequence, as a queue keeps it across its deltas
    for values in sets:
        c = Counters(**values)
        expected = {**c.as_dict(), **kpis(c)}
        got = counters_and_kpis(c, memo)
        assert list(got.items()) == list(expected.items())
        assert counters_and_kpis(c) == expected  # and without a memo


def test_memo_follows_a_counter_that_moves_back() -> None:
    memo = KpiMemo()
    one = Counters(offered=2, answered=1, answered_within_sl=1, answered_wait_s=7)
    two = Counters(offered=2, answered=2, answered_within_sl=1, answered_wait_s=9)
    assert counters_and_kpis(one, memo)["asa_s"] == 7.0
    assert counters_and_kpis(two, memo)["asa_s"] == 4.5
    assert counters_and_kpis(one, memo)["asa_s"] == 7.0
    assert counters_and_kpis(Counters(), memo)["sl_pct"] is None
