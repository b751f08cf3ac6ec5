"""One AMI frame as the core reads it: a header block, parsed on demand.

A real Asterisk 22 event carries about 25 headers and the queue engine needs 3 to 17 of them, so
building a dict of all of them for every event is most of the cost of ingest. :class:`Headers`
keeps the decoded text and parses nothing up front: :meth:`Headers.pick` finds just the headers
an event needs with one compiled regex (:class:`Picker`), in C; the full header dict is built
only when someone reads the frame as a mapping (action replies, EventList items, listeners).

Both readings agree by construction and are held to it by the fuzz target: ``pick`` returns what
the full parse has for those keys (a repeated header falls back to the full parse's joined value).
"""

from __future__ import annotations

import re
from _collections_abc import dict_items, dict_keys, dict_values
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar, overload

_T = TypeVar("_T")

_WHITESPACE = re.compile(r"\s")
# A header's value runs to the end of its line: CRLF ends it, a bare CR or LF does not.
_VALUE = r"([^\r]*(?:\r(?!\n)[^\r]*)*)"


def parse_headers(text: str) -> dict[str, str] | None:
    """Every header of one frame (without its terminator); None if it has neither ``Event`` nor
    ``Response``. Repeated headers (``Output:`` of a Command reply) are joined with newlines; a
    line that is not ``Key: value`` (``Key:`` alone is an empty value) is skipped, keeping the rest.
    """
    lines = text.split("\r\n")
    fields: dict[str, str] = {}
    for line in lines:  # the common case: every line a header, no key twice
        key, sep, value = line.partition(": ")
        if not sep or key in fields:
            return _parse_lenient(lines)
        fields[key] = value
    if not _plain_keys(fields):
        return _parse_lenient(lines)
    return fields if ("Event" in fields or "Response" in fields) else None


def _plain_keys(fields: Mapping[str, str]) -> bool:
    """Every key is non-empty and without whitespace (C-level checks, no Python loop)."""
    keys = "".join(fields)
    return "" not in fields and keys.split() == [keys]


def _parse_lenient(lines: list[str]) -> dict[str, str] | None:
    fields: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):
                key, value = line[:-1], ""
            else:
                continue  # a body line without a header: ignore it, keep the rest
        if not key or _WHITESPACE.search(key):  # not a header
            continue
        if key in fields:
            fields[key] = f"{fields[key]}\n{value}"
        else:
            fields[key] = value
    if not fields or not ("Event" in fields or "Response" in fields):
        return None
    return fields


class Picker:
    """The headers one kind of event needs, found in a header block by one compiled regex.

    ``Event`` is always among them: the first line is never matched (the regex wants a line
    break before the key), so finding it means a second ``Event:`` line, which only the full
    parse reads right (it joins the two).
    """

    __slots__ = ("keys", "pattern", "whole")

    def __init__(self, *keys: str, whole: bool = False) -> None:
        self.keys = keys
        # ``whole``: the event needs nearly every header it has (QueueMember*), so the full
        # parse is cheaper than picking them one by one: ``pick`` returns every header.
        self.whole = whole
        alternatives = "|".join(re.escape(k) for k in ("Event", *keys))
        self.pattern = re.compile(rf"\r\n({alternatives})(?:: |:(?=\r\n|\Z)){_VALUE}")


class Headers(dict[str, str]):
    """An AMI frame: ``name`` (the ``Event:`` of the first line, else ""), the decoded ``text``
    (lines joined by CRLF, no terminator), and the headers, parsed on first use.

    It *is* a ``dict`` of its headers, for everything that reads frames as one (the listing
    assembler, listeners, the callback worker, ``isinstance(frame, dict)``): every method that
    reads or writes the dict fills it from ``text`` first. Until then it holds only ``Event``,
    which only C code reading dict internals directly could see; the standard library's does not
    (json, ``dict(frame)``, ``**frame`` and ``==`` all go through the methods below, and a test
    checks every dict method and those against the parsed dict).

    ``reply`` says the frame may belong to an action's reply (a ``Response``, or an ``ActionID``
    somewhere): only those need routing through the EventList assembler.
    """

    __slots__ = ("_filled", "name", "reply", "text")

    def __init__(
        self, text: str = "", name: str = "", *, reply: bool = False, fields: Mapping[str, str] | None = None
    ) -> None:
        self.text = text
        self.name = name
        self.reply = reply
        self._filled = fields is not None
        if fields is not None:
            dict.update(self, fields)
        elif name:
            # Never empty inside: C code that takes an empty dict's fast path (json's "{}") would
            # otherwise skip the methods that fill it. The full parse overwrites this one.
            dict.__setitem__(self, "Event", name)

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> Headers:
        """A frame from headers (tests, the simulator): the same object the decoder makes."""
        items = dict(fields)
        text = "\r\n".join(f"{k}: {v}" for k, v in items.items())
        return cls(
            text,
            items.get("Event", ""),
            reply="Response" in items or "ActionID" in items,
            fields=items,
        )

    def _fill(self) -> None:
        self._filled = True
        parsed = parse_headers(self.text)
        if parsed:
            dict.update(self, parsed)

    def fields(self) -> dict[str, str]:
        """Every header (the full parse, done once): the frame itself, filled."""
        if not self._filled:
            self._fill()
        return self

    def pick(self, picker: Picker) -> dict[str, str] | None:
        """Only the headers ``picker`` names that the frame has, without parsing the rest.

        None if the frame is not the event its first line names (a second ``Event:`` line, which
        the full parse joins with the first)."""
        if not self._filled:
            if picker.whole:
                # The full parse, as a plain dict for the caller; the frame itself stays unfilled
                # (nobody else reads it, usually) and would parse again if someone did.
                parsed = parse_headers(self.text) or {}
                return parsed if parsed.get("Event", "") == self.name else None
            pairs = picker.pattern.findall(self.text)
            picked = dict(pairs)
            if len(picked) == len(pairs) and "Event" not in picked:
                return picked
            # A repeated header: the full parse joins its values, so read that instead.
        fields = dict(self.fields().items())  # a plain dict: its reads cost no Python call
        if fields.get("Event", "") != self.name:
            return None
        return fields if picker.whole else {k: fields[k] for k in picker.keys if k in fields}

    # ------------------------------------------------------------ dict, filled on first use

    def __getitem__(self, key: str) -> str:
        if not self._filled:
            self._fill()
        return dict.__getitem__(self, key)

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...

    def get(self, key: str, default: object = None, /) -> object:
        if not self._filled:
            self._fill()
        return dict.get(self, key, default)

    def __contains__(self, key: object) -> bool:
        if not self._filled:
            self._fill()
        return dict.__contains__(self, key)

    def __iter__(self) -> Iterator[str]:
        if not self._filled:
            self._fill()
        return dict.__iter__(self)

    def __reversed__(self) -> Iterator[str]:
        if not self._filled:
            self._fill()
        return dict.__reversed__(self)

    def __len__(self) -> int:
        if not self._filled:
            self._fill()
        return dict.__len__(self)

    def keys(self) -> dict_keys[str, str]:
        if not self._filled:
            self._fill()
        return dict.keys(self)

    def values(self) -> dict_values[str, str]:
        if not self._filled:
            self._fill()
        return dict.values(self)

    def items(self) -> dict_items[str, str]:
        if not self._filled:
            self._fill()
        return dict.items(self)

    def copy(self) -> dict[str, str]:
        if not self._filled:
            self._fill()
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        if not self._filled:
            self._fill()
        if isinstance(other, Headers) and not other._filled:
            other._fill()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __or__(self, other: Mapping[str, str]) -> dict[str, str]:  # type: ignore[override]
        return {**self.fields(), **other}

    def __ror__(self, other: Mapping[str, str]) -> dict[str, str]:  # type: ignore[override]
        return {**other, **self.fields()}

    def __repr__(self) -> str:
        return f"Headers({dict.__repr__(self.fields())})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.text, self.name, self.reply, dict(self.items())))

    # Writes fill first too, so a write never lands in a dict that is filled over later.
    def __setitem__(self, key: str, value: str) -> None:
        if not self._filled:
            self._fill()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        if not self._filled:
            self._fill()
        dict.__delitem__(self, key)

    def __ior__(self, other: Mapping[str, str]) -> Headers:  # type: ignore[override]
        self.update(other)
        return self

    def update(self, *args: Any, **kwargs: str) -> None:
        if not self._filled:
            self._fill()
        dict.update(self, *args, **kwargs)

    def setdefault(self, key: str, default: str = "", /) -> str:
        if not self._filled:
            self._fill()
        return dict.setdefault(self, key, default)

    def pop(self, key: str, /, *default: Any) -> Any:
        if not self._filled:
            self._fill()
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, str]:
        if not self._filled:
            self._fill()
        return dict.popitem(self)

    def clear(self) -> None:
        self._filled = True
        dict.clear(self)


def _rebuild(text: str, name: str, reply: bool, fields: dict[str, str]) -> Headers:
    return Headers(text, name, reply=reply, fields=fields)
