"""evaluate(): train one tree in a sandbox, then score it with a step the agent does not control.

1. Train: the contract's command, with the train split only (DARWIN_DATA), a writable
   DARWIN_OUT and a hard wall clock (budget + grace). Killed -> "timeout"; non-zero exit ->
   "train_failed" (cause "exception" or "out_of_memory"); no checkpoint -> "no_checkpoint".
2. Inspect: the parent loads the checkpoint with weights_only=True and counts its parameters.
3. Score: the model server (model_server.py) runs in a second sandboxed step with the tree as cwd
   and the checkpoint as its only input; the validation split never reaches it as a file. The
   parent sends fixed validation windows over a pipe, gets logits back and computes the
   cross-entropy, perplexity and bits per byte itself. Probe windows (a copy of a scored window
   whose suffix from a random position p is replaced by another window's) are shuffled among
   the scored ones, batched alike; the logits before p must match the original's.
4. Throughput: see flops.py.

Residual risks (what this boundary does not stop):
- The agent's forward runs in the server: it sees each window it is asked about, so it can
  behave differently on inputs it recognises (e.g. memorised validation text baked into the
  weights). Training never sees the split, so it can only learn it from elsewhere in the corpus.
- Causality is sampled: probes cover a few windows, positions and logit columns, at a
  tolerance (PROBE_ATOL/RTOL); a leak smaller than the tolerance, or one that only shows on
  windows never probed, passes. Probes are indistinguishable only up to their statistics.
- The server could keep state across requests (e.g. cache earlier windows and use them to
  "predict" later ones); the windows are disjoint and their order shuffled, which limits but
  does not rule out cross-window leakage.
- Throughput comes from the agent's own forward/backward at the declared batch shape: code
  that detects the bench request could cut work; tokens/s and MFU are not the fitness.
- Training that ignores DARWIN_BUDGET_S gets up to budget + grace of wall clock before the
  kill; train_wall_s is in every result so that selection can see (and refuse) an overrun.
- params excludes what the server names as buffers; a model can hide learned state in buffers.
- The local sandbox gives each step private /tmp, /var/tmp, /dev/shm and /run/lock only when
  the engine runs as root; without root a step could leave data there for a later one. Other
  folders writable by every uid (if a machine has any) are not covered either.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from .. import data as data_mod
from ..contract import CONTRACT_FILE, Contract, ContractError, load_contract
from ..result import make_result
from ..run.base import Limits, Sandbox, Step
from . import flops as flops_mod
from . import protocol
from .checkpoint import CheckpointError, load_checkpoint
from .client import Client, ServerError

# Kill training at budget + GRACE_S. Generous: torch's import and exit alone take 3-10 s on an
# oversubscribed CPU box; train_wall_s in the result shows any overrun.
GRACE_S = 20.0
N_WINDOWS = 128
N_PROBES = 8
PROBE_COLUMNS = 256
PROBE_ATOL = PROBE_RTOL = 5e-3
LOGIT_BYTES_PER_REQUEST = 32 << 20  # GPT-2 vocab at context 256: one window per request
MAX_BENCH_TOKENS = 1 << 20
SUMMARY_LINE = re.compile(r"^\s*([A-Za-z_][\w./-]{0,63})\s*:\s*(\S.{0,200})$")


def evaluate(tree_dir: Path, sandbox: Sandbox, *, budget_s: float | None = None,
             grace_s: float = GRACE_S, device: str = "cpu", seed: int = 0,
             data_root: Path | None = None, n_windows: int = N_WINDOWS,
             n_probes: int = N_PROBES, eval_timeout_s: float = 300.0,
             limits: Limits | None = None, bench: bool = True, bench_s: float = 1.0,
             commit: str | None = None, tree: str | None = None,
             threads: int | None = None) -> dict:
    """Train and score the tree at ``tree_dir``; always returns a result, never raises for
    anything the tree does. ``threads`` caps the training step's CPU threads (OpenMP/MKL), so
    that several slots on one machine do not oversubscribe its cores."""
    tree_dir = Path(tree_dir)
    device = _resolve_device(device)
    common = dict(commit=commit, tree=tree, device=device, seed=seed, runner=sandbox.name)
    if (tree_dir / CONTRACT_FILE).is_symlink():  # the parent reads it: never follow links
        return make_result("rejected", cause="bad_contract", budget_s=budget_s,
                           log_tail=f"{CONTRACT_FILE} must be a regular file, not a symlink",
                           **common)
    try:
        contract = load_contract(tree_dir)
    except ContractError as exc:
        cause = "bad_contract" if (tree_dir / CONTRACT_FILE).is_file() else "no_contract"
        return make_result("rejected", cause=cause, log_tail=str(exc), budget_s=budget_s, **common)
    budget = float(budget_s if budget_s is not None else contract.budget_s)
    common.update(budget_s=budget, tokenizer=contract.tokenizer)
    problem = _contract_problem(contract)
    if problem:
        return make_result("rejected", cause="bad_contract", log_tail=problem, **common)
    try:
        paths = data_mod.prepare(contract.tokenizer, data_root)
    except (data_mod.DataError, OSError) as exc:
        return make_result("rejected", cause="bad_contract", log_tail=str(exc), **common)
    _close_val_split(paths.val_dir)
    vocab = int(data_mod.load_meta(paths.val_dir)["vocab_size"])
    if contract.eval_context * vocab * 4 > protocol.MAX_FRAME:
        return make_result("rejected", cause="bad_contract", **common,
                           log_tail=f"{CONTRACT_FILE}: [eval] context {contract.eval_context} x "
                                    f"vocab {vocab} logits exceed the {protocol.MAX_FRAME >> 20} "
                                    "MiB the harness reads per window")
    work = Path(tempfile.mkdtemp(prefix="darwin-eval-"))
    try:
        return _train_and_score(tree_dir, sandbox, contract, paths, work, budget, grace_s,
                                device, seed, n_windows, n_probes, eval_timeout_s,
                                limits or Limits(), bench, bench_s, common, threads)
    except Exception:  # noqa: BLE001 - whatever went wrong, the engine gets a result
        return make_result("eval_failed", cause="harness_error",
                           log_tail=traceback.format_exc(), **common)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _train_and_score(tree_dir, sandbox, contract, paths, work, budget, grace_s, device, seed,
                     n_windows, n_probes, eval_timeout_s, limits, bench, bench_s, common,
                     threads=None):
    out = work / "out"
    thread_env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")} \
        if threads else {}
    train = Step(argv=list(contract.train_command), tree=tree_dir, out_dir=out,
                 timeout_s=budget + grace_s, inputs={"DATA": paths.train_dir},
                 env={"DARWIN_BUDGET_S": f"{budget:g}", "DARWIN_DEVICE": device,
                      "DARWIN_SEED": str(seed), **thread_env},
                 limits=limits, gpus=1 if device == "cuda" else 0, label="train")
    outcome = sandbox.run(train)
    log = outcome.log_tail
    common.update(train_wall_s=round(outcome.wall_s, 3), reported=parse_summary(log) or None)
    if outcome.error:
        return make_result("train_failed", cause="sandbox_error",
                           log_tail=f"{log}\n{outcome.error}", **common)
    if outcome.timed_out:
        return make_result("timeout", cause="budget_exceeded", log_tail=log, **common)
    if outcome.returncode != 0:
        cause = "out_of_memory" if outcome.oom else "exception"
        return make_result("train_failed", cause=cause, log_tail=log, **common)
    ckpt_path = out / contract.checkpoint
    if not ckpt_path.is_file():
        note = f"\n[darwin harness] training exited 0 but wrote no {contract.checkpoint}"
        return make_result("train_failed", cause="no_checkpoint", log_tail=log + note, **common)
    try:
        ckpt = load_checkpoint(ckpt_path)
    except CheckpointError as exc:
        return make_result("eval_failed", cause="bad_checkpoint",
                           log_tail=f"{log}\n[darwin harness] {exc}", **common)
    ckpt_dir = work / "ckpt"
    ckpt_dir.mkdir()
    shutil.move(str(ckpt_path), ckpt_dir / "ckpt.pt")
    server = Step(argv=["python", "-m", "darwin_git.harness.model_server", "ckpt.pt",
                        contract.model_entry],
                  tree=tree_dir, out_dir=work / "eval_out", timeout_s=eval_timeout_s,
                  inputs={"CKPT": ckpt_dir}, env={"DARWIN_DEVICE": device, "DARWIN_SEED": "0"},
                  limits=limits, gpus=1 if device == "cuda" else 0, label="eval")
    t0 = time.monotonic()
    try:
        session = sandbox.open(server)
    except Exception as exc:  # noqa: BLE001 - a sandbox that cannot start is a verdict
        return make_result("eval_failed", cause="sandbox_error",
                           log_tail=f"{log}\n[darwin harness] {exc}", **common)
    verdict, metrics = "ok", {}
    try:
        client = Client(session, time.monotonic() + eval_timeout_s)
        buffers = set()
        ready, _ = client.answer()
        buffers = {b for b in ready.get("buffers", []) if isinstance(b, str)}
        metrics = _score(client, paths.val_dir, contract, n_windows, n_probes)
        if "cause" in metrics:
            verdict = "train_failed" if metrics["cause"] == "nan_loss" else "eval_failed"
        elif bench:
            metrics.update(_bench(client, ckpt, metrics["vocab"], bench_s))
        try:
            client.request({"op": "quit"})
        except ServerError:
            pass
    except ServerError as exc:
        verdict, metrics = "eval_failed", {"cause": exc.cause, "detail": exc.detail}
    except Exception:  # noqa: BLE001 - a harness bug must not kill the engine, nor leak the server
        verdict, metrics = "eval_failed", {"cause": "harness_error",
                                           "detail": traceback.format_exc()}
    eval_outcome = session.close()
    common["eval_wall_s"] = round(time.monotonic() - t0, 3)
    eval_log = eval_outcome.log_tail
    if verdict != "ok":
        if metrics.get("cause") == "forward_failed" and eval_outcome.oom:
            metrics["cause"] = "out_of_memory"
        detail = metrics.get("detail", "")
        tail = f"{log}\n== evaluation ==\n{eval_log}\n[darwin harness] {metrics['cause']}: {detail}"
        return make_result(verdict, cause=metrics["cause"], log_tail=tail, **common)
    params = ckpt.params(exclude=buffers)
    block = ckpt.train.get("block_size") if isinstance(ckpt.train.get("block_size"), int) else None
    fpt = flops_mod.flops_per_token(params, ckpt.model_config, block)
    dev_name = _device_name(device)
    peak = flops_mod.peak_flops(device, dev_name)
    tps = metrics.get("tokens_per_s")
    return make_result(
        "ok", val_loss=metrics["val_loss"], perplexity=metrics["perplexity"],
        bpb=metrics["bpb"], eval_tokens=metrics["eval_tokens"], tokens_per_s=tps,
        params=params, flops_per_token=fpt, peak_flops=peak,
        mfu=(fpt * tps / peak) if tps and peak else None, device_name=dev_name,
        log_tail=log, **common)


def _score(client: Client, val_dir: Path, contract: Contract, n_windows: int,
           n_probes: int) -> dict:
    """Send scored and probe windows in one shuffled stream; compute the loss here."""
    import torch
    import torch.nn.functional as F

    meta = data_mod.load_meta(val_dir)
    vocab = int(meta["vocab_size"])
    windows = data_mod.val_windows(data_mod.load_tokens(val_dir, "val"), n_windows,
                                   contract.eval_context)
    inputs, targets = windows[:, :-1], windows[:, 1:]
    T = inputs.shape[1]
    rng = np.random.default_rng()  # unpredictable on purpose: the probes must not be guessable
    probed = rng.choice(len(inputs), size=min(n_probes, len(inputs)), replace=False)
    probes = {}
    for i in probed:
        p = int(rng.integers(1, T)) if T > 1 else 0
        donor = inputs[(i + 1 + int(rng.integers(len(inputs) - 1))) % len(inputs)]
        row = inputs[i].copy()
        row[p:] = donor[p:]
        if row[p] == inputs[i][p]:
            row[p] = (row[p] + 1) % vocab
        probes[int(i)] = (p, row, np.sort(rng.choice(vocab, min(PROBE_COLUMNS, vocab), False)))
    jobs = [("score", i) for i in range(len(inputs))] + [("probe", i) for i in probes]
    order = rng.permutation(len(jobs))
    per = max(1, min(8, LOGIT_BYTES_PER_REQUEST // max(1, T * vocab * 4)))
    token_bytes = data_mod.get_tokenizer(contract.tokenizer).token_bytes()
    nats, n_tok, n_bytes, seen = 0.0, 0, 0, {}
    for start in range(0, len(order), per):
        batch = [jobs[k] for k in order[start : start + per]]
        x = np.stack([inputs[i] if kind == "score" else probes[i][1] for kind, i in batch])
        _, arrays = client.request({"op": "logits"}, (x.astype(np.int64),))
        if len(arrays) != 1:
            return {"cause": "bad_output", "detail": "the server answered without logits"}
        logits = arrays[0]
        if logits.ndim != 3 or logits.shape[:2] != x.shape or logits.shape[2] < vocab:
            return {"cause": "bad_output",
                    "detail": f"logits of shape {logits.shape} for input {x.shape}, vocab {vocab}"}
        if logits.dtype.kind not in "fiu":
            return {"cause": "bad_output", "detail": f"logits of dtype {logits.dtype}"}
        logits = logits.astype(np.float32, copy=False)
        if not np.isfinite(logits).all():
            return {"cause": "nan_loss", "detail": "the model returned NaN or inf logits"}
        for row, (kind, i) in zip(logits, batch):
            if kind == "score":
                nats += float(F.cross_entropy(torch.from_numpy(row),
                                              torch.from_numpy(targets[i]), reduction="sum"))
                n_tok += targets[i].size
                n_bytes += int(token_bytes[targets[i]].sum())
            if i in probes:
                p, _, cols = probes[i]
                seen.setdefault(i, {})[kind] = row[:p][:, cols].copy()
                pair = seen[i]
                if len(pair) == 2 and not np.allclose(pair["probe"], pair["score"],
                                                      rtol=PROBE_RTOL, atol=PROBE_ATOL):
                    worst = float(np.abs(pair["probe"] - pair["score"]).max())
                    return {"cause": "noncausal",
                            "detail": f"changing tokens from position {p} on moved earlier "
                                      f"logits by up to {worst:.3g}"}
    loss = nats / n_tok
    if not math.isfinite(loss):
        return {"cause": "nan_loss", "detail": "validation loss is not finite"}
    return {"val_loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "bpb": nats / math.log(2) / max(1, n_bytes), "eval_tokens": n_tok, "vocab": vocab}


def _bench(client: Client, ckpt, vocab: int, bench_s: float) -> dict:
    """Time k forward+backward steps at the training batch shape (see flops.py)."""
    b, t = ckpt.train.get("batch_size"), ckpt.train.get("block_size")
    if not (isinstance(b, int) and isinstance(t, int) and 0 < b * t <= MAX_BENCH_TOKENS):
        return {}
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, vocab, size=(b, t), dtype=np.int64) for _ in range(2))
    try:
        t0 = time.monotonic()
        client.request({"op": "bench", "steps": 1}, (x, y))  # warm-up, also sizes k
        k = max(1, min(50, round(bench_s / max(1e-6, time.monotonic() - t0))))
        t0 = time.monotonic()
        client.request({"op": "bench", "steps": k}, (x, y))
        return {"tokens_per_s": k * b * t / (time.monotonic() - t0)}
    except ServerError as exc:
        if exc.cause in ("eval_timeout", "server_died"):
            raise
        return {}


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
        try:
            found[key] = float(value) if value.lower() not in ("nan", "inf", "-inf") else value
        except ValueError:
            found[key] = value
    return dict(reversed(list(found.items())))


def _contract_problem(contract: Contract) -> str | None:
    ck = contract.checkpoint
    if not ck or ck.startswith("/") or ".." in Path(ck).parts:
        return f"{CONTRACT_FILE}: [model] checkpoint must be a relative path inside DARWIN_OUT"
    if not 1 <= contract.eval_context <= 65536:
        return f"{CONTRACT_FILE}: [eval] context must be between 1 and 65536"
    return None


def _close_val_split(val_dir: Path) -> None:
    """The validation split is the harness's alone: no other uid may read it."""
    if os.geteuid() == 0:
        try:
            os.chmod(val_dir, 0o700)
        except OSError:
            pass


def _resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or auto, not {device!r}")
    return device


def _device_name(device: str) -> str:
    if device == "cuda":
        try:
            import torch

            return torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001 - the name only picks the peak
            return "cuda"
    return flops_mod.cpu_name()
