"""The parent's side of the model-server conversation: one answer per request, of a known size.

Nothing is read ahead: the parent reads from the server's stdout only while it waits for the
answer to its own request, and only as much as that answer may take (the header's size, the
number of arrays, each array's bytes). Whatever else the server writes stays in the pipe (the
kernel's buffer, then the server blocks), so unsolicited output costs the parent no memory. An
answer with another request's id, an unexpected number of arrays or an oversized frame ends the
session with its own cause; every read has the session's deadline (select on the pipe's fd).

A scoring session is ``sealed``: validation text is reachable there, so nothing the server says
but the protocol's numbers may leave it. A ServerError then carries its cause alone (never the
server's text, nor a figure the server chose); the pre-flight, which shows the server no
validation text, keeps the server's words for the model that wrote the code.
"""
from __future__ import annotations

import os
import select
import time

import numpy as np

from .checkpoint import MAX_FACTS_BYTES
from .server import protocol

# What the server may say went wrong (model_server.py); anything else is bad_output.
SERVER_CAUSES = ("bad_checkpoint", "model_error", "checkpoint_mismatch", "forward_failed",
                 "bad_request", "usage")


class ServerError(Exception):
    def __init__(self, cause: str, detail: str):
        super().__init__(f"{cause}: {detail}")
        self.cause, self.detail = cause, detail


class _DeadlineReader:
    """read(n) on a raw fd that gives up at the deadline (no Python buffering in between)."""

    def __init__(self, fd: int, deadline: float):
        self.fd, self.deadline = fd, deadline

    def read(self, n: int) -> bytes:
        left = self.deadline - time.monotonic()
        ready = select.select([self.fd], [], [], max(0.0, left))[0] if left > 0 else []
        if not ready:
            raise ServerError("eval_timeout", "the model server did not answer in time")
        return os.read(self.fd, min(n, 1 << 20))


class Client:
    def __init__(self, interactive, deadline: float, sealed: bool = False, meter=None):
        self.io, self.deadline, self.sealed = interactive, deadline, sealed
        self.reader = _DeadlineReader(interactive.stdout.fileno(), deadline)
        self.next_id = 1
        self.meter = meter  # allowance.Meter: the step's clock around every request

    def loaded(self, max_header: int = MAX_FACTS_BYTES) -> dict:
        """The server's first message (id 0, op "loaded"): what its loader read, sent before
        any code of the tree ran in its process."""
        header, _ = self._answer(0, 0, 0, max_header)
        if header.get("op") != "loaded":
            raise ServerError("bad_output", "the server's first message is not its loader's")
        if self.meter is not None:
            self.meter.mark_loaded()
        return header

    def ready(self, max_header: int = protocol.MAX_HEADER) -> dict:
        """The server's next message (id 0): what it bound after building the model."""
        header, _ = self._answer(0, 0, 0, max_header)
        return header

    def request(self, header: dict, arrays: tuple[np.ndarray, ...] = (),
                expect: tuple[int, ...] = (), tokens: int = 0) -> tuple[dict, list[np.ndarray]]:
        """Send one request; its answer must carry len(expect) arrays, array i at most
        expect[i] bytes of data. ``tokens``: what it asks the model to process (for the
        meter)."""
        if self.meter is None:
            return self._request(header, arrays, expect)
        return self.meter.timed(header.get("op"), tokens,
                                lambda: self._request(header, arrays, expect))

    def _request(self, header, arrays, expect):
        rid, self.next_id = self.next_id, self.next_id + 1
        try:
            protocol.send(self.io.stdin, {**header, "id": rid}, arrays)
        except (OSError, ValueError) as exc:
            raise self._error("server_died", f"the model server stopped reading: {exc}") from exc
        limit = max(expect, default=0) + protocol.NPY_OVERHEAD
        return self._answer(rid, len(expect), limit)

    def _error(self, cause: str, detail: str) -> ServerError:
        return ServerError(cause, "" if self.sealed else detail)

    def _answer(self, rid: int, n_arrays: int, max_array: int,
                max_header: int = 1 << 16) -> tuple[dict, list[np.ndarray]]:
        try:
            header, arrays = protocol.receive(self.reader, max_header=max_header,
                                              max_array=max_array, max_arrays=n_arrays)
        except protocol.FrameTooLarge as exc:
            raise self._error("oversized_output", str(exc)) from exc
        except protocol.TooManyArrays as exc:
            raise self._error("unsolicited_output", str(exc)) from exc
        except protocol.ProtocolError as exc:
            raise self._error("server_died", f"the model server went away: {exc}") from exc
        except ServerError as exc:  # the deadline
            raise self._error(exc.cause, exc.detail) from exc
        if header.get("id") != rid:
            raise self._error("unsolicited_output", f"answer for request "
                                                    f"{header.get('id')!r} while waiting for {rid}")
        if "error" in header:  # the cause is ours to name: the server's word is only a hint
            said = header["error"]
            cause = said if said in SERVER_CAUSES else "bad_output"
            raise self._error(cause, str(header.get("detail", ""))[-3000:])
        if len(arrays) != n_arrays:
            raise self._error("bad_output",
                              f"{len(arrays)} arrays where {n_arrays} were expected")
        return header, arrays
