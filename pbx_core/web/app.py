"""The Starlette app: wallboard UI, wallboard websocket, /metrics and /healthz (who may read
those two: :mod:`.exposure`).

``create_app`` takes everything it talks to as arguments (Redis URL or client, token verifier,
stats provider, callback requester), so ``web``, ``serve`` and ``demo`` build the same app over
different wiring; the app itself holds no SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..bus import BusReader, Entry, Snapshot, connect
from ..bus.keys import REDIS_ERRORS, TENANTS_KEY, RedisClient
from ..bus.reader import stored_snapshots
from ..callbacks.core.numbers import InvalidNumber, callback_number
from ..domain.board import Board
from ..domain.tenants import tenant_of
from ..tasks import cancel_and_wait
from .auth import CLOSE_FORBIDDEN, CLOSE_UNAUTHORISED, Forbidden, TokenVerifier, grant_checker
from .exposure import metrics_refusal
from .hub import Client, FeedSource, Hub, HubStats, LabelsFor, ThresholdsFor
from .metrics import CONTENT_TYPE, Metrics, StatsProvider
from .ratelog import BAD_CLIENTS
from .revocation import RevocationWatch

log = logging.getLogger(__name__)

WALLBOARD_DIR = Path(__file__).resolve().parents[2] / "wallboard"
HEALTH_TIMEOUT_S = 2.0

# Books a callback for the wallboard's "call back" button: (tenant, full queue name, number) ->
# (booked, message for the supervisor, callback id or None). ``pbx_core.web.provisioning`` has
# the real one (SQL); the web app only checks the client may act on the queue.
CallbackRequester = Callable[[str, str, str], Awaitable[tuple[bool, str, str | None]]]
CALLBACKS_IN_FLIGHT_MAX = 4  # per socket: a stuck database must not pile up tasks
CALLBACK_FIELD_MAX = 64
REVOKED_MESSAGE = "This wallboard link is no longer valid: its access was revoked or has expired."
# Is this socket's access still valid right now? (RevocationWatch.still_valid)
GrantCheck = Callable[[Client], Awaitable[bool]]


def bus_source(redis: RedisClient) -> FeedSource:
    def source(tenant: str) -> AsyncIterator[Snapshot | Entry]:
        return BusReader(redis, tenant).watch()

    return source


async def _redis_up(redis: RedisClient) -> bool:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            return bool(await redis.ping())
    except (*REDIS_ERRORS, TimeoutError):
        return False


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def _boards(redis: RedisClient, hub: Hub) -> dict[str, Board]:
    """Every tenant's board: the hub's live one if it follows the tenant, else the snapshot."""
    boards = {t: f.board for t, f in hub.feeds.items() if f.board is not None}
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            tenants = sorted(_text(raw) for raw in await redis.smembers(TENANTS_KEY))
            missing = [t for t in tenants if t not in boards]
            stored = await stored_snapshots(redis, missing) if missing else {}
    except (*REDIS_ERRORS, TimeoutError):
        return boards
    for tenant, snap in stored.items():
        boards[tenant] = snap.board
    return boards


def thresholds_for(config: Mapping[str, Any]) -> ThresholdsFor | None:
    """PBX_WALLBOARD_THRESHOLDS (queue name -> thresholds) as the hub's per-tenant lookup."""
    if not config:
        return None
    by_tenant: dict[str, dict[str, Any]] = {}
    for queue, levels in config.items():
        by_tenant.setdefault(tenant_of(queue), {})[queue] = levels
    return lambda tenant: by_tenant.get(tenant, {})


def create_app(
    *,
    verifier: TokenVerifier,
    redis_url: str | None = None,
    redis: RedisClient | None = None,
    source: FeedSource | None = None,
    stats_provider: StatsProvider | None = None,
    thresholds: ThresholdsFor | None = None,
    wallboard_dir: Path | None = None,
    client_queue_max: int = 1000,
    ping_interval_s: float = 15.0,
    extra_routes: Sequence[BaseRoute] = (),
    callback_requester: CallbackRequester | None = None,
    metrics_token: str | None = None,
    recheck_s: float = 15.0,
    labels: LabelsFor | None = None,
) -> Starlette:
    """The web app. Give ``redis_url`` (the app owns the client) or ``redis``. ``source``
    replaces the bus as the hub's input (tenant -> iterator of Snapshot/Entry). ``extra_routes``
    (e.g. the REST API) are mounted before the static files. ``callback_requester`` enables the
    wallboard's "call back" button (without it the page hides the button). ``metrics_token``
    (PBX_METRICS_TOKEN): /metrics needs it as a bearer token; without one only local scrapes.
    ``recheck_s`` (PBX_WALLBOARD_RECHECK_S): how often open sockets' access is re-checked against
    the database (revocation notices through Redis close them sooner: :mod:`.revocation`).
    ``labels``: the tenants' display names for the board (``provisioning.wallboard_labels``)."""
    if redis is None and not redis_url:
        raise ValueError("create_app needs redis_url or redis")
    # XREAD BLOCK holds a connection for block_ms: no socket timeout shorter than that.
    client = redis if redis is not None else connect(redis_url or "", socket_timeout=None)
    hub = Hub(
        source or bus_source(client),
        ping_interval_s=ping_interval_s,
        thresholds=thresholds,
        features={"callbacks": callback_requester is not None},
        labels=labels,
    )
    revocations = RevocationWatch(hub, client, grant_checker(verifier), recheck_s=recheck_s)
    metrics = Metrics(hub, stats_provider)
    started = time.time()
    static_dir = wallboard_dir or WALLBOARD_DIR

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.start()
        revocations.start()
        try:
            yield
        finally:
            await revocations.close()
            await hub.close()
            if redis is None:
                await client.aclose()

    async def wallboard_ws(ws: WebSocket) -> None:
        try:
            await serve_socket(ws)
        except WebSocketDisconnect:
            # The client left first (during accept, or before a refusal's close): normal for a
            # screen switched off or a flaky network, so no traceback and no warning.
            log.debug("wallboard client %s left before its socket was served", _peer(ws))

    async def serve_socket(ws: WebSocket) -> None:
        # Accept first: a close before accept is an HTTP 403, and the browser would only see 1006.
        await ws.accept()
        token = ws.query_params.get("token", "")
        scope = await verifier.verify(token) if token else None
        if scope is None:
            hub.stats.refused[CLOSE_UNAUTHORISED] += 1
            await ws.close(CLOSE_UNAUTHORISED, "unknown token")
            return
        try:
            queues = scope.authorise(
                ws.query_params.get("tenant"), ws.query_params.get("queues", "").split(",")
            )
        except Forbidden as exc:
            hub.stats.refused[CLOSE_FORBIDDEN] += 1
            await ws.close(CLOSE_FORBIDDEN, str(exc)[:120])
            return
        c = Client(ws, scope.tenant, queues, queue_max=client_queue_max, key=scope.key, expires=scope.expires)
        desk = CallbackDesk(c, callback_requester, revocations.still_valid, hub.stats)
        hub.add(c)
        bad = False
        try:
            # The receive loop: a disconnect (or server shutdown) ends the handler at once.
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                c.last_seen = time.monotonic()
                if not _on_client_message(c, msg.get("text"), hub, desk) and not bad:
                    bad = True  # one line per bad client, however many bad frames it sends
                    BAD_CLIENTS.warn("wallboard client %s (tenant %s) sent a frame that is not a JSON "
                                     "object; ignored", _peer(ws), c.tenant)
        finally:
            await desk.close()
            await hub.remove(c)

    async def metrics_endpoint(request: Request) -> Response:
        refusal = metrics_refusal(request, metrics_token)
        if refusal is not None:
            return refusal
        boards = await _boards(client, hub)
        up = await _redis_up(client)
        return Response(metrics.render(boards, redis_up=up, uptime_s=time.time() - started),
                        media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        # Bare on purpose: anyone may ask, so it names no tenant, client count or component.
        up = await _redis_up(client)
        return JSONResponse({"status": "ok" if up else "unavailable"}, status_code=200 if up else 503)

    routes: list[BaseRoute] = [
        WebSocketRoute("/ws/wallboard", wallboard_ws),
        Route("/metrics", metrics_endpoint),
        Route("/healthz", healthz),
        *extra_routes,
    ]
    if static_dir.is_dir():
        routes.append(Mount("/", StaticFiles(directory=static_dir, html=True), name="wallboard"))
    else:
        log.warning("wallboard directory %s not found: / will be 404", static_dir)
        routes.append(Route("/", lambda r: PlainTextResponse("wallboard UI not installed", 404)))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub = hub
    app.state.revocations = revocations
    app.state.redis = client
    return app


class CallbackDesk:
    """One socket's "call back" requests: each is booked in its own task (the receive loop must
    keep reading pongs meanwhile) and answered on that socket with a ``callback.ack``."""

    def __init__(
        self,
        client: Client,
        requester: CallbackRequester | None,
        still_valid: GrantCheck | None = None,
        stats: HubStats | None = None,
    ) -> None:
        self.client = client
        self.stats = stats or HubStats()
        self.requester = requester
        self.still_valid = still_valid
        self.tasks: set[asyncio.Task[None]] = set()

    def request(self, msg: dict[str, Any]) -> None:
        queue, number, ref = msg.get("queue"), msg.get("number"), msg.get("ref")
        if not isinstance(ref, str | int) or isinstance(ref, bool):
            ref = None
        problem = self._problem(queue, number)
        if problem is not None or not isinstance(queue, str) or not isinstance(number, str):
            self._ack(False, problem or "", None, queue, number, ref)
            return
        task = asyncio.create_task(self._book(queue, number, ref), name="wallboard-callback")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _problem(self, queue: object, number: object) -> str | None:
        c = self.client
        if self.requester is None:
            return "Callbacks are not available on this server."
        if c.close_code is not None:
            return REVOKED_MESSAGE
        if not isinstance(queue, str) or not queue or len(queue) > CALLBACK_FIELD_MAX:
            return "The callback request needs the queue's full name in 'queue'."
        if not isinstance(number, str) or len(number) > CALLBACK_FIELD_MAX:
            return "The callback request needs the caller's phone number in 'number'."
        try:
            callback_number(number)  # the same rule as the REST API and the phone menu
        except InvalidNumber as exc:
            return f"Callback not booked: the number {exc}."
        if tenant_of(queue) != c.tenant or not c.wants(queue):
            return f"This wallboard link may not book callbacks for queue {queue!r}."
        if len(self.tasks) >= CALLBACKS_IN_FLIGHT_MAX:
            return "Too many callback requests at once: wait for the answers, then try again."
        return None

    async def _book(self, queue: str, number: str, ref: str | int | None) -> None:
        assert self.requester is not None
        try:
            # The grant is checked at the moment of booking: a key revoked a moment ago books
            # nothing, even before its revocation notice has closed this socket.
            if self.still_valid is not None and not await self.still_valid(self.client):
                # Closed with 4401 and no answer: the page says its link is no longer valid.
                self.client.revoke(CLOSE_UNAUTHORISED, "access revoked", "revoked", self.stats)
                return
            ok, message, cb_id = await self.requester(self.client.tenant, queue, number)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("wallboard callback for %s in %s failed", number, queue)
            ok, message, cb_id = False, "Callback not booked (server error): try again later.", None
        self._ack(ok, message, cb_id, queue, number, ref)

    def _ack(self, ok: bool, message: str, cb_id: str | None, queue: Any, number: Any, ref: Any) -> None:
        reply = {
            "type": "callback.ack", "ok": ok, "message": message, "id": cb_id,
            "queue": queue if isinstance(queue, str) else None,
            "number": number if isinstance(number, str) else None,
            "ref": ref, "server_time": round(time.time(), 3),
        }  # fmt: skip
        self.client.offer_reply(json.dumps(reply, ensure_ascii=False))

    async def close(self) -> None:
        await cancel_and_wait(list(self.tasks))


def _peer(ws: WebSocket) -> str:
    return f"{ws.client.host}:{ws.client.port}" if ws.client else "?"


def _on_client_message(c: Client, text: str | None, hub: Hub, desk: CallbackDesk | None = None) -> bool:
    """Act on one frame; False if it was not a JSON object (binary, garbage, nested too deep)."""
    if not text:
        return False
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        # Garbage (or JSON nested past the parser's depth) costs the client nothing but is not
        # worth a disconnect.
        return False
    if not isinstance(msg, dict):
        return False
    if msg.get("type") == "resync":
        c.resync("client", hub.stats)
    elif msg.get("type") == "callback" and desk is not None:
        desk.request(msg)
    # "pong" only refreshes last_seen (done by the caller); unknown types are ignored.
    return True
