"""The parent's side of the model-server conversation, with a deadline on every answer.

Frames are read by a thread into a queue, so a server that hangs (or an Interactive whose
stdout has no usable fileno, as with docker) never blocks the harness past its deadline.
"""
from __future__ import annotations

import queue
import threading
import time

import numpy as np

from . import protocol


class ServerError(Exception):
    def __init__(self, cause: str, detail: str):
        super().__init__(f"{cause}: {detail}")
        self.cause, self.detail = cause, detail


class Client:
    def __init__(self, interactive, deadline: float):
        self.io, self.deadline = interactive, deadline
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                self._q.put(protocol.receive(self.io.stdout))
            except Exception as exc:  # noqa: BLE001 - any unreadable frame ends the session
                self._q.put(exc)
                return

    def request(self, header: dict, arrays: tuple[np.ndarray, ...] = ()):
        try:
            protocol.send(self.io.stdin, header, arrays)
        except (OSError, ValueError) as exc:
            raise ServerError("server_died", f"the model server stopped reading: {exc}") from exc
        return self.answer()

    def answer(self):
        left = self.deadline - time.monotonic()
        try:
            item = self._q.get(timeout=max(0.0, left))
        except queue.Empty:
            raise ServerError("eval_timeout", "the model server did not answer in time") from None
        if isinstance(item, Exception):
            raise ServerError("server_died", f"the model server went away: {item}")
        header, arrays = item
        if "error" in header:
            raise ServerError(str(header["error"]), str(header.get("detail", "")))
        return header, arrays
