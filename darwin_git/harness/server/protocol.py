"""The framed byte protocol between the harness (parent) and the model server (sandboxed child).

Standalone on purpose (numpy and the standard library only): this file and model_server.py are
all of darwin-git that the evaluation step runs; it never imports darwin_git.

    frame   = length (4 bytes, big-endian) + payload
    message = frame(JSON header, with "arrays": n) + n * frame(.npy bytes)

Arrays travel as ``.npy`` with ``allow_pickle=False`` on both ends, so neither side can make the
other unpickle code. The reader states what it accepts (largest header, largest array, how many
arrays) and a frame over its limit is refused from its length prefix, before any payload is
read: a hostile server cannot make the parent allocate more than the answer it asked for.
"""
from __future__ import annotations

import io
import json
import struct

import numpy as np

MAX_HEADER = 1 << 20  # a header is a small JSON object (the ready message lists parameters)
MAX_ARRAY = 1 << 30  # the server's own limit on what the parent sends it
MAX_ARRAYS = 8
NPY_OVERHEAD = 4096  # an .npy header is 128 bytes for plain arrays; generous margin
_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer sent something that is not a valid message, or went away."""


class FrameTooLarge(ProtocolError):
    """A frame announced more bytes than the reader accepts; its payload was not read."""


class TooManyArrays(ProtocolError):
    """A header announced more arrays than the reader expects; none of them was read."""


def _read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise ProtocolError(f"peer closed the stream ({n - left} of {n} bytes read)")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream, limit: int, what: str) -> bytes:
    (size,) = _LEN.unpack(_read_exact(stream, _LEN.size))
    if size > limit:
        raise FrameTooLarge(f"{what} frame of {size} bytes is over the {limit} bytes expected")
    return _read_exact(stream, size)


def _write_frame(stream, payload: bytes) -> None:
    stream.write(_LEN.pack(len(payload)))
    stream.write(payload)


def send(stream, header: dict, arrays: tuple[np.ndarray, ...] = ()) -> None:
    _write_frame(stream, json.dumps({**header, "arrays": len(arrays)}).encode())
    for arr in arrays:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        _write_frame(stream, buf.getvalue())
    stream.flush()


def receive(stream, max_header: int = MAX_HEADER, max_array: int = MAX_ARRAY,
            max_arrays: int = MAX_ARRAYS) -> tuple[dict, list[np.ndarray]]:
    """One message; ``max_array`` bounds each array's frame (.npy header included)."""
    try:
        header = json.loads(_read_frame(stream, max_header, "header"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad message header: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("message header is not a JSON object")
    n = header.pop("arrays", 0)
    if not isinstance(n, int) or n < 0:
        raise ProtocolError(f"bad array count {n!r}")
    if n > max_arrays:
        raise TooManyArrays(f"{n} arrays announced, at most {max_arrays} expected")
    arrays = []
    for _ in range(n):
        try:
            arrays.append(np.load(io.BytesIO(_read_frame(stream, max_array, "array")),
                                  allow_pickle=False))
        except ValueError as exc:
            raise ProtocolError(f"bad array frame: {exc}") from exc
    return header, arrays
