"""Overhead of the docker runner per step: create + start + wait + remove a locked-down container
with the tree, package and host Python mounted, for a step that does nothing.

    .venv/bin/python benchmarks/runner_overhead_docker.py [--runs 20] [--budget 60] [--torch] [--json]

Three no-op steps: `true` (the container alone), `python -c pass` (plus interpreter start), and
`python -c pass` on the host as a plain subprocess (what any runner pays anyway). The overhead
of the docker runner is the `python` row minus the host row; its share is of a training budget.
Builds the offline image first if it is missing.
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

from darwin_git.run.base import Step  # noqa: E402
from darwin_git.run.docker import DockerSandbox  # noqa: E402
from darwin_git.run.image import DEFAULT_TAG, ensure_host_image  # noqa: E402


def timed(fn, runs: int) -> list[float]:
    fn()  # warm: page cache, daemon, image layers
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summary(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"median_s": round(statistics.median(xs), 3),
            "p90_s": round(xs[int(0.9 * (len(xs) - 1))], 3), "max_s": round(xs[-1], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--budget", type=float, default=60.0, help="training budget, seconds")
    ap.add_argument("--torch", action="store_true",
                    help="also time `import torch` in both (a training step's real start)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    ensure_host_image(DEFAULT_TAG)
    box = DockerSandbox(DEFAULT_TAG)
    box.check()
    with tempfile.TemporaryDirectory() as tmp:
        tree = ROOT / "seed_repo" if (ROOT / "seed_repo").is_dir() else Path(tmp)
        data = Path(tmp) / "data"
        data.mkdir()
        (data / "train.bin").write_bytes(b"\0" * (1 << 20))

        def step(argv):
            def go():
                o = box.run(Step(argv=argv, tree=tree, out_dir=Path(tmp) / "out",
                                 timeout_s=60, inputs={"data": data}))
                assert o.returncode == 0, o
            return go

        rows = {
            "docker: true": summary(timed(step(["true"]), args.runs)),
            "docker: python -c pass": summary(timed(step(["python", "-c", "pass"]), args.runs)),
            "host subprocess: python -c pass": summary(timed(
                lambda: subprocess.run([sys.executable, "-S", "-c", "pass"], check=True),
                args.runs)),
        }
        if args.torch:
            n = max(3, args.runs // 4)
            rows["docker: import torch"] = summary(timed(step(["python", "-c", "import torch"]), n))
            rows["host subprocess: import torch"] = summary(timed(
                lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True), n))
    overhead = (rows["docker: python -c pass"]["median_s"]
                - rows["host subprocess: python -c pass"]["median_s"])
    result = {"runs": args.runs, "budget_s": args.budget, "rows": rows,
              "overhead_s": round(overhead, 3),
              "overhead_share": round(overhead / args.budget, 4)}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{'step':34} {'median':>8} {'p90':>8} {'max':>8}")
    for name, r in rows.items():
        print(f"{name:34} {r['median_s']:8.3f} {r['p90_s']:8.3f} {r['max_s']:8.3f}")
    print(f"docker runner overhead per run: {overhead:.3f} s = {100 * overhead / args.budget:.2f}% "
          f"of a {args.budget:.0f} s budget")


if __name__ == "__main__":
    main()
