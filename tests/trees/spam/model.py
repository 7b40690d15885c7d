"""An attack on the parent: while the model is built it finds the protocol's pipe and writes
frames nobody asked for (spam.txt: "unsolicited" = a well-formed message announcing 24 arrays
of 128 MiB; "oversized" = a frame announcing 128 MiB), then keeps writing 128 MiB payloads."""
import fcntl
import json
import os
import stat
import struct
import threading

import torch.nn as nn

FRAME = 128 << 20


def _protocol_fd():
    log = os.fstat(2).st_ino
    for fd in range(3, 256):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if (stat.S_ISFIFO(st.st_mode) and st.st_ino != log
                and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY):
            return fd
    raise RuntimeError("no protocol pipe found")


def _write(fd, data):
    while data:
        data = data[os.write(fd, data):]


def _flood(fd, frames):
    chunk = bytes(1 << 20)
    try:
        for _ in range(frames):
            _write(fd, struct.pack(">I", FRAME))
            for _ in range(FRAME // len(chunk)):
                _write(fd, chunk)
    except OSError:
        pass  # the parent hung up


def build_model(config):
    fd = _protocol_fd()
    mode = open("spam.txt").read().strip()
    if mode == "unsolicited":
        header = json.dumps({"op": "ready", "id": 0, "params": [], "arrays": 24}).encode()
        _write(fd, struct.pack(">I", len(header)) + header)
        frames = 24
    else:
        _write(fd, struct.pack(">I", FRAME))  # a header frame of 128 MiB
        frames = 23
    threading.Thread(target=_flood, args=(fd, frames), daemon=True).start()
    return nn.Linear(1, 1)
