"""Neutral and planted changes through the acceptance rule (issue 11, "Measure"): what min_effect
must be, measured.

Every variant is a child of the seed (a commit of a throw-away population repo), trained
through the engine's executor the way the loop trains a child: its first seed, then its next
seed only while darwin_git.selection_rules.decide, the function the loop calls, asks for one
(the seed itself, the parent, is trained on all the rule's seeds, as the noise floor is;
--all-seeds trains every variant on every seed). Printed per variant: the per-seed
differences child - seed, the verdict and its reason, and the optimizer steps reported.

- neutral: behaviour-free changes (a comment added, a local renamed): the spread of their
  per-seed differences (sd_d) is the jitter min_effect must stand above; none should be
  promoted.
- planted: NAME=VALUE settings of train.py (e.g. "LEARNING_RATE=3e-3") believed to help at
  this budget; most should be promoted.

- before: the rule this replaced, on the same runs: a child was promoted when its one run (seed
  0) beat the parent's mean over the noise-floor seeds by k·σ (σ: their standard deviation).
- truth (--truth-seeds N): the seed and each planted variant trained on N further seeds
  (100, 101, ...) that the rule never sees; a planted change is a known improvement when its
  mean difference there is below zero by more than two standard errors.

--load N starts N CPU-bound background processes for the whole measurement (the "loaded"
condition). Run it on a quiet machine, once idle and once loaded, per clock:

    .venv/bin/python benchmarks/acceptance.py --budget 20 --clock cpu --neutral 10 \\
        --planted LEARNING_RATE=3e-3 --load 2 --json /tmp/acceptance.json
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git.create import init_population  # noqa: E402
from darwin_git.fitness import too_short  # noqa: E402
from darwin_git.harness.executor import Job, LocalExecutor  # noqa: E402
from darwin_git.mutate.base import Mutation  # noqa: E402
from darwin_git.run.local import LocalSandbox  # noqa: E402
from darwin_git.selection_rules import AcceptanceRule, decide  # noqa: E402

from load import background_load, load_avg  # noqa: E402  (benchmarks/load.py)

RENAMES = ("last_loss", "step_s", "tokens", "train_start", "deadline")


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
    ap.add_argument("--old-k", type=float, default=1.0,
                    help="k of the rule this replaced (one run vs the parent's mean - k sigma)")
    ap.add_argument("--truth-seeds", type=int, default=0,
                    help="further seeds (100, 101, ...) for the seed and the planted variants")
    ap.add_argument("--all-seeds", action="store_true",
                    help="every variant on every seed, not only the seeds the loop would run")
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

    truth = [100 + i for i in range(args.truth_seeds)]
    executor = LocalExecutor(pop.path, LocalSandbox(), slots=args.slots, work_root=work / "jobs")
    futures: dict = {}

    def submit(name: str, s: int) -> None:
        if (name, s) not in futures:
            futures[(name, s)] = executor.submit(Job(commits[name], args.budget, seed=s,
                                                     clock=args.clock))

    def values(name, which=seeds):  # what is known so far, as decide() reads it
        out = {}
        for s in which:
            if (name, s) in futures and futures[(name, s)].done():
                r = futures[(name, s)].result()
                out[s] = r.get("val_loss") if r.get("status") == "ok" else None
        return out

    started, load_before = time.time(), load_avg()
    with background_load(args.load):
        try:
            # The loop's order: every child's first seed and the parent's seeds, then a child's
            # next seed only while decide() asks for it. With --all-seeds every variant gets
            # every seed (the per-seed jitter of neutral changes over more pairs).
            for s in seeds:
                submit("seed", s)
            for name in commits:
                for s in (seeds if args.all_seeds else seeds[:1]):
                    submit(name, s)
            for name in commits:
                if name == "seed" or name.startswith("planted"):
                    for s in truth:
                        submit(name, s)
            pending = [name for name, _ in variants]
            while pending:
                for f in [futures[("seed", s)] for s in seeds] + [
                        futures[(n, s)] for n in pending for s in seeds if (n, s) in futures]:
                    f.result()
                still = []
                for name in pending:
                    v = decide(values(name), values("seed"), seeds, rule)
                    if not v.final:
                        submit(name, seeds[v.n])
                        still.append(name)
                pending = still
            results = {key: f.result() for key, f in futures.items()}
        finally:
            executor.shutdown()

    def steps(name):
        return [(results[(name, s)].get("train") or {}).get("steps") for s in seeds
                if (name, s) in results]

    parent = values("seed")
    ok_parent = [v for v in parent.values() if v is not None]
    old_bar = (statistics.fmean(ok_parent) - args.old_k * statistics.stdev(ok_parent)
               if len(ok_parent) > 1 else None)
    rows = []
    for name, _ in variants:
        child = values(name)
        v = decide(child, parent, seeds, rule)
        diffs = [child[s] - parent[s] for s in seeds
                 if s in child and None not in (child[s], parent[s])]
        first = child[seeds[0]]
        row = {"variant": name, "kind": name.split()[0], "diffs": diffs,
               "verdict": v.action, "reason": v.reason, "runs_the_loop_needs": v.n,
               "old_verdict": "promote" if None not in (first, old_bar) and first < old_bar
               else "reject",
               "steps": steps(name), "statuses": [results[(name, s)].get("status")
                                                  for s in seeds if (name, s) in results]}
        if truth and row["kind"] == "planted":
            c, p = values(name, truth), values("seed", truth)
            d = [c[s] - p[s] for s in truth if None not in (c[s], p[s])]
            mean = statistics.fmean(d) if d else None
            se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else None
            row["truth"] = {"diffs": d, "mean": mean, "se": se,
                            "improvement": None not in (mean, se) and mean + 2 * se < 0}
        rows.append(row)
    neutral_d = [d for r in rows if r["kind"] != "planted" for d in r["diffs"]]
    out = {"budget_s": args.budget, "clock": args.clock, "rule": rule.to_dict(),
           "load": args.load, "load_before": load_before, "load_after": load_avg(),
           "wall_s": round(time.time() - started, 1), "runs": len(results),
           "seed": {"losses": parent, "steps": steps("seed"),
                    "too_short": [too_short(results[("seed", s)]) for s in seeds]},
           "neutral_sd_d": statistics.stdev(neutral_d) if len(neutral_d) > 1 else None,
           "neutral_promoted": sum(r["verdict"] == "promote" for r in rows
                                   if r["kind"] != "planted"),
           "planted_promoted": sum(r["verdict"] == "promote" for r in rows
                                   if r["kind"] == "planted"),
           "old_rule": {"k": args.old_k, "bar": old_bar,
                        "neutral_promoted": sum(r["old_verdict"] == "promote" for r in rows
                                                if r["kind"] != "planted"),
                        "planted_promoted": sum(r["old_verdict"] == "promote" for r in rows
                                                if r["kind"] == "planted")},
           "known_improvements": [r["variant"] for r in rows
                                  if (r.get("truth") or {}).get("improvement")],
           "variants": rows}
    for r in rows:
        t = r.get("truth")
        truth_txt = (f"  truth {t['mean']:+.4f} ± {t['se']:.4f}"
                     f"{' (known improvement)' if t['improvement'] else ''}"
                     if t and t["mean"] is not None and t["se"] is not None else "")
        print(f"{r['variant']:<28} {r['verdict']:<8} (before: {r['old_verdict']}) "
              f"steps {r['steps']}  {r['reason']}{truth_txt}")
    print(f"seed: {parent} steps {out['seed']['steps']}")
    print(f"neutral per-seed differences: sd {out['neutral_sd_d']}; promoted "
          f"{out['neutral_promoted']} of {sum(r['kind'] != 'planted' for r in rows)}; planted "
          f"promoted {out['planted_promoted']} of {len(args.planted)} (known improvements: "
          f"{len(out['known_improvements'])}); before: neutral promoted "
          f"{out['old_rule']['neutral_promoted']}, planted {out['old_rule']['planted_promoted']}; "
          f"load {load_before} -> {out['load_after']}; {out['runs']} runs, {out['wall_s']} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
