"""``pbx-core bench``: one subcommand per benchmark.

Each benchmark module exposes ``register(subparsers)`` (the same contract as ``pbx_core.cli``)
and sets ``func(args) -> int``. Adding a benchmark is one line in ``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import importlib
import re

# benchmark -> module that registers it (in --help order)
BENCHMARKS: dict[str, str] = {
    "ingest": "bench.ingest",
    "wallboard": "bench.wallboard",
    "callbacks": "bench.callbacks",
    "soak": "bench.soak",
    "history": "bench.history",
}


def plain(text: str | None) -> str | None:
    """Module docstrings are reStructuredText; --help is plain text: ``x`` and `x` become x."""
    if text is None:
        return None
    return re.sub(r"``([^`]+)``|`([^`]+)`", lambda m: m.group(1) or m.group(2), text)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks that measure pbx-core side by side with its yardsticks",
        description="Benchmarks that print ratios measured side by side in one run.",
    )
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name, module in BENCHMARKS.items():
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise  # a real missing dependency inside the benchmark, not a benchmark not yet built
            sub.add_parser(name, help="(not available in this build)")
    for child in sub.choices.values():
        child.description = plain(child.description)
        for action in child._actions:
            action.help = plain(action.help)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)
