"""uvicorn's WebSocket protocol with flow control on control frames, and closes that cannot hang.

uvicorn's ``websockets-sansio`` protocol (its default) stops reading a client while a data
message waits for the app, but answers every ping the moment it parses it, whether or not the
client reads the pongs: a client that floods pings and reads nothing grows the server's write
buffer without bound (measured 41 MiB/s). Its close is a graceful one: the close frame waits
behind whatever the client has not read, and ``transport.close()`` waits for that buffer to
drain, so a client that stopped reading keeps its connection ESTABLISHED, and its buffered
data in our memory, for as long as it likes. (The ``websockets`` legacy protocol awaits a drain
per pong, but it is deprecated in uvicorn and in websockets; ``wsproto`` writes pongs unbounded.)

It relies on that class's connection state (``read_paused``, ``writable``, ``close_sent``,
``close_timer``), as in uvicorn 0.55; tests/test_ws_limits.py fails if that changes. This
subclass changes three things:

- While the transport's write buffer is above its high-water mark, it reads nothing from the
  client (so parses no pings, owes no pongs); TCP flow control then pushes back on the client.
- When the app closes a connection whose write buffer is full, the transport is aborted with a
  TCP reset at once: a client that does not read would never get the close frame.
- Every other close falls back to an abort after ``CLOSE_TIMEOUT`` seconds, as does a
  connection whose app has finished while data is still unsent.
"""
from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

if TYPE_CHECKING:
    from uvicorn._types import ASGIReceiveEvent, ASGISendEvent, WebSocketCloseEvent

# Seconds a closing connection may take to flush and finish the close handshake before it is
# reset. Long enough for a reading client on a slow mobile link to get the close frame.
CLOSE_TIMEOUT = 5.0
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, drops unsent data


class FlowControlledWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = CLOSE_TIMEOUT

    # -- flow control: no reading while the client is not reading ---------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.read_paused:  # the base class pauses reading while a message awaits the app
            self.transport.resume_reading()

    async def receive(self) -> ASGIReceiveEvent:
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            if self.writable.is_set():
                self.transport.resume_reading()
        return message

    # -- closes that do not depend on the client -------------------------------------------

    def reset(self) -> None:
        """Drop the connection now with a TCP reset; nothing queued for the client is sent.

        A plain abort would leave the kernel holding unsent data and sending it to a client
        that does not read, and the client would still see the connection ESTABLISHED.
        """
        self.close_sent = True
        if self.transport.is_closing() and not self.transport.get_write_buffer_size():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            except OSError:
                pass
        self.transport.abort()

    async def send(self, message: ASGISendEvent) -> None:
        closing = message["type"] == "websocket.close" and self.handshake_complete and self.initial_response is None
        if closing and not self.close_sent and not self.disconnected and not self.writable.is_set():
            close = cast("WebSocketCloseEvent", message)
            self.queue.put_nowait({"type": "websocket.disconnect", "code": close.get("code", 1000),
                                   "reason": close.get("reason", "") or ""})
            self.reset()
            return
        await super().send(message)
        if closing and self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self.reset)

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        if self.transport.get_write_buffer_size():  # a client that misses pongs is not reading
            self.reset()

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if self.close_timer is None and self.transport.get_write_buffer_size():
            self.loop.call_later(self.close_timeout, self.reset)
