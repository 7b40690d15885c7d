"""Neutral and planted changes through the acceptance rule (issue 11, "Measure"): what min_effect
must be, measured.

Every variant is a child of the seed (a commit of a throw-away population repo) and is trained
on the rule's seeds (0 .. --seeds-1) through the engine's executor, like the seed itself; then
darwin_git.select.decide, the function the loop calls, gives the verdict the loop would reach
(it reads the seeds in order and stops where the loop stops). Printed per variant: the per-seed
differences child - seed, the verdict and its reason, and the optimizer steps reported.

- neutral: behaviour-free changes (a comment added, a local renamed): the spread of their
  per-seed differences (sd_d) is the jitter min_effect must stand above; none should be
  promoted.
- planted: NAME=VALUE settings of train.py (e.g. "LEARNING_RATE=3e-3") believed to help at
  this budget; most should be promoted.

--load N starts N CPU-bound background processes for the whole measurement (the "loaded"
condition). Run it on a quiet machine, once idle and once loaded, per clock:

    .venv/bin/python benchmarks/acceptance.py --budget 20 --clock cpu --neutral 10 \\
        --planted LEARNING_RATE=3e-3 --load 2 --json /tmp/acceptance.json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git.fitness import too_short  # noqa: E402
from darwin_git.mutate.base import Mutation  # noqa: E402
from darwin_git.population import init_population  # noqa: E402
from darwin_git.run.executor import Job, LocalExecutor  # noqa: E402
from darwin_git.run.local import LocalSandbox  # noqa: E402
from darwin_git.select import AcceptanceRule, decide  # noqa: E402

RENAMES = ("last_loss", "step_s", "tokens", "train_start", "deadline")


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def hog() -> None:
    while True:
        pass


def neutral(train: str, i: int) -> tuple[str, str]:
    """The i-th behaviour-free change: a comment (even i) or a renamed local (odd i)."""
    if i % 2 == 1:
        names = [n for n in RENAMES if re.search(rf"\b{n}\b", train)]
        if names:
            name = names[(i // 2) % len(names)]
            return f"rename {name}", re.sub(rf"\b{name}\b", f"{name}_{i}", train)
    return f"comment {i}", train + f"\n# a behaviour-free comment ({i})\n"


def planted(train: str, spec: str) -> tuple[str, str]:
    name, _, value = spec.partition("=")
    out, n = re.subn(rf"^{re.escape(name)} = [^#\n]*", f"{name} = {value}  ", train, flags=re.M)
    if n != 1:
        raise SystemExit(f"--planted {spec}: train.py has no single line '{name} = ...'")
    return f"planted {spec}", out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed-repo", type=Path, default=ROOT / "seed_repo")
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    ap.add_argument("--seeds", type=int, default=AcceptanceRule.max_seeds)
    ap.add_argument("--confidence", type=float, default=AcceptanceRule.confidence)
    ap.add_argument("--min-effect", type=float, default=AcceptanceRule.min_effect)
    ap.add_argument("--neutral", type=int, default=10)
    ap.add_argument("--planted", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--slots", type=int, default=1)
    ap.add_argument("--load", type=int, default=0, help="CPU-bound background processes")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rule = AcceptanceRule(args.seeds, args.confidence, args.min_effect)
    seeds = rule.seeds(0)

    work = Path(tempfile.mkdtemp(prefix="darwin-acceptance-"))
    pop = init_population(work / "population", seed=args.seed_repo, agents=1, hooks=False)
    root = pop.tip("agent-00")
    train = (args.seed_repo / "train.py").read_text()
    variants = [neutral(train, i) for i in range(args.neutral)]
    variants += [planted(train, spec) for spec in args.planted]
    commits = {"seed": str(root)}
    for name, text in variants:
        m = Mutation(summary=name, reasoning="benchmark", changes={"train.py": text},
                     operator="benchmark", mutator="benchmark")
        commits[name] = str(pop.commit_mutation(root, m, "agent-00", 1))

    hogs = [multiprocessing.Process(target=hog, daemon=True) for _ in range(args.load)]
    for p in hogs:
        p.start()
    executor = LocalExecutor(pop.path, LocalSandbox(), slots=args.slots, work_root=work / "jobs")
    started, load_before = time.time(), load_avg()
    try:
        futures = {(name, s): executor.submit(Job(c, args.budget, seed=s, clock=args.clock))
                   for name, c in commits.items() for s in seeds}
        results = {key: f.result() for key, f in futures.items()}
    finally:
        executor.shutdown()
        for p in hogs:
            p.terminate()

    def values(name):
        return {s: results[(name, s)].get("val_loss")
                if results[(name, s)].get("status") == "ok" else None for s in seeds}

    def steps(name):
        return [(results[(name, s)].get("train") or {}).get("steps") for s in seeds]

    parent = values("seed")
    rows = []
    for name, _ in variants:
        child = values(name)
        v = decide(child, parent, seeds, rule)
        diffs = [child[s] - parent[s] for s in seeds if None not in (child[s], parent[s])]
        rows.append({"variant": name, "kind": name.split()[0], "diffs": diffs,
                     "verdict": v.action, "reason": v.reason, "runs_the_loop_needs": v.n,
                     "steps": steps(name), "statuses": [results[(name, s)].get("status")
                                                        for s in seeds]})
    neutral_d = [d for r in rows if r["kind"] != "planted" for d in r["diffs"]]
    out = {"budget_s": args.budget, "clock": args.clock, "rule": rule.to_dict(),
           "load": args.load, "load_before": load_before, "load_after": load_avg(),
           "wall_s": round(time.time() - started, 1),
           "seed": {"losses": parent, "steps": steps("seed"),
                    "too_short": [too_short(results[("seed", s)]) for s in seeds]},
           "neutral_sd_d": statistics.stdev(neutral_d) if len(neutral_d) > 1 else None,
           "neutral_promoted": sum(r["verdict"] == "promote" for r in rows
                                   if r["kind"] != "planted"),
           "planted_promoted": sum(r["verdict"] == "promote" for r in rows
                                   if r["kind"] == "planted"),
           "variants": rows}
    for r in rows:
        print(f"{r['variant']:<28} {r['verdict']:<8} steps {r['steps']}  {r['reason']}")
    print(f"seed: {parent} steps {out['seed']['steps']}")
    print(f"neutral per-seed differences: sd {out['neutral_sd_d']}; promoted "
          f"{out['neutral_promoted']} of {sum(r['kind'] != 'planted' for r in rows)}; planted "
          f"promoted {out['planted_promoted']} of {len(args.planted)}; load {load_before} -> "
          f"{out['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
