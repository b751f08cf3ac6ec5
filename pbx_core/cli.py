"""The one ``pbx-core`` command.

Each subcommand lives in the module that owns the work and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` (a callable taking the
parsed args and returning an exit code). Modules are imported only when needed, so
``pbx-core replay`` never imports the web stack.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .ami.errors import AmiError
from .config import ConfigError, Settings, effective_values, markdown_table, unknown_variables

# subcommand -> module that registers it (in --help order)
COMMANDS: dict[str, str] = {
    "demo": "pbx_core.demo",
    "serve": "pbx_core.serve",
    "bridge": "pbx_core.bridge",
    "web": "pbx_core.web.cli",
    "simulate": "pbx_core.simulator.cli",
    "replay": "pbx_core.replay",
    "bench": "bench.cli",
    "db": "pbx_core.provisioning.cli",
    "keys": "pbx_core.provisioning.keys_cli",
    "asterisk": "pbx_core.asterisk.cli",
    "worker": "pbx_core.callbacks.cli",
    "history": "pbx_core.history.cli",
}

DESCRIPTION = """\
pbx-core drives, watches and shows an Asterisk call centre.

quick start:
  pbx-core demo                  live wallboard on simulated traffic, nothing to set up
  pbx-core replay FILE.ami       replay a recorded AMI stream, print the queue state
  pbx-core simulate              run the AMI-speaking PBX simulator
  pbx-core serve                 bridge a real Asterisk (PBX_AMI_URL) and serve the wallboard
"""


CONFIG_DESCRIPTION = """\
Check every PBX_* variable in the environment exactly as the commands do, and print the
effective value of each (secrets and passwords masked; "default" marks values not set in the
environment). A bad value is reported by name, all of them at once, with exit status 2.
PBX_* names no setting reads (typos such as PBX_HTTP_PROT) are warned about.
"""


def _config_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "config",
        help="check the PBX_* configuration and print the effective values, or print its table",
        description=CONFIG_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--markdown", action="store_true",
        help="print every variable with its default and meaning as the README's Markdown table",
    )

    def run(args: argparse.Namespace) -> int:
        if args.markdown:
            print(markdown_table())
            return 0
        Settings.from_env()  # raises ConfigError naming every bad variable: exit 2
        width = max(len(name) for name, _, _ in effective_values())
        for name, shown, from_env in effective_values():
            print(f"  {name:<{width}}  {shown}{'' if from_env else '  (default)'}")
        for name in unknown_variables():
            print(f"pbx-core config: warning: {name} is not a pbx-core setting", file=sys.stderr)
        print("configuration OK")
        return 0

    p.set_defaults(func=run)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbx-core", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"pbx-core {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(see pbx-core {name} --help)")
            continue
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if not exc.name or not module.startswith(exc.name):
                raise
            sub.add_parser(name, help="(not available in this build)")
    _config_command(sub)
    describe_subcommands(parser)
    return parser


def describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """``pbx-core db upgrade --help`` says what the command does: a subcommand without a
    description of its own gets its one-line help from the parent's listing."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, child in action.choices.items():
            if not child.description and helps.get(name):
                child.description = helps[name]
            describe_subcommands(child)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    # Import only the module of the command being run; `--help` alone lists them all.
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    level = os.environ.get("PBX_LOG_LEVEL", "INFO").upper()  # validated with the rest by Settings
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:
        # Library chatter (every migration step, every in-process HTTP request) is not status.
        for noisy in ("alembic", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    if args.command != "config":  # `config` lists them itself
        for name in unknown_variables():
            logging.getLogger("pbx_core.config").warning("%s is not a pbx-core setting (ignored)", name)
    try:
        return int(func(args) or 0)
    except ConfigError as exc:
        print(f"pbx-core: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except AmiError as exc:  # e.g. the first login refused: say what to fix, no traceback
        print(f"pbx-core: {exc}", file=sys.stderr)
        return 1
