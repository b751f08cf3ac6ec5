"""Coverage-guided fuzzing of the AMI framing and the normaliser with atheris (libFuzzer).

    .venv/bin/python -m tests.fuzz.fuzz_ami -max_total_time=600 /tmp/ami-corpus tests/fixtures/asterisk-22

The first directory collects new inputs, the recorded Asterisk streams seed it. A failing
input is written as ``crash-<sha1>`` (``-artifact_prefix=DIR/`` chooses where); run it again
with ``python -m tests.fuzz.fuzz_ami crash-<sha1>``, or feed it to ``tests.fuzz.ami_targets.check``
in a test. The suite runs this for a bounded time (``tests/fuzz/test_fuzz_atheris.py``).
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports(include=["pbx_core"]):
    from tests.fuzz.ami_targets import check


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
