"""The README's quick start, N times, and what each run really found (issue 22).

Each repeat runs `darwin-git evolve --generations 3 --budget 20` (the README's command) in a
fresh folder with a given install of darwin-git (--darwin: its `darwin-git` executable, so an
older checkout can be measured beside this one), times it, reads the best agent from `status
--json`, and re-measures that tip against the seed with this checkout's `darwin-git bench SEED
BEST --pairs N` on fresh seeds (2000 and up: no run ever compares on them), side by side: the
gain a run found, measured where selection never looked. Printed: per run, the wall time, the
best agent and its in-run gain over the seed (fitness difference), the re-measured gain with
its 95% interval, and the headline the run printed itself (when it prints one).

    .venv/bin/python benchmarks/quickstart.py --runs 3 --darwin .venv/bin/darwin-git
    .venv/bin/python benchmarks/quickstart.py --runs 3 --darwin ../before/.venv/bin/darwin-git
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = [sys.executable, "-m", "darwin_git.cli", "bench"]

sys.path.insert(0, str(Path(__file__).parent))
from load import load_avg  # noqa: E402  (benchmarks/load.py)


def run_once(darwin: str, work: Path, pairs: int) -> dict:
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DARWIN_"))}
    t0, load0 = time.time(), load_avg()
    proc = subprocess.run([darwin, "evolve", "--generations", "3", "--budget", "20"],
                          cwd=work, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    out = {"wall_s": round(wall), "load": [load0, load_avg()], "exit": proc.returncode,
           "headline": next((ln for ln in proc.stdout.splitlines()
                             if ln.startswith("headline:")), None)}
    repo = work / "darwin-run" / "population"
    status = subprocess.run([darwin, "status", "--json", "--repo", str(repo)],
                            capture_output=True, text=True, env=env)
    board = json.loads(status.stdout)["agents"] if status.returncode == 0 else []
    seed = subprocess.run(["git", "-C", str(repo), "rev-parse", "seed"], capture_output=True,
                          text=True).stdout.strip()
    if not board or board[0].get("val_loss") is None:
        return {**out, "best": None}
    best = board[0]
    seed_fit = next((r["val_loss"] for r in board if r["commit"] == seed), None)
    out.update(best=best["agent"], best_commit=best["commit"], in_run=best["val_loss"],
               seed_in_run=seed_fit)
    if best["commit"] == seed:
        return {**out, "remeasured": 0.0, "interval": [0.0, 0.0]}
    measured = subprocess.run(
        [*BENCH, seed, best["commit"], "--repo", str(repo), "--budget", "20", "--clock", "cpu",
         "--pairs", str(pairs), "--noise-pairs", "0", "--seed", "2000", "--json",
         "--runner", "local"], capture_output=True, text=True, cwd=ROOT, env=env)
    lines = [ln for ln in measured.stdout.splitlines() if ln.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {}
    return {**out, "remeasured": summary.get("difference"),
            "interval": summary.get("interval"), "pairs": summary.get("pairs")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--darwin", default=str(ROOT / ".venv" / "bin" / "darwin-git"))
    ap.add_argument("--pairs", type=int, default=4, help="bench pairs of the re-measurement")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quickstart-"))
    rows = []
    for i in range(args.runs):
        row = run_once(args.darwin, work / f"run{i}", args.pairs)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nthe quick start ({args.darwin}), {args.runs} runs")
    print("| run | wall | load | best | in-run gain over the seed | re-measured gain "
          "(fresh seeds, side by side) | the run's own headline |")
    print("|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        gain = (f"{r['in_run'] - r['seed_in_run']:+.4f}" if r.get("best") and
                r.get("seed_in_run") is not None else "-")
        iv = r.get("interval") or [None, None]
        remeasured = (f"{r['remeasured']:+.4f} [{iv[0]:+.4f}, {iv[1]:+.4f}]"
                      if isinstance(r.get("remeasured"), float) and iv[0] is not None else "-")
        print(f"| {i + 1} | {r['wall_s'] // 60} min {r['wall_s'] % 60} s | "
              f"{r['load'][0]} -> {r['load'][1]} | {r.get('best')} | {gain} | {remeasured} | "
              f"{(r.get('headline') or '-')[:90]} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
