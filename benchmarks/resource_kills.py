"""Resource limits at run scale: hundreds of evaluations back to back, two at a time, on a host
whose own / holds far more than a run may write, with steps ending at every stage: 0 resource
kills (issue 22).

Each evaluation is the engine's harness (evaluate() in the chosen sandbox, one CPU thread) on a
variant of tests/trees/tiny that ends at one stage: at its start (exits before importing
anything), in training (raises after training), at saving (writes no checkpoint), in scoring
(its forward raises), killed by its clock (ignores its budget), or ok. None of them writes more
than a few MB or allocates much memory, so any disk_limit / out_of_memory / process_limit /
resource_limit result is a false kill (the engine measured something that is not the step's).
The run's disk limit is set to --out-mib (default 1024: far below what the host's / holds,
printed beside it), so counting the host's file systems instead of the step's would kill at
once.

    .venv/bin/python benchmarks/resource_kills.py --evaluations 200 --runner local
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from darwin_git.harness import EvalSpec, evaluate  # noqa: E402
from darwin_git.run.base import Limits  # noqa: E402
from darwin_git.run.runner import make_sandbox  # noqa: E402
from harness_fixtures import make_tree  # noqa: E402  (tests/harness_fixtures.py)

from load import load_avg  # noqa: E402  (benchmarks/load.py)

LIMIT_CAUSES = {"disk_limit", "out_of_memory", "process_limit", "resource_limit"}
VARIANTS = {
    # stage it ends at -> (variant of tests/trees, extra files)
    "start": (None, {"train.py": "raise SystemExit(3)\n"}),
    "training": (None, {"train.py": "import tiny_train\nraise RuntimeError('after training')\n"}),
    "save": ("no_checkpoint", {}),
    "scoring": (None, {"model.py": "import tiny_model\n"
                                   "class Broken(tiny_model.Bigram):\n"
                                   "    def forward(self, idx):\n"
                                   "        if not self.training:  # scoring evaluates\n"
                                   "            raise RuntimeError('forward breaks')\n"
                                   "        return super().forward(idx)\n"
                                   "def build_model(config):\n"
                                   "    return Broken(config['vocab_size'], "
                                   "config['n_embd'])\n"}),
    "killed": ("overrun", {}),
    "ok": (None, {}),
}


def trees(work: Path) -> dict[str, Path]:
    out = {}
    for stage, (variant, extra) in VARIANTS.items():
        tree = make_tree(work / stage, variant)
        for name, text in extra.items():
            (tree / name).write_text(text)
        out[stage] = tree
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--evaluations", type=int, default=200)
    ap.add_argument("--runner", choices=("local", "docker"), default="local")
    ap.add_argument("--budget", type=float, default=4.0, help="CPU seconds of each training")
    ap.add_argument("--out-mib", type=int, default=1024, help="the run's disk limit")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="resource-kills-"))
    variants = trees(work)
    sandbox = make_sandbox(args.runner)
    st = os.statvfs("/")
    host_used = (st.f_blocks - st.f_bfree) * st.f_frsize
    spec = dict(budget_s=args.budget, clock="cpu", threads=1, bench=False,
                limits=Limits(out_bytes=args.out_mib << 20))
    stages = list(variants)
    rows, lock = [], threading.Lock()
    todo = list(range(args.evaluations))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            stage = stages[i % len(stages)]
            t0 = time.monotonic()
            r = evaluate(variants[stage], sandbox, EvalSpec(seed=i, **spec))
            row = {"i": i, "stage": stage, "status": r["status"], "cause": r.get("cause"),
                   "origin": r.get("origin"), "wall_s": round(time.monotonic() - t0, 1)}
            with lock:
                rows.append(row)
                if len(rows) % 20 == 0:
                    print(f"{len(rows)} evaluations, load {load_avg()}", flush=True)
            if r.get("cause") in LIMIT_CAUSES:
                print(json.dumps({**row, "log_tail": (r.get("log_tail") or "")[-600:]}),
                      flush=True)

    started = time.time()
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kills = [r for r in rows if r["cause"] in LIMIT_CAUSES]
    print(f"\n{len(rows)} evaluations on the {args.runner} runner, two at a time, "
          f"{time.time() - started:.0f} s; the run's disk limit {args.out_mib} MiB, the host's "
          f"/ holds {host_used / 2**30:.1f} GiB; load {load_avg()}")
    print("| ends at | evaluations | status (cause) | origin |")
    print("|---|---|---|---|")
    for stage in stages:
        mine = [r for r in rows if r["stage"] == stage]
        how = collections.Counter(f"{r['status']} ({r['cause']})" if r["cause"]
                                  else r["status"] for r in mine)
        origins = collections.Counter(str(r["origin"]) for r in mine)
        print(f"| {stage} | {len(mine)} | {', '.join(f'{k} x{v}' for k, v in how.items())} | "
              f"{', '.join(f'{k} x{v}' for k, v in origins.items())} |")
    print(f"resource kills: {len(kills)}")
    if args.json:
        args.json.write_text(json.dumps({"runner": args.runner, "rows": rows,
                                         "host_used_bytes": host_used,
                                         "out_bytes": args.out_mib << 20}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
