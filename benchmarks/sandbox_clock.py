"""The sandbox's compute clock under load: does a fixed amount of work cost the same CPU time
idle and next to CPU hogs, and how far past its budget does a step get? (Run it on a quiet
machine: the hogs are its only load.)

Per runner (local, docker) and per load (0 and --hogs background `while True: pass`
processes), --repeats runs of each workload, reporting mean and sigma of the sandbox's
``cpu_s`` and of ``wall_s``:
- ``loop``: one process, a fixed number of Python loop iterations;
- ``torch2``: the tiny torch program of tests/test_sandbox_budget.py on 2 threads (matmuls with
  serial pauses in between, where spinning OpenMP threads would burn CPU);
then the enforcement bounds:
- ``overrun``: a step that ignores its CPU budget (--budget CPU seconds): cpu_s - budget;
- ``disk``: a writer of 8 MiB files into DARWIN_OUT against a 256 MiB cap: bytes past the cap.

Expected: loop and torch2 cpu_s loaded / idle close to 1 (the wall time grows instead);
overrun within poll_s x CPUs (0.1 s x the cores) plus a kill; disk within the bound of
darwin_git/run/watch.py.

    .venv/bin/python benchmarks/sandbox_clock.py --repeats 5 --hogs 2
    .venv/bin/python benchmarks/sandbox_clock.py --quick   # a smoke run, numbers meaningless
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from darwin_git.run.base import ClockLimit, Limits, Step  # noqa: E402

MiB = 1 << 20
LOOP = "n = 0\nfor i in range({iterations}):\n    n += i\nprint(n)\n"
TORCH = """
import time, torch
torch.set_num_threads(2)
a = torch.randn(256, 256)
for _ in range({iterations}):
    (a @ a).sum()
    time.sleep(0.01)
"""
OVERRUN = "while True:\n    pass\n"
WRITER = textwrap.dedent("""
    import os
    out, block, i = os.environ["DARWIN_OUT"], os.urandom(1 << 20), 0
    while True:
        with open(f"{out}/part-{i}", "wb") as f:
            for _ in range(8):
                f.write(block)
        i += 1
""")


def sandbox_for(runner: str):
    if runner == "local":
        from darwin_git.run.local import LocalSandbox

        return LocalSandbox()
    from darwin_git.run.docker import DockerSandbox
    from darwin_git.run.image import ensure_host_image

    ensure_host_image()
    box = DockerSandbox()
    box.check()
    return box


def run(sandbox, work: Path, script: str, **kw):
    tree = Path(tempfile.mkdtemp(dir=work))
    (tree / "step.py").write_text(script)
    return sandbox.run(Step(argv=["python", "step.py"], tree=tree, out_dir=tree / "out",
                            timeout_s=kw.pop("timeout_s", 600), **kw))


def stats(values):
    return {"mean": round(statistics.mean(values), 3),
            "sd": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0}


def measure(runner: str, hogs: int, args, work: Path) -> dict:
    sandbox = sandbox_for(runner)
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    try:
        row = {"runner": runner, "hogs": hogs}
        for name, script in (("loop", LOOP.format(iterations=args.loop)),
                             ("torch2", TORCH.format(iterations=args.torch))):
            outs = [run(sandbox, work, script) for _ in range(args.repeats)]
            bad = [o.log_tail for o in outs if o.returncode != 0]
            if bad:
                raise SystemExit(f"{name} failed on {runner}: {bad[0]}")
            row[name] = {"cpu_s": stats([o.cpu_s for o in outs]),
                         "wall_s": stats([o.wall_s for o in outs])}
        overruns = []
        for _ in range(args.repeats):
            o = run(sandbox, work, OVERRUN, clock_limit=ClockLimit("cpu", args.budget))
            assert o.over_budget, o.log_tail
            overruns.append(o.cpu_s - args.budget)
        row["overrun_cpu_s"] = {**stats(overruns), "max": round(max(overruns), 3)}
        past = []
        for _ in range(args.repeats):
            tree = Path(tempfile.mkdtemp(dir=work))
            out_dir = tree.with_name(tree.name + "-out")
            (tree / "step.py").write_text(WRITER)
            o = sandbox.run(Step(argv=["python", "step.py"], tree=tree, out_dir=out_dir,
                                 timeout_s=600, limits=Limits(out_bytes=256 * MiB,
                                                              max_file_bytes=16 * MiB)))
            assert o.limit == "disk", o.log_tail
            written = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
            past.append((written - 256 * MiB) / MiB)
        row["disk_past_cap_mib"] = {**stats(past), "max": round(max(past), 1)}
        return row
    finally:
        for p in load:
            p.kill()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runner", choices=["local", "docker", "both"], default="both")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hogs", type=int, default=2, help="background CPU hogs of the loaded run")
    ap.add_argument("--loop", type=int, default=30_000_000, help="iterations of the loop step")
    ap.add_argument("--torch", type=int, default=300, help="matmuls of the torch step")
    ap.add_argument("--budget", type=float, default=2.0, help="CPU budget of the overrun step")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny work, 2 repeats")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.loop, args.torch, args.budget = 2, 1_000_000, 10, 0.3
    runners = ["local", "docker"] if args.runner == "both" else [args.runner]
    work = Path(tempfile.mkdtemp(prefix="darwin-clock-"))
    rows = [measure(r, h, args, work) for r in runners for h in (0, args.hogs)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| runner | hogs | loop cpu_s | loop wall_s | torch2 cpu_s | torch2 wall_s "
          "| overrun cpu_s (max) | disk past cap MiB (max) |")
    print("|---|---|---|---|---|---|---|---|")
    fmt = lambda s: f"{s['mean']:.3f} ± {s['sd']:.3f}"  # noqa: E731
    for r in rows:
        print(f"| {r['runner']} | {r['hogs']} | {fmt(r['loop']['cpu_s'])} "
              f"| {fmt(r['loop']['wall_s'])} | {fmt(r['torch2']['cpu_s'])} "
              f"| {fmt(r['torch2']['wall_s'])} | {fmt(r['overrun_cpu_s'])} "
              f"({r['overrun_cpu_s']['max']:.3f}) | {fmt(r['disk_past_cap_mib'])} "
              f"({r['disk_past_cap_mib']['max']:.1f}) |")


if __name__ == "__main__":
    main()
