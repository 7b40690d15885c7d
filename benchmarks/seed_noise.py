"""The noise floor: the default seed evaluated several times on this machine, one seed each.

Every repeat goes through the engine's own path, darwin_git.harness.evaluate with a
LocalSandbox, at the seed's default budget, so the spread printed here is the spread selection
sees between two evaluations of the same code. Wall-clock budgets on a shared machine drift:
the load average is recorded before and after every repeat.

    .venv/bin/python benchmarks/seed_noise.py --budget 60 --repeats 3 --json noise.json
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from darwin_git.contract import load_contract  # noqa: E402
from darwin_git.harness import EvalSpec, evaluate  # noqa: E402
from darwin_git.run.local import LocalSandbox  # noqa: E402

SEED_REPO = REPO / "seed_repo"
METRICS = ("val_loss", "perplexity", "tokens_per_s", "mfu", "train_tokens_per_s", "steps")


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def one_run(tree: Path, budget_s: float, seed: int, grace_s: float | None, data_root,
            clock: str | None = None) -> dict:
    before = load_avg()
    t0 = time.monotonic()
    extra = {} if grace_s is None else {"wall_timeout_s": budget_s + grace_s}
    result = evaluate(tree, LocalSandbox(), EvalSpec(budget_s=budget_s, seed=seed, clock=clock,
                                                     data_root=data_root, **extra))
    reported = result.get("reported") or {}
    return {
        "seed": seed, "status": result["status"], "cause": result.get("cause"),
        "val_loss": result.get("val_loss"), "perplexity": result.get("perplexity"),
        "tokens_per_s": result.get("tokens_per_s"), "mfu": result.get("mfu"),
        # what train.py itself printed: the training loop's own rate and step count
        "train_tokens_per_s": reported.get("tokens_per_s"), "steps": reported.get("steps"),
        "params": result.get("params"), "train_wall_s": result.get("train_wall_s"),
        "total_s": round(time.monotonic() - t0, 1), "load_before": before,
        "load_after": load_avg(),
        "log_tail": None if result["status"] == "ok" else (result.get("log_tail") or "")[-600:],
    }


def spread(values: list[float]) -> dict:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values), "max": max(values),
            "range": max(values) - min(values),
            "rel_std": std / mean if mean else math.nan}


def fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and x.is_integer() and abs(x) >= 1:
        return str(int(x))
    if isinstance(x, float) and abs(x) < 1:
        return f"{x:.4g}"
    return f"{x:.4f}" if isinstance(x, float) and abs(x) < 100 else f"{x:.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=SEED_REPO, help="the tree to repeat")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds (default: the tree's darwin.toml budget)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="repeats use seeds n, n+1, ...")
    ap.add_argument("--grace", type=float, default=None,
                    help="the wall-clock safety net, in wall seconds after the budget "
                         "(default: the harness's, harness/spec.py wall_net)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default=None,
                    help="the budget's clock (default: the tree's, else cpu on CPU)")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    budget = args.budget if args.budget is not None else load_contract(args.tree).budget_s

    runs = []
    for i in range(args.repeats):
        run = one_run(args.tree, budget, args.first_seed + i, args.grace, args.data_root,
                      args.clock)
        runs.append(run)
        print(json.dumps({k: v for k, v in run.items() if k != "log_tail"}), flush=True)
        if run["log_tail"]:
            print(run["log_tail"], file=sys.stderr)

    ok = [r for r in runs if r["status"] == "ok"]
    stats = {m: spread([r[m] for r in ok]) for m in METRICS
             if ok and all(isinstance(r[m], (int, float)) for r in ok)}
    print(f"\nbudget {budget:g}s, {len(ok)}/{len(runs)} ok")
    print("| seed | status | val loss | ppl | tokens/s (harness) | MFU | tokens/s (train) "
          "| steps | load before | load after |")
    print("|" + "---|" * 10)
    for r in runs:
        print(f"| {r['seed']} | {r['status']} | {fmt(r['val_loss'])} | {fmt(r['perplexity'])} "
              f"| {fmt(r['tokens_per_s'])} | {fmt(r['mfu'])} | {fmt(r['train_tokens_per_s'])} "
              f"| {fmt(r['steps'])} | {r['load_before']} | {r['load_after']} |")
    print("\n| metric | mean | std | min | max | max-min | std/mean |")
    print("|" + "---|" * 7)
    for m, s in stats.items():
        print(f"| {m} | {fmt(s['mean'])} | {fmt(s['std'])} | {fmt(s['min'])} | {fmt(s['max'])} "
              f"| {fmt(s['range'])} | {s['rel_std']:.2%} |")
    if args.json:
        args.json.write_text(json.dumps({"budget_s": budget, "runs": runs, "stats": stats},
                                        indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
