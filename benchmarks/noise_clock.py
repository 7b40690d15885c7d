"""The seed's noise on each clock, idle and next to CPU-bound background processes (issue 11).

The default seed is evaluated on seeds 0..N-1 through the engine's own harness (evaluate() in a
LocalSandbox, one CPU thread as an evolve slot on a 2-core machine gets), once with the budget
on the wall clock (what the harness measured before) and once on the CPU clock (now the
default on CPU), the two clocks interleaved seed by seed so that drift hits both alike; first
idle, then with --hogs processes spinning `while True: pass`. Printed per condition: the mean
and standard deviation of val_loss over the seeds, the mean optimizer steps (as the training
reports them), and the ratios the issue sets targets for (loaded/idle σ ≤ 1.3, loaded/idle
steps ≥ 0.85 on the CPU clock).

    .venv/bin/python benchmarks/noise_clock.py --budget 20 --seeds 5 --hogs 2 --json noise.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git.harness import EvalSpec, evaluate  # noqa: E402
from darwin_git.run.local import LocalSandbox  # noqa: E402

from load import background_load, load_avg  # noqa: E402  (benchmarks/load.py)

CLOCKS = ("wall", "cpu")


def one(tree: Path, budget: float, clock: str, seed: int, threads: int) -> dict:
    t0 = time.monotonic()
    r = evaluate(tree, LocalSandbox(), EvalSpec(budget_s=budget, clock=clock, seed=seed,
                                                threads=threads, bench=False))
    train = r.get("train") or {}
    return {"clock": clock, "seed": seed, "status": r["status"], "cause": r.get("cause"),
            "val_loss": r.get("val_loss"), "steps": train.get("steps"),
            "train_wall_s": r.get("train_wall_s"), "train_cpu_s": r.get("train_cpu_s"),
            "total_s": round(time.monotonic() - t0, 1), "load": load_avg()}


def summary(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["status"] == "ok"]
    losses = [r["val_loss"] for r in ok]
    steps = [r["steps"] for r in ok if isinstance(r["steps"], (int, float))]
    return {"ok": len(ok), "runs": len(runs),
            "mean": statistics.fmean(losses) if losses else None,
            "sd": statistics.stdev(losses) if len(losses) > 1 else None,
            "steps": statistics.fmean(steps) if steps else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=ROOT / "seed_repo")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds of each clock")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--hogs", type=int, default=2, help="background processes when loaded")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of the training step")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    rows, table = [], {}
    for load in (0, args.hogs):
        with background_load(load):
            for seed in range(args.seeds):
                for clock in CLOCKS:
                    run = {"hogs": load, **one(args.tree, args.budget, clock, seed, args.threads)}
                    rows.append(run)
                    print(json.dumps(run), flush=True)
        for clock in CLOCKS:
            table[(load, clock)] = summary([r for r in rows
                                            if r["hogs"] == load and r["clock"] == clock])
    print(f"\nseed_repo, budget {args.budget:g} s of each clock, {args.threads} thread(s), "
          f"seeds 0..{args.seeds - 1}, loaded = {args.hogs} CPU hogs")
    print("| clock | load | ok | val_loss mean | σ | steps (mean) |")
    print("|---|---|---|---|---|---|")
    for (load, clock), s in table.items():
        print(f"| {clock} | {'idle' if not load else f'{load} hogs'} | {s['ok']}/{s['runs']} "
              f"| {s['mean'] or float('nan'):.4f} | {s['sd'] or float('nan'):.4f} "
              f"| {s['steps'] or float('nan'):.1f} |")
    ratios = {}
    for clock in CLOCKS:
        idle, loaded = table[(0, clock)], table[(args.hogs, clock)]
        ratios[clock] = {
            "sd_loaded_over_idle": (loaded["sd"] / idle["sd"]) if idle["sd"] and loaded["sd"]
            else None,
            "steps_loaded_over_idle": (loaded["steps"] / idle["steps"])
            if idle["steps"] and loaded["steps"] else None}
        print(f"{clock}: loaded/idle σ {ratios[clock]['sd_loaded_over_idle']}, "
              f"loaded/idle steps {ratios[clock]['steps_loaded_over_idle']}")
    if args.json:
        args.json.write_text(json.dumps({"budget_s": args.budget, "threads": args.threads,
                                         "hogs": args.hogs, "runs": rows,
                                         "summary": {f"{c}/{lo}": s for (lo, c), s in
                                                     table.items()},
                                         "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
