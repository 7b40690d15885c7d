"""`darwin-git bench PATH|REV`: train and evaluate one tree through the fixed harness.

Prints one result JSON line per repeat on stdout (the same line a note would hold) and, unless
--json, a short summary on stderr. A failed run still exits 0: its status says what happened.
"""
from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

import click

from .errors import DarwinError, RunnerUnavailable


@click.command()
@click.argument("target", metavar="PATH|REV")
@click.option("--repo", envvar="DARWIN_REPO", default=None, metavar="DIR",
              help="Git repo for REV [env DARWIN_REPO; default: the repo containing cwd].")
@click.option("--budget", type=float, envvar="DARWIN_BUDGET", default=None,
              help="Training budget in seconds of --clock [env DARWIN_BUDGET; default: "
                   "darwin.toml's].")
@click.option("--clock", type=click.Choice(["cpu", "wall"]), envvar="DARWIN_CLOCK", default=None,
              help="What the budget counts: CPU seconds of the whole run, or wall seconds "
                   "[env DARWIN_CLOCK; default: darwin.toml's, else cpu on CPU, wall on CUDA].")
@click.option("--runner", type=click.Choice(["auto", "local", "docker"]), envvar="DARWIN_RUNNER",
              default="local", show_default=True,
              help="Sandbox; auto: docker when a daemon answers (the offline image is built if "
                   "missing), else local [env DARWIN_RUNNER].")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), envvar="DARWIN_BENCH_DEVICE",
              default="auto", show_default=True, help="[env DARWIN_BENCH_DEVICE]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--repeats", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Evaluate the same tree N times (to see the noise floor).")
@click.option("--json", "as_json", is_flag=True, help="Only the JSON lines, no summary.")
def bench(target, repo, budget, clock, runner, device, seed, repeats, as_json):
    """Train and evaluate PATH (a folder with darwin.toml) or REV (a git revision)."""
    from ..harness import EvalSpec, evaluate
    from ..result import dumps
    from ..run.base import SandboxUnavailable
    from ..run.runner import make_sandbox

    if budget is not None and budget <= 0:
        raise DarwinError("--budget must be a positive number of seconds")
    try:
        sandbox = make_sandbox(runner, log=lambda msg: click.echo(f"docker image: {msg}",
                                                                  err=True))
    except SandboxUnavailable as exc:
        raise RunnerUnavailable(str(exc)) from exc
    work = Path(tempfile.mkdtemp(prefix="darwin-bench-"))
    try:
        tree_dir, commit, tree_id = _resolve(target, repo, work)
        results = []
        for i in range(repeats):
            r = evaluate(tree_dir, sandbox, EvalSpec(budget_s=budget, clock=clock, device=device,
                                                     seed=seed + i, commit=commit, tree=tree_id))
            results.append(r)
            click.echo(dumps(r))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not as_json:
        click.echo(_summary(results), err=True)


def _resolve(target: str, repo: str | None, work: Path):
    """A folder is evaluated as it is; anything else is a revision exported with pygit2."""
    import pygit2

    from ..harness import ExportError, export_tree

    if repo is None and Path(target).is_dir():
        return Path(target), None, None
    path = repo or "."
    found = pygit2.discover_repository(str(path))
    if found is None:
        raise DarwinError(f"{target!r} is not a folder, and {Path(path).resolve()} is not "
                          "inside a git repository (use --repo)")
    git = pygit2.Repository(found)
    try:
        tree_id = export_tree(git, target, work / "tree")
    except ExportError as exc:
        raise DarwinError(str(exc)) from exc
    obj = git.revparse_single(target)
    commit = str(obj.peel(pygit2.Commit).id) if obj.type in (
        pygit2.GIT_OBJECT_COMMIT, pygit2.GIT_OBJECT_TAG) else None
    return work / "tree", commit, tree_id


def _train_time(r: dict) -> str:
    if r.get("clock") == "cpu" and r.get("train_cpu_s") is not None:
        return f"{r['train_cpu_s']:.1f} cpu-s ({r['train_wall_s']:.1f}s wall)"
    return f"{r['train_wall_s']:.1f}s"


def _summary(results: list[dict]) -> str:
    lines = []
    for r in results:
        if r["status"] == "ok":
            tps = f"{r['tokens_per_s']:.0f} tok/s" if r.get("tokens_per_s") else "tok/s n/a"
            mfu = f"MFU {100 * r['mfu']:.2f}%" if r.get("mfu") is not None else "MFU n/a"
            lines.append(f"ok  val_loss {r['val_loss']:.4f}  ppl {r['perplexity']:.2f}  "
                         f"bpb {r['bpb']:.3f}  params {r['params']:,}  {tps}  {mfu}  "
                         f"train {_train_time(r)}  eval {r['eval_wall_s']:.1f}s")
        else:
            last = (r.get("log_tail") or "").strip().splitlines()[-1:] or [""]
            lines.append(f"{r['status']} ({r['cause']})  {last[0][:120]}")
    losses = [r["val_loss"] for r in results if r["status"] == "ok"]
    if len(losses) > 1:
        lines.append(f"val_loss over {len(losses)} repeats: mean {statistics.mean(losses):.4f}"
                     f"  stdev {statistics.stdev(losses):.4f}")
    return "\n".join(lines)
