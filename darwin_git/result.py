"""The one result format (README "The evaluation boundary"): a versioned JSON object per evaluation.

Stored as one line in git notes ``refs/notes/darwin`` on the evaluated commit. ``status`` is one
of STATUSES; ``cause`` names the precise reason when it is not ``ok`` (e.g. ``no_checkpoint``,
``nan_loss``, ``out_of_memory``, ``noncausal``, ``checkpoint_mismatch``, ``no_contract``).
"""
from __future__ import annotations

import json
import math
import time

from . import __version__

RESULT_VERSION = 1
STATUSES = ("ok", "train_failed", "eval_failed", "timeout", "rejected")
LOG_TAIL_CHARS = 4000

# Fields every result carries (None when not measured), in the order they are written.
FIELDS = (
    "v", "status", "cause", "commit", "tree", "val_loss", "perplexity", "bpb",
    "tokens_per_s", "mfu", "flops_per_token", "peak_flops", "params",
    "train_wall_s", "eval_wall_s", "budget_s", "device", "seed", "tokenizer",
    "eval_tokens", "runner", "harness", "created", "log_tail", "reported",
)


def make_result(status: str, **fields) -> dict:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    out = {k: None for k in FIELDS}
    out.update(fields)
    out.update(v=RESULT_VERSION, status=status, harness=f"darwin-git {__version__}")
    out.setdefault("created", None)
    if out["created"] is None:
        out["created"] = round(time.time(), 3)
    if out.get("log_tail"):
        out["log_tail"] = out["log_tail"][-LOG_TAIL_CHARS:]
    return out


def fitness(result: dict | None) -> float | None:
    """Lower is better: validation loss in nats per token; None unless the run is ok."""
    if not result or result.get("status") != "ok":
        return None
    loss = result.get("val_loss")
    return loss if isinstance(loss, (int, float)) and math.isfinite(loss) else None


def dumps(result: dict) -> str:
    """One line, stable key order, no NaN (invalid JSON) ever written."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in result.items()}
    return json.dumps(clean, separators=(",", ":"), sort_keys=False, allow_nan=False)
