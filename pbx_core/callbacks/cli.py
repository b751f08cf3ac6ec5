"""``pbx-core worker``: gone; the callbacks run on the bridge (``pbx-core bridge --callbacks``).

A separate worker needed its own AMI login and its own copy of the engine, parsing and applying
every queue event a second time. Run beside a bridge it would now be a second bridge: two
writers of every tenant's stream. So the command stays only to say what to run instead.
"""

from __future__ import annotations

import argparse
import sys

MESSAGE = """\
pbx-core worker: the callback worker is now part of the bridge. Run

    pbx-core bridge --callbacks

instead (one AMI session and one engine per Asterisk; `serve` and `demo` include the callbacks
already), and stop any separate `pbx-core worker` process."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="(removed: use `pbx-core bridge --callbacks`)",
        description=MESSAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(MESSAGE, file=sys.stderr)
    return 2
