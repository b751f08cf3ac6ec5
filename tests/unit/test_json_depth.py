"""The request guard's JSON depth counter (pbx_core/api/guard.py): it sees the body in whatever
chunks the connection delivers, so its answer must not depend on where they split - strings with
brackets, quotes and backslashes included."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_core.api.guard import JsonDepth

LIMIT = 4
text = st.text(alphabet=st.sampled_from([*list('[]{}"\\ab\n'), "é", "\u2028"]), max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def feed(data: bytes, cuts: list[int]) -> bool:
    counter = JsonDepth(LIMIT)
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return all(counter.feed(data[a:b]) for a, b in itertools.pairwise(bounds))


@settings(max_examples=400, deadline=None)
@given(value=values, cuts=st.lists(st.integers(min_value=0), max_size=6), ascii_only=st.booleans())
def test_depth_is_judged_the_same_however_the_body_is_split(
    value: Any, cuts: list[int], ascii_only: bool
) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert feed(data, cuts) == (depth_of(value) <= LIMIT)


def test_an_escape_split_from_what_it_escapes_is_still_an_escape() -> None:
    data = b'{"a": "x\\"[[[[[[", "b": [[[]]]}'
    for cut in range(len(data) + 1):
        assert feed(data, [cut]), cut
    assert not feed(b'[[[[[]]]]]', [3])
