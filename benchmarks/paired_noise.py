"""The paired difference between a tree and itself (A/A) and a nearly neutral change (A/B), run
side by side as evolve's pairs run, with 0, 1 or 2 torch training jobs beside the pair (issue 22).

Each pair is two evaluations through the engine's harness (evaluate() in the local sandbox, one
CPU thread each, as evolve's default layout on 2 cores), started together in two threads at the
same training seed. A/A: the seed twice; A/B: the seed and the seed with --change applied. The
neighbours are real torch training processes (seed_repo/train.py outside any sandbox, looping)
started before the pairs and killed after. Printed per neighbour count: the mean and standard
deviation of the paired difference (first minus second), its mean in units of that sd, the
optimizer steps each side made, and the unpaired gap: the same tree and seed measured beside
N neighbours minus measured with none (what reusing a value measured under other conditions
compares), in units of the A/A sd.

    .venv/bin/python benchmarks/paired_noise.py --budget 20 --seeds 4 --neighbours 0,1,2
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git import data  # noqa: E402
from darwin_git.harness import EvalSpec, evaluate  # noqa: E402
from darwin_git.run.local import LocalSandbox  # noqa: E402

from load import load_avg  # noqa: E402  (benchmarks/load.py)


def one(tree: Path, budget: float, seed: int, out: list, i: int) -> None:
    r = evaluate(tree, LocalSandbox(), EvalSpec(budget_s=budget, clock="cpu", seed=seed,
                                                threads=1, bench=False))
    out[i] = {"status": r["status"], "cause": r.get("cause"), "val_loss": r.get("val_loss"),
              "steps": (r.get("train") or {}).get("steps"), "train_cpu_s": r.get("train_cpu_s"),
              "eval_cpu_s": r.get("eval_cpu_s"), "train_wall_s": r.get("train_wall_s")}


def pair(a: Path, b: Path, budget: float, seed: int) -> list[dict]:
    out: list = [None, None]
    threads = [threading.Thread(target=one, args=(t, budget, seed, out, i))
               for i, t in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


class Neighbours:
    """``n`` torch training loops beside the pairs: seed_repo/train.py run directly (no
    sandbox), over and over, one thread each, on the train split."""

    def __init__(self, n: int, budget: float, work: Path):
        self.n, self.budget, self.work = n, budget, work
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                        for i in range(n)]
        self.procs: list[subprocess.Popen] = []

    def _loop(self, i: int) -> None:
        paths = data.prepare("char", None)
        env = {**os.environ, "DARWIN_DATA": str(paths.train_dir), "DARWIN_BUDGET_S":
               f"{self.budget:g}", "DARWIN_BUDGET_CLOCK": "cpu", "DARWIN_SEED": str(100 + i),
               "DARWIN_OUT": str(self.work / f"n{i}"), "OMP_NUM_THREADS": "1",
               "OMP_WAIT_POLICY": "PASSIVE"}
        while not self.stop.is_set():
            p = subprocess.Popen([sys.executable, "train.py"], cwd=ROOT / "seed_repo", env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(p)
            p.wait()

    def __enter__(self):
        for t in self.threads:
            t.start()
        time.sleep(2 if self.n else 0)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for p in self.procs:
            p.kill()
            p.wait()


def diffs(rows: list[dict], kind: str, n: int) -> list[float]:
    return [r["d"] for r in rows if r["kind"] == kind and r["neighbours"] == n
            and r["d"] is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=ROOT / "seed_repo")
    ap.add_argument("--change", default="LEARNING_RATE = 2e-3->LEARNING_RATE = 2.02e-3",
                    help="OLD->NEW, a text replacement in train.py that makes the B tree")
    ap.add_argument("--budget", type=float, default=20.0, help="CPU seconds of each run")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--neighbours", default="0,1,2")
    ap.add_argument("--kinds", default="AA,AB")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--from-json", type=Path, help="only print the resolution of a saved run")
    args = ap.parse_args()
    if args.from_json:
        return _from_json(args.from_json)

    work = Path(tempfile.mkdtemp(prefix="paired-noise-"))
    a = args.tree
    b = work / "b"
    shutil.copytree(a, b)
    old, new = args.change.split("->")
    text = (b / "train.py").read_text()
    assert old in text, f"{old!r} is not in train.py"
    (b / "train.py").write_text(text.replace(old, new, 1))
    rows = []
    counts = [int(x) for x in args.neighbours.split(",")]
    kinds = args.kinds.split(",")
    started = time.time()
    for n in counts:
        with Neighbours(n, args.budget, work):
            for seed in range(args.seeds):
                for kind in kinds:
                    first, second = pair(a, a if kind == "AA" else b, args.budget, seed)
                    ok = all(r["status"] == "ok" for r in (first, second))
                    row = {"neighbours": n, "kind": kind, "seed": seed, "load": load_avg(),
                           "d": first["val_loss"] - second["val_loss"] if ok else None,
                           "first": first, "second": second}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"\nseed_repo at {args.budget:g} CPU s, pairs side by side (1 thread each), seeds "
          f"0..{args.seeds - 1}, {time.time() - started:.0f} s in all")
    aa0 = diffs(rows, "AA", counts[0])
    ref = {r["seed"]: r["first"]["val_loss"] for r in rows
           if r["kind"] == "AA" and r["neighbours"] == counts[0] and r["d"] is not None}
    print("| neighbours | kind | pairs | mean d | sd d | mean/sd | steps (first, second) | "
          "unpaired gap (vs no neighbours) |")
    print("|---|---|---|---|---|---|---|---|")
    for n in counts:
        for kind in kinds:
            d = diffs(rows, kind, n)
            sel = [r for r in rows if r["kind"] == kind and r["neighbours"] == n
                   and r["d"] is not None]
            steps = (statistics.fmean(r["first"]["steps"] or 0 for r in sel) if sel else 0,
                     statistics.fmean(r["second"]["steps"] or 0 for r in sel) if sel else 0)
            sd = statistics.stdev(d) if len(d) > 1 else float("nan")
            mean = statistics.fmean(d) if d else float("nan")
            gap = ""
            if kind == "AA" and n != counts[0]:
                g = [r["first"]["val_loss"] - ref[r["seed"]] for r in sel if r["seed"] in ref]
                aa_sd = statistics.stdev(aa0) if len(aa0) > 1 else float("nan")
                if g:
                    gap = f"{statistics.fmean(g):+.4f} ({statistics.fmean(g) / aa_sd:+.1f} σ_AA)"
            print(f"| {n} | {kind} | {len(d)} | {mean:+.4f} | {sd:.4f} | "
                  f"{mean / sd if sd == sd and sd else float('nan'):+.2f} | "
                  f"{steps[0]:.1f}, {steps[1]:.1f} | {gap} |")
    print(resolution(rows))
    if args.json:
        args.json.write_text(json.dumps({"budget_s": args.budget, "change": args.change,
                                         "rows": rows}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


def resolution(rows: list[dict], pairs: int = 3, confidence: float = 0.95) -> str:
    """The smallest effect each rule finds with 80% power, from these runs.

    before: the rule this replaced compared a child with parent values measured at another
    moment (whatever ran beside them then), by a paired t-test over 3 seeds of its own spread;
    the spread of such a difference for a tree against itself is the spread of one tree's
    value on one seed measured at two moments (the first run of each A/A pair, against the
    same seed's first run with another number of neighbours).
    after: pairs side by side against the spread of the A/A pairs (select.minimum_effect,
    its degrees of freedom as measured)."""
    from darwin_git.selection_rules import minimum_effect

    aa = [r for r in rows if r["kind"] == "AA" and r["d"] is not None]
    after = statistics.fmean(r["d"] ** 2 for r in aa) ** 0.5 if aa else None
    first: dict = {}
    for r in aa:
        first.setdefault(r["seed"], {})[r["neighbours"]] = r["first"]["val_loss"]
    gaps = [a - b for by_n in first.values() for i, a in enumerate(by_n.values())
            for b in list(by_n.values())[i + 1:]]
    before = statistics.fmean(g * g for g in gaps) ** 0.5 if gaps else None
    mde_after = minimum_effect(after, len(aa), pairs, confidence)
    mde_before = minimum_effect(before, pairs - 1, pairs, confidence)  # its own 3-seed sd
    return (f"\nsmallest effect found with 80% power at {confidence:.0%}, over {pairs} "
            f"seeds/pairs: before (unpaired in time, sd {before or float('nan'):.4f} from "
            f"{len(gaps)} differences, a t-test of its own 3 values) "
            f"{mde_before or float('nan'):.4f} nats; after (side by side, sd "
            f"{after or float('nan'):.4f} from {len(aa)} A/A pairs) "
            f"{mde_after or float('nan'):.4f} nats")


def _from_json(path: Path) -> None:
    data = json.loads(path.read_text())
    print(f"{path}: budget {data['budget_s']:g} s" + resolution(data["rows"]))


if __name__ == "__main__":
    main()
