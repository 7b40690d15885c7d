"""The pre-flight: a few seconds that say whether a tree can train at all, before its candidate
waits for a slot and spends a training budget (README "Mutators").

1. Train: the tree's own train command in the sandbox, as training runs it (train split only,
   writable DARWIN_OUT, no network), with ``DARWIN_PREFLIGHT=1`` and a budget of
   PREFLIGHT_BUDGET_S: a training script that sees it takes one optimizer step on a tiny batch
   and writes its checkpoint (contract.py). The step runs under a short CPU-clock limit
   (``limit_s``); one that runs past it proves nothing either way (a seed that ignores
   DARWIN_PREFLIGHT and prepares data for longer) and is not held against the tree.
2. Serve: the model server reads the checkpoint as scoring does (server/loader.py, in its own
   bounded step: the engine never loads a step's files), builds the model from it
   (``build_model(model_config)``, a strict ``load_state_dict``) and answers one small logits
   request, checked for shape and finite values: :func:`serve_probe`, the one place this
   module starts the harness's server. No validation text is shown there, so the server's
   error texts (tracebacks) go back to the model, unlike in scoring.

Whatever fails comes back as one text for the model (the stage, the command, the end of the
log), so that a mutator can fix its change in a retry turn instead of losing a training run.
The pre-flight trusts nothing the tree says: it only decides whether a full evaluation is
worth queuing; the harness's evaluation stays the judge.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import data as data_mod
from ..contract import Contract, ContractError, load_contract
from ..run.base import ClockLimit, Limits, Sandbox, Step
from . import scoring, server, training
from .client import Client, ServerError
from .spec import EvalSpec, wall_net

PREFLIGHT_ENV = "DARWIN_PREFLIGHT"
PREFLIGHT_BUDGET_S = 2.0  # DARWIN_BUDGET_S during a pre-flight: a script that ignores
#   DARWIN_PREFLIGHT but watches its budget still ends quickly
LIMIT_S = 20.0  # default CPU seconds for the training step (imports included: torch is ~1-3 s)
SERVE_TIMEOUT_S = 60.0  # wall seconds for the model server's whole conversation
LOG_CHARS = 3000
PROBE_TOKENS = 16  # the logits request: one row of this many tokens (at most the eval context)
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Verdict:
    ok: bool  # the tree may be queued for training
    stage: str  # "passed"; "inconclusive" (past the limit, or our own trouble: see note); or
    #             where it failed: "contract", "train", "checkpoint", "model", "output"
    error: str | None  # for the model: what failed and the end of the log (None when ok)
    seconds: float  # wall time the pre-flight took
    note: str | None = None  # why it is inconclusive, for people

    def to_event(self) -> dict:
        return {"ok": self.ok, "stage": self.stage, "seconds": round(self.seconds, 3)}


class Preflight:
    """Checks tree folders in a sandbox; thread-safe (each check has its own scratch folder)."""

    def __init__(self, sandbox: Sandbox, device: str = "cpu", data_root: Path | None = None,
                 limit_s: float = LIMIT_S, limits: Limits | None = None):
        self.sandbox, self.device, self.data_root = sandbox, device, data_root
        self.limit_s, self.limits = limit_s, limits or Limits()

    def check(self, tree_dir: Path) -> Verdict:
        t0 = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="darwin-preflight-"))
        try:
            stage, said = self._check(Path(tree_dir), work)
        except Exception:  # noqa: BLE001 - our own failure must not block a mutation
            stage, said = INCONCLUSIVE, traceback.format_exc()[-LOG_CHARS:]
        finally:
            shutil.rmtree(work, ignore_errors=True)
        seconds = time.monotonic() - t0
        if stage in ("passed", INCONCLUSIVE):
            return Verdict(True, stage, None, seconds, note=said)
        return Verdict(False, stage, said, seconds)

    def _check(self, tree_dir: Path, work: Path) -> tuple[str, str | None]:
        """(stage, what it says): "passed" or INCONCLUSIVE (with a note for people), or the
        stage that failed with the text for the model."""
        try:
            contract = load_contract(tree_dir)
        except ContractError as exc:
            return "contract", f"darwin.toml cannot be read: {exc}"
        paths = data_mod.prepare(contract.tokenizer, self.data_root)
        vocab = int(data_mod.load_meta(paths.train_dir)["vocab_size"])
        out = work / "out"
        # training's own step (environment, inputs, limits), with the pre-flight's flag, its
        # small budget and its short CPU-clock limit
        step = training.train_step(contract, tree_dir, out, paths.train_dir, PREFLIGHT_BUDGET_S,
                                   "cpu", self.device,
                                   EvalSpec(device=self.device, threads=1, limits=self.limits))
        step = replace(step, env={**step.env, PREFLIGHT_ENV: "1"}, label="preflight",
                       clock_limit=ClockLimit("cpu", self.limit_s),
                       timeout_s=wall_net("cpu", self.limit_s))
        outcome = self.sandbox.run(step)
        command = " ".join(contract.train_command)
        log = outcome.log_tail or ""
        if outcome.error:
            return INCONCLUSIVE, f"the sandbox could not run the pre-flight: {outcome.error}"
        if outcome.over_budget or outcome.timed_out:
            return INCONCLUSIVE, (f"training ran past the pre-flight's {self.limit_s:g} CPU "
                                  f"seconds (does {command} honour {PREFLIGHT_ENV}?)")
        if outcome.returncode != 0:
            return "train", (f"`{command}` with {PREFLIGHT_ENV}=1 (import, build the model, one "
                             f"optimizer step on a tiny batch, save the checkpoint) exited with "
                             f"status {outcome.returncode}. The end of its log:\n"
                             f"{tidy(log)}")
        ckpt = out / contract.checkpoint
        if not ckpt.is_file():
            return "checkpoint", (f"`{command}` with {PREFLIGHT_ENV}=1 exited 0 but wrote no "
                                  f"{contract.checkpoint} in $DARWIN_OUT. The end of its log:\n"
                                  f"{tidy(log)}")
        (work / "ckpt").mkdir()
        shutil.move(str(ckpt), work / "ckpt" / "ckpt.pt")
        problem = serve_probe(tree_dir, self.sandbox, contract, work, vocab, self.device,
                              self.limits)
        return ("passed", None) if problem is None else problem


def serve_probe(tree_dir: Path, sandbox: Sandbox, contract: Contract, work: Path, vocab: int,
                device: str, limits: Limits) -> tuple[str, str] | None:
    """Start the harness's model server (server/, as scoring starts it) on
    ``work/ckpt/ckpt.pt``: it builds the model and loads the weights strictly; then ask it for
    the logits of one small row at every position, checked as scoring checks them. None when
    they pass, else (stage, what went wrong)."""
    step = Step(argv=server.argv("ckpt.pt", contract.model_entry, contract.config_entry),
                tree=tree_dir, out_dir=work / "eval_out", timeout_s=SERVE_TIMEOUT_S,
                inputs={"CKPT": work / "ckpt", "SERVER": server.ship(work / "server")},
                env={"DARWIN_DEVICE": device, "DARWIN_SEED": "0", "DARWIN_THREADS": "1",
                     "DARWIN_CKPT_MAX_BYTES": str(limits.max_file_bytes)},
                limits=limits, gpus=1 if device == "cuda" else 0, label="preflight-eval")
    try:
        session = sandbox.open(step)
    except Exception as exc:  # noqa: BLE001 - a sandbox that cannot start: not the tree's fault
        return INCONCLUSIVE, f"the model server could not start: {exc}"
    problem = None
    try:
        client = Client(session, time.monotonic() + SERVE_TIMEOUT_S)
        client.loaded()  # the checkpoint is read
        client.ready()  # the model is built and its weights loaded
        t = max(1, min(PROBE_TOKENS, contract.eval_context))
        idx = np.random.default_rng(0).integers(0, vocab, size=(1, t), dtype=np.int64)
        at = np.arange(t, dtype=np.int64)[None, :]
        _, (logits,) = client.request({"op": "logits"}, (idx, at),
                                      expect=(t * (vocab + scoring.VOCAB_SLACK) * 8,))
        checked = scoring.checked_logits(logits, (1, t), vocab)
        if isinstance(checked, dict):
            problem = ("output", f"forward(idx) for idx of shape (1, {t}) gave logits the "
                                 f"harness cannot score ({checked['cause']}): "
                                 f"{checked['detail']}")
        try:
            client.request({"op": "quit"})
        except ServerError:
            pass  # it quit without answering: fine
    except ServerError as exc:
        problem = ("model", exc)
    outcome = session.close()
    if problem and isinstance(problem[1], ServerError):
        exc = problem[1]
        if exc.cause == "eval_timeout":  # a slow machine as much as a slow model
            return INCONCLUSIVE, f"the model server did not answer within {SERVE_TIMEOUT_S:g} s"
        if exc.cause == "bad_checkpoint":
            return "checkpoint", ("the checkpoint training wrote cannot be scored: "
                                  f"{tidy(exc.detail or outcome.log_tail or '')}")
        what = {
            "model_error": "could not build the model: build_model(model_config), with the "
                           "model_config the checkpoint holds, raised",
            "checkpoint_mismatch": "built the model from the checkpoint's model_config, but "
                                   "the checkpoint's weights do not fit it (load_state_dict, "
                                   "strict)",
            "bad_checkpoint": "could not read the checkpoint",
            "forward_failed": f"could not run forward(idx) on a (1, {PROBE_TOKENS}) batch of "
                              "token ids"}.get(exc.cause, f"failed ({exc.cause})")
        detail = tidy(exc.detail or outcome.log_tail or "")
        problem = ("model", f"The pre-flight's training ran and saved a checkpoint; the model "
                            f"server then {what}:\n{detail}")
    return problem


# A traceback's file names as the model knows them: its tree's files relative to the tree, the
# libraries' without the machine's install path.
TREE_PATH = re.compile(r'File "[^"]*/tree/')
LIBRARY_PATH = re.compile(r'File "[^"]*/(site-packages|dist-packages|lib/python3\.\d+|darwin_git)/')


def tidy(log: str) -> str:
    """The end of a log for the model: at most LOG_CHARS, with short file names."""
    log = TREE_PATH.sub('File "', log)
    return LIBRARY_PATH.sub(lambda m: f'File "<{m.group(1)}>/', log)[-LOG_CHARS:]


def make_preflight(settings, executor, pop, sink=None) -> Preflight | None:
    """The pre-flight of an evolve run (``settings.preflight_s`` > 0), in the sandbox the
    executor trains in (a local one for Ray: the coordinator checks before it queues); on a
    CUDA run, only where this machine has a GPU (else none, and a warning says so)."""
    if not settings.preflight_s:
        return None
    if settings.device == "cuda" and not _cuda_here():
        if sink is not None:
            sink.emit({"event": "warning", "kind": "no_preflight",
                       "detail": "no pre-flight: this run trains on CUDA and this machine has "
                                 "no GPU to check children on"})
        return None
    sandbox = getattr(executor, "sandbox", None)
    if sandbox is None:
        from ..run.runner import make_sandbox
        sandbox = make_sandbox("local", pop.state_dir / "preflight")
    return Preflight(sandbox, device=settings.device, limit_s=float(settings.preflight_s))


def _cuda_here() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no torch, no GPU
        return False
