"""The model server: the only part of evaluation that runs the agent's code, inside the sandbox.

    python -m darwin_git.harness.model_server CHECKPOINT MODULE:FUNCTION

CHECKPOINT is a file name inside the read-only input folder $DARWIN_CKPT.

It builds the model from the checkpoint (``weights_only=True``), loads the weights strictly and
then answers the parent over the framed protocol on its original stdout/stdin:

    {"op": "logits"} + idx (B, T) int64      -> {"ok": true} + logits (B, T, V) float32
    {"op": "bench", "steps": k} + x, y       -> {"ok": true} after k forward+backward steps
    {"op": "quit"}                           -> exits

It computes no score: it only returns logits, and the parent does the arithmetic. Whatever the
model prints goes to stderr (the log), never into the protocol stream.
"""
from __future__ import annotations

import os
import sys
import traceback


def _private_streams():
    """Keep fds 0/1 for the protocol; point the agent-visible ones at /dev/null and stderr."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    return _Reader(proto_in), proto_out


class _Reader:
    """An unbuffered fd whose read(n) may return fewer bytes, as protocol._read_exact expects."""

    def __init__(self, f):
        self.f = f

    def read(self, n):
        return self.f.read(n)


def _fail(out, cause: str, detail: str) -> None:
    from darwin_git.harness import protocol

    protocol.send(out, {"error": cause, "detail": detail[-3000:]})


def main(argv: list[str]) -> int:
    proto_in, proto_out = _private_streams()
    # Import the engine's side before the tree joins sys.path, so the tree cannot shadow them.
    import numpy as np
    import torch
    import torch.nn.functional as F

    from darwin_git.harness import protocol

    if len(argv) != 2 or argv[1].count(":") != 1:
        _fail(proto_out, "usage", "usage: model_server CHECKPOINT MODULE:FUNCTION")
        return 2
    ckpt_name, entry = argv
    ckpt_path = os.path.join(os.environ.get("DARWIN_CKPT", "."), ckpt_name)
    device = os.environ.get("DARWIN_DEVICE", "cpu")
    if device == "cpu":
        from darwin_git.harness.flops import eval_threads

        torch.set_num_threads(eval_threads())  # the same count the CPU peak is measured with
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        config, state = ckpt["model_config"], ckpt["model"]
    except Exception:  # noqa: BLE001 - any unreadable checkpoint is reported, not raised
        _fail(proto_out, "bad_checkpoint", traceback.format_exc())
        return 1
    sys.path.insert(0, os.getcwd())
    module_name, func_name = entry.split(":")
    try:
        import importlib

        model = getattr(importlib.import_module(module_name), func_name)(config)
    except Exception:  # noqa: BLE001
        _fail(proto_out, "model_error", traceback.format_exc())
        return 1
    try:
        model.load_state_dict(state, strict=True)
    except Exception:  # noqa: BLE001
        _fail(proto_out, "checkpoint_mismatch", traceback.format_exc())
        return 1
    model.to(device).eval()
    param_ids = {id(p) for p in model.parameters()}
    buffers = [n for n, t in model.state_dict(keep_vars=True).items() if id(t) not in param_ids]
    protocol.send(proto_out, {"op": "ready", "buffers": buffers})

    def forward(idx):
        out = model(idx)
        return out[0] if isinstance(out, (tuple, list)) else out

    while True:
        try:
            header, arrays = protocol.receive(proto_in)
        except protocol.ProtocolError:
            return 0  # the parent went away: nothing left to do
        op = header.get("op")
        try:
            if op == "quit":
                return 0
            if op == "logits":
                idx = torch.from_numpy(arrays[0]).to(device)
                with torch.no_grad():
                    logits = forward(idx).float().cpu().numpy()
                protocol.send(proto_out, {"ok": True}, (np.asarray(logits, dtype=np.float32),))
            elif op == "bench":
                x = torch.from_numpy(arrays[0]).to(device)
                y = torch.from_numpy(arrays[1]).to(device)
                model.train()
                for _ in range(int(header.get("steps", 1))):
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                        logits = forward(x)
                        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
                    loss.backward()
                    model.zero_grad(set_to_none=True)
                if device == "cuda":
                    torch.cuda.synchronize()
                model.eval()
                protocol.send(proto_out, {"ok": True})
            else:
                protocol.send(proto_out, {"error": "bad_request", "detail": f"unknown op {op!r}"})
        except Exception:  # noqa: BLE001 - the agent's forward failed; say so, keep serving
            _fail(proto_out, "forward_failed", traceback.format_exc())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
