"""Scale of the population layer: a synthetic population (default 1,000 agents, 50,000 commits,
each with a result note), timed for `status`, `log` of one agent, memory update/rebuild, and
commits created per second. Measured, not asserted; results go to population_scale.md.

    .venv/bin/python benchmarks/population_scale.py --agents 1000 --depth 50
    .venv/bin/python benchmarks/population_scale.py --sizes 200x50,1000x10,1000x50

Commits are built with the in-memory API (Index -> tree -> commit, no working tree); each
generation's notes go in one notes commit, and all agent refs move in one ref transaction.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git import memory  # noqa: E402
from darwin_git.create import init_population  # noqa: E402
from darwin_git.graph import lineage  # noqa: E402
from darwin_git.population import Population  # noqa: E402
from darwin_git.population.refs import update_refs  # noqa: E402
from darwin_git.readmodel import ReadModel  # noqa: E402
from darwin_git.result import make_result  # noqa: E402

SEED_TOML = """[train]\ncommand = ["python", "train.py"]\nbudget_s = 60\n[model]
entry = "model:build_model"\n[paths]\nmutable = ["train.py", "model.py"]\n"""
TRAIN = "".join(f"setting_{i} = {i}  # a line of training code\n" for i in range(120))


def build(root: Path, agents: int, depth: int, rng: random.Random) -> tuple[Population, dict]:
    seed = root / "seed"
    seed.mkdir()
    (seed / "darwin.toml").write_text(SEED_TOML)
    (seed / "train.py").write_text(TRAIN)
    (seed / "model.py").write_text("def build_model(config):\n    return None\n")
    pop = init_population(root / "run" / "population", seed=seed, agents=agents, hooks=False)
    tips = dict(pop.agents())
    texts = {a: TRAIN for a in tips}
    t0 = time.perf_counter()
    n_commits = 0
    for gen in range(1, depth + 1):
        notes = {}
        for agent, tip in tips.items():
            lines = texts[agent].splitlines(keepends=True)
            k = rng.randrange(len(lines))
            lines[k] = f"setting_{k} = {rng.random():.6f}  # gen {gen}\n"
            texts[agent] = "".join(lines)
            oid = pop.commit_changes(tip, {"train.py": texts[agent]}, f"Tune setting_{k}",
                                     f"Generation {gen}: nudging setting_{k}.",
                                     {"Darwin-Agent": agent, "Darwin-Generation": gen,
                                      "Darwin-Operator": "builtin:nudge",
                                      "Darwin-Mutator": "builtin"})
            loss = 3.0 - gen * 0.01 + rng.random() * 0.05
            notes[str(oid)] = [{"kind": "result", **make_result(
                "ok", val_loss=loss, perplexity=2.718 ** loss, tokens_per_s=1e4, mfu=0.1,
                params=1000, created=1.0)}]
            tips[agent] = oid
            n_commits += 1
        pop.notes.append_many(notes)
    build_s = time.perf_counter() - t0
    old = pop.agents()
    update_refs(pop.repo, [(f"refs/heads/agents/{a}", old[a], t) for a, t in tips.items()],
                "bench: move agents")
    return pop, {"commits": n_commits, "build_s": build_s,
                 "bulk_commits_per_s": n_commits / build_s}


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def status(pop: Population) -> list[dict]:
    return ReadModel(pop).leaderboard()


def measure(agents: int, depth: int, seed: int = 0, where: str | None = None) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="darwin-scale-", dir=where) as tmp:
        pop, out = build(Path(tmp), agents, depth, rng)
        pop = Population(pop.path)  # fresh handle: no warm caches from building
        some = sorted(pop.agents())[agents // 2]
        out["status_s"] = timed(lambda: status(Population(pop.path)))
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        cli = [sys.executable, "-c", "from darwin_git.cli import cli; cli()", "status",
               "--json", "--repo", str(pop.path)]
        out["status_cli_s"] = timed(lambda: subprocess.run(cli, env=env, check=True,
                                                           capture_output=True), 2)
        out["log_agent_s"] = timed(lambda: lineage(pop, some, None))
        out["memory_update_agent_s"] = timed(lambda: memory.update(pop, [some]))
        out["memory_rebuild_s"] = timed(lambda: memory.rebuild(pop), 1)
        # The engine's path: one mutation commit with a CAS on the agent ref, then its note.
        t0, n = time.perf_counter(), 200
        for i in range(n):
            tip = pop.tip(some)
            oid = pop.commit_changes(tip, {"train.py": TRAIN + f"# extra {i}\n"}, "Extra",
                                     trailers={"Darwin-Agent": some, "Darwin-Operator": "b"},
                                     ref=f"refs/heads/agents/{some}")
            pop.add_result(oid, make_result("ok", val_loss=1.0, created=1.0))
        out["cas_commit_plus_note_per_s"] = n / (time.perf_counter() - t0)
        out.update(agents=agents, depth=depth)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000x50", help="AGENTSxDEPTH[,AGENTSxDEPTH...]")
    ap.add_argument("--dir", default=None, help="Where to build the repos (default $TMPDIR).")
    args = ap.parse_args()
    rows = []
    for size in args.sizes.split(","):
        a, d = (int(x) for x in size.lower().split("x"))
        row = measure(a, d, where=args.dir)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| agents | commits | build s | bulk commits/s | status s | status CLI s "
          "| log 1 agent s | memory update 1 agent s | memory rebuild s | CAS commit+note/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['agents']} | {r['commits']} | {r['build_s']:.1f} | "
              f"{r['bulk_commits_per_s']:.0f} | {r['status_s']:.3f} | {r['status_cli_s']:.3f} | "
              f"{r['log_agent_s']:.4f} | {r['memory_update_agent_s']:.4f} | "
              f"{r['memory_rebuild_s']:.1f} | {r['cas_commit_plus_note_per_s']:.0f} |")


if __name__ == "__main__":
    main()
