"""The bench request and its check: tokens/s the model's code cannot inflate unseen.

The parent times k forward+backward steps of the agent's model (flops.py says how tokens/s and
MFU follow) on BENCH_BATCHES fixed batches of the training split at the checkpoint's declared
batch shape. The server answers with the loss of every step. Then the parent asks for the
logits of one of those batches, chosen at random after the bench, as an ordinary eval-mode
logits request, and computes the cross-entropy itself: a forward that does cheap work when it is
called like the bench (gradients on, training mode) claims losses that this check does not
reproduce. A disagreement beyond BENCH_TOL_ABS + BENCH_TOL_REL * loss + 3 standard errors of the
check's sampled positions marks tokens/s and MFU untrusted (dropout makes the bench's
training-mode loss a little higher than the eval-mode one; the tolerance leaves room for it).
val_loss does not depend on any of this.

The bench runs in the audit step (evaluate.py), after the FLOP count and before that step's
first logits request, which freezes the model (no gradient, no bench afterwards): training data
and gradients never meet validation text in one process, and neither the bench nor the count
can change anything the scoring pass recorded. Residual: a model that recognises the check
request itself (the bench's batch, asked for again) can keep a cheap path through it, and one
that recognises the count request can inflate its counted FLOPs; MFU above 1 is then still
caught (evaluate.py). Neither is the fitness.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .. import data as data_mod
from .client import Client, ServerError
from .scoring import VOCAB_SLACK, token_nll, checked_logits

BENCH_BATCHES = 2
MAX_BENCH_TOKENS = 1 << 20
MAX_BENCH_STEPS = 50
CHECK_BYTES = 32 << 20  # logits the check asks for at most (positions are sampled to fit)
BENCH_TOL_ABS, BENCH_TOL_REL = 0.1, 0.1


def bench(client: Client, train: dict, train_dir, vocab: int, bench_s: float,
          rng: np.random.Generator, clock=None) -> dict:
    """{"tokens_per_s", "untrusted"} (untrusted: None or the reason), or {} when the
    checkpoint declares no usable batch shape or the bench itself failed.
    ``clock``: reads the step's clock (CPU seconds of the step from the sandbox's count, on
    the cpu clock); None: the wall time the parent sees for the request."""
    b, t = train.get("batch_size"), train.get("block_size")
    if not (isinstance(b, int) and isinstance(t, int) and b > 0 and t > 0
            and b * t <= MAX_BENCH_TOKENS):
        return {}
    tokens = data_mod.load_tokens(train_dir, "train")
    if tokens.size < t + 2:
        return {}
    fixed = np.random.default_rng(0)  # the same batches for every evaluation
    starts = fixed.integers(0, tokens.size - t - 1, size=(BENCH_BATCHES, b))
    x = np.stack([[tokens[s : s + t] for s in row] for row in starts]).astype(np.int64)
    y = np.stack([[tokens[s + 1 : s + 1 + t] for s in row] for row in starts]).astype(np.int64)
    try:
        seconds, _ = _timed(clock, lambda: _losses(client, x, y, 1))  # warm-up, sizes k
        k = max(1, min(MAX_BENCH_STEPS, round(bench_s / max(1e-6, seconds))))
        seconds, claimed = _timed(clock, lambda: _losses(client, x, y, k))
        tokens_per_s = k * b * t / max(1e-9, seconds)
        out = {"tokens_per_s": tokens_per_s}
        if claimed is None:
            return {**out, "untrusted": "the bench returned no losses"}
        r = int(rng.integers(min(BENCH_BATCHES, k)))
        return {**out, "untrusted": _check(client, x[r], y[r], claimed[r::BENCH_BATCHES], vocab,
                                           rng)}
    except ServerError as exc:
        if exc.cause in ("forward_failed", "bad_output", "nan_logits"):
            return {}  # throughput unknown; scoring will say whether the forward works at all
        raise


def count(client: Client, x: np.ndarray, y: np.ndarray) -> dict:
    """The matmul FLOPs per token of the model that is run, counted by the harness's counter
    (server/flopcount.py) over one row ``x`` of training tokens: a forward, and a training step
    (3 x the forward). Nothing a config says enters it; None where the counter could not run
    the model."""
    none = {"flops_per_token": None, "forward_flops_per_token": None}
    try:
        _, (flops,) = client.request({"op": "count"}, (x, y), expect=(2 * 8,), tokens=3 * x.size)
    except ServerError as exc:
        if exc.cause in ("forward_failed", "bad_output"):
            return none  # a model the counter cannot run: no count, and nothing guessed
        raise
    if flops.shape != (2,) or flops.dtype.kind != "f" or not np.isfinite(flops).all() \
            or not 0 < flops[0] <= flops[1]:
        return none
    return {"forward_flops_per_token": float(flops[0]) / x.size,
            "flops_per_token": float(flops[1]) / x.size}


def _timed(clock, ask):
    """(seconds on the clock, answer)."""
    read = clock or time.monotonic
    before = read()
    answer = ask()
    after = read()
    if before is None or after is None:  # the sandbox lost its count: the parent's wall time
        raise ServerError("sandbox_error", "the step's clock could not be read")
    return after - before, answer


def _losses(client: Client, x, y, k: int) -> np.ndarray | None:
    _, (losses,) = client.request({"op": "bench", "steps": k}, (x, y), expect=(k * 8,),
                                  tokens=3 * k * x[0].size)
    if losses.shape != (k,) or losses.dtype.kind != "f" or not np.isfinite(losses).all():
        return None
    return losses.astype(np.float64)


def _check(client: Client, x, y, claimed: np.ndarray, vocab: int,
           rng: np.random.Generator) -> str | None:
    """None when the harness's own cross-entropy on batch x agrees with the bench's claim."""
    b, t = x.shape
    per_row = max(1, min(t, CHECK_BYTES // (b * (vocab + VOCAB_SLACK) * 4)))
    pos = np.sort(np.stack([rng.choice(t, per_row, replace=False) for _ in range(b)]), axis=1)
    _, (logits,) = client.request({"op": "logits"}, (x, pos.astype(np.int64)),
                                  expect=(b * per_row * (vocab + VOCAB_SLACK) * 8,),
                                  tokens=x.size)
    logits = checked_logits(logits, (b, per_row), vocab)
    if isinstance(logits, dict):
        return f"the check of the bench failed: {logits['detail']}"
    nll = token_nll(logits, np.take_along_axis(y, pos, axis=1).reshape(-1))
    ce, se = float(nll.mean()), float(nll.std() / math.sqrt(nll.size))
    said = float(claimed.mean())
    if abs(said - ce) > BENCH_TOL_ABS + BENCH_TOL_REL * ce + 3 * se:
        return (f"the bench claimed a loss of {said:.3f} on a batch where the model's logits give "
                f"{ce:.3f} +- {se:.3f}: its forward did other work when timed")
    return None
