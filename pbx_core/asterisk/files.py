"""Files on disk for Asterisk: atomic writes with an in-memory undo, and a reader for the config
format (sections, ``key = value``, ``#include``/``#tryinclude``) the applier and the simulator share.

Asterisk may read a file at any moment (a reload someone else started), so a file is never
half-written: each one goes to a temporary file in the same directory, is fsynced and then
``os.replace``d over the old one. The previous bytes are kept in memory so a rejected change can be
undone byte for byte.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# --------------------------------------------------------------------------- writing


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; Asterisk may run as another user
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable (a crash after replace must not bring the old file back).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@dataclass
class Transaction:
    """Files changed under ``root`` with their previous bytes (None: the file did not exist)."""

    root: Path
    previous: dict[str, bytes | None] = field(default_factory=dict)

    @property
    def changed(self) -> list[str]:
        return sorted(self.previous)

    def restore(self) -> None:
        """Put every file back as it was (deleting the ones that did not exist)."""
        for rel, data in self.previous.items():
            path = self.root / rel
            if data is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                _remove_empty_dirs(path.parent, self.root)
            else:
                atomic_write(path, data)


def diff(root: Path, files: Mapping[str, bytes | None]) -> dict[str, bytes | None]:
    """The entries of ``files`` that differ from disk (None = delete; only if the file exists)."""
    out: dict[str, bytes | None] = {}
    for rel, data in files.items():
        current = read_bytes(root / _safe_rel(rel))
        if current != data:
            out[rel] = data
    return out


def write_files(root: Path, changes: Mapping[str, bytes | None], *, order: Iterable[str] = ()) -> Transaction:
    """Apply ``changes`` (from :func:`diff`) in ``order`` (then the rest, sorted). If a write fails
    half-way, what was already written is restored before the error propagates."""
    txn = Transaction(root)
    ordered = [*[r for r in order if r in changes], *sorted(r for r in changes if r not in set(order))]
    try:
        for rel in ordered:
            path = root / _safe_rel(rel)
            txn.previous[rel] = read_bytes(path)
            data = changes[rel]
            if data is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                _remove_empty_dirs(path.parent, root)
            else:
                atomic_write(path, data)
    except BaseException:
        txn.restore()
        raise
    return txn


def _remove_empty_dirs(directory: Path, root: Path) -> None:
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _safe_rel(rel: str) -> str:
    """A relative path that stays inside the config directory."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        raise ValueError(f"refusing to write outside the Asterisk config directory: {rel!r}")
    return rel


# --------------------------------------------------------------------------- reading


class ConfigError(Exception):
    """The file cannot be parsed; the message is worded like Asterisk's log line."""


@dataclass
class Section:
    name: str
    file: str
    template: bool = False
    bases: tuple[str, ...] = ()
    items: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in reversed(self.items):
            if k == key:
                return v
        return default

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.items if k == key]


_INCLUDE = re.compile(r"^#\s*(include|tryinclude)\s+(.+?)\s*$")
_HEADER = re.compile(r"^\[([^\]]*)\]\s*(?:\(([^)]*)\))?\s*$")
_MAX_INCLUDE_DEPTH = 50


def parse_config(root: Path, filename: str, *, warnings: list[str] | None = None) -> list[Section]:
    """Read ``filename`` (relative to ``root``, like /etc/asterisk) the way Asterisk's config loader
    does: ``;`` comments, ``[name](options)`` sections, ``key = value`` / ``key => value``, and
    ``#include``/``#tryinclude`` resolved against ``root``. Raises :class:`ConfigError` where Asterisk
    would reject the whole file; a missing top-level file raises FileNotFoundError.

    An error inside an ``#include``d file does not reject the whole file (main/config.c: the
    nested load returns CONFIG_STATUS_FILEINVALID, which the ``#include`` handling does not treat
    as a failure): what the included file held up to the bad line is kept, the rest of it is
    lost, and the including file goes on after the ``#include``. Each such error is appended to
    ``warnings``, worded as Asterisk logs it. So a broken tenant file silently truncates, and a
    reload that "succeeds" can lose the sections after the bad line."""
    path = root / filename if not Path(filename).is_absolute() else Path(filename)
    return parse_text(path.read_text("utf-8", "replace"), filename, root=root, warnings=warnings)


def parse_text(
    text: str, filename: str = "<memory>", *, root: Path | None = None, warnings: list[str] | None = None
) -> list[Section]:
    """Like :func:`parse_config` for text in hand; ``#include`` needs ``root``."""
    sections: list[Section] = []
    _parse_into(root, text, filename, sections, {}, depth=0, current=[None],
                warnings=[] if warnings is None else warnings)
    return sections


def _parse_into(
    root: Path | None,
    text: str,
    filename: str,
    sections: list[Section],
    by_name: dict[str, Section],
    *,
    depth: int,
    current: list[Section | None],
    warnings: list[str],
) -> None:
    in_block_comment = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw
        if in_block_comment:
            end = line.find("--;")
            if end < 0:
                continue
            line = line[end + 3 :]
            in_block_comment = False
        start = line.find(";--")
        if start >= 0:
            end = line.find("--;", start + 3)
            if end < 0:
                in_block_comment = True
                line = line[:start]
            else:
                line = line[:start] + line[end + 3 :]
        line = _strip_comment(line).strip()
        if not line:
            continue
        include = _INCLUDE.match(line)
        if include:
            kind, target = include.group(1), include.group(2).strip('"').strip("<>")
            if depth >= _MAX_INCLUDE_DEPTH:
                raise ConfigError(f"Maximum Include level ({_MAX_INCLUDE_DEPTH}) exceeded in {filename}")
            try:
                if root is None:
                    raise FileNotFoundError(target)
                included = (root / target).read_text("utf-8", "replace")
            except FileNotFoundError:
                if kind == "include":
                    raise ConfigError(
                        f"The file '{target}' was listed as a #include but it does not exist "
                        f"(line {lineno} of {filename})"
                    ) from None
                continue
            try:
                _parse_into(root, included, target, sections, by_name, depth=depth + 1, current=current,
                            warnings=warnings)
            except ConfigError as exc:
                warnings.append(str(exc))  # the included file ends at its bad line; this one goes on
            continue
        if line.startswith("["):
            header = _HEADER.match(line)
            if header is None:
                raise ConfigError(f"parse error: no closing ']', line {lineno} of {filename}")
            name, opts = header.group(1), header.group(2) or ""
            options = [o.strip() for o in opts.split(",") if o.strip()]
            bases = tuple(o for o in options if o not in ("!", "+"))
            for base in bases:
                if base not in by_name:
                    raise ConfigError(
                        f"Inheritance requested, but template '{base}' does not exist, "
                        f"line {lineno} of {filename}"
                    )
            if "+" in options and name in by_name:
                current[0] = by_name[name]
                continue
            section = Section(name, filename, template="!" in options, bases=bases)
            for base in bases:
                section.items.extend(by_name[base].items)
            sections.append(section)
            by_name[name] = section
            current[0] = section
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue  # Asterisk warns "No '=' (equal sign)" and ignores the line
        if current[0] is None:
            raise ConfigError(f"parse error: No category context for line {lineno} of {filename}")
        if value.startswith(">"):
            value = value[1:]
        current[0].items.append((key.strip(), value.strip()))


def _strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if ch == ";":
            break
        out.append(ch)
        i += 1
    return "".join(out)
