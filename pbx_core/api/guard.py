"""The request guard: what every API request passes before FastAPI reads any of it.

FastAPI reads and parses a request's body before it resolves the route's dependencies, so
authentication as a dependency comes too late: an anonymous client could make the server buffer
any amount of data and only then hear 401. The guard, an ASGI middleware around the API, works
from the request line and headers first:

1. a control character in a query parameter: 422 naming it (no text may hold one; path
   parameters are checked by their own patterns, and a slug that cannot exist is a 404);
2. the API key (:func:`.auth.authenticate`): 401, or 429 for an address over its failure budget
   or a key or tenant over its rate limit - the body is never read;
3. a declared ``Content-Length`` over the limit: 413, unread;
4. while the route reads the body: more bytes than the limit (also chunked bodies, which declare
   no length) or JSON nested deeper than :data:`MAX_JSON_DEPTH`: 413 / 422 at that point.

A refused body is never buffered. Up to :data:`DRAIN_MAX_BYTES` of it (declared) is left to the
server, which discards what arrives after the answer, so the client reads the answer on a
connection that stays usable. A bigger or chunked one gets ``Connection: close``: the server
drops the connection instead of taking in the rest (a client that sent ``Expect: 100-continue``
never sends it at all; others may see the connection reset before they read the answer - the
price of not reading 200 MB to say 401). The OpenAPI document and its viewer are public and
pass unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..provisioning.schemas import control_character
from .auth import PRINCIPAL_KEY, authenticate
from .errors import ApiError, FieldError, error_response

MAX_JSON_DEPTH = 32  # arrays and objects inside each other; the API's own bodies need 5
DRAIN_MAX_BYTES = 1024 * 1024  # a refused body up to this is discarded by the server, not cut off
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
# The viewers' packaged JavaScript and CSS (see docs.py): static files, read-only, no tenant data.
PUBLIC_PREFIXES = ("/docs-assets/",)
_JSON_TOKENS = re.compile(rb'[\[\]{}"\\]')


class BodyRefused(Exception):
    """The body broke a limit while it was being read; the guard answers with ``error``."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


class JsonDepth:
    """Nesting depth of a JSON text fed in chunks, without parsing it: brackets outside
    strings, with backslash escapes inside them (also across chunk boundaries)."""

    def __init__(self, limit: int = MAX_JSON_DEPTH) -> None:
        self.limit = limit
        self.depth = 0
        self._in_string = False
        self._skip = 0  # bytes of the next chunk to skip: an escape that began in the last one

    def feed(self, chunk: bytes) -> bool:
        """False once the nesting went deeper than the limit."""
        skip = self._skip
        for match in _JSON_TOKENS.finditer(chunk):
            i = match.start()
            if i < skip:
                continue
            char = chunk[i]
            if self._in_string:
                if char == 0x5C:  # backslash: the next byte is escaped, whatever it is
                    skip = i + 2
                elif char == 0x22:
                    self._in_string = False
            elif char == 0x22:
                self._in_string = True
            elif char in (0x5B, 0x7B):
                self.depth += 1
                if self.depth > self.limit:
                    return False
            elif char in (0x5D, 0x7D):
                self.depth -= 1
        self._skip = max(0, skip - len(chunk))
        return True


def _is_json(headers: Headers) -> bool:
    media = headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _declared_length(headers: Headers) -> int | None:
    declared = headers.get("content-length", "").strip()
    return int(declared) if declared.isdigit() else None


def _close_if_refused(headers: Headers) -> bool:
    """Whether a refusal must close the connection rather than let the server discard the
    unread body: a chunked body (no length), or one longer than DRAIN_MAX_BYTES."""
    if "transfer-encoding" in headers:
        return True
    declared = _declared_length(headers)
    return declared is not None and declared > DRAIN_MAX_BYTES


def _query_problem(scope: Scope) -> ApiError | None:
    """A control character in a query parameter: the same rule as for every text field of a
    body (pbx_core.provisioning.schemas), before it can reach a database that refuses it."""
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        found = control_character((name, value))
        if found is not None:
            message = f"must not contain control characters (found U+{ord(found):04X})"
            field = "query." + ("".join("?" if control_character(c) else c for c in name) or "?")
            return ApiError(422, f"{field}: {message}", fields=[FieldError(field=field, message=message)])
    return None


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_json_depth: int = MAX_JSON_DEPTH,
        public_paths: Sequence[str] = tuple(PUBLIC_PATHS),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.public_paths = frozenset(public_paths)

    def _is_public(self, scope: Scope) -> bool:
        path = get_route_path(scope)
        if path in self.public_paths:
            return True
        return scope["method"] in ("GET", "HEAD") and path.startswith(PUBLIC_PREFIXES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        close = _close_if_refused(headers)
        problem = _query_problem(scope)
        if problem is not None:
            await self._refuse(scope, receive, send, problem, close)
            return
        if self._is_public(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = await authenticate(request)
        except ApiError as exc:
            await self._refuse(scope, receive, send, exc, close)
            return
        setattr(request.state, PRINCIPAL_KEY, principal)
        declared = _declared_length(headers)
        if declared is not None and declared > self.max_body_bytes:
            await self._refuse(scope, receive, send, self._too_large(), close)
            return
        await self._guarded(scope, receive, send, _is_json(headers))

    def _too_large(self) -> ApiError:
        return ApiError(413, f"the request body is larger than {self.max_body_bytes} bytes "
                        "(PBX_API_MAX_BODY_BYTES)", fields=[FieldError(field="body", message="too large")])

    def _too_deep(self) -> ApiError:
        message = f"JSON nested deeper than {self.max_json_depth} levels"
        return ApiError(422, f"body: {message}", fields=[FieldError(field="body", message=message)])

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, is_json: bool) -> None:
        """Run the app with a receive that counts (and depth-checks) the body as it is read. A
        broken limit raises inside the app's read; whatever the app makes of that is replaced
        by the guard's own answer."""
        received = 0
        depth = JsonDepth(self.max_json_depth) if is_json else None
        refused: list[ApiError] = []
        started = False
        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                body_done = not message.get("more_body", False)
                received += len(chunk)
                if received > self.max_body_bytes:
                    refused.append(self._too_large())
                elif depth is not None and not depth.feed(chunk):
                    refused.append(self._too_deep())
                if refused:
                    raise BodyRefused(refused[0])
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's answer to the failed read; the guard sends its own below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyRefused:
            pass
        except Exception:
            if not refused:
                raise
        if refused and not started:
            # Only a chunked body can pass the limit while it is read (a declared length is
            # checked up front); its rest is discarded up to DRAIN_MAX_BYTES so the client can
            # read the answer, beyond that the connection is closed.
            finished = body_done or await self._discard_rest(receive)
            await self._refuse(scope, receive, send, refused[0], close=not finished)

    @staticmethod
    async def _discard_rest(receive: Receive) -> bool:
        """Read and drop the rest of a refused body; False if it goes on past DRAIN_MAX_BYTES."""
        dropped = 0
        while dropped <= DRAIN_MAX_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return False  # the client went away
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
        return False

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, error: ApiError, close: bool
    ) -> None:
        headers = dict(error.headers)
        if close:
            headers["Connection"] = "close"  # uvicorn drops the connection after the answer
        response = error_response(error.status, error.message, code=error.code, fields=error.fields,
                                  headers=headers)
        await response(scope, receive, send)
