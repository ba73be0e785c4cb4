"""Connection limits for the HTTP server: what uvicorn offers, plus what it lacks.

uvicorn bounds concurrency (``limit_concurrency``: past it every new request gets a 503; it
counts open connections, idle ones included, and running tasks) and idle keep-alive
connections (``timeout_keep_alive``, armed only after a response). With httptools it bounds
neither how long a client may take to send a request nor how large the request line and
headers may be: a connection that never sends a byte, or sends a header one byte a minute,
is held forever, and httptools buffers a header value of any size. ``GuardedHttpTools``
adds both:

* a request timeout: from the moment a connection opens, or any byte of a request arrives,
  the whole request (head and body) must be received within ``request_timeout`` seconds.
  Past it the client gets a 408 and the connection is closed; if the request's head was
  already handed to the app, the connection is simply closed (the app sees a disconnect).
* a head limit: a request line plus headers over ``max_head_bytes`` gets a 431 and the
  connection is closed, whether the head is complete or still arriving (then at most one
  read buffer past the limit is held).

Everything else is uvicorn's own ``HttpToolsProtocol`` (its 503 past the concurrency limit
is plain text, not this API's JSON). Not bounded here: how fast a client reads a response
(answers are small) and how many connections one client opens (that is a proxy's job).
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from movierec.errors import ParameterError

LIMIT_CONCURRENCY = 2048
TIMEOUT_KEEP_ALIVE_S = 5.0
REQUEST_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 16 * 1024
LINGER_S = 2.0  # after a 408/431, how long what the client still sends is read and dropped


class _HeadTooLarge(Exception):
    """Raised inside a parser callback: httptools turns it into a parser error."""


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request timeout and a request-head size limit."""

    def __init__(
        self,
        *args: Any,
        request_timeout: float = REQUEST_TIMEOUT_S,
        max_head_bytes: int = MAX_HEAD_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout
        self.max_head_bytes = max_head_bytes
        self._timer: Any = None
        self._in_head = True  # between the start of a request and the end of its headers
        self._head_bytes = 0  # bytes of whole reads that fell inside the current head
        self._head_began = False  # the current head began in the read being parsed
        self._head_too_large = False
        self._discarding = False  # answered and half-closed: input is read and dropped

    # -- the request timeout

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # nothing handed to the app
            self._reject(408, "request_timeout", "request not received in time")
        else:
            self.transport.close()

    # -- hooks into HttpToolsProtocol

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._arm()  # any byte starts (or continues) a request, even stray CRLFs
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            if self._head_began:  # the read the head began in holds more than the head
                self._head_began = False
            else:
                self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._reject(431, "headers_too_large", self._too_large_detail())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_began, self._head_bytes = True, True, 0
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_head_bytes:
            self._head_too_large = True
            raise _HeadTooLarge  # -> HttpParserError -> send_400_response below
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._reject(431, "headers_too_large", self._too_large_detail())
        else:
            super().send_400_response(msg)

    # -- answers that close the connection

    def _too_large_detail(self) -> str:
        return f"request line and headers over {self.max_head_bytes} bytes"

    def _reject(self, status: int, error: str, detail: str) -> None:
        body = json.dumps({"error": error, "detail": detail}).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        head = [
            b"HTTP/1.1 %d %s" % (status, reason),
            *(b"%s: %s" % pair for pair in self.server_state.default_headers),
            b"content-type: application/json",
            b"content-length: %d" % len(body),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self._disarm()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        # Closing now, with the client's input unread, would reset the connection and could
        # destroy the answer before the client reads it: half-close, drop what still comes,
        # and close when the client does (eof) or after LINGER_S.
        self.transport.write_eof()
        self._discarding = True
        self._timer = self.loop.call_later(LINGER_S, self.transport.close)


@dataclass(frozen=True)
class ServerLimits:
    """The server's limits; ``uvicorn_options`` turns them into ``uvicorn.Config`` keywords.

    ``limit_concurrency``: open connections plus running requests past which new requests
    get a 503 (idle keep-alive connections count, so keep it well above the number of
    clients that hold one). ``timeout_keep_alive``: seconds an idle keep-alive connection
    stays open. ``request_timeout``: seconds a client has to send a whole request.
    ``max_head_bytes``: the largest request line plus headers.
    """

    limit_concurrency: int = LIMIT_CONCURRENCY
    timeout_keep_alive: float = TIMEOUT_KEEP_ALIVE_S
    request_timeout: float = REQUEST_TIMEOUT_S
    max_head_bytes: int = MAX_HEAD_BYTES

    def __post_init__(self) -> None:
        for name in ("limit_concurrency", "max_head_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be a positive integer, not {value!r}")
        for name in ("timeout_keep_alive", "request_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ParameterError(f"{name} must be a positive number of seconds, not {value!r}")

    def uvicorn_options(self) -> dict[str, Any]:
        protocol = functools.partial(  # a partial of a module-level class: workers unpickle it
            GuardedHttpTools,
            request_timeout=float(self.request_timeout),
            max_head_bytes=self.max_head_bytes,
        )
        return {
            "http": protocol,
            "ws": "none",  # no WebSocket endpoints: upgrade requests are answered as HTTP
            "limit_concurrency": self.limit_concurrency,
            "timeout_keep_alive": self.timeout_keep_alive,
        }


def raise_open_files_limit(want: int) -> int:
    """Raise this process's soft limit on open files to ``want`` if it is lower (never
    above the hard limit); the soft limit in force afterwards (``want`` where unknown)."""
    if sys.platform == "win32":
        return want
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return want
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
