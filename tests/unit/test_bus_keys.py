"""The bus's Redis layout: key names and the snapshot / entry encoding readers depend on."""

from __future__ import annotations

from pbx_core.bus.keys import Snapshot, entry_fields, parse_entries, snapshot_key, stream_key
from pbx_core.domain.board import empty_board


def test_key_names_follow_the_design() -> None:
    assert stream_key("acme") == "pbx:acme:events"
    assert snapshot_key("acme") == "pbx:acme:snapshot"


def test_a_snapshot_round_trips_and_a_missing_one_is_the_empty_start() -> None:
    board = {"tenant": "acme", "queues": {"acme-support": {"waiting": [{"name": "Zoë"}]}}}
    snap = Snapshot("acme", board, "1700000000000-3", 42)
    assert Snapshot.decode("acme", snap.encode().encode()) == snap
    assert "Zoë" in snap.encode()  # UTF-8, not \\u escapes
    assert Snapshot.decode("acme", None) == Snapshot("acme", empty_board("acme"), "0-0", 0)


def test_entries_decode_to_id_sequence_and_delta_json() -> None:
    fields = entry_fields('{"type":"caller.left"}', 7)
    raw = [(b"1-0", {b"d": str(fields["d"]).encode(), b"n": str(fields["n"]).encode()})]
    assert parse_entries(raw) == [("1-0", 7, b'{"type":"caller.left"}')]
