"""The model server: the only part of evaluation that runs the agent's code, inside the sandbox.

This folder (model_server.py, protocol.py, loader.py, flopcount.py) is copied into the evaluation
step as an input; the step never imports darwin_git. The harness starts it as

    python -I -c BOOTSTRAP CHECKPOINT MODULE:FUNCTION [MODULE:CONFIG]

where BOOTSTRAP (harness/serve.py) runs this file from $DARWIN_SERVER; CHECKPOINT is a file name
inside the read-only input folder $DARWIN_CKPT. It reads the checkpoint (loader.py: a plain
torch zip archive within bounds, ``weights_only=True``) and says what it read before any code
of the tree runs here; then it builds the model, FUNCTION(model_config), or
FUNCTION(CONFIG(**model_config)) when a config class is named (nanoGPT's GPT(GPTConfig)); loads
the weights strictly and answers the
parent over the framed protocol on its original stdout/stdin. Every request has an "id" that
its answer repeats:

    (loaded, sent first, id 0)                        -> {"sha256", "tensors", ...} (loader.facts)
    (ready, sent next, id 0)                          -> {"params": [[name, shape], ...]}
    {"op": "count"} + x, y (B, T)                     -> (2,) float64: the matmul FLOPs the
                                                         harness's counter (flopcount.py) saw in
                                                         a forward of x, and a training step's
                                                         (3 x the forward's)
    {"op": "bench", "steps": k} + x, y (m, B, T)      -> per-step losses (k,) float32 after k
                                                         forward+backward steps (step i: batch
                                                         i % m); the weights are then reloaded
    {"op": "logits"} + idx (B, T) + positions (B, P)  -> logits at those positions (B, P, V) float32
    {"op": "quit"}                                    -> exits

Once the first logits request has come, the model is frozen: no parameter requires a gradient,
every forward runs under ``torch.inference_mode()``, and count and bench (the only requests
with training data, and with gradients) are refused. It computes no score: it returns logits
and claimed bench losses, and the parent does the arithmetic and the checks. Whatever the model
prints goes to stderr (the log), never into the protocol stream; in a scoring step the parent
keeps none of it, nor any error's text (harness/evaluate.py).

A forward called with ids alone must give logits for every position. One that gives only the
last position's (nanoGPT's ``forward(idx, targets=None)``, an inference shortcut) is called
again with filler targets: zeros of the ids' shape, never the text that follows, so its
logits for every position come back and nothing it is shown predicts a scored token. Once a
model needed it, every later call passes the filler at once (``full_logits``).
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


def main(argv: list[str]) -> int:
    proto_in, proto_out = _private_streams()
    # Our side is imported before the tree joins sys.path, so the tree cannot shadow it.
    import numpy as np
    import torch
    import torch.nn.functional as F

    import loader
    import protocol

    def fail(cause: str, detail: str, rid=0) -> None:
        protocol.send(proto_out, {"error": cause, "id": rid, "detail": detail[-3000:]})

    if len(argv) not in (2, 3) or any(a.count(":") != 1 for a in argv[1:]):
        fail("usage", "usage: model_server CHECKPOINT MODULE:FUNCTION [MODULE:CONFIG]")
        return 2
    ckpt_name, entry = argv[:2]
    config_entry = argv[2] if len(argv) == 3 else None
    ckpt_path = os.path.join(os.environ.get("DARWIN_CKPT", "."), ckpt_name)
    device = os.environ.get("DARWIN_DEVICE", "cpu")
    threads = os.environ.get("DARWIN_THREADS", "")
    if device == "cpu" and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))  # the same count the CPU peak is measured with
    max_bytes = os.environ.get("DARWIN_CKPT_MAX_BYTES", "")
    try:
        config, state, facts = loader.load(ckpt_path, int(max_bytes) if max_bytes else None)
    except loader.Refused as exc:
        fail("bad_checkpoint", str(exc))
        return 1
    except Exception:  # noqa: BLE001 - any unreadable checkpoint is reported, not raised
        fail("bad_checkpoint", traceback.format_exc())
        return 1
    if device == "cuda":  # the device's start-up (context, cuBLAS) is ours, not the model's
        (torch.ones(8, 8, device=device) @ torch.ones(8, 8, device=device)).sum().item()
    # Before any code of the tree runs in this process: what the parent checks the file against
    # (the copy it froze) and counts parameters from.
    protocol.send(proto_out, {"op": "loaded", "id": 0, **facts})
    sys.path.insert(0, os.getcwd())
    try:
        import importlib

        def named(spec):
            module_name, name = spec.split(":")
            return getattr(importlib.import_module(module_name), name)

        model = named(entry)(named(config_entry)(**config) if config_entry else config)
    except Exception:  # noqa: BLE001
        fail("model_error", traceback.format_exc())
        return 1
    try:
        model.load_state_dict(state, strict=True)
    except Exception:  # noqa: BLE001
        fail("checkpoint_mismatch", traceback.format_exc())
        return 1
    model.to(device).eval()
    bound = [[name, list(p.shape)] for name, p in model.named_parameters()]
    protocol.send(proto_out, {"op": "ready", "id": 0, "params": bound})

    filler = {"on": False}  # full_logits: set once the model needed filler targets

    def forward(idx):
        if filler["on"]:
            return full_logits(idx)
        out = model(idx)
        logits = out[0] if isinstance(out, (tuple, list)) else out
        if getattr(logits, "dim", lambda: 0)() == 3 and logits.shape[1] == 1 < idx.shape[1]:
            filler["on"] = True  # last position only: ask again with filler targets
            return full_logits(idx)
        return logits

    def full_logits(idx):
        out = model(idx, torch.zeros_like(idx))
        return out[0] if isinstance(out, (tuple, list)) else out

    frozen = []  # set at the first logits request: from then on, no gradient and no training

    def reload():
        """The checkpoint's weights again, whatever training mode touched (running statistics,
        or anything the model's forward changed)."""
        model.load_state_dict(state, strict=True)
        model.zero_grad(set_to_none=True)
        model.eval()

    while True:
        try:
            header, arrays = protocol.receive(proto_in)
        except protocol.ProtocolError:
            return 0  # the parent went away: nothing left to do
        op, rid = header.get("op"), header.get("id")
        try:
            if op == "quit":
                sys.stderr.flush()
                os._exit(0)  # no interpreter teardown: it only costs the step's clock
            if op in ("bench", "count") and frozen:
                fail("bad_request", f"{op} after the first logits request", rid)
                continue
            if op == "logits":
                if not frozen:
                    frozen.append(True)
                    model.requires_grad_(False)
                idx = torch.from_numpy(arrays[0]).to(device)
                pos = torch.from_numpy(arrays[1]).to(device)
                with torch.inference_mode():
                    logits = forward(idx)
                    rows = torch.arange(idx.shape[0], device=device)[:, None]
                    picked = logits[rows, pos].float().cpu().numpy()
                protocol.send(proto_out, {"id": rid}, (np.asarray(picked, dtype=np.float32),))
            elif op == "count":
                import flopcount

                try:
                    flops = flopcount.count(forward, torch.from_numpy(arrays[0]).to(device))
                finally:
                    reload()
                protocol.send(proto_out, {"id": rid},
                              (np.array([flops, 3 * flops], dtype=np.float64),))
            elif op == "bench":
                xs = torch.from_numpy(arrays[0]).to(device)
                ys = torch.from_numpy(arrays[1]).to(device)
                losses = []
                model.train()
                try:
                    for i in range(int(header.get("steps", 1))):
                        x, y = xs[i % len(xs)], ys[i % len(ys)]
                        with torch.autocast("cuda", dtype=torch.bfloat16,
                                            enabled=device == "cuda"):
                            logits = forward(x)
                            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
                        loss.backward()
                        model.zero_grad(set_to_none=True)
                        losses.append(loss.detach())
                finally:
                    reload()
                out = torch.stack(losses).float().cpu().numpy()  # one sync, after the timing
                protocol.send(proto_out, {"id": rid}, (out,))
            else:
                fail("bad_request", f"unknown op {op!r}", rid)
        except Exception:  # noqa: BLE001 - the agent's forward failed; say so, keep serving
            fail("forward_failed", traceback.format_exc(), rid)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
