"""How many behaviour-free changes the loop promotes beside a bursty torch neighbour (issue 22).

The real loop (evolve.loop.Evolution, the local sandbox, evolve's default layout: two runs at
once, one CPU thread each) on a fresh population of seed_repo, with a mutator that only makes
behaviour-free changes (a comment appended to train.py, a different one every time): every
child trains exactly as its parent does, so every promotion is a false one. Beside the run, a
bursty torch neighbour: seed_repo/train.py run directly (no sandbox), training for --burst
seconds, then idle for as long, over and over, so the machine's load changes under the runs.
Printed: children, how many passed the screen, pairs run, promotions, the noise floor's paired
spread and the smallest effect it lets acceptance see, and the load.

    .venv/bin/python benchmarks/neutral_promotions.py --budget 20 --generations 5 --agents 4
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git import data  # noqa: E402
from darwin_git.create import init_population  # noqa: E402
from darwin_git.evolve.loop import Evolution  # noqa: E402
from darwin_git.harness.executor import LocalExecutor  # noqa: E402
from darwin_git.mutate.base import Mutation, Mutator  # noqa: E402
from darwin_git.population.journal import Journal  # noqa: E402
from darwin_git.progress import LineSink  # noqa: E402
from darwin_git.run.local import LocalSandbox  # noqa: E402
from darwin_git.settings import EvolveSettings  # noqa: E402

from load import load_avg  # noqa: E402  (benchmarks/load.py)


class Comments(Mutator):
    """Behaviour-free changes only: a new comment line at the end of train.py."""
    name = "comments"

    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def propose(self, ctx):
        with self.lock:
            self.n += 1
            n = self.n
        return Mutation(summary=f"Comment {n}", reasoning="A behaviour-free change.",
                        changes={"train.py": ctx.files["train.py"] + f"# note {n}\n"},
                        operator="comment", mutator=self.name)


class BurstyNeighbour:
    """seed_repo's training outside any sandbox, --burst seconds on, as long off, repeated."""

    def __init__(self, burst: float, work: Path):
        self.burst, self.work = burst, work
        self.stop = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        paths = data.prepare("char", None)
        env = {**os.environ, "DARWIN_DATA": str(paths.train_dir), "DARWIN_BUDGET_CLOCK": "wall",
               "DARWIN_BUDGET_S": f"{self.burst:g}", "DARWIN_SEED": "7",
               "DARWIN_OUT": str(self.work), "OMP_NUM_THREADS": "1"}
        while not self.stop.is_set():
            env["DARWIN_BUDGET_START"] = f"{time.time():.3f}"
            self.proc = subprocess.Popen([sys.executable, "train.py"], cwd=ROOT / "seed_repo",
                                         env=env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            self.proc.wait()
            self.stop.wait(self.burst)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--generations", type=int, default=5)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--burst", type=float, default=10.0, help="seconds on, then as many off")
    ap.add_argument("--no-neighbour", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="neutral-"))
    pop = init_population(work / "run" / "population", agents=args.agents, hooks=False)
    s = EvolveSettings(generations=args.generations, budget_s=args.budget, clock="cpu",
                       slots=2, pairing="ring", preflight_s=0, headline_pairs=0,
                       max_empty_generations=0)
    executor = LocalExecutor(pop.path, LocalSandbox(), slots=2, work_root=work / "jobs")
    started, loads = time.time(), [load_avg()]
    neighbour = BurstyNeighbour(args.burst, work / "neighbour") if not args.no_neighbour \
        else None
    try:
        if neighbour:
            neighbour.__enter__()
        Evolution(pop, s, executor, Comments(), LineSink()).run()
    finally:
        if neighbour:
            neighbour.__exit__(None, None, None)
        executor.shutdown()
    loads.append(load_avg())
    records = Journal(pop.repo).records()
    done = [r for r in records if r.get("phase") == "done"]
    verdicts = [v for r in done for v in r.get("verdicts", [])]
    noise = next(r for r in records if r.get("phase") == "noise")
    summary = {
        "budget_s": args.budget, "generations": args.generations, "agents": args.agents,
        "neighbour": None if args.no_neighbour else f"torch training, {args.burst:g} s on/off",
        "children": len(verdicts),
        "passed_screen": sum(1 for v in verdicts if v["n"] > 1),
        "promoted": sum(1 for v in verdicts if v["action"] == "promote"),
        "void": sum(1 for v in verdicts if v["action"] == "void"),
        "evaluations": sum(r.get("evaluations_run", 0) for r in done),
        "paired_sigma": noise.get("paired_sigma"), "mde": noise.get("mde"),
        "sigma": noise.get("sigma"), "wall_s": round(time.time() - started),
        "load": loads, "reasons": [v["reason"] for v in verdicts if v["n"] > 1]}
    print(json.dumps(summary, indent=1))
    print(f"\n| budget | neighbour | behaviour-free children | passed the screen | promoted | "
          f"paired σ (A/A) | smallest effect | evaluations | wall |\n|---|---|---|---|---|---|"
          f"---|---|---|\n| {args.budget:g} s | {summary['neighbour']} | {summary['children']} | "
          f"{summary['passed_screen']} | {summary['promoted']} | "
          f"{summary['paired_sigma'] or float('nan'):.4f} | {summary['mde'] or float('nan'):.4f}"
          f" | {summary['evaluations']} | {summary['wall_s']} s |")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
