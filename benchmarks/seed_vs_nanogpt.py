"""Side by side on this machine: our seed (seed_repo/) against karpathy/nanoGPT at the same size.

Both train the same model size (4 layers, 4 heads, 128 wide, context 128, no bias, no dropout,
batch 16) on the same char train split for the same training wall time, one after the other
(never at once: they would share the cores). Then ONE evaluation, in this script, scores both
checkpoints: the same fixed validation windows (darwin_git.data.val_windows, 128 x 128 tokens)
and the same cross-entropy code.

How the wall time is matched: nanoGPT has no wall-clock stop, only max_iters, and its cosine
schedule is laid out over max_iters. So each repeat runs our seed first for --budget seconds,
reads the time its training loop took (tokens / tokens_per_s from its summary), and gives
nanoGPT max_iters = that time / nanoGPT's measured seconds per step (a short calibration run
first, then the previous nanoGPT run's own rate). Startup and imports are outside both.

What is matched in the schedule: peak LR 2e-3, min LR 2e-4 (10%), warmup 5% of the run then
cosine to the end, AdamW betas (0.9, 0.99), weight decay 0.1 on matrices only, grad clip 1.0,
float32 on CPU, no torch.compile. nanoGPT's own validation (its logs only) reads our val split.

nanoGPT is exported from its bare git mirror into a temp folder at run time and driven through
its own CLI overrides; none of its code is part of this repository.

    .venv/bin/python benchmarks/seed_vs_nanogpt.py --budget 60 --repeats 2 --json out.json
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import pickle
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from darwin_git.data import load_meta, load_tokens, prepare, val_windows  # noqa: E402

SEED_REPO = REPO / "seed_repo"
DEFAULT_NANOGPT = Path("/work/.mirror/karpathy+nanoGPT/repo")
DATASET = "darwin_char"
EVAL_WINDOWS, EVAL_CONTEXT = 128, 128
SIZE = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, bias=False, dropout=0.0)
BATCH = 16
PEAK_LR, MIN_LR, WARMUP_FRAC = 2e-3, 2e-4, 0.05
NANOGPT_ITER = re.compile(r"^iter (\d+): loss ([\d.naninf]+), time ([\d.]+)ms")


class BenchError(Exception):
    pass


def child_cpu_s() -> float:
    """CPU seconds used by finished children so far: a figure the machine's load barely moves."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """Nothing of ours leaks into the trainers; both see the same minimal environment."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONUNBUFFERED": "1", "HOME": tempfile.gettempdir()}
    env.update(extra)
    return env


def export_nanogpt(git_dir: Path, dest: Path) -> Path:
    if not (git_dir / "HEAD").exists():
        raise BenchError(f"no git directory at {git_dir}; pass --nanogpt-git")
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", f"--git-dir={git_dir}", "archive", "HEAD"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for needed in ("train.py", "model.py", "configurator.py"):
        if not (dest / needed).is_file():
            raise BenchError(f"{git_dir} HEAD has no {needed}; is it karpathy/nanoGPT?")
    return dest


def write_nanogpt_data(nano_dir: Path, train_dir: Path, val_dir: Path) -> None:
    """Our char split in the files nanoGPT's train.py reads: train.bin, val.bin, meta.pkl."""
    target = nano_dir / "data" / DATASET
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(train_dir / "train.bin", target / "train.bin")
    shutil.copyfile(val_dir / "val.bin", target / "val.bin")
    meta = load_meta(train_dir)
    chars = meta["chars"]
    with open(target / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": meta["vocab_size"], "itos": dict(enumerate(chars)),
                     "stoi": {c: i for i, c in enumerate(chars)}}, f)


def parse_summary(stdout: str) -> dict[str, float]:
    out = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in ("steps", "tokens", "train_loss", "params", "wall_s", "tokens_per_s"):
            out[key] = float(value)
    return out


def run_seed(tree: Path, train_dir: Path, out_dir: Path, budget_s: float, seed: int) -> dict:
    out_dir.mkdir(parents=True)
    env = clean_env({"DARWIN_DATA": str(train_dir), "DARWIN_OUT": str(out_dir),
                     "DARWIN_BUDGET_S": str(budget_s), "DARWIN_DEVICE": "cpu",
                     "DARWIN_SEED": str(seed)})
    load, cpu0 = load_avg(), child_cpu_s()
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "train.py"], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=budget_s + 120)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise BenchError(f"seed train.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    s = parse_summary(proc.stdout)
    if not s.get("steps"):
        raise BenchError(f"the seed trained 0 steps in {budget_s}s (load {load_avg()}); "
                         "raise --budget")
    train_s = s["tokens"] / s["tokens_per_s"]
    # its metric lines time one step each (every 10th): their median shrugs off load spikes
    sampled = [float(m) for m in re.findall(r"^step \d+ \|.*\| ([\d.]+) ms \|", proc.stdout,
                                            re.M)]
    return {"system": "seed", "seed": seed, "steps": int(s["steps"]), "tokens": int(s["tokens"]),
            "step_s_median": statistics.median(sampled[1:] or sampled) / 1e3,
            "train_s": train_s, "tokens_per_s": s["tokens"] / train_s, "process_wall_s": wall,
            "process_cpu_s": child_cpu_s() - cpu0,
            "load_before": load, "load_after": load_avg(), "ckpt": str(out_dir / "ckpt.pt")}


def nanogpt_argv(out_dir: Path, max_iters: int, eval_interval: int, eval_iters: int) -> list[str]:
    cfg = dict(
        dataset=DATASET, out_dir=str(out_dir), device="cpu", compile=False, dtype="float32",
        batch_size=BATCH, gradient_accumulation_steps=1, **SIZE,
        learning_rate=PEAK_LR, min_lr=MIN_LR, decay_lr=True,
        warmup_iters=max(1, round(WARMUP_FRAC * max_iters)), lr_decay_iters=max_iters,
        max_iters=max_iters, beta1=0.9, beta2=0.99, weight_decay=0.1, grad_clip=1.0,
        eval_interval=eval_interval, eval_iters=eval_iters, log_interval=1,
        always_save_checkpoint=True, wandb_log=False,
    )
    # configurator.py literal_evals each value and insists on the default's type.
    fmt = {bool: str, int: str, float: repr, str: str}
    return [sys.executable, "train.py"] + [f"--{k}={fmt[type(v)](v)}" for k, v in cfg.items()]


def run_nanogpt(nano_dir: Path, out_dir: Path, max_iters: int, eval_interval: int,
                eval_iters: int = 10) -> dict:
    """Train iterations 0..max_iters; the checkpoint saved at iter max_iters holds max_iters
    updates (nanoGPT saves before that iteration's step, then does one more and stops)."""
    out_dir.mkdir(parents=True)
    load, cpu0 = load_avg(), child_cpu_s()
    start = time.monotonic()
    proc = subprocess.run(nanogpt_argv(out_dir, max_iters, eval_interval, eval_iters),
                          cwd=nano_dir, env=clean_env({}), capture_output=True, text=True,
                          timeout=3600)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise BenchError(f"nanoGPT train.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    iters = {}
    for line in proc.stdout.splitlines():
        m = NANOGPT_ITER.match(line)
        if m:
            iters[int(m.group(1))] = float(m.group(3)) / 1e3
    if not iters:
        raise BenchError(f"no iteration lines in nanoGPT's output:\n{proc.stdout[-2000:]}")
    # Iterations that also ran an evaluation count at the median step time, so that its own
    # validation passes (which our seed does not do) are not charged to its training speed.
    evals = {i for i in iters if i % eval_interval == 0}
    median = statistics.median(dt for i, dt in iters.items() if i not in evals)
    train_s = sum(median if i in evals else dt for i, dt in iters.items())
    tokens = len(iters) * BATCH * SIZE["block_size"]
    return {"system": "nanoGPT", "seed": 1337, "steps": max_iters, "steps_run": len(iters),
            "tokens": tokens, "train_s": train_s, "tokens_per_s": tokens / train_s,
            "step_s_median": median, "process_wall_s": wall,
            "process_cpu_s": child_cpu_s() - cpu0, "load_before": load,
            "load_after": load_avg(), "ckpt": str(out_dir / "ckpt.pt")}


def calibrate_nanogpt(nano_dir: Path, out_dir: Path, iters: int = 20) -> float:
    """nanoGPT's median seconds per step now (a few seconds of throwaway training)."""
    r = run_nanogpt(nano_dir, out_dir, iters, eval_interval=10**6, eval_iters=1)
    return r["step_s_median"]


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # nanoGPT's model.py uses dataclasses, which look modules up
    spec.loader.exec_module(module)
    return module


def load_seed_model(tree: Path, ckpt_path: Path) -> torch.nn.Module:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model = _import(tree / "model.py", "bench_seed_model").build_model(ckpt["model_config"])
    model.load_state_dict(ckpt["model"], strict=True)
    return model.eval()


class NanoLogits(torch.nn.Module):
    """nanoGPT's forward returns only the last position's logits without targets; with dummy
    targets it returns all of them, which is what a per-token cross-entropy needs."""

    def __init__(self, gpt):
        super().__init__()
        self.gpt = gpt

    def forward(self, idx):
        logits, _ = self.gpt(idx, torch.zeros_like(idx))
        return logits


def load_nanogpt_model(nano_dir: Path, ckpt_path: Path) -> torch.nn.Module:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    module = _import(nano_dir / "model.py", "bench_nanogpt_model")
    with contextlib.redirect_stdout(io.StringIO()):  # its constructor prints a param count
        gpt = module.GPT(module.GPTConfig(**ckpt["model_args"]))
    gpt.load_state_dict(ckpt["model"], strict=True)
    return NanoLogits(gpt).eval()


@torch.no_grad()
def evaluate(model: torch.nn.Module, windows: np.ndarray, chunk: int = 32) -> dict:
    """The one evaluation both systems get: mean next-token cross-entropy over every position
    of every window, computed here rather than by either model's own loss code."""
    total, count = 0.0, 0
    for i in range(0, len(windows), chunk):
        w = torch.from_numpy(windows[i : i + chunk])
        out = model(w[:, :-1])
        logits = out[0] if isinstance(out, tuple) else out
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                 w[:, 1:].reshape(-1), reduction="sum").item()
        count += w[:, 1:].numel()
    loss = total / count
    n_params = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    return {"val_loss": loss, "perplexity": math.exp(loss), "params": n_params,
            "eval_tokens": count}


def interleaved_step_ms(tree: Path, nano_dir: Path, vocab: int, rounds: int) -> dict:
    """One training step of each model in turn, in this process, on the same batch: a load
    spike hits both alike, unlike two sequential minute-long runs. Measures the model +
    optimizer code only (no data loading, no schedule)."""
    seed_mod = _import(tree / "model.py", "bench_seed_model_ab")
    nano_mod = _import(nano_dir / "model.py", "bench_nanogpt_model_ab")
    torch.manual_seed(0)
    cfg = dict(SIZE, vocab_size=vocab)
    with contextlib.redirect_stdout(io.StringIO()):
        models = {"seed": seed_mod.build_model(cfg),
                  "nanoGPT": nano_mod.GPT(nano_mod.GPTConfig(**cfg))}
    opts = {}
    for name, m in models.items():
        decay = [p for p in m.parameters() if p.dim() >= 2]
        rest = [p for p in m.parameters() if p.dim() < 2]
        opts[name] = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                        {"params": rest, "weight_decay": 0.0}],
                                       lr=PEAK_LR, betas=(0.9, 0.99))
    x, y = (torch.randint(0, vocab, (BATCH, SIZE["block_size"])) for _ in range(2))

    def step(name):
        t = time.perf_counter()
        _, loss = models[name](x, y)
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(models[name].parameters(), 1.0)
        opts[name].step()
        return time.perf_counter() - t

    for name in models:  # warm-up: lazy imports and first allocations
        step(name), step(name)
    times = {name: [] for name in models}
    for r in range(rounds):
        for name in (("seed", "nanoGPT") if r % 2 == 0 else ("nanoGPT", "seed")):
            times[name].append(step(name))
    tokens = BATCH * SIZE["block_size"]
    return {name: {"median_ms": 1e3 * statistics.median(t), "min_ms": 1e3 * min(t),
                   "tokens_per_s_at_median": tokens / statistics.median(t)}
            for name, t in times.items()}


def harness_figures(tree: Path, budget_s: float, seed: int, data_root: Path) -> dict | None:
    """Our seed once more through the engine's own harness (its own training run, its own
    validation scoring in a sandboxed model server), where that exists yet."""
    try:
        from darwin_git.harness import EvalSpec
        from darwin_git.harness import evaluate as harness_evaluate
        from darwin_git.run.local import LocalSandbox
    except ImportError as exc:
        return {"skipped": f"darwin_git.harness.evaluate not available: {exc}"}
    result = harness_evaluate(tree, LocalSandbox(), EvalSpec(budget_s=budget_s, seed=seed,
                                                             data_root=data_root))
    keys = ("status", "cause", "val_loss", "perplexity", "tokens_per_s", "mfu", "params",
            "train_wall_s", "reported")
    return {k: result.get(k) for k in keys} | {"load_after": load_avg()}


def table(rows: list[dict]) -> str:
    head = ("| system | seed | steps | tokens | train s | tokens/s | median step ms | val loss "
            "| ppl | process wall s | process CPU s | load avg before |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['seed']} | {r['steps']} | {r['tokens']} | {r['train_s']:.1f} "
            f"| {r['tokens_per_s']:.0f} | {1e3 * r['step_s_median']:.0f} "
            f"| {r['val_loss']:.4f} | {r['perplexity']:.3f} "
            f"| {r['process_wall_s']:.1f} | {r['process_cpu_s']:.1f} | {r['load_before']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seed wall-clock budget (s)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--nanogpt-git", type=Path, default=DEFAULT_NANOGPT,
                    help="bare git dir of karpathy/nanoGPT (exported to a temp folder)")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="where prepare('char') writes the token files (default: temp)")
    ap.add_argument("--match", choices=("wall", "steps"), default="wall",
                    help="wall: nanoGPT gets the seed's training time (calibrated max_iters); "
                         "steps: nanoGPT gets the seed's step count (same tokens)")
    ap.add_argument("--ab-rounds", type=int, default=20,
                    help="interleaved in-process steps per model before the runs (0: skip)")
    ap.add_argument("--no-harness", dest="harness", action="store_false",
                    help="skip the extra seed run through darwin_git.harness.evaluate")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here")
    args = ap.parse_args(argv)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="seed-vs-nanogpt-") as tmp:
        work = Path(tmp)
        data_root = args.data_root or work / "data"
        data = prepare("char", data_root)
        windows = val_windows(load_tokens(data.val_dir, "val"), EVAL_WINDOWS, EVAL_CONTEXT)
        tree = work / "seed"
        shutil.copytree(SEED_REPO, tree, ignore=shutil.ignore_patterns("__pycache__"))
        nano = export_nanogpt(args.nanogpt_git, work / "nanogpt")
        write_nanogpt_data(nano, data.train_dir, data.val_dir)
        nano_rev = subprocess.run(["git", f"--git-dir={args.nanogpt_git}", "rev-parse", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()

        ab = None
        if args.ab_rounds:
            ab = interleaved_step_ms(tree, nano, load_meta(data.train_dir)["vocab_size"],
                                     args.ab_rounds)
            ab["load"] = load_avg()
            print(f"interleaved steps: {json.dumps(ab)}", flush=True)
        rows = []
        for r in range(args.repeats):
            s = run_seed(tree, data.train_dir, work / f"seed-out-{r}", args.budget, seed=r)
            s.update(evaluate(load_seed_model(tree, Path(s["ckpt"])), windows))
            rows.append(s)
            print(table([s]).splitlines()[-1], flush=True)
            if args.match == "steps":
                iters = max(10, s["steps"])  # its schedule needs warmup < max_iters
            else:  # the machine's load drifts: measure nanoGPT's step time right before
                step_s = calibrate_nanogpt(nano, work / f"calibrate-{r}")
                iters = max(10, round(s["train_s"] / step_s) - 1)  # it runs iters + 1 steps
            n = run_nanogpt(nano, work / f"nanogpt-out-{r}", iters, eval_interval=iters)
            n.update(evaluate(load_nanogpt_model(nano, Path(n["ckpt"])), windows))
            rows.append(n)
            print(table([n]).splitlines()[-1], flush=True)
        harness = harness_figures(tree, args.budget, 0, data_root) if args.harness else None

    print()
    print(f"match {args.match}, budget {args.budget:.0f}s, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, nanoGPT {nano_rev[:12]}, "
          f"eval {EVAL_WINDOWS}x{EVAL_CONTEXT} val windows")
    print(table(rows))
    for system in ("seed", "nanoGPT"):
        mine = [r for r in rows if r["system"] == system]
        if not mine:
            continue
        print(f"{system}: mean val loss {statistics.mean(r['val_loss'] for r in mine):.4f}, "
              f"mean tokens/s {statistics.mean(r['tokens_per_s'] for r in mine):.0f}, "
              f"tokens per process CPU-s "
              f"{statistics.mean(r['tokens'] / r['process_cpu_s'] for r in mine):.0f}")
    if ab is not None:
        for name in ("seed", "nanoGPT"):
            print(f"{name}: interleaved in-process step {ab[name]['median_ms']:.1f} ms median, "
                  f"{ab[name]['min_ms']:.1f} ms min "
                  f"({ab[name]['tokens_per_s_at_median']:.0f} tokens/s at the median), "
                  f"load {ab['load']}")
    if harness is not None:
        print(f"seed through darwin_git.harness.evaluate: {json.dumps(harness)}")
    if args.json:
        for row in rows:
            row.pop("ckpt", None)
        args.json.write_text(json.dumps(
            {"budget_s": args.budget, "match": args.match, "nanogpt_rev": nano_rev,
             "torch": torch.__version__, "rows": rows, "interleaved": ab,
             "harness": harness}, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
