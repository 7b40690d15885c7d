"""The training step: what it is given, how its budget is enforced, what its log is read for.

The budget is ``budget_s`` seconds on the run's clock (darwin_git.clock.resolve_clock), and the sandbox
enforces it: ``Step.clock_limit = ClockLimit(clock, budget_s + SAVE_WINDOW_S)``, measured by the
sandbox from the kernel's accounting, never as the code reports it. What counts, on both
clocks, is everything from the start of the step's first process until its main process
exits: interpreter start, imports, data loading, compilation, training, saving and exit are the
code's own. Sandbox staging before it and the harness's scoring after it do not count.
- ``cpu``: user + system CPU seconds of every process and thread of the step (children too).
  Waiting costs nothing; two busy threads spend the budget twice as fast as one.
- ``wall``: seconds since the first process started; waiting and other tenants' load count.
A run the clock limit stopped, or whose measured clock exceeds the limit, is
``timeout``/``budget_exceeded`` whatever it wrote; a run that exits within it is scored from
what it left in DARWIN_OUT (the sandbox kills every process of the step when the main one exits,
so nothing written later is collected), and only if its checkpoint was complete when the clock
passed the budget itself: the save window is for exiting, so a run that trains into it and
saves there is ``timeout``/``budget_exceeded`` too (Outcome.late_files, from the kernel's change
times, and for the checkpoint (Step.final_files) also from its content when the clock passed the
budget against its content at the end, which a writer through a shared mapping cannot hide; the
sandbox's sampling leaves a run at most one poll interval past the budget). The wall net
(spec.wall_net) ends a cpu-clock run that sleeps or blocks instead of computing:
``timeout``/``wall_timeout``. When the main process exits, or the limit ends it, every other
process of the step is stopped before the harness takes its own copy of the checkpoint.
"""
from __future__ import annotations

import re
import statistics
from pathlib import Path

from ..contract import Contract
from ..run.base import ClockLimit, Outcome, Step
from . import kit
from .spec import SAVE_WINDOW_S, EvalSpec, wall_net

SUMMARY_LINE = re.compile(r"^\s*([A-Za-z_][\w./-]{0,63})\s*:\s*(\S.{0,200})$")
METRIC_LINE = re.compile(r"^step (\d+)\s*((?:\|[^|]*)*)$")
# nanoGPT's: "iter 12: loss 2.4310, time 48.20ms, mfu 1.20%" (iter counts from 0)
ITER_LINE = re.compile(r"^iter (\d+):((?:\s*[A-Za-z_][\w/]*\s+[^,]+,?)*)$")
CURVE_POINTS = 16
LIMIT_CAUSES = {"memory": "out_of_memory", "disk": "disk_limit", "pids": "process_limit"}


def clock_limit(clock: str, budget_s: float) -> ClockLimit:
    return ClockLimit(clock, budget_s + SAVE_WINDOW_S, grace_s=SAVE_WINDOW_S)


def train_step(contract: Contract, tree_dir: Path, out_dir: Path, train_dir: Path,
               budget_s: float, clock: str, device: str, spec: EvalSpec) -> Step:
    """The training step; the training kit (kit/) is shipped beside ``out_dir``."""
    env = {"DARWIN_BUDGET_S": f"{budget_s:g}", "DARWIN_BUDGET_CLOCK": clock,
           "DARWIN_DEVICE": device, "DARWIN_SEED": str(spec.seed),
           "DARWIN_CHECKPOINT": contract.checkpoint}
    if spec.threads:
        env.update(OMP_NUM_THREADS=str(spec.threads), MKL_NUM_THREADS=str(spec.threads))
    if device == "cpu":
        # Idle OpenMP threads spin by default, burning CPU budget while other tenants hold the
        # cores (measured: 9 optimizer steps instead of 52 under load, issue 11).
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    limit = clock_limit(clock, budget_s)
    return Step(argv=list(contract.train_command), tree=tree_dir, out_dir=out_dir,
                timeout_s=spec.wall_timeout_s or wall_net(clock, limit.seconds),
                inputs={"DATA": train_dir, kit.INPUT: kit.ship(Path(out_dir).parent / "kit")},
                pythonpath=(kit.INPUT,), env=env, limits=spec.limits,
                gpus=1 if device == "cuda" else 0, label="train", clock_limit=limit,
                final_files=(contract.checkpoint,))


def verdict(outcome: Outcome, limit: ClockLimit,
            checkpoint: str) -> tuple[str, str, str] | None:
    """(status, cause, note for the log) when the run cannot be scored; None when it can."""
    used = outcome.cpu_s if limit.clock == "cpu" else outcome.wall_s
    if outcome.error:
        return "train_failed", "sandbox_error", outcome.error
    if outcome.over_budget or (used is not None and used > limit.seconds):
        spent = f"{used:.1f}" if used is not None else "more than"
        return ("timeout", "budget_exceeded",
                f"{spent} s on the {limit.clock} clock, over the {limit.seconds:g} s limit "
                f"(budget + {SAVE_WINDOW_S:g} s save window): not scored")
    if checkpoint in outcome.late_files:
        return ("timeout", "budget_exceeded",
                f"{checkpoint} was written after the {limit.budget_s:g} s budget on the "
                f"{limit.clock} clock (its change time, or its content since the budget): the "
                f"{SAVE_WINDOW_S:g} s save window is for exiting, only a checkpoint complete "
                "within the budget is scored")
    if outcome.timed_out:
        cause = "budget_exceeded" if limit.clock == "wall" else "wall_timeout"
        return ("timeout", cause, f"still running after {outcome.wall_s:.0f} s of wall time "
                                  "(the safety net): blocked, sleeping, or a machine overloaded")
    if outcome.limit:
        cause = LIMIT_CAUSES.get(outcome.limit, "resource_limit")
        return "train_failed", cause, limit_words(outcome)
    if outcome.returncode != 0:
        return ("train_failed", "out_of_memory" if outcome.oom else "exception",
                f"training exited with status {outcome.returncode}")
    return None


def limit_words(outcome: Outcome) -> str:
    """A kill by one of the run's limits, in words: which, the figure and where it was read."""
    return f"stopped by the run's {outcome.limit} limit" + \
        (f": {outcome.stopped}" if outcome.stopped else "")


def unverified(outcome: Outcome, limit: ClockLimit) -> str | None:
    """Why a run that left a checkpoint cannot be scored although it ended well: its clock was
    not measured (a cpu budget the sandbox did not count is no budget)."""
    if limit.clock == "cpu" and outcome.cpu_s is None:
        return "the sandbox did not measure the run's CPU time: its cpu budget is unverified"
    return None


def parse_summary(log: str, limit: int = 64) -> dict:
    """The final block of ``key: value`` lines the training printed (untrusted, as reported)."""
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith("[darwin ")]
    found = {}
    for line in reversed(lines):
        m = SUMMARY_LINE.match(line)
        if not m or len(found) >= limit:
            break
        key, value = m.group(1), m.group(2).strip()
        if key in found:
            continue
        found[key] = _number(value)
    return dict(reversed(list(found.items())))


def parse_training(log: str) -> dict:
    """Training dynamics from the log's metric lines and summary (contract.py, "The training
    log"): steps, median ms per step, tokens/s, final loss and a loss curve of at most
    CURVE_POINTS [step, loss] points. Untrusted, as reported; {} when the log has neither."""
    points = []
    for line in log.splitlines():
        m = METRIC_LINE.match(line.strip())
        if m:
            points.append((int(m.group(1)), _fields(m.group(2))))
            continue
        m = ITER_LINE.match(line.strip())
        if m:  # iter N is the (N+1)-th step
            points.append((int(m.group(1)) + 1, _iter_fields(m.group(2))))
    summary = parse_summary(log)
    out: dict = {}
    steps = summary.get("steps")
    if isinstance(steps, float) and steps >= 0:
        out["steps"] = int(steps)
    elif points:
        out["steps"] = points[-1][0]
    ms = [f["ms"] for _, f in points if "ms" in f]
    if ms:
        out["ms_per_step"] = round(statistics.median(ms), 3)
    tps = summary.get("tokens_per_s")
    tps_lines = [f["tok/s"] for _, f in points if "tok/s" in f]
    if isinstance(tps, float):
        out["tokens_per_s"] = tps
    elif tps_lines:
        out["tokens_per_s"] = statistics.median(tps_lines)
    curve = [[step, f["loss"]] for step, f in points if "loss" in f]
    if curve:
        out["final_loss"] = curve[-1][1]
        out["loss_curve"] = _thin(curve, CURVE_POINTS)
    return out


def _fields(text: str) -> dict[str, float]:
    """``| loss 2.31 | 185.2 ms | 11071 tok/s`` -> {"loss": 2.31, "ms": 185.2, "tok/s": 11071}."""
    found = {}
    for field in text.split("|"):
        parts = field.split()
        if len(parts) != 2:
            continue
        first, second = _number(parts[0]), _number(parts[1])
        if isinstance(first, float) and isinstance(second, str):
            found[second] = first  # value unit
        elif isinstance(second, float) and isinstance(first, str):
            found[first] = second  # name value
    return {k: v for k, v in found.items() if v == v and abs(v) != float("inf")}


def _iter_fields(text: str) -> dict[str, float]:
    """``loss 2.43, time 48.20ms, mfu 1.20%`` -> {"loss": 2.43, "ms": 48.2, "mfu%": 1.2}: a
    value with a unit is filed under the unit (as ``185.2 ms`` is), others by name."""
    found = {}
    for field in text.split(","):
        m = re.fullmatch(r"\s*([A-Za-z_][\w/]*)\s+([-+]?[\d.]+(?:[eE][-+]?\d+)?|nan|inf)"
                         r"\s*([A-Za-z/%]*)\s*", field)
        if not m:
            continue
        value = _number(m.group(2))
        if isinstance(value, float) and value == value and abs(value) != float("inf"):
            unit = m.group(3)
            found[unit if unit and unit != "%" else m.group(1) + unit] = value
    return found


def _number(text: str):
    try:
        return float(text) if text.lower() not in ("nan", "inf", "-inf", "+inf") else text
    except ValueError:
        return text


def _thin(curve: list, n: int) -> list:
    """At most n points, evenly spread, the first and the last always kept."""
    if len(curve) <= n:
        return curve
    idx = sorted({round(i * (len(curve) - 1) / (n - 1)) for i in range(n)})
    return [curve[i] for i in idx]
