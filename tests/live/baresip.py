"""Real SIP user agents for the live suite: Debian's ``baresip``, one process per UA, driven
over its ``ctrl_tcp`` module (netstring-framed JSON commands, events back on the same socket).

Each UA gets its own config directory, SIP port and control port on 127.0.0.1, a sine tone (a
WAV file) as its microphone and no speaker (there is no sound card here), and is stopped (quit,
then terminated) by :meth:`Baresip.stop` whatever state it is in.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import math
import shutil
import socket
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BARESIP = shutil.which("baresip")
MODULES = Path("/usr/lib/baresip/modules")
START_GUARD_S = 20.0


def write_tone(path: Path, seconds: float = 300.0, hz: float = 400.0, rate: int = 8000) -> None:
    """A quiet sine tone, 8 kHz mono 16-bit: what the UA sends as its voice. baresip ends the call
    when its source file ends, so it lasts longer than any call of the suite. 400 Hz: a whole
    number of periods in 20 ms, so one packet's samples repeat."""
    samples = (int(3000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(rate // 50))
    period = array.array("h", samples)
    frames = period * int(seconds * 50)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_sip_port() -> int:
    """A port free for UDP and TCP whose next port is free for TCP too: baresip listens on UDP
    and TCP there, and for SIP over TLS on the port after it."""
    for _ in range(100):
        port = free_port(socket.SOCK_DGRAM)
        wanted = [(port, socket.SOCK_STREAM), (port + 1, socket.SOCK_STREAM)]
        with contextlib.ExitStack() as held:
            try:
                for number, kind in wanted:
                    s = held.enter_context(socket.socket(socket.AF_INET, kind))
                    s.bind(("127.0.0.1", number))
            except OSError:
                continue
            return port
    raise RuntimeError("no free ports for a SIP user agent")


class PortTaken(RuntimeError):
    """Another process took one of the UA's ports between choosing and binding it."""


@dataclass
class Baresip:
    """One user agent. ``account`` is a baresip account line, e.g.
    ``<sip:acme-201-desk@127.0.0.1:5060>;auth_pass=...;answermode=auto``."""

    name: str
    workdir: Path
    account: str
    events: list[dict[str, Any]] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _pump: asyncio.Task[None] | None = None
    _replies: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _tokens: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def log(self) -> Path:
        return self.workdir / "baresip.log"

    async def start(self) -> None:
        """Start the process on free ports (again on others, should a port be taken meanwhile)."""
        for attempt in range(3):
            try:
                await self._start()
                return
            except PortTaken:
                if attempt == 2:
                    raise
                await self.stop()
                self.process, self._reader, self._writer, self._pump = None, None, None, None

    async def _start(self) -> None:
        if BARESIP is None:
            raise RuntimeError("baresip is not installed (apt-get install baresip)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        sip_port, ctrl_port = free_sip_port(), free_port()
        tone = self.workdir / "tone.wav"
        write_tone(tone)
        (self.workdir / "config").write_text("\n".join([
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{sip_port}",
            f"module_path {MODULES}",
            "module g711.so",
            "module aufile.so",  # a WAV file as the microphone
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{ctrl_port}",
            f"audio_source aufile,{tone}",
            "audio_player aufile,nil",  # no sound card: a player that is never found plays nothing
            "audio_alert aufile,nil",
            "sip_verify_server no",
            "",
        ]))
        (self.workdir / "accounts").write_text(self.account + "\n")
        log = self.log.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            BARESIP, "-f", str(self.workdir), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )
        log.close()
        async with asyncio.timeout(START_GUARD_S):
            while True:
                try:
                    self._reader, self._writer = await asyncio.open_connection("127.0.0.1", ctrl_port)
                    break
                except OSError:
                    if self.process.returncode is not None:
                        said = self.log.read_text()[-2000:]
                        if "Address already in use" in said:
                            raise PortTaken(said) from None
                        raise RuntimeError(f"baresip {self.name} exited: {said}") from None
                    await asyncio.sleep(0.1)
        self._pump = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._reader is not None
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while True:
                length = int((await self._reader.readuntil(b":"))[:-1])
                body = await self._reader.readexactly(length + 1)  # the payload and its ","
                message = json.loads(body[:-1])
                if message.get("response"):
                    future = self._replies.pop(str(message.get("token")), None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("event"):
                    self.events.append(message)
                    self._changed.set()

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        assert self._writer is not None
        self._tokens += 1
        token = f"{self.name}-{self._tokens}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[token] = future
        payload = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._writer.write(b"%d:%s," % (len(payload), payload))
        await self._writer.drain()
        async with asyncio.timeout(START_GUARD_S):
            return await future

    async def wait_event(
        self, what: str, match: Callable[[dict[str, Any]], bool], limit_s: float
    ) -> dict[str, Any]:
        """The first event (seen so far or coming) that ``match``es; TimeoutError after ``limit_s``."""
        async with asyncio.timeout(limit_s):
            while True:
                for event in self.events:
                    if match(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

    def saw(self, kind: str) -> bool:
        return any(e.get("type") == kind for e in self.events)

    async def stop(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await self.command("quit")
            self._writer.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                async with asyncio.timeout(5):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
