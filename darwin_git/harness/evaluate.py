"""evaluate(): train one tree in a sandbox, then score it in steps the agent does not control.

1. Train (training.py): the contract's command with the train split only (DARWIN_DATA), a
   writable DARWIN_OUT and a budget on the run's clock that the sandbox enforces (budget + a
   short save window). Stopped by the clock -> "timeout", whatever it wrote; a checkpoint
   changed after the budget itself (by its change time, or by its content, which the sandbox
   reads when the clock passes the budget) -> "timeout" too.
2. Freeze: when the step has ended, every process of it is gone (the sandbox stopped them);
   the harness copies the checkpoint into a new read-only file of its own and hashes it
   (checkpoint.freeze). That copy is what is scored: nothing a training process held (a
   mapping, a descriptor) can change it. The engine never unpickles or decompresses it.
3. Score (scoring.py), sealed: the model server (server/, a standalone folder: the step never
   imports darwin_git) runs in a sandboxed step with the tree as cwd and the frozen copy and
   the server's files as its only inputs. Its loader (server/loader.py) reads the checkpoint
   under the step's limits, refuses archives that could inflate, and reports the file's digest
   and layout before any code of the tree runs; the harness checks the digest against its
   own (else ``checkpoint_changed``). Validation text is revealed cut by cut, each prediction
   recorded before its target is shown; the parent computes the loss. The step's clock is read
   around every request: past the allowance the tree's own forward passes give it
   (allowance.py) the result is ``eval_budget_exceeded``.
4. Audit, in a second sealed step: a fresh server on the same copy (digest checked again)
   counts the model's FLOPs (server/flopcount.py) and runs the throughput bench (throughput.py,
   flops.py) on training data, then re-scores a sample of the scored tokens in another order;
   their losses must agree (``audit_mismatch``), and the first audit request asked again with
   new filler must not move (``noncausal``).

Only numbers leave the scoring steps: their logs, the server's error texts and any figure the
model chose stay there (the sealed client drops them); a failure there is its cause, fixed
words (CAUSE_WORDS) and the harness's own numbers. Training's log (train split only) still
heads the result's log tail, for memory, prompts and the pre-flight's feedback.

The validation split and the corpus stay in harness-only places: the data cache's val folder
is closed to other uids (sandboxed steps run as one when the engine is root; without root the
steps run as our own uid and only the sandbox's filesystem view can hide it), the training step
mounts only the train folder, and neither step is given darwin_git (whose package holds the
corpus) by the harness. Steps share no kernel-held state either (keyrings, IPC, abstract
sockets: run/launcher.py, run/local.py, run/docker.py).

Residual risks (what this boundary does not stop), the harness's and the sandbox's, in one list:
- The validation text is public: a model may know Shakespeare from pre-training (scoring.py).
- Test-time learning that changes a small share of the answers: the halves' order test sees
  only large gains, and the audit meets a 5% share with probability 96% (scoring.py).
- Compute at scoring time within the allowance (allowance.py): a model can compute, once, about
  the build allowance (1.5 s + 20 ns per checkpoint element) plus the headroom on its forward
  passes (50% of them) plus 2 ms a request, outside its training budget, e.g. training on
  tokens carried in its checkpoint: for the seed about 4.3 CPU s, 7% of a 60 s budget
  (BENCHMARKS.md). A forward that is as expensive in every request is the model's own
  inference cost, bounded only by the step's cap (spec.scoring_limit); so is a lump hidden
  behind as many wasted ones. Where the sandbox cannot read a step's CPU per request (docker
  without a visible cgroup) only the cap applies (eval_allowance_s None).
- In the model's process everything is the model's: the guard rails there (inference mode, no
  gradient after the first logits request, no training data in the scoring pass) can be left
  by its code; the audit and the allowance are what hold.
- A model that recognises the bench's check request can fake tokens/s, one that recognises the
  count request can inflate its counted FLOPs, up to MFU 1 (throughput.py); neither is the
  fitness.
- Numbers leave the scoring steps by design (val_loss, timings, tokens/s, counted FLOPs): a
  model could modulate them to carry a few bits of validation text per evaluation.
- Parameters a model uses without binding them as parameters (buffers, constants in code) are
  not counted in params (their FLOPs are counted).
- Whatever data lies in the folders a step must see (the interpreter's, the system's: /usr,
  the venv) is readable to it; only hidden_paths() are masked there (run/base.py).
- Without root the local sandbox has no filesystem view, PID namespace or cgroup: the step
  runs as the engine's own uid, shares /tmp, /var/tmp and /dev/shm (it could leave data there
  for a later step), can reach the engine's own files (a concurrent step could change another
  step's checkpoint or the harness's frozen copy: the loader's digest check sees what changed
  before it read the file, as ``checkpoint_changed``), and its CPU time is per-process
  accounting (run/procs.py
  tree_cpu_s says what that misses). Where unprivileged user namespaces are off, it also
  shares the network, IPC and the user keyrings with the engine's user (the log says so).
- Docker without a visible cgroup (a remote or rootless daemon) samples CPU through the stats
  API, one API round trip per kill, cannot see refused forks (run/docker.py), and cannot meter
  scoring per request. Containers' keyrings are kept apart by the daemon's seccomp profile
  (docker's default refuses the keyring calls; tests/test_kernel_state.py checks it) and
  runc's session keyring per container: a daemon run with seccomp unconfined would let the
  containers of one uid share a user keyring.
- cgroup v2, the systemd cgroup driver and GPUs in the local view are untested here; on a GPU
  the audit's tolerance (AUDIT_ATOL, AUDIT_RTOL) is set for bf16 kernels, not measured.
- The final-content check reads the checkpoint at the first sample after the clock passed the
  budget: writes through a mapping within that interval (poll_s of the clock) go unseen.
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
from ..clock import default_clock, resolve_clock
from ..contract import CONTRACT_FILE, Contract, ContractError, load_contract
from ..result import make_result
from ..run.base import Sandbox, Step
from . import flops as flops_mod
from . import scoring, server, throughput, training
from .allowance import Meter
from .checkpoint import CheckpointError, Facts, freeze
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
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the engine gets a result
        return make_result("eval_failed", cause="harness_error", log_tail=where(exc), **common)
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
    # Every process of the step is gone (the sandbox stopped them when its main process
    # ended): the harness's own copy of the checkpoint is what is scored, and nothing any of
    # them held can change it.
    digest = freeze(ckpt_path, work / "ckpt" / "ckpt.pt")
    metrics = _score(tree_dir, sandbox, spec, contract, paths, work, digest,
                     common["vocab_size"], device, budget, clock)
    common.update(eval_wall_s=metrics.pop("eval_wall_s"), eval_cpu_s=metrics.pop("eval_cpu_s"),
                  eval_allowance_s=metrics.pop("eval_allowance_s", None))
    eval_allowance = common["eval_allowance_s"]
    if eval_allowance is not None:
        common["eval_allowance_s"] = round(eval_allowance, 3)
    if "cause" in metrics:
        return make_result("eval_failed", cause=metrics["cause"],
                           log_tail=log + NOTE + sealed_words(metrics), **common,
                           exit_signal=metrics.get("exit_signal"))
    facts: Facts = metrics["facts"]
    params, notes = facts.params(metrics["bound"])
    if notes:
        log += NOTE + "parameters not counted: " + "; ".join(notes[:20])
    return make_result("ok", val_loss=metrics["val_loss"], perplexity=metrics["perplexity"],
                       bpb=metrics["bpb"], eval_tokens=metrics["eval_tokens"], params=params,
                       audit=metrics.get("audit"),
                       **_throughput(metrics, params, facts, device, clock), log_tail=log,
                       **common)


def _score(tree_dir: Path, sandbox: Sandbox, spec: EvalSpec, contract: Contract,
           paths: data_mod.DataPaths, work: Path, digest: str, vocab: int, device: str,
           budget_s: float, clock: str) -> dict:
    """Score the frozen checkpoint (work/ckpt/ckpt.pt, sha256 ``digest``) in two sealed steps:
    the scoring pass, then the audit (a fresh server: re-scores a sample in another order,
    after the bench). The metrics (with ``facts``, ``bound``, ``token_losses``, ``audit``,
    ``bench``, the scoring pass's allowance and use) or {"cause", "detail"}; eval_wall_s and
    eval_cpu_s of both steps, and eval_steps_cpu_s of each."""
    rng = np.random.default_rng()  # filler, halves and samples must not be predictable
    spent = {"eval_wall_s": 0.0, "eval_cpu_s": 0.0, "eval_steps_cpu_s": {}}

    def scoring_pass(client, facts, bound, meter):
        metrics = scoring.score(client, paths.val_dir, contract.tokenizer, contract.eval_context,
                                vocab, spec.windows, spec.cuts, rng)
        if "cause" in metrics:
            return metrics
        over = meter.over(facts.elements)
        if over is not None:
            return {"cause": "eval_budget_exceeded",
                    "detail": f"the model server had used {over[0]:.1f} s on the "
                              f"{limit_clock} clock by its last answer, where its own forward "
                              f"passes, as measured in the step, allow {over[1]:.1f} s "
                              "(start, build, and each request at its measured cost with "
                              "headroom): compute at scoring time is not training time"}
        _quit(client)
        return {**metrics, "facts": facts, "bound": bound,
                "eval_allowance_s": meter.allowance(facts.elements), "eval_used_s": meter.last_s}

    limit_clock = default_clock(device)
    scored = _session("score", scoring_pass, tree_dir, sandbox, spec, contract, work, digest,
                      device, budget_s, spent)
    if "cause" in scored:
        return {**scored, **spent}

    def audit_pass(client, facts, bound, meter):
        use_cpu = clock == "cpu" and device == "cpu" and meter.read() is not None
        counted = _count(client, facts.train.get("block_size") or contract.eval_context, paths)
        bench = throughput.bench(client, facts.train, paths.train_dir, vocab, spec.bench_s,
                                 rng, clock=meter.read if use_cpu else None) \
            if spec.bench else {}
        bench.update(counted, clock="cpu" if use_cpu else "wall")
        checked = scoring.audit(client, paths.val_dir, contract.eval_context, vocab,
                                scored["token_losses"], scored["halves"], spec.audit_per_request,
                                spec.probes, rng)
        if "cause" in checked:
            return checked
        _quit(client)
        return {"audit": checked, "bench": bench}

    audited = _session("audit", audit_pass, tree_dir, sandbox, spec, contract, work, digest,
                       device, budget_s, spent)
    if "cause" in audited:
        return {**audited, **spent}
    return {**scored, **audited, **spent}


def _count(client: Client, t: int, paths) -> dict:
    """The counted FLOPs (throughput.count) on one row of ``t`` training tokens: the training
    context the checkpoint declares, else the scoring context."""
    tokens = data_mod.load_tokens(paths.train_dir, "train")
    if not isinstance(t, int) or not 0 < t <= throughput.MAX_BENCH_TOKENS or tokens.size < t + 2:
        return {}
    row = tokens[None, : t + 1].astype(np.int64)
    return throughput.count(client, row[:, :-1], row[:, 1:])


def _session(label: str, converse, tree_dir: Path, sandbox: Sandbox, spec: EvalSpec,
             contract: Contract, work: Path, digest: str, device: str, budget_s: float,
             spent: dict) -> dict:
    """One sealed scoring step: the model server on the frozen copy; its loader's digest
    checked against ``digest`` before anything else; then ``converse(client, facts, bound,
    meter)``. The step's compute is capped (spec.scoring_limit) and metered (allowance.py); its
    log and every text the server sends stay behind (only causes and the protocol's numbers
    come out). Adds its wall and CPU seconds to ``spent``."""
    threads = flops_mod.eval_threads()
    limit = scoring_limit(device, budget_s, threads, spec.scoring_s)
    env = {"DARWIN_DEVICE": device, "DARWIN_SEED": "0", "DARWIN_THREADS": str(threads),
           "DARWIN_CKPT_MAX_BYTES": str(spec.limits.max_file_bytes)}
    if device == "cpu":
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # idle threads must not spin on the CPU clock
    serve = Step(argv=server.argv("ckpt.pt", contract.model_entry, contract.config_entry),
                 tree=tree_dir, out_dir=work / f"{label}_out", timeout_s=spec.eval_timeout_s,
                 inputs={"CKPT": work / "ckpt", "SERVER": server.ship(work / "server")},
                 env=env, limits=spec.limits, gpus=1 if device == "cuda" else 0,
                 label=f"eval-{label}", clock_limit=limit)
    t0 = time.monotonic()
    try:
        session = sandbox.open(serve)
    except Exception as exc:  # noqa: BLE001 - a sandbox that cannot start is a verdict
        return {"cause": "sandbox_error", "detail": f"the {label} step could not start: "
                                                    f"{exc.__class__.__name__}"}
    meter = Meter.for_session(session, limit.clock)
    client = Client(session, time.monotonic() + spec.eval_timeout_s, sealed=True, meter=meter)
    try:
        facts = Facts.from_loaded(client.loaded())
        if facts.sha256 != digest:
            metrics = {"cause": "checkpoint_changed",
                       "detail": "the checkpoint the server read is not the harness's copy"}
        else:
            metrics = converse(client, facts, _bound(client.ready().get("params")), meter)
    except ServerError as exc:
        metrics = {"cause": exc.cause, "detail": exc.detail}
    except CheckpointError:
        metrics = {"cause": "bad_checkpoint", "detail": ""}
    except Exception as exc:  # noqa: BLE001 - a harness bug must not kill the engine, nor leak
        metrics = {"cause": "harness_error", "detail": where(exc)}
    outcome = session.close()
    spent["eval_wall_s"] = round(spent["eval_wall_s"] + time.monotonic() - t0, 3)
    spent["eval_steps_cpu_s"][label] = outcome.cpu_s
    if outcome.cpu_s is not None and spent["eval_cpu_s"] is not None:
        spent["eval_cpu_s"] = round(spent["eval_cpu_s"] + outcome.cpu_s, 3)
    else:
        spent["eval_cpu_s"] = None
    if outcome.over_budget:  # whatever the conversation saw, the server was stopped for this
        return {"cause": "eval_budget_exceeded",
                "detail": f"the model server used more than {limit.seconds:g} s on the "
                          f"{limit.clock} clock (the cap on a scoring step at this budget: "
                          "compute at scoring time is not training time)"}
    if metrics.get("cause") in ("forward_failed", "server_died", "eval_timeout"):
        # The server was ended by one of the step's own limits (the sandbox read its usage on
        # the step itself): that limit is the cause (its figure stays in the step: the model
        # chose it); or by a signal nobody of ours sent, which the origin records as the
        # engine's.
        if outcome.limit or outcome.oom:
            limit_name = outcome.limit or "memory"
            metrics = {"cause": training.LIMIT_CAUSES.get(limit_name, "resource_limit"),
                       "detail": f"stopped by the run's {limit_name} limit in the {label} step"}
        elif outcome.signal:
            metrics["exit_signal"] = outcome.signal
    return metrics


def _quit(client: Client) -> None:
    try:
        client.request({"op": "quit"})
    except ServerError:
        pass  # it quit without answering: fine


# What a scoring failure says. Validation text is reachable in the scoring steps, so no text
# from there leaves them: the cause, these words, and the harness's own numbers.
CAUSE_WORDS = {
    "bad_checkpoint": "the checkpoint cannot be read: the harness reads only a torch.save zip "
                      "archive of stored (uncompressed) entries within the step's file limit, "
                      "with darwin_ckpt: 1, a model_config dict and a state_dict of tensors",
    "model_error": "build_model(model_config) raised in the scoring step",
    "checkpoint_mismatch": "the checkpoint's weights do not load strictly into "
                           "build_model(model_config)",
    "forward_failed": "forward(idx) raised in the scoring step",
    "bad_output": "the model's answer is not logits of the shape and type asked for",
    "nan_logits": "the model returned NaN or inf logits",
    "unsolicited_output": "the model server sent what nobody asked for",
    "oversized_output": "the model server sent a frame larger than the answer asked for",
    "server_died": "the model server went away in the middle of scoring",
    "eval_timeout": "the model server did not answer in time",
    "bad_request": "the model server refused a request",
    "usage": "the model server was started wrongly",
    "checkpoint_changed": "the checkpoint the server read is not the harness's frozen copy",
    "sandbox_error": "the scoring step could not run",
}


def sealed_words(metrics: dict) -> str:
    """A scoring failure for the result's log tail: its cause, fixed words, and a detail only
    where the harness composed it (the server's own texts were dropped by the sealed client)."""
    cause, detail = metrics["cause"], metrics.get("detail") or ""
    words = CAUSE_WORDS.get(cause, "")
    return f"{cause}: " + "; ".join(w for w in (words, detail) if w) + \
        " (the scoring step's own output stays there; the pre-flight shows a model's errors)"


def where(exc: BaseException) -> str:
    """A harness bug, without its message (which could hold data): its type and our frames."""
    frames = [f"{Path(f.filename).name}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)
              if "darwin_git" in f.filename]
    return f"{exc.__class__.__name__} at {' < '.join(reversed(frames[-4:]))}"


def score_checkpoint(tree_dir: Path, checkpoint: Path, sandbox: Sandbox,
                     spec: EvalSpec | None = None) -> dict:
    """Score an existing checkpoint of the tree at ``tree_dir``, without training: the scoring
    metrics (``token_losses`` included, for paired comparisons), the audit, the bench, bound
    parameters, eval_wall_s and eval_cpu_s, or {"cause", "detail"}. For benchmarks and
    re-scoring; only evaluate() makes results."""
    spec = spec or EvalSpec()
    contract = load_contract(Path(tree_dir))
    paths = data_mod.prepare(contract.tokenizer, spec.data_root)
    _close_val_split(paths.val_dir)
    vocab = int(data_mod.load_meta(paths.val_dir)["vocab_size"])
    device = _resolve_device(spec.device)
    work = Path(tempfile.mkdtemp(prefix="darwin-score-"))
    try:
        digest = freeze(Path(checkpoint), work / "ckpt" / "ckpt.pt")
        return _score(Path(tree_dir), sandbox, spec, contract, paths, work, digest, vocab,
                      device, float(spec.budget_s or contract.budget_s),
                      resolve_clock(spec.clock, contract.clock, device))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bound(params) -> dict[str, list[int]]:
    """The server's list of [name, shape] it bound as parameters (validated: it is untrusted)."""
    bound = {}
    for item in params if isinstance(params, list) else []:
        if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], list) and all(isinstance(n, int) for n in item[1])):
            bound[item[0]] = item[1]
    return bound


def _throughput(metrics: dict, params: int, facts: Facts, device: str, clock: str) -> dict:
    """flops_per_token (counted, else 6N) and what it rests on, the declared estimate's
    mismatch, tokens_per_s and MFU on the bench's clock with the peak it assumes; tokens_per_s
    and MFU None, with the reason and the raw numbers under throughput_untrusted, when the
    bench's check failed or MFU came out above 1."""
    bench = metrics.get("bench") or {}
    counted = bench.get("flops_per_token")
    fpt = counted if counted else 6.0 * params
    out = dict(flops_per_token=fpt, flops_source="counted" if counted else "6N",
               device_name=_device_name(device))
    block = facts.train.get("block_size") or facts.declared.get("block_size")
    if "n_layer" in facts.declared and "n_embd" in facts.declared and counted:
        declared = flops_mod.flops_per_token(params, facts.declared, block)
        if abs(declared / counted - 1) > flops_mod.DECLARED_TOLERANCE:
            out["declared_mismatch"] = {
                "declared_flops_per_token": declared, "ratio": round(declared / counted, 3),
                "declared": {k: facts.declared[k] for k in ("n_layer", "n_embd")
                             if k in facts.declared}}
    tps = bench.get("tokens_per_s")
    if not tps:
        return out
    mfu_clock = "wall" if device == "cuda" else bench.get("clock", clock)
    peak, basis = flops_mod.peak_flops(device, out["device_name"], mfu_clock)
    mfu = fpt * tps / peak if peak else None
    reason = bench.get("untrusted")
    if reason is None and mfu is not None and mfu > 1:
        reason = f"MFU {mfu:.3g} is above 1: the bench did less work than its FLOPs claim"
    out.update(peak_flops=peak, peak_basis=basis, mfu_clock=mfu_clock)
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
