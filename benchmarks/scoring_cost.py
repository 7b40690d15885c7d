"""What scoring costs per evaluation, before and after harness 2, sealed (harness 4: the
scoring pass, the audit step, the bench), and how precise it is.

1. Trains the default seed twice (two DARWIN_SEEDs, the cpu clock, --budget CPU seconds) as a
   plain subprocess, keeping both checkpoints.
2. Cost. In this process, with the model server's thread count (flops.eval_threads()), the
   forward work of one evaluation under each protocol, median of --repeats:
   - before (harness 1): 128 windows x context, every position scored, 8 windows a forward,
     8 probe rows shuffled in (17 forwards, full logits back);
   - after (harness 2): --windows x --cuts cut points, W/2 rows a forward, 2K forwards +
     --probes, rows as long as the request's longest real prefix, logits at one position a row.
   Then the whole of scoring through the real harness (score_checkpoint in a LocalSandbox: the
   scoring pass's step, and the audit's step with its FLOP count, bench, re-scored sample and
   probe), with and without the bench, in CPU seconds of both steps (the sandbox's count, the
   run's clock) and wall seconds. Each as a share of --share-of seconds (a 60 s run). Also the
   scoring pass's measured allowance against what it used: the compute a model could spend
   there beyond its honest forwards (harness/allowance.py).
3. Precision: the paired difference of the two checkpoints' val_loss and its standard error,
   from per-token losses (se from per-window mean differences: tokens of one window are not
   independent), for the new protocol's scored tokens and for the old protocol's.

Measured, not asserted: run it on a quiet machine; the load average is printed with every
number. Smoke run (seconds, not meaningful):

    .venv/bin/python benchmarks/scoring_cost.py --budget 5 --windows 32 --cuts 4 --repeats 1
    .venv/bin/python benchmarks/scoring_cost.py --budget 60 --json scoring_cost.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from darwin_git import data  # noqa: E402
from darwin_git.contract import load_contract  # noqa: E402
from darwin_git.harness import EvalSpec, score_checkpoint  # noqa: E402
from darwin_git.harness.flops import eval_threads  # noqa: E402
from darwin_git.harness.scoring import paired_se  # noqa: E402
from darwin_git.run.local import LocalSandbox  # noqa: E402

SEED_REPO = REPO / "seed_repo"
OLD_WINDOWS, OLD_PER_FORWARD, OLD_PROBES = 128, 8, 8


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def train(tree: Path, out: Path, train_dir: Path, budget: float, seed: int) -> dict:
    out.mkdir(parents=True)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": str(out), "DARWIN_DATA": str(train_dir), "DARWIN_OUT": str(out),
           "DARWIN_BUDGET_S": str(budget), "DARWIN_BUDGET_CLOCK": "cpu", "DARWIN_DEVICE": "cpu",
           "DARWIN_SEED": str(seed), "OMP_WAIT_POLICY": "PASSIVE"}
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    proc = subprocess.run([sys.executable, "train.py"], cwd=tree, env=env, capture_output=True,
                          text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"seed {seed} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    steps = [ln for ln in proc.stdout.splitlines() if ln.startswith("steps: ")]
    return {"seed": seed, "steps": int(steps[-1].split()[1]) if steps else None,
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
            "wall_s": round(time.monotonic() - t0, 2), "ckpt": out / "ckpt.pt"}


def load_model(tree: Path, ckpt_path: Path):
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    contract = load_contract(tree)
    spec = importlib.util.spec_from_file_location(f"m{id(ckpt)}", tree / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, contract.model_function)(ckpt["model_config"])
    model.load_state_dict(ckpt["model"], strict=True)
    return model.eval()


def logits_of(model, idx: torch.Tensor) -> torch.Tensor:
    out = model(idx)
    return out[0] if isinstance(out, (tuple, list)) else out


def old_workload(model, windows: np.ndarray) -> torch.Tensor:
    """Harness 1's forwards: every window once (8 a forward), 8 probe rows among them; the
    per-token losses of the scored windows (W, T)."""
    x = torch.from_numpy(windows[:, :-1])
    y = torch.from_numpy(windows[:, 1:])
    rows = torch.cat([x, x[:OLD_PROBES]])  # the probes cost a row each
    losses = []
    with torch.no_grad():
        for start in range(0, len(rows), OLD_PER_FORWARD):
            lg = logits_of(model, rows[start : start + OLD_PER_FORWARD]).float()
            if start < len(x):
                n = min(OLD_PER_FORWARD, len(x) - start)
                losses.append(torch.nn.functional.cross_entropy(
                    lg[:n].flatten(0, 1), y[start : start + n].flatten(), reduction="none")
                    .view(n, -1))
    return torch.cat(losses)


def new_workload(model, windows: np.ndarray, cuts: np.ndarray, probes: int, vocab: int) -> int:
    """Harness 2's forwards: two halves, one request per cut index, rows as long as the longest
    real prefix, filler after each row's cut, logits at the cut only (+ probes: requests
    repeated, here the middle cut's). Returns the tokens forwarded."""
    rng = np.random.default_rng(0)
    W = len(windows)
    halves = (np.arange(W // 2), np.arange(W // 2, W))
    requests = [(h, j) for h in halves for j in range(cuts.shape[1])]
    requests += [(halves[0], cuts.shape[1] // 2)] * probes
    forwarded = 0
    with torch.no_grad():
        for rows, j in requests:
            c = cuts[rows, j]
            x = windows[rows, : int(c.max()) + 1].copy()
            after = np.arange(x.shape[1])[None, :] > c[:, None]
            x[after] = rng.integers(0, vocab, size=int(after.sum()))
            lg = logits_of(model, torch.from_numpy(x))
            lg[torch.arange(len(rows)), torch.from_numpy(c)].float()
            forwarded += x.size
    return forwarded


def timed(fn, repeats: int) -> float:
    """CPU seconds of ``fn`` (median of ``repeats``): the run's clock, which load does not
    stretch (the workloads run on eval_threads() threads)."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=60.0, help="CPU seconds of training")
    ap.add_argument("--seeds", type=int, nargs=2, default=(0, 1))
    ap.add_argument("--windows", type=int, default=EvalSpec.windows)
    ap.add_argument("--cuts", type=int, default=EvalSpec.cuts)
    ap.add_argument("--probes", type=int, default=EvalSpec.probes)
    ap.add_argument("--repeats", type=int, default=3, help="timings per workload (median)")
    ap.add_argument("--share-of", type=float, default=60.0, help="seconds of a run")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="scoring-cost-"))
    try:
        root = work / "data"
        paths = data.prepare("char", root)
        tree = work / "tree"
        shutil.copytree(SEED_REPO, tree, ignore=shutil.ignore_patterns("__pycache__"))
        context = load_contract(tree).eval_context
        vocab = data.load_meta(paths.val_dir)["vocab_size"]
        report = {"load_before": load_avg(), "cores": os.cpu_count(),
                  "eval_threads": eval_threads(), "context": context,
                  "windows": args.windows, "cuts": args.cuts, "probes": args.probes}
        runs = [train(tree, work / f"out{s}", paths.train_dir, args.budget, s) for s in args.seeds]
        report["training"] = [{k: v for k, v in r.items() if k != "ckpt"} for r in runs]

        torch.set_num_threads(eval_threads())
        val = data.load_tokens(paths.val_dir, "val")
        old_windows = data.val_windows(val, OLD_WINDOWS, context)
        new_windows = data.val_windows(val, args.windows, context)
        cuts = data.cut_points(args.windows, args.cuts, context)
        models = [load_model(tree, r["ckpt"]) for r in runs]
        cost = {"before_forward_s": timed(lambda: old_workload(models[0], old_windows),
                                          args.repeats),
                "after_forward_s": timed(lambda: new_workload(models[0], new_windows, cuts,
                                                              args.probes, vocab),
                                         args.repeats),
                "before_tokens_forwarded": (OLD_WINDOWS + OLD_PROBES) * context,
                "after_tokens_forwarded": new_workload(models[0], new_windows, cuts,
                                                       args.probes, vocab),
                "before_forwards": math.ceil((OLD_WINDOWS + OLD_PROBES) / OLD_PER_FORWARD),
                "after_forwards": 2 * args.cuts + args.probes}  # (harness 2's probes)
        spec = EvalSpec(data_root=root, windows=args.windows, cuts=args.cuts, probes=args.probes)
        scored = []
        for r in runs:
            full = score_checkpoint(tree, r["ckpt"], LocalSandbox(), spec)
            bare = score_checkpoint(tree, r["ckpt"], LocalSandbox(), replace(spec, bench=False))
            if "cause" in full or "cause" in bare:
                raise SystemExit(f"scoring failed: {full.get('cause')} {bare.get('cause')}")
            scored.append(bare)
            cost.setdefault("after_eval_step_s", []).append(full["eval_wall_s"])
            cost.setdefault("after_eval_step_no_bench_s", []).append(bare["eval_wall_s"])
            cost.setdefault("sealed_cpu_s", []).append(full["eval_cpu_s"])
            cost.setdefault("sealed_cpu_no_bench_s", []).append(bare["eval_cpu_s"])
            cost.setdefault("sealed_steps_cpu_s", []).append(full["eval_steps_cpu_s"])
            cost.setdefault("allowance", []).append(
                {"allowed_s": round(full["eval_allowance_s"], 3),
                 "used_s": round(full["eval_used_s"], 3),
                 "free_s": round(full["eval_allowance_s"] - full["eval_used_s"], 3)})
            cost.setdefault("audit", []).append(full["audit"])
        for key in ("before_forward_s", "after_forward_s"):
            cost[key.replace("_s", "_share")] = round(cost[key] / args.share_of, 4)
        cost["after_eval_step_share"] = round(
            statistics.median(cost["after_eval_step_s"]) / args.share_of, 4)
        cost["sealed_cpu_share"] = round(
            statistics.median(cost["sealed_cpu_s"]) / args.share_of, 4)
        report["cost"] = cost

        new_diff, new_se = paired_se(scored[0]["token_losses"], scored[1]["token_losses"])
        old_losses = [old_workload(m, old_windows).numpy() for m in models]
        old_diff, old_se = paired_se(*old_losses)
        token_sd = float(np.std(scored[0]["token_losses"] - scored[1]["token_losses"], ddof=1))
        report["precision"] = {
            "val_loss": [round(s["val_loss"], 4) for s in scored],
            "after_scored_tokens": int(scored[0]["token_losses"].size),
            "after_paired_diff": round(new_diff, 4), "after_paired_se": round(new_se, 4),
            "after_token_diff_sd": round(token_sd, 4),
            "before_scored_tokens": int(old_losses[0].size),
            "before_paired_diff": round(old_diff, 4), "before_paired_se": round(old_se, 4)}
        report["load_after"] = load_avg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"# Scoring cost and precision (load {report['load_before']} -> {report['load_after']}, "
          f"{report['cores']} cores, server threads {report['eval_threads']})\n")
    for t in report["training"]:
        print(f"- seed {t['seed']}: {t['steps']} steps, {t['cpu_s']} CPU s, {t['wall_s']} s wall")
    c, p = report["cost"], report["precision"]
    print("\n| protocol | forwards | tokens forwarded | forward CPU s (median) | share of "
          f"{args.share_of:g} s | scored tokens | paired diff | se |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| before (harness 1) | {c['before_forwards']} | {c['before_tokens_forwarded']} | "
          f"{c['before_forward_s']:.3f} | {c['before_forward_share']:.1%} | "
          f"{p['before_scored_tokens']} | {p['before_paired_diff']} | {p['before_paired_se']} |")
    print(f"| after (harness 2) | {c['after_forwards']} | {c['after_tokens_forwarded']} | "
          f"{c['after_forward_s']:.3f} | {c['after_forward_share']:.1%} | "
          f"{p['after_scored_tokens']} | {p['after_paired_diff']} | {p['after_paired_se']} |")
    print(f"\nWhole of scoring through the harness (harness 4: the scoring pass's step and the "
          f"audit's, with the bench): {c['sealed_cpu_s']} CPU s, "
          f"{c['sealed_cpu_share']:.1%} of {args.share_of:g} s (by step: "
          f"{c['sealed_steps_cpu_s']}); without the bench {c['sealed_cpu_no_bench_s']} CPU s; "
          f"wall {c['after_eval_step_s']} s (without the bench "
          f"{c['after_eval_step_no_bench_s']} s). The scoring pass's allowance against its use: "
          f"{c['allowance']}; the audits: {c['audit']}. Per-token sd of the paired "
          f"difference: {p['after_token_diff_sd']}. val_loss of the two checkpoints: "
          f"{p['val_loss']}.")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
