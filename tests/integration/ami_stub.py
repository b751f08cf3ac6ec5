"""A tiny AMI server over real TCP, for what the simulator will not do: play a recording as it
is (e.g. one without Timestamp headers), or be a hostile or broken PBX.

It answers Login, Ping, Filter and Logoff like Asterisk 22, and a QueueStatus with an empty
listing, unless the test replaces the behaviour: ``on_login`` runs once a session has logged in
(stream a recording, or a pathological byte stream), ``on_action`` may answer any action itself
(return True when it did). Every session is recorded, so a test can see the client reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pbx_core.config import AmiUrl

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


@dataclass
class StubSession:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    actions: list[dict[str, str]] = field(default_factory=list)
    logged_in: bool = False

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    def reply(self, action: dict[str, str], response: str = "Success", **headers: str) -> None:
        lines = [f"Response: {response}"]
        if "ActionID" in action:
            lines.append(f"ActionID: {action['ActionID']}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    @property
    def closed(self) -> bool:
        return self.writer.is_closing() or self.reader.at_eof()


OnLogin = Callable[[StubSession], Awaitable[None]]
OnAction = Callable[[StubSession, dict[str, str]], Awaitable[bool]]


class StubAsterisk:
    def __init__(
        self,
        *,
        on_login: OnLogin | None = None,
        on_action: OnAction | None = None,
        banner: bytes = BANNER,
        ping_timestamp: Callable[[], float] | None = None,
    ) -> None:
        self.on_login = on_login
        self.on_action = on_action
        self.banner = banner
        # Asterisk's Ping reply carries its clock; None leaves the header out.
        self.ping_timestamp = ping_timestamp
        self.sessions: list[StubSession] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> AmiUrl:
        return AmiUrl(host="127.0.0.1", port=self.port, username="pbx", secret="s3cret")

    @property
    def logins(self) -> int:
        return sum(1 for s in self.sessions if s.logged_in)

    async def __aenter__(self) -> StubAsterisk:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for session in self.sessions:
            session.writer.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = StubSession(reader, writer)
        self.sessions.append(session)
        self._tasks.add(task := asyncio.current_task())  # type: ignore[arg-type]
        try:
            if self.banner:
                session.send(self.banner)
            while True:
                action = await _read_action(reader)
                if action is None:
                    return
                session.actions.append(action)
                await self._answer(session, action)
                await session.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def _answer(self, session: StubSession, action: dict[str, str]) -> None:
        name = action.get("Action", "").lower()
        if self.on_action is not None and await self.on_action(session, action):
            return
        if name == "login":
            session.reply(action, Message="Authentication accepted")
            session.logged_in = True
            if self.on_login is not None:
                task = asyncio.create_task(self.on_login(session))
                self._tasks.add(task)  # type: ignore[arg-type]
                task.add_done_callback(self._tasks.discard)  # type: ignore[arg-type]
        elif name == "ping":
            extra = {"Timestamp": f"{self.ping_timestamp():.6f}"} if self.ping_timestamp else {}
            session.reply(action, Ping="Pong", **extra)
        elif name == "queuestatus":
            session.reply(action, EventList="start", Message="Queue status will follow")
            aid = action.get("ActionID", "")
            session.send(
                f"Event: QueueStatusComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
                "ListItems: 0\r\n\r\n".encode()
            )
        elif name == "logoff":
            session.reply(action, "Goodbye", Message="Thanks for all the fish.")
            session.writer.close()
        else:
            session.reply(action, Message=f"{action.get('Action')} accepted")


async def _read_action(reader: asyncio.StreamReader) -> dict[str, str] | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    action: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            action[key] = value
    return action
