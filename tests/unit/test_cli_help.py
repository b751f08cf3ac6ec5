"""`pbx-core ... --help` explains every command and option, in plain text."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

from pbx_core.cli import build_parser

Named = tuple[str, argparse.ArgumentParser]


def parsers(parser: argparse.ArgumentParser, path: str = "pbx-core") -> Iterator[Named]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, f"{path} {name}")


def all_parsers() -> list[Named]:
    return list(parsers(build_parser()))


def test_every_command_says_what_it_does() -> None:
    missing = [path for path, p in all_parsers() if not (p.description or "").strip()]
    assert missing == []


SELF_EXPLAINING = argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction


def test_every_option_has_help_text() -> None:
    missing = []
    for path, parser in all_parsers():
        for action in parser._actions:
            if isinstance(action, SELF_EXPLAINING):
                continue
            if not (action.help or "").strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_help_is_plain_text_and_names_only_commands_that_exist() -> None:
    texts = {path: p.format_help() for path, p in all_parsers()}
    rst = [path for path, text in texts.items() if "``" in text]
    assert rst == []  # reStructuredText literals from module docstrings
    commands = {path.split(" ", 2)[1] for path in texts if path.count(" ") >= 1}
    by_path = dict(all_parsers())
    for path, text in texts.items():
        for named in re.findall(r"pbx-core ([a-z]+) (--[a-z-]+)", text):
            command, option = named
            assert command in commands, f"{path} mentions `pbx-core {command}`"
            options = {o for a in by_path[f"pbx-core {command}"]._actions for o in a.option_strings}
            assert option in options, f"{path} mentions `pbx-core {command} {option}`, which does not exist"
