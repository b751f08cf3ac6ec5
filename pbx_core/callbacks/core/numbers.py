"""The one rule for a number to call back, whichever way the booking comes in: the REST API, the
wallboard's "call back" button, the dialplan's booking (a UserEvent) and abandoned callers.

A number is 3 to 15 ASCII digits (E.164's maximum), optionally after a ``+``; spaces, dashes,
dots and brackets between them are formatting and are dropped. Anything else is refused rather
than cleaned up: ``+31612345678;ext=1`` is not ``+316123456781``, and Arabic-Indic or superscript
digits (which ``str.isdigit`` accepts) never reach a dial string.
"""

from __future__ import annotations

import re

NUMBER_RULE = "must be a phone number: 3 to 15 digits, optionally starting with +"
_FORMATTED = re.compile(r"\+?[0-9 ()./-]+")
_DIGITS = re.compile(r"\+?[0-9]{3,15}")


class InvalidNumber(ValueError):
    """Not a number pbx-core will dial. The message says what a number must look like."""


def callback_number(text: str) -> str:
    """``text`` as the number to dial (digits, with a leading ``+`` if it had one), or
    :class:`InvalidNumber`."""
    stripped = text.strip()
    if not _FORMATTED.fullmatch(stripped):
        raise InvalidNumber(f"{NUMBER_RULE} (spaces, dashes, dots and brackets between digits are fine)")
    digits = ("+" if stripped.startswith("+") else "") + "".join(ch for ch in stripped if "0" <= ch <= "9")
    if not _DIGITS.fullmatch(digits):
        raise InvalidNumber(NUMBER_RULE)
    return digits
