"""The one result format (README "The evaluation boundary"): a versioned JSON object per evaluation.

Stored as one line in git notes ``refs/notes/darwin`` on the evaluated commit. ``status`` is one
of STATUSES; ``cause`` names the precise reason when it is not ``ok``:

- ``rejected``: ``no_contract``, ``bad_contract`` (darwin.toml unusable, a symlink, or asking
  for what the harness cannot do).
- ``timeout``: ``budget_exceeded`` (the run's clock passed budget + save window: not scored,
  whatever it wrote), ``wall_timeout`` (a cpu-clock run still going at the wall-clock safety
  net: blocked, sleeping or an overloaded machine).
- ``train_failed``: ``exception`` (non-zero exit), ``out_of_memory``, ``disk_limit``,
  ``process_limit``, ``resource_limit`` (a per-run limit of the sandbox), ``no_checkpoint``,
  ``sandbox_error`` (the sandbox could not run or measure the step).
- ``eval_failed``, the checkpoint: ``bad_checkpoint`` (not a plain torch.save archive of stored
  entries within the step's file limit, or not a darwin checkpoint), ``checkpoint_mismatch``
  (weights do not load into ``build_model(config)``), ``model_error`` (``build_model``
  raised), ``checkpoint_changed`` (the checkpoint the server read is not the harness's frozen
  copy: the engine's).
- ``eval_failed``, scoring: ``nan_logits``, ``noncausal``, ``test_time_learning``,
  ``audit_mismatch`` (a fresh process re-scoring a sample in another order got other losses:
  a token's loss depended on what the model was asked before, or was not deterministic),
  ``bad_output`` (logits of the wrong shape or type), ``forward_failed``, ``out_of_memory``,
  ``eval_timeout``, ``eval_budget_exceeded`` (the model server computed past the allowance its
  own measured forward passes give it, harness/allowance.py, or past the step's cap,
  harness/spec.py scoring_limit), ``server_died``,
  ``unsolicited_output`` (an answer nobody asked for),
  ``oversized_output`` (a frame larger than the answer asked for), ``sandbox_error``,
  ``harness_error``; from the executors: ``engine_error``, ``worker_lost``, ``cancelled``.
  A scoring failure's log tail is the training log and fixed words for its cause: nothing the
  scoring steps produced (their log, the server's error texts) leaves them.

Throughput is not the fitness: when its check fails, or MFU comes out above 1, tokens_per_s and
mfu are None and ``throughput_untrusted`` holds the reason and the raw numbers; val_loss stays.
``flops_per_token`` is counted on the model that ran (``flops_source`` "counted", else "6N");
``declared_mismatch`` holds what the checkpoint's model_config declared when it is more than
25% away; ``mfu`` and ``tokens_per_s`` are per second of ``mfu_clock`` (the run's clock: CPU
seconds on the cpu clock), against ``peak_flops`` as ``peak_basis`` says. ``eval_allowance_s``
is the scoring step's measured allowance (None where the sandbox could not meter it), ``audit``
the re-scored sample's size and differences.
``train`` holds training dynamics parsed from the log (untrusted, as reported: steps,
ms_per_step, tokens_per_s, final_loss, loss_curve). ``harness`` is HARNESS_VERSION (with the
scored set's size appended when an evaluation used a non-default one, "2:32x4"): results with
two different values are not comparable. ``clock`` is the budget's clock ("cpu" | "wall"; old
results without one were "wall").
"""
from __future__ import annotations

import json
import math
import re
import time

from . import origin
from .origin import ORIGINS

RESULT_VERSION = 1
# Bump whenever what a result measures changes (scoring protocol, clock rules, what counts).
# 2: scoring reveals text cut by cut; the budget is a sandbox-enforced clock limit.
# 3: only a checkpoint complete within the budget itself is scored (the save window is for
#    exiting); the scoring step's compute is limited on the run's clock.
# 4: the harness's frozen copy of the checkpoint is scored (its content checked at the budget
#    and at load), scoring's allowance follows the measured cost of the tree's forward passes,
#    a fresh process audits a sample in another order, FLOPs are counted and MFU is on the
#    run's clock; results record their conditions, layout and origin (issues 22 and 24).
HARNESS_VERSION = "4"
STATUSES = ("ok", "train_failed", "eval_failed", "timeout", "rejected")
# The stage a failed evaluation is counted at (evolve/generation.py STAGES): the harness refusing
# the tree, training failing or running out of time is "training"; a checkpoint that cannot be
# scored is "scoring".
STAGE_OF_STATUS = {"rejected": "training", "train_failed": "training", "timeout": "training",
                   "eval_failed": "scoring"}
LOG_TAIL_CHARS = 4000

REASON_CHARS = 300  # of an error line or a reason, wherever one is shown
# the line of a log tail that names the error: "ValueError: ...", "torch.OutOfMemoryError: ..."
ERROR_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*)$")
FRAME_LINE = re.compile(r'^File "(?:.*/)?([^/"]+)", line (\d+)')
# A line the harness adds to a log: its own finding about the run (harness/evaluate.py).
HARNESS_NOTE = "[darwin harness] "
CODE_CAUSES = ("exception", "out_of_memory")  # failures the code's own output explains

# Fields every result carries (None when not measured), in the order they are written.
FIELDS = (
    "v", "status", "cause", "commit", "tree", "val_loss", "perplexity", "bpb",
    "tokens_per_s", "mfu", "flops_per_token", "peak_flops", "params", "throughput_untrusted",
    "train_wall_s", "train_cpu_s", "eval_wall_s", "eval_cpu_s", "budget_s", "clock", "device", "device_name",
    "seed", "tokenizer", "vocab_size", "eval_tokens", "runner", "harness", "created", "train",
    "log_tail", "reported", "origin", "exit_signal", "conditions",
    "flops_source", "declared_mismatch", "peak_basis", "mfu_clock", "eval_allowance_s", "audit",
)


def make_result(status: str, **fields) -> dict:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    out = {k: None for k in FIELDS}
    out.update(fields)
    out.update(v=RESULT_VERSION, status=status, harness=fields.get("harness") or HARNESS_VERSION)
    if out["origin"] not in ORIGINS:  # whose failure it is, decided in one place
        out["origin"] = origin.of_evaluation(out, out["exit_signal"])
    out.setdefault("created", None)
    if out["created"] is None:
        out["created"] = round(time.time(), 3)
    if out.get("log_tail"):
        out["log_tail"] = out["log_tail"][-LOG_TAIL_CHARS:]
    return out


def loss_of(result: dict | None) -> float | None:
    """One run's loss: its validation loss in nats per token (lower is better); None unless the
    run is ok. A commit's fitness is the mean of these over seeds (darwin_git/fitness.py)."""
    if not result or result.get("status") != "ok":
        return None
    loss = result.get("val_loss")
    return loss if isinstance(loss, (int, float)) and math.isfinite(loss) else None


def dumps(result: dict) -> str:
    """One line, stable key order, no NaN (invalid JSON) ever written."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in result.items()}
    return json.dumps(clean, separators=(",", ":"), sort_keys=False, allow_nan=False)


def error_line(log_tail: str | None) -> str | None:
    """The line of a log that says what went wrong: the last exception line (with the code
    line that raised it when the exception carries no message, e.g. a bare AssertionError),
    else the last non-empty line; bounded."""
    lines = [ln.strip() for ln in (log_tail or "").splitlines() if ln.strip()]
    if not lines:
        return None
    at = next((i for i in range(len(lines) - 1, -1, -1) if ERROR_LINE.match(lines[i])), None)
    if at is None:
        return lines[-1][:REASON_CHARS]
    found = ERROR_LINE.match(lines[at]).group(1)
    where = next((i for i in range(at - 1, -1, -1) if FRAME_LINE.match(lines[i])), None)
    if ":" not in found and where is not None:
        frame = FRAME_LINE.match(lines[where])
        code = lines[where + 1] if where + 1 < at else ""
        found += f" at {frame.group(1)}, line {frame.group(2)}" + (f": {code}" if code else "")
    return found[:REASON_CHARS]


def reason(result: dict) -> str | None:
    """Why a failed evaluation failed, in one line. When the code ended the run itself (an
    exception, an allocation), its own error line; when the harness found the fault (no
    checkpoint, one it cannot load or that does not fit the model, a budget overrun, a
    scoring failure), the harness's finding, with the error of the traceback it carries (the
    run's last line is then usually a training log line that explains nothing)."""
    log = result.get("log_tail") or ""
    head, marker, note = log.rpartition(HARNESS_NOTE)
    if not marker or (result.get("cause") in CODE_CAUSES and error_line(head)):
        return error_line(log if not marker else head)
    lines = [ln.strip() for ln in note.splitlines() if ln.strip()]
    if not lines:
        return error_line(head)
    first, rest = lines[0], lines[1:]
    if not rest:
        return first[:REASON_CHARS]
    # a traceback: its error line, and the lines that detail it ("Missing key(s) ...")
    at = next((i for i in range(len(rest) - 1, -1, -1) if ERROR_LINE.match(rest[i])), None)
    if at is None:
        return first[:REASON_CHARS]
    return " ".join([ERROR_LINE.match(rest[at]).group(1)] + rest[at + 1:])[:REASON_CHARS]
