"""A real OpenAI-compatible Chat Completions server on 127.0.0.1 for tests.

It answers from a scripted queue of behaviours (a reply text, an HTTP status, a delay, a body
dripped byte by byte) and records every request it gets, so tests drive the real ``openai``
client over real HTTP. A request with ``"stream": true`` is answered with server-sent events,
as OpenAI does. A behaviour can also shape the body the way real servers and networks do:
extra message fields (a reasoning model's ``reasoning_content``, ``tool_calls``), a stream
without its finish event or ``data: [DONE]``, a body framed by content-length, chunks or the
connection's close, and cut after a number of bytes. A client that hangs up mid-reply is
recorded in ``aborted`` (bytes sent before it did) and sets ``hung_up``, so a test can see
that a call really stopped:

    with LLMServer() as srv:
        srv.push(reply('{"reasoning": ..., "diff": ...}'), status(429), delay(5.0, "..."))
        client = openai.OpenAI(base_url=srv.base_url, api_key="test")

When the queue is empty the server answers 500 ("script exhausted"), so a test that makes
more calls than it scripted fails loudly instead of hanging. Import the ``llm_server`` fixture
into a test module with ``from llm_server import llm_server``.
"""
from __future__ import annotations

import collections
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Behaviour:
    text: str | None = None  # reply content (None with status 200 = choices: [])
    status: int = 200
    delay_s: float = 0.0  # sleep before answering (longer than the client timeout = timeout)
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)
    usage: tuple[int, int] | None = None  # (prompt, completion); None = counted from text
    raw_body: str | None = None  # sent as is (e.g. malformed JSON)
    drip_s: float = 0.0  # send the body one byte at a time, this long apart (a slow server)
    message: dict | None = None  # extra message fields (streamed: in the first content delta)
    finish_event: bool = True  # streamed: send the event that carries finish_reason
    done: bool = True  # streamed: end with "data: [DONE]"
    framing: str = "length"  # "length" (content-length), "chunked", or "close" (no length)
    cut_after: int | None = None  # close the connection after this many body bytes
    content_type: str | None = None  # instead of the JSON or event-stream type
    chunk_events: list | None = None  # streamed: these raw "data:" payloads instead of deltas


def reply(text: str, **kw) -> Behaviour:
    return Behaviour(text=text, **kw)


def mutation_reply(diff: str, reasoning: str = "Scripted change.", summary: str = "Scripted change",
                   request: dict | None = None, **kw) -> Behaviour:
    """A reply in the JSON shape the LLM mutator asks for."""
    body = {"reasoning": reasoning, "summary": summary, "diff": diff, "request": request}
    return Behaviour(text=json.dumps(body), **kw)


def status(code: int, message: str = "scripted error", **kw) -> Behaviour:
    # retry-after-ms keeps the SDK's backoff to a millisecond in tests
    headers = {"retry-after-ms": "1", **kw.pop("headers", {})}
    body = json.dumps({"error": {"message": message, "type": "server_error", "code": code}})
    return Behaviour(status=code, headers=headers, raw_body=body, **kw)


def delay(seconds: float, text: str = "{}") -> Behaviour:
    return Behaviour(text=text, delay_s=seconds)


def drip(seconds_per_byte: float, text: str = "{}", **kw) -> Behaviour:
    return Behaviour(text=text, drip_s=seconds_per_byte, **kw)


class LLMServer:
    def __init__(self, model: str = "test-model"):
        self.model = model
        self.queue: collections.deque[Behaviour] = collections.deque()
        self.requests: list[dict] = []  # {"path", "headers" (lower-case), "body"}, in order
        self.aborted: list[int] = []  # bytes of a reply sent before its client hung up
        self.hung_up = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *behaviours: Behaviour) -> "LLMServer":
        with self._lock:
            self.queue.extend(behaviours)
        return self

    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests]

    def start(self) -> "LLMServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = {"_raw": raw}
                with server._lock:
                    server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                            "body": body})
                    b = server.queue.popleft() if server.queue else None
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if b is None:
                    return self._send(500, {"error": {"message": "script exhausted"}})
                if b.delay_s:
                    server._stopping.wait(b.delay_s)
                if b.raw_body is not None:
                    return self._send(b.status, b.raw_body, b.headers, b=b)
                if body.get("stream") and b.status == 200:
                    return self._send(200, server._events(body, b), b.headers, b.drip_s,
                                      "text/event-stream", b=b)
                self._send(b.status, server._completion(body, b), b.headers, b.drip_s, b=b)

            def _send(self, code, payload, headers=None, drip_s=0.0, kind="application/json",
                      b: Behaviour | None = None):
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                framing = b.framing if b else "length"
                cut = b.cut_after if b and b.cut_after is not None else None
                sent = 0
                try:
                    self.send_response(code)
                    self.send_header("content-type", (b and b.content_type) or kind)
                    if framing == "length":
                        self.send_header("content-length", str(len(data)))
                    elif framing == "chunked":
                        self.send_header("transfer-encoding", "chunked")
                    else:
                        self.send_header("connection", "close")
                        self.close_connection = True
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    body = data if cut is None else data[:cut]
                    if framing == "chunked":
                        pieces = [body[i:i + 64] for i in range(0, len(body), 64)]
                        out = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in pieces)
                        body = out + (b"0\r\n\r\n" if cut is None else b"")
                    if cut is not None:
                        self.close_connection = True
                    if not drip_s:
                        self.wfile.write(body)
                        self.wfile.flush()
                        return
                    self.wfile.flush()
                    while sent < len(body) and not server._stopping.is_set():
                        self.wfile.write(body[sent:sent + 1])
                        self.wfile.flush()
                        sent += 1
                        server._stopping.wait(drip_s)
                except (BrokenPipeError, ConnectionResetError):
                    with server._lock:  # the client hung up (a timeout, a deadline)
                        server.aborted.append(sent)
                    server.hung_up.set()

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def _completion(self, request: dict, b: Behaviour) -> dict:
        prompt_chars = sum(len(str(m.get("content", ""))) for m in request.get("messages", []))
        p, c = b.usage or (max(1, prompt_chars // 4), max(1, len(b.text or "") // 4))
        message = {"role": "assistant", "content": b.text, "refusal": None, **(b.message or {})}
        choices = [] if b.text is None and not b.message else [{
            "index": 0, "message": message, "logprobs": None, "finish_reason": b.finish_reason}]
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "created": int(time.time()), "model": request.get("model", self.model),
                "choices": choices, "system_fingerprint": None,
                "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}

    def _events(self, request: dict, b: Behaviour) -> str:
        """The reply as server-sent events: content in small deltas, then the finish reason,
        then usage when the client asked for it."""
        def event(choices, usage=None):
            return "data: " + json.dumps({
                "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": request.get("model", self.model), "choices": choices,
                "usage": usage}) + "\n\n"
        full = self._completion(request, b)
        if b.chunk_events is not None:
            out = ["data: " + (c if isinstance(c, str) else json.dumps(c)) + "\n\n"
                   for c in b.chunk_events]
            return "".join(out) + ("data: [DONE]\n\n" if b.done else "")
        text = b.text or ""
        out = [event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                       "finish_reason": None}])]
        if b.message:  # a reasoning model's thoughts, a tool call: before the content
            out.append(event([{"index": 0, "delta": dict(b.message), "finish_reason": None}]))
        out += [event([{"index": 0, "delta": {"content": text[i:i + 16]}, "finish_reason": None}])
                for i in range(0, len(text), 16)]
        if b.finish_event:
            out.append(event([{"index": 0, "delta": {}, "finish_reason": b.finish_reason}]))
        if (request.get("stream_options") or {}).get("include_usage"):
            out.append(event([], full["usage"]))
        return "".join(out) + ("data: [DONE]\n\n" if b.done else "")

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that hung up (a deadline, a size cap): expected, not news
        super().handle_error(request, client_address)


@pytest.fixture
def llm_server():
    with LLMServer() as srv:
        yield srv
