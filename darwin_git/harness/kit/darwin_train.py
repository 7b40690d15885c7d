"""darwin_train: darwin-git's helper for a training script that knows nothing of darwin-git.

Every training step finds this file on its PYTHONPATH (the folder is $DARWIN_KIT). It uses
the standard library and torch only. Two ways in:

    python -m darwin_train train.py [ARGS...]   # darwin.toml: run the script under it
    import darwin_train; darwin_train.attach()  # from the script, or a config file it executes

Attached, it does what darwin-git asks of a run (SEEDS.md), so the script need not:
- DARWIN_SEED: seeds torch with it at once, and every torch.manual_seed(s) the script calls
  seeds s + DARWIN_SEED (seed 0 leaves the script's own seeding as it was);
- the budget: after every optimizer step (torch's global step hook) it stops the run when the
  next step would end past DARWIN_BUDGET_S less a saving margin, on DARWIN_BUDGET_CLOCK (cpu:
  time.process_time(); wall: since DARWIN_BUDGET_START); a timer at that deadline also stops
  whatever runs between steps (an evaluation, data loading) once it is reached;
- DARWIN_PREFLIGHT=1 (darwin-git's pre-flight): it stops after the first optimizer step;
- the checkpoint: when it stops the run, or when the script ends by itself, it writes
  $DARWIN_OUT/$DARWIN_CHECKPOINT in darwin's format from the script's model: the one given to
  track(), else the script's global ``raw_model`` or ``model`` (torch.compile's and
  DistributedDataParallel's wrappers taken off); its config is track()'s, else
  ``model.config`` (a dataclass, a dict or a plain object), else the global ``model_args``;
- the summary: ``steps: N`` (optimizer steps) and ``stop: budget | preflight | end``.
A run that raises is left to fail: no checkpoint is written for it.
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import signal
import sys
import time

SEED = int(os.environ.get("DARWIN_SEED", "0") or 0)
BUDGET_S = float(os.environ.get("DARWIN_BUDGET_S", "0") or 0)  # 0: no budget (by hand)
CLOCK = os.environ.get("DARWIN_BUDGET_CLOCK", "wall")
START = float(os.environ.get("DARWIN_BUDGET_START") or time.time())
PREFLIGHT = os.environ.get("DARWIN_PREFLIGHT") == "1"
OUT = os.environ.get("DARWIN_OUT", "out")
CHECKPOINT = os.environ.get("DARWIN_CHECKPOINT", "ckpt.pt")
MARGIN_S = min(1.0, 0.1 * BUDGET_S)  # saving and exit fit in it (as in seed_repo/train.py)
PLAIN = (bool, int, float, str, type(None))


class Stopped(SystemExit):
    """The run was stopped on purpose (budget, pre-flight): exit status 0."""

    def __init__(self):
        super().__init__(0)


class _State:
    def __init__(self):
        self.namespace: dict | None = None  # the script's globals
        self.model = self.config = None
        self.attached = self.saved = self.crashed = False
        self.steps: dict[int, int] = {}  # optimizer id -> its steps
        self.last: float | None = None  # the clock at the previous step's end
        self.intervals: list[float] = []  # the latest step-to-step times
        self.in_step = self.stop_due = False


_state = _State()


def clock() -> float:
    """Seconds of budget used so far, on the run's clock."""
    return time.process_time() if CLOCK == "cpu" else time.time() - START


def deadline() -> float:
    return BUDGET_S - MARGIN_S


def track(model, config=None) -> None:
    """Name the model (and its config: a dict, a dataclass or an object) to checkpoint, for a
    script whose model is not a global named ``model``."""
    _state.model, _state.config = model, config


def attach(namespace: dict | None = None) -> None:
    """Seed, watch the budget and save at the end (see the module's docstring); ``namespace``
    is where the script's globals are (the caller's globals by default). Idempotent."""
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    _state.namespace = namespace
    if _state.attached:
        return
    _state.attached = True
    import torch
    from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                       register_optimizer_step_pre_hook)

    own_seed = torch.manual_seed

    def manual_seed(seed):
        return own_seed(int(seed) + SEED)

    torch.manual_seed = torch.random.manual_seed = manual_seed
    own_seed(SEED)
    register_optimizer_step_pre_hook(_before_step)
    register_optimizer_step_post_hook(_after_step)
    if BUDGET_S > 0 and not PREFLIGHT:
        timer, signum = (signal.ITIMER_PROF, signal.SIGPROF) if CLOCK == "cpu" else \
            (signal.ITIMER_REAL, signal.SIGALRM)
        left = deadline() - clock()
        signal.signal(signum, _on_deadline)
        signal.setitimer(timer, max(0.01, left))
    hook = sys.excepthook

    def excepthook(kind, value, tb):
        _state.crashed = True
        hook(kind, value, tb)

    sys.excepthook = excepthook
    atexit.register(_at_exit)


def _before_step(optimizer, args, kwargs) -> None:
    _state.in_step = True


def _after_step(optimizer, args, kwargs) -> None:
    _state.in_step = False
    key = id(optimizer)
    _state.steps[key] = _state.steps.get(key, 0) + 1
    now = clock()
    if _state.last is not None:  # the first step's interval holds the start-up: not a step
        _state.intervals = (_state.intervals + [now - _state.last])[-5:]
    _state.last = now
    # a step ending past the deadline is not begun; the median ignores an evaluation's spike
    step_s = sorted(_state.intervals)[len(_state.intervals) // 2] if _state.intervals else 0.0
    if PREFLIGHT:
        _stop("preflight")
    if _state.stop_due or (BUDGET_S > 0 and now + step_s >= deadline()):
        _stop("budget")


def _on_deadline(signum, frame) -> None:
    if _state.in_step:  # let the step finish: the weights are whole after it
        _state.stop_due = True
        return
    _stop("budget")


def _stop(reason: str) -> None:
    save(reason)
    raise Stopped()


def _at_exit() -> None:
    if not _state.saved and not _state.crashed:
        save("end")


def steps() -> int:
    return max(_state.steps.values(), default=0)


def save(reason: str = "end") -> str:
    """Write the checkpoint now (once) and print the summary; the path written."""
    path = os.path.join(OUT, CHECKPOINT)
    if _state.saved:
        return path
    _state.saved = True
    if _state.attached:  # the deadline's timer must not interrupt the save itself
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
    import torch

    model = _find_model()
    config = _plain(_find_config(model), "the model's config")
    train = {}
    namespace = _state.namespace or {}
    for key, value in (("batch_size", namespace.get("batch_size")),
                       ("block_size", config.get("block_size", namespace.get("block_size")))):
        if isinstance(value, int) and not isinstance(value, bool):
            train[key] = value
    os.makedirs(OUT, exist_ok=True)
    tmp = path + ".tmp"
    torch.save({"darwin_ckpt": 1, "model_config": config, "model": model.state_dict(),
                "train": train}, tmp)
    os.replace(tmp, path)
    per_step = namespace.get("tokens_per_iter")
    print(f"steps: {steps()}")
    if isinstance(per_step, int) and not isinstance(per_step, bool):
        print(f"tokens: {steps() * per_step}")
    print(f"stop: {reason}", flush=True)
    return path


def _find_model():
    import torch

    model = _state.model
    namespace = _state.namespace or {}
    for name in ("raw_model", "model"):
        if model is None and isinstance(namespace.get(name), torch.nn.Module):
            model = namespace[name]
    if model is None:
        raise RuntimeError("darwin_train: no model to checkpoint: the script has no global "
                           "`model` (a torch.nn.Module); call darwin_train.track(model)")
    while True:  # DistributedDataParallel(.module), torch.compile(._orig_mod)
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _find_config(model) -> dict:
    config = _state.config if _state.config is not None else getattr(model, "config", None)
    if config is None:
        config = (_state.namespace or {}).get("model_args")
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return dict(config)
    if config is not None and hasattr(config, "__dict__"):
        return {k: v for k, v in vars(config).items() if not k.startswith("_")}
    raise RuntimeError("darwin_train: no model config to checkpoint: the model has no "
                       "`.config` and the script no global `model_args`; call "
                       "darwin_train.track(model, config)")


def _plain(value, what: str):
    """``value`` with tuples as lists, or an error naming what is not a plain value (the
    harness loads checkpoints with weights_only=True)."""
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, what) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{what}[{k!r}]") for k, v in value.items()}
    raise RuntimeError(f"darwin_train: {what} holds {value!r}, not a plain value "
                       "(int, float, bool, str, None, lists and dicts of them)")


def main(argv: list[str]) -> None:
    """``python -m darwin_train SCRIPT [ARGS...]``: run SCRIPT as ``__main__`` with ARGS as its
    sys.argv[1:], attached."""
    if not argv:
        sys.exit("usage: python -m darwin_train SCRIPT [ARGS...]")
    script = argv[0]
    with open(script, "rb") as f:
        code = compile(f.read(), script, "exec")
    sys.argv = list(argv)
    # one darwin_train, whether the script (or its config) imports it again or not
    sys.modules.setdefault("darwin_train", sys.modules[__name__])
    module = type(sys)("__main__")
    module.__dict__.update({"__file__": script, "__builtins__": __builtins__})
    sys.modules["__main__"] = module  # pickling and dataclasses find the script's classes
    attach(module.__dict__)
    exec(code, module.__dict__)


if __name__ == "__main__":
    main(sys.argv[1:])
