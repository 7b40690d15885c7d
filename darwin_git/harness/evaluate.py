"""evaluate(): train one tree in a sandbox, then score it in a step the agent does not control.

1. Train (training.py): the contract's command with the train split only (DARWIN_DATA), a
   writable DARWIN_OUT and a budget on the run's clock that the sandbox enforces (budget + a
   short save window). Stopped by the clock -> "timeout", whatever it wrote.
2. Inspect: the parent loads the checkpoint with weights_only=True (checkpoint.py).
3. Serve: the model server (server/, a standalone folder: the step never imports darwin_git)
   runs in a second sandboxed step with the tree as cwd, the checkpoint and the server's files
   as its only inputs. The parent speaks to it one bounded answer at a time (client.py).
4. Throughput (throughput.py, flops.py): a timed bench, checked against the harness's own loss.
5. Score (scoring.py): validation text revealed cut by cut, each prediction recorded before its
   target is shown; the parent computes the loss.

The validation split and the corpus stay in harness-only places: the data cache's val folder
is closed to other uids (sandboxed steps run as one when the engine is root; without root the
steps run as our own uid and only the sandbox's filesystem view can hide it), the training step
mounts only the train folder, and neither step is given darwin_git (whose package holds the
corpus) by the harness.

Residual risks (what this boundary does not stop), the harness's and the sandbox's, in one list:
- The validation text is public: a model may know Shakespeare from pre-training (scoring.py).
- Test-time learning across windows below the detector's power (scoring.py).
- A model that recognises the bench's check request can fake tokens/s and MFU up to MFU 1
  (throughput.py); neither is the fitness.
- Compute at scoring time: the model server gets no training data, but a checkpoint can carry
  some in any tensor, and the server may compute up to spec.scoring_limit (30 s + half the
  training budget per scoring thread, CPU seconds on a CPU, wall seconds on CUDA; the seed's
  scoring uses about 10 CPU s). A model that trains itself at load time gains up to the
  difference outside its budget.
- Parameters a model uses without binding them as parameters (buffers, constants in code) are
  not counted in params or FLOPs.
- Whatever data lies in the folders a step must see (the interpreter's, the system's: /usr,
  the venv) is readable to it; only hidden_paths() are masked there (run/base.py).
- Without root the local sandbox has no filesystem view, PID namespace or cgroup: the step
  runs as the engine's own uid, shares /tmp, /var/tmp and /dev/shm (it could leave data there
  for a later step), and its CPU time is per-process accounting (run/procs.py tree_cpu_s says
  what that misses).
- Docker without a visible cgroup (a remote or rootless daemon) samples CPU through the stats
  API, one API round trip per kill, and cannot see refused forks (run/docker.py).
- cgroup v2, the systemd cgroup driver and GPUs in the local view are untested here.
- A child the engine forks without exec keeps the lifeline open: a killed engine's steps run
  on until that child exits or the next sandbox start reaps them (run/launcher.py).
- A masked darwin_git folder imports as an empty package: a step can tell it is there, not
  read it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from .. import data as data_mod
from ..clock import resolve_clock
from ..contract import CONTRACT_FILE, Contract, ContractError, load_contract
from ..result import make_result
from ..run.base import Sandbox, Step
from . import flops as flops_mod
from . import scoring, server, throughput, training
from .checkpoint import CheckpointError, load_checkpoint
from .client import Client, ServerError
from .spec import EvalSpec, scoring_limit

NOTE = "\n[darwin harness] "


def evaluate(tree_dir: Path, sandbox: Sandbox, spec: EvalSpec | None = None) -> dict:
    """Train and score the tree at ``tree_dir``; always returns a result, never raises for
    anything the tree does."""
    spec = spec or EvalSpec()
    tree_dir = Path(tree_dir)
    device = _resolve_device(spec.device)
    common = dict(commit=spec.commit, tree=spec.tree, device=device, seed=spec.seed,
                  runner=sandbox.name, budget_s=spec.budget_s, clock=spec.clock,
                  harness=spec.harness)
    if (tree_dir / CONTRACT_FILE).is_symlink():  # the parent reads it: never follow links
        return make_result("rejected", cause="bad_contract",
                           log_tail=f"{CONTRACT_FILE} must be a regular file, not a symlink",
                           **common)
    try:
        contract = load_contract(tree_dir)
    except ContractError as exc:
        cause = "bad_contract" if (tree_dir / CONTRACT_FILE).is_file() else "no_contract"
        return make_result("rejected", cause=cause, log_tail=str(exc), **common)
    common.update(budget_s=float(spec.budget_s or contract.budget_s),
                  clock=resolve_clock(spec.clock, contract.clock, device),
                  tokenizer=contract.tokenizer)
    try:
        paths = data_mod.prepare(contract.tokenizer, spec.data_root)
    except (data_mod.DataError, OSError) as exc:
        return make_result("rejected", cause="bad_contract", log_tail=str(exc), **common)
    _close_val_split(paths.val_dir)
    meta = data_mod.load_meta(paths.val_dir)
    common["vocab_size"] = int(meta["vocab_size"])
    if meta["n_tokens"] < 2 * (contract.eval_context + 1):
        return make_result("rejected", cause="bad_contract", **common,
                           log_tail=f"{CONTRACT_FILE}: [eval] context {contract.eval_context} is "
                                    f"too long for the {meta['n_tokens']}-token validation split")
    work = Path(tempfile.mkdtemp(prefix="darwin-eval-"))
    try:
        return _train_and_score(tree_dir, sandbox, spec, contract, paths, work, common)
    except Exception:  # noqa: BLE001 - whatever went wrong, the engine gets a result
        return make_result("eval_failed", cause="harness_error",
                           log_tail=traceback.format_exc(), **common)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _train_and_score(tree_dir: Path, sandbox: Sandbox, spec: EvalSpec, contract: Contract,
                     paths: data_mod.DataPaths, work: Path, common: dict) -> dict:
    budget, clock, device = common["budget_s"], common["clock"], common["device"]
    step = training.train_step(contract, tree_dir, work / "out", paths.train_dir, budget, clock,
                               device, spec)
    outcome = sandbox.run(step)
    log = outcome.log_tail
    common.update(train_wall_s=round(outcome.wall_s, 3),
                  train_cpu_s=None if outcome.cpu_s is None else round(outcome.cpu_s, 3),
                  reported=training.parse_summary(log) or None,
                  train=training.parse_training(log) or None)
    failed = training.verdict(outcome, step.clock_limit, contract.checkpoint)
    if failed:
        status, cause, note = failed
        return make_result(status, cause=cause, log_tail=log + NOTE + note,
                           exit_signal=outcome.signal, **common)
    ckpt_path = work / "out" / contract.checkpoint
    if not ckpt_path.is_file():
        return make_result("train_failed", cause="no_checkpoint", **common,
                           log_tail=f"{log}{NOTE}training exited 0 but wrote no "
                                    f"{contract.checkpoint}")
    problem = training.unverified(outcome, step.clock_limit)
    if problem:
        return make_result("train_failed", cause="sandbox_error", log_tail=log + NOTE + problem,
                           **common)
    try:
        ckpt = load_checkpoint(ckpt_path)
    except CheckpointError as exc:
        return make_result("eval_failed", cause="bad_checkpoint", log_tail=f"{log}{NOTE}{exc}",
                           **common)
    (work / "ckpt").mkdir()
    shutil.move(str(ckpt_path), work / "ckpt" / "ckpt.pt")
    metrics, eval_log = _serve(tree_dir, sandbox, spec, contract, paths, ckpt, work,
                               common["vocab_size"], device, budget)
    common["eval_wall_s"] = metrics.pop("eval_wall_s")
    common["eval_cpu_s"] = metrics.pop("eval_cpu_s")
    if "cause" in metrics:
        tail = (f"{log}\n== evaluation ==\n{eval_log}{NOTE}{metrics['cause']}: "
                f"{metrics.get('detail', '')}")
        return make_result("eval_failed", cause=metrics["cause"], log_tail=tail,
                           exit_signal=metrics.get("exit_signal"), **common)
    params, notes = ckpt.params(metrics["bound"])
    if notes:
        log += NOTE + "parameters not counted: " + "; ".join(notes[:20])
    return make_result("ok", val_loss=metrics["val_loss"], perplexity=metrics["perplexity"],
                       bpb=metrics["bpb"], eval_tokens=metrics["eval_tokens"], params=params,
                       **_throughput(metrics, params, ckpt, device), log_tail=log, **common)


def _serve(tree_dir: Path, sandbox: Sandbox, spec: EvalSpec, contract: Contract,
           paths: data_mod.DataPaths, ckpt, work: Path, vocab: int, device: str,
           budget_s: float) -> tuple[dict, str]:
    """Start the model server on work/ckpt/ckpt.pt and hold the conversation: (the metrics or
    {"cause", "detail"}, with eval_wall_s and eval_cpu_s; the server's log). The server's
    compute is limited (spec.scoring_limit)."""
    threads = flops_mod.eval_threads()
    limit = scoring_limit(device, budget_s, threads, spec.scoring_s)
    env = {"DARWIN_DEVICE": device, "DARWIN_SEED": "0", "DARWIN_THREADS": str(threads)}
    if device == "cpu":
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # idle threads must not spin on the CPU clock
    serve = Step(argv=server.argv("ckpt.pt", contract.model_entry, contract.config_entry),
                 tree=tree_dir, out_dir=work / "eval_out", timeout_s=spec.eval_timeout_s,
                 inputs={"CKPT": work / "ckpt", "SERVER": server.ship(work / "server")},
                 env=env, limits=spec.limits, gpus=1 if device == "cuda" else 0, label="eval",
                 clock_limit=limit)
    t0 = time.monotonic()
    try:
        session = sandbox.open(serve)
    except Exception as exc:  # noqa: BLE001 - a sandbox that cannot start is a verdict
        return {"cause": "sandbox_error", "detail": str(exc), "eval_wall_s": 0.0}, ""
    rng = np.random.default_rng()  # filler, halves and probes must not be predictable
    try:
        metrics = _converse(Client(session, time.monotonic() + spec.eval_timeout_s), spec,
                            contract, paths, ckpt.train, vocab, rng)
    except ServerError as exc:
        metrics = {"cause": exc.cause, "detail": exc.detail}
    except Exception:  # noqa: BLE001 - a harness bug must not kill the engine, nor leak the server
        metrics = {"cause": "harness_error", "detail": traceback.format_exc()}
    outcome = session.close()
    metrics["eval_wall_s"] = round(time.monotonic() - t0, 3)
    metrics["eval_cpu_s"] = None if outcome.cpu_s is None else round(outcome.cpu_s, 3)
    if outcome.over_budget:  # whatever the conversation saw, the server was stopped for this
        metrics = {"cause": "eval_budget_exceeded", "eval_wall_s": metrics["eval_wall_s"],
                   "eval_cpu_s": metrics["eval_cpu_s"],
                   "detail": f"the model server used more than {limit.seconds:g} s on the "
                             f"{limit.clock} clock (scoring's allowance at this budget: "
                             "compute at scoring time is not training time)"}
    if metrics.get("cause") in ("forward_failed", "server_died", "eval_timeout"):
        # The server was ended by one of the step's own limits (the sandbox read its usage on
        # the step itself): that limit is the cause, with its figure; or by a signal nobody
        # of ours sent, which the origin records as the engine's.
        if outcome.limit or outcome.oom:
            metrics["cause"] = training.LIMIT_CAUSES.get(outcome.limit or "memory",
                                                         "resource_limit")
            metrics["detail"] = training.limit_words(outcome) if outcome.limit else \
                "the model server ran out of memory"
        elif outcome.signal:
            metrics["exit_signal"] = outcome.signal
    return metrics, outcome.log_tail


def score_checkpoint(tree_dir: Path, checkpoint: Path, sandbox: Sandbox,
                     spec: EvalSpec | None = None) -> dict:
    """Score an existing checkpoint of the tree at ``tree_dir``, without training: the scoring
    metrics (``token_losses`` included, for paired comparisons), bench, bound parameters and
    eval_wall_s, or {"cause", "detail"}. For benchmarks and re-scoring; only evaluate() makes
    results."""
    spec = spec or EvalSpec()
    contract = load_contract(Path(tree_dir))
    paths = data_mod.prepare(contract.tokenizer, spec.data_root)
    _close_val_split(paths.val_dir)
    vocab = int(data_mod.load_meta(paths.val_dir)["vocab_size"])
    work = Path(tempfile.mkdtemp(prefix="darwin-score-"))
    try:
        (work / "ckpt").mkdir()
        shutil.copyfile(checkpoint, work / "ckpt" / "ckpt.pt")
        ckpt = load_checkpoint(work / "ckpt" / "ckpt.pt")
        metrics, _ = _serve(Path(tree_dir), sandbox, spec, contract, paths, ckpt, work, vocab,
                            _resolve_device(spec.device),
                            float(spec.budget_s or contract.budget_s))
        return metrics
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _converse(client: Client, spec: EvalSpec, contract: Contract, paths, train: dict,
              vocab: int, rng: np.random.Generator) -> dict:
    """ready -> bench (and its check) -> scoring -> quit; the metrics or {"cause", "detail"}."""
    ready = client.ready()
    bound = _bound(ready.get("params"))
    bench = throughput.bench(client, train, paths.train_dir, vocab, spec.bench_s, rng) \
        if spec.bench else {}
    metrics = scoring.score(client, paths.val_dir, contract.tokenizer, contract.eval_context,
                            vocab, spec.windows, spec.cuts, spec.probes, rng)
    if "cause" not in metrics:
        try:
            client.request({"op": "quit"})
        except ServerError:
            pass  # it quit without answering: fine
    return {**metrics, "bench": bench, "bound": bound}


def _bound(params) -> dict[str, list[int]]:
    """The server's list of [name, shape] it bound as parameters (validated: it is untrusted)."""
    bound = {}
    for item in params if isinstance(params, list) else []:
        if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], list) and all(isinstance(n, int) for n in item[1])):
            bound[item[0]] = item[1]
    return bound


def _throughput(metrics: dict, params: int, ckpt, device: str) -> dict:
    """tokens_per_s, MFU and what they rest on; both None, with the reason and the raw numbers
    under throughput_untrusted, when the bench's check failed or MFU came out above 1."""
    bench = metrics["bench"]
    tps = bench.get("tokens_per_s")
    if not tps:
        return {}
    block = ckpt.train.get("block_size") if isinstance(ckpt.train.get("block_size"), int) else None
    fpt = flops_mod.flops_per_token(params, ckpt.model_config, block)
    dev_name = _device_name(device)
    peak = flops_mod.peak_flops(device, dev_name)
    mfu = fpt * tps / peak if peak else None
    reason = bench.get("untrusted")
    if reason is None and mfu is not None and mfu > 1:
        reason = f"MFU {mfu:.3g} is above 1: the bench did less work than its FLOPs claim"
    out = dict(flops_per_token=fpt, peak_flops=peak, device_name=dev_name)
    if reason:
        return {**out, "throughput_untrusted": {"reason": reason, "tokens_per_s": tps,
                                                "mfu": mfu}}
    return {**out, "tokens_per_s": tps, "mfu": mfu}


def _close_val_split(val_dir: Path) -> None:
    """The validation split is the harness's alone: no other uid may read it."""
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
