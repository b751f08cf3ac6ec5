"""uvicorn's websocket protocol with one fix: a text frame that is not UTF-8.

uvicorn (0.55, websockets-sansio) logs a traceback for it, and when the client's close frame
arrives in the same read its own ``send_close(1007)`` raises ``InvalidState`` inside
``data_received``: asyncio then logs a second traceback ("Fatal error: protocol.data_received()
call failed"). Here such a frame closes the socket with 1007 and costs one rate-limited line.
Everything else is uvicorn's. Without that implementation (an older uvicorn) this is None and
uvicorn's default is used; :func:`.ratelog.quiet_uvicorn_bad_frames` still shortens its log.
"""

from __future__ import annotations

from typing import Any

from .ratelog import BAD_CLIENTS

WallboardWebSocketProtocol: Any = None

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State
except ImportError:  # pragma: no cover - older uvicorn: its default protocol, its own logging
    pass
else:

    class _Protocol(WebSocketsSansIOProtocol):
        def send_receive_event_to_app(self) -> None:
            if self.curr_msg_data_type == "text" and not self.close_sent:
                data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
                try:
                    data.decode()  # client frames are small (pongs, callback requests)
                except UnicodeDecodeError:
                    self.frames = []
                    self._refuse_bad_text()
                    return
            super().send_receive_event_to_app()

        def _refuse_bad_text(self) -> None:
            peer = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
            BAD_CLIENTS.warn("websocket client %s sent a text frame that is not UTF-8: closed (1007)", peer)
            if self.conn.state is State.OPEN:
                self.conn.send_close(1007)
            if self.conn.close_sent is not None:
                self.handle_parser_exception()  # tells the app, sends the close, ends the socket
            else:
                self.queue.put_nowait({"type": "websocket.disconnect", "code": 1007, "reason": ""})
                self.close_sent = True
                self.transport.close()

    WallboardWebSocketProtocol = _Protocol
