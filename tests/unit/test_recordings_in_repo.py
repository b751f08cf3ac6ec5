"""The recordings the tests read are part of the repository: a fresh clone with nothing beside
it must pass (they used to be read from ../shared, outside the clone)."""

from __future__ import annotations

import subprocess

from tests.conftest import FIXTURES, ROOT

RECORDINGS = (
    "abandoned",
    "answered",
    "members",
    "ringnoanswer",
    "status_busy",
    "reload",
    "abandoned_no_timestamps",
    "status_busy_escaped_names",
)


def test_the_recordings_live_inside_the_clone_and_are_tracked_by_git() -> None:
    assert FIXTURES.resolve().is_relative_to(ROOT.resolve()), f"{FIXTURES} is outside the repository"
    tracked = subprocess.run(
        ["git", "ls-files", str(FIXTURES.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True
    )
    if tracked.returncode != 0:  # not a git checkout (e.g. an sdist): the files must still be here
        names = {p.name for p in FIXTURES.glob("*.ami")}
    else:
        names = {line.rsplit("/", 1)[-1] for line in tracked.stdout.split()}
    assert {f"{r}.ami" for r in RECORDINGS} <= names


def test_each_recording_is_a_raw_asterisk_22_ami_stream() -> None:
    for name in RECORDINGS:
        data = (FIXTURES / f"{name}.ami").read_bytes()
        assert data.startswith(b"Asterisk Call Manager/"), name  # the banner of a real session
        assert b"\r\n\r\n" in data and b"Event: " in data, name


def test_nothing_in_the_tests_or_benchmarks_reads_outside_the_clone() -> None:
    offenders = []
    for path in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]:
        if path.name == "test_recordings_in_repo.py":
            continue
        text = path.read_text()
        if '"shared"' in text or "../shared" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
