"""The framed byte protocol between the harness (parent) and the model server (sandboxed child).

A message is a JSON header followed by the arrays it announces, each in its own frame:

    frame   = length (4 bytes, big-endian) + payload
    message = frame(JSON header, with "arrays": n) + n * frame(.npy bytes)

Arrays travel as ``.npy`` with ``allow_pickle=False`` on both ends, so neither side can make the
other unpickle code. Frames over MAX_FRAME are refused: a hostile server cannot make the parent
allocate without bound.
"""
from __future__ import annotations

import io
import json
import struct

import numpy as np

MAX_FRAME = 256 << 20  # one window of GPT-2 logits at context 1024 is 200 MiB
_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer sent something that is not a valid message, or went away."""


def _read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise ProtocolError(f"peer closed the stream ({n - left} of {n} bytes read)")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream) -> bytes:
    (size,) = _LEN.unpack(_read_exact(stream, _LEN.size))
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is over the {MAX_FRAME} byte limit")
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


def receive(stream) -> tuple[dict, list[np.ndarray]]:
    try:
        header = json.loads(_read_frame(stream))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad message header: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("message header is not a JSON object")
    n = header.pop("arrays", 0)
    if not isinstance(n, int) or not 0 <= n <= 8:
        raise ProtocolError(f"bad array count {n!r}")
    arrays = []
    for _ in range(n):
        try:
            arrays.append(np.load(io.BytesIO(_read_frame(stream)), allow_pickle=False))
        except ValueError as exc:
            raise ProtocolError(f"bad array frame: {exc}") from exc
    return header, arrays
