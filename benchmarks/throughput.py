"""Evaluation throughput (evaluations per hour) with 1 and 2 slots, through the local executor
and through Ray, plus slot utilisation during a short evolve (see throughput.md).

Throughput: --jobs evaluations of the bundled seed (different training seeds, so no cache hit)
go to the executor at once; evals/h = jobs / (wall from first submit to last result).
Utilisation: an evolve of --population agents for --generations generations; busy = the
executor's busy_seconds() (slot-seconds spent inside jobs), train = the sum of the harness's
train_wall_s; both divided by slots x the evolve's wall time.

    .venv/bin/python benchmarks/throughput.py --budget 15 --jobs 4 --json /tmp/throughput.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git.create import init_population  # noqa: E402
from darwin_git.evolve.loop import Evolution  # noqa: E402
from darwin_git.harness.executor import Job, LocalExecutor  # noqa: E402
from darwin_git.mutate.operators import BuiltinMutator  # noqa: E402
from darwin_git.population import Population  # noqa: E402
from darwin_git.progress import Sink  # noqa: E402
from darwin_git.run.local import LocalSandbox  # noqa: E402
from darwin_git.settings import EvolveSettings  # noqa: E402


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def make_executor(kind: str, pop_path: Path, slots: int, work: Path):
    if kind == "local":
        ex = LocalExecutor(pop_path, LocalSandbox(), slots=slots, work_root=work / "jobs")
        ex.runner = "local"
        return ex
    from darwin_git.harness.ray_executor import RayExecutor
    return RayExecutor(pop_path, runner="local", slots=slots, work_root=work / "jobs")


def throughput(kind: str, pop: Population, slots: int, jobs: int, budget: float, clock: str,
               work: Path) -> dict:
    tip = str(next(iter(pop.agents().values())))
    ex = make_executor(kind, pop.path, slots, work)
    before = load()
    t0 = time.monotonic()
    futures = [ex.submit(Job(tip, budget, seed=100 + i, clock=clock)) for i in range(jobs)]
    results = [f.result() for f in futures]
    wall = time.monotonic() - t0
    busy = ex.busy_seconds()
    ex.shutdown()
    ok = [r for r in results if r["status"] == "ok"]
    return {"executor": kind, "slots": slots, "jobs": jobs, "ok": len(ok),
            "statuses": sorted(f"{r['status']}/{r['cause']}" for r in results if r not in ok),
            "wall_s": round(wall, 1), "evals_per_hour": round(jobs / wall * 3600, 1),
            "busy_fraction": round(busy / (slots * wall), 3),
            "train_fraction": round(sum(r.get("train_wall_s") or 0 for r in results)
                                    / (slots * wall), 3),
            "mean_eval_s": round(busy / jobs, 1),
            "mean_val_loss": round(statistics.fmean(r["val_loss"] for r in ok), 4) if ok else None,
            "mean_steps": round(statistics.fmean((r.get("reported") or {}).get("steps", 0)
                                                 for r in ok), 1) if ok else None,
            "uptime_before": before, "uptime_after": load()}


def warm_up(kind: str, pop: Population, clock: str, work: Path) -> None:
    """One short uncounted evaluation: data preparation, page cache, Ray's first worker."""
    tip = str(next(iter(pop.agents().values())))
    ex = make_executor(kind, pop.path, 1, work)
    ex.submit(Job(tip, 2.0, seed=99, clock=clock)).result()
    ex.shutdown()


class Quiet(Sink):
    def __init__(self):
        self.events = []

    def emit(self, event):
        self.events.append((time.monotonic(), event))


def utilisation(kind: str, work: Path, population: int, generations: int, slots: int,
                budget: float, clock: str) -> dict:
    pop = init_population(work / f"evolve-{kind}" / "population", agents=population)
    ex = make_executor(kind, pop.path, slots, work)
    settings = EvolveSettings(generations=generations, budget_s=budget, clock=clock,
                              noise_repeats=slots, slots=slots)
    sink, before = Quiet(), load()
    t0 = time.monotonic()
    Evolution(pop, settings, ex, BuiltinMutator(), sink).run()
    wall = time.monotonic() - t0
    busy = ex.busy_seconds()
    ex.shutdown()
    results = [r for c in {str(pop.commit(e["commit"]).id) for _, e in sink.events
                           if e.get("event") == "evaluated" and not e.get("cached")}
               for r in pop.records(c, "result")]
    evaluated = sum(1 for _, e in sink.events if e.get("event") == "evaluated"
                    and not e.get("cached"))
    return {"executor": kind, "slots": slots, "population": population,
            "generations": generations, "evaluations": evaluated, "wall_s": round(wall, 1),
            "busy_fraction": round(busy / (slots * wall), 3),
            "train_fraction": round(sum(r.get("train_wall_s") or 0 for r in results)
                                    / (slots * wall), 3),
            "uptime_before": before, "uptime_after": load()}


def start_ray(work: Path) -> None:
    import ray
    os.environ.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _temp_dir=str(work / "ray"),
             log_to_driver=False, logging_level="WARNING")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=15.0, help="training seconds per evaluation")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="the budget's clock, for the jobs and the evolve alike")
    ap.add_argument("--jobs", type=int, default=4, help="evaluations per throughput figure")
    ap.add_argument("--executors", default="local,ray")
    ap.add_argument("--slots", default="1,2")
    ap.add_argument("--evolve-population", type=int, default=4)
    ap.add_argument("--evolve-generations", type=int, default=1)
    ap.add_argument("--no-evolve", action="store_true", help="skip the utilisation figure")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    os.environ.setdefault("DARWIN_PEAK_FLOPS", "1e11")  # no CPU matmul probe per evaluation
    work = Path(tempfile.mkdtemp(prefix="dtp-"))  # short: Ray's socket paths must fit
    os.chmod(work, 0o755)
    kinds = args.executors.split(",")
    out = {"machine": {"cpus": os.cpu_count(), "uptime_start": load()},
           "budget_s": args.budget, "clock": args.clock, "throughput": [], "utilisation": []}
    try:
        if "ray" in kinds:
            start_ray(work)
        pop = init_population(work / "tp" / "population", agents=1)
        for kind in kinds:
            warm_up(kind, pop, args.clock, work)
            for slots in map(int, args.slots.split(",")):
                row = throughput(kind, pop, slots, args.jobs, args.budget, args.clock, work)
                out["throughput"].append(row)
                print(json.dumps(row), flush=True)
            if not args.no_evolve:
                row = utilisation(kind, work, args.evolve_population, args.evolve_generations,
                                  max(map(int, args.slots.split(","))), args.budget,
                                  args.clock)
                out["utilisation"].append(row)
                print(json.dumps(row), flush=True)
    finally:
        if "ray" in kinds:
            import ray
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    for kind in kinds:
        rows = {r["slots"]: r for r in out["throughput"] if r["executor"] == kind}
        if 1 in rows and 2 in rows:
            speedup = rows[2]["evals_per_hour"] / rows[1]["evals_per_hour"]
            out.setdefault("speedup_2_over_1", {})[kind] = round(speedup, 2)
    print(json.dumps({k: out[k] for k in ("machine", "budget_s", "clock")} |
                     {"speedup_2_over_1": out.get("speedup_2_over_1")}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
