"""Per-run overhead of the local runner, at a tiny budget (see runner_overhead.md).

Three parts, each timed on its own:
1. export: `export_tree` of the seed's tree from this repo's HEAD (pygit2, no worktree);
2. sandbox: LocalSandbox.run of `python -c pass` minus the same command as a bare subprocess
   (staging, uid/netns/rlimit launcher, log thread, kill sweep, output collection, cleanup);
3. harness: evaluate() of the seed at --budget seconds; overhead = total - budget, split into
   training start/stop (train wall - budget) and the evaluation step (model server start,
   the fixed validation windows, causality probes, the throughput bench). A sandboxed
   `import torch` is timed too: every torch step pays it, twice per evaluation.

    .venv/bin/python benchmarks/runner_overhead.py --runs 10 --evals 2 --budget 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git.harness import EvalSpec, evaluate, export_tree  # noqa: E402
from darwin_git.run.base import Step, host_python  # noqa: E402
from darwin_git.run.local import LocalSandbox  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="no-op runs for the sandbox figure")
    ap.add_argument("--evals", type=int, default=2, help="evaluate() runs of the seed")
    ap.add_argument("--budget", type=float, default=2.0)
    ap.add_argument("--grace", type=float, default=30.0, help="the wall-clock safety net: kill after budget + grace wall seconds")
    ap.add_argument("--rev", default="HEAD:seed_repo", help="tree to export and evaluate")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sb = LocalSandbox()
    work = Path(tempfile.mkdtemp(prefix="darwin-overhead-"))

    exports = [timed(lambda i=i: export_tree(ROOT, args.rev, work / f"t{i}"))[0]
               for i in range(args.runs)]
    tree = work / "t0"
    bare = [timed(lambda: subprocess.run([host_python(), "-c", "pass"], check=True))[0]
            for _ in range(args.runs)]
    boxed = [timed(lambda: sb.run(Step(argv=["python", "-c", "pass"], tree=tree,
                                       out_dir=work / "out", timeout_s=60)))[0]
             for _ in range(args.runs)]
    imports = [timed(lambda: sb.run(Step(argv=["python", "-c", "import torch"], tree=tree,
                                         out_dir=work / "out", timeout_s=120)))[0]
               for _ in range(min(3, args.runs))]
    evals = []
    for i in range(args.evals):
        wall, r = timed(lambda: evaluate(tree, sb, EvalSpec(
            budget_s=args.budget, wall_timeout_s=args.budget + args.grace, seed=i)))
        if r["status"] != "ok":
            sys.exit(f"evaluation failed: {r['status']} {r['cause']}\n{r['log_tail']}")
        evals.append({"total": wall, "train": r["train_wall_s"], "eval": r["eval_wall_s"]})

    med = statistics.median
    fig = {
        "export_s": med(exports),
        "sandbox_s": med(boxed) - med(bare),
        "bare_python_s": med(bare),
        "sandboxed_import_torch_s": med(imports),
        "train_start_stop_s": med(e["train"] for e in evals) - args.budget,
        "eval_step_s": med(e["eval"] for e in evals),
        "harness_total_minus_budget_s": med(e["total"] for e in evals) - args.budget,
        "budget_s": args.budget,
        "load_avg": open("/proc/loadavg").read().split()[0],
    }
    per_run = fig["export_s"] + fig["harness_total_minus_budget_s"]
    fig["per_run_overhead_s"] = per_run
    fig["share_of_60s"] = per_run / 60
    if args.json:
        print(json.dumps(fig, indent=1))
        return
    for k, v in fig.items():
        print(f"{k:30s} {v:.3f}" if isinstance(v, float) else f"{k:30s} {v}")


if __name__ == "__main__":
    main()
