"""A wall-clock deadline over one model call: SDK retries, streaming and slow servers included.

The openai SDK's ``timeout`` bounds each network operation, not the call: a server that sends
one byte every few seconds never trips it. :func:`http_client` builds the SDK's HTTP client
with two hooks that honour the deadline of the call in progress (:func:`deadline`):

- every request's connect/read/write timeouts shrink to the time left, and its sockets are
  recorded; when the deadline passes they are shut down, so a read in progress returns at once
  and the server sees the connection close: the call stops, it is not abandoned;
- what fails after the deadline becomes :class:`DeadlineExceeded`, an ``openai`` error the SDK
  passes on without retrying; a retry the server asks to wait past the deadline is not made.

A backoff pause of the SDK after a connection error (0.5 s doubling, at most 8 s) may end after
the deadline; no byte is exchanged after it. The call also counts its HTTP requests, so the
retries reported are the ones that happened, and the status of the latest response, so that a
connection that failed after the headers is told apart from a server that cannot be reached.
"""
from __future__ import annotations

import contextvars
import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx2
import openai

# connections are not kept between calls: a pooled connection's socket was recorded by an
# earlier call, and only sockets opened under this call's deadline are shut down by it
_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=0)
# trace events whose return value is a new connection's stream ("connection.", "socks." ...)
_CONNECTED = (".connect_tcp.complete", ".connect_unix_socket.complete")


class DeadlineExceeded(openai.APITimeoutError):
    """The call's wall-clock deadline passed (an OpenAIError: the SDK does not retry it)."""

    def __init__(self, request: httpx2.Request, seconds: float):
        super().__init__(request=request)
        self.message = f"no complete reply within the deadline of {seconds:g}s"
        self.args = (self.message,)


class ReplyTooLarge(openai.APIConnectionError):
    """The response body passed its byte cap (an OpenAIError: the SDK does not retry it)."""

    def __init__(self, request: httpx2.Request, limit: int):
        super().__init__(message=f"the response body passed {limit:,} bytes", request=request)
        self.limit = limit


class Call:
    """One model call: its deadline, its sockets, and how many HTTP requests it made."""

    def __init__(self, seconds: float, max_body_bytes: int | None = None):
        self.seconds = seconds
        self.max_body_bytes = max_body_bytes
        self.ends = time.monotonic() + seconds
        self.requests = 0  # requests sent: 1 + the SDK's retries
        self.request: httpx2.Request | None = None
        self.status: int | None = None  # the status of the latest request's response, once
        #                                 its headers came (a failure after them cut its body)
        self._expired = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self.expire)
        self._timer.daemon = True

    @property
    def expired(self) -> bool:
        return self._expired.is_set()

    def left(self) -> float:
        return self.ends - time.monotonic()

    def error(self) -> DeadlineExceeded:
        return DeadlineExceeded(self.request or httpx2.Request("POST", "http://unknown"),
                                self.seconds)

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline (a duplicate descriptor: ours to close)."""
        dup = sock.dup()
        with self._lock:
            self._sockets.append(dup)
            late = self.expired
        if late:
            _shutdown(dup)

    def expire(self) -> None:
        with self._lock:
            self._expired.set()
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def start(self) -> None:
        self._timer.start()

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


_CURRENT: contextvars.ContextVar[Call | None] = contextvars.ContextVar("darwin_llm_call",
                                                                      default=None)


@contextmanager
def deadline(seconds: float, max_body_bytes: int | None = None) -> Iterator[Call]:
    """Run one model call (made with a client from :func:`http_client`) within ``seconds``."""
    call = Call(seconds, max_body_bytes)
    token = _CURRENT.set(call)
    call.start()
    try:
        yield call
    finally:
        _CURRENT.reset(token)
        call.close()


def http_client() -> httpx2.Client:
    """The HTTP client for ``openai.OpenAI(http_client=...)``: the SDK's defaults, plus the
    deadline hooks."""
    return openai.DefaultHttpxClient(limits=_LIMITS,
                                     event_hooks={"request": [_on_request],
                                                  "response": [_on_response]})


def _on_request(request: httpx2.Request) -> None:
    call = _CURRENT.get()
    if call is None:
        return
    left = call.left()
    if left <= 0 or call.expired:
        raise call.error()
    call.requests += 1
    call.request = request
    call.status = None
    timeouts = dict(request.extensions.get("timeout") or {})
    for kind in ("connect", "read", "write", "pool"):
        given = timeouts.get(kind)
        timeouts[kind] = left if given is None else min(given, left)
    request.extensions["timeout"] = timeouts
    inner = request.extensions.get("trace")

    def trace(name: str, info: dict) -> None:
        if inner is not None:
            inner(name, info)
        if name.endswith(_CONNECTED):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                call.watch(sock)
        elif name.endswith(".failed") and (call.expired or call.left() <= 0):
            # the shutdown's read error, or a read timeout that the clamp made end exactly at
            # the deadline: said as what it is
            raise call.error()

    request.extensions["trace"] = trace


def _on_response(response: httpx2.Response) -> None:
    call = _CURRENT.get()
    if call is None:
        return
    call.status = response.status_code
    if response.status_code >= 400:
        pause = _retry_after(response.headers)
        if pause is not None and pause >= call.left():
            response.headers["x-should-retry"] = "false"  # the SDK obeys this header
    if call.max_body_bytes:
        response.stream = _Capped(response.stream, call.max_body_bytes, response.request)


class _Capped(httpx2.SyncByteStream):
    """A response body that stops at ``limit`` bytes (non-streamed replies are read whole)."""

    def __init__(self, inner, limit: int, request: httpx2.Request):
        self.inner, self.limit, self.request = inner, limit, request

    def __iter__(self):
        seen = 0
        for chunk in self.inner:
            seen += len(chunk)
            if seen > self.limit:
                raise ReplyTooLarge(self.request, self.limit)
            yield chunk

    def close(self) -> None:
        self.inner.close()


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds the server asks to wait before a retry, when it says."""
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None  # an HTTP date: the SDK parses it; rare enough to leave to its backoff
    return None


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer or by the client: nothing left to stop
