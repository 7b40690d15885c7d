"""`darwin-git bench A [B]`: the measurement `evolve` makes, outside a run.

A and B are folders with a darwin.toml, or git revisions (of --repo, else of the repo around the
current folder). Everything runs as evolve runs it: the run's settings (a population's run
config where A or B is in one, evolve's defaults otherwise; options override), the same
executor laid out in slots of one CPU thread each, the same runner choice, the same limits.

- ``bench A``: A trained and scored on --repeats seeds (default: one per slot, side by side).
- ``bench A B``: B compared with A as acceptance compares a child with its parent: pairs side
  by side seed by seed, the rule's verdict, and the difference B - A with its 95% interval
  against the noise (the population's, where the run measured it under the same conditions;
  otherwise A beside itself on --noise-pairs seeds first).

Prints one result JSON line per run on stdout (the line a note would hold) and a summary on
stderr; with --json, the last stdout line is the summary object (``difference`` is B - A in
nats). Exit status 9 when a run failed (its status is not ok).
"""
from __future__ import annotations

import json
import shutil
import statistics
import tempfile
from pathlib import Path

import click

from ..clock import CLOCKS
from ..run.base import DEVICES
from ..run.runner import RUNNERS
from .errors import DarwinError, RunFailed, RunnerUnavailable


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="A [B]")
@click.option("--repo", envvar="DARWIN_REPO", default=None, metavar="DIR",
              help="Git repo (or population) for revisions [env DARWIN_REPO; default: the "
                   "repo containing cwd].")
@click.option("--budget", type=float, envvar="DARWIN_BUDGET", default=None,
              help="Training budget in seconds of --clock [env DARWIN_BUDGET; default: the "
                   "population's, else darwin.toml's].")
@click.option("--clock", type=click.Choice(CLOCKS), envvar="DARWIN_CLOCK", default=None,
              help="What the budget counts [env DARWIN_CLOCK; default: the population's, else "
                   "darwin.toml's, else cpu on CPU, wall on CUDA].")
@click.option("--runner", type=click.Choice(RUNNERS), envvar="DARWIN_RUNNER",
              default="auto", show_default=True,
              help="Sandbox, as evolve's: docker when a daemon answers, else local "
                   "[env DARWIN_RUNNER].")
@click.option("--device", type=click.Choice((*DEVICES, "auto")), envvar="DARWIN_BENCH_DEVICE",
              default="auto", show_default=True, help="[env DARWIN_BENCH_DEVICE]")
@click.option("--slots", type=click.IntRange(1), envvar="DARWIN_SLOTS", default=None,
              help="Runs at once [default: the population's, else evolve's default].")
@click.option("--seed", type=int, default=None,
              help="First training seed [default: the population's, else 0].")
@click.option("--repeats", type=click.IntRange(1, 100), default=None,
              help="bench A: seeds to run A on [default: one per slot, side by side].")
@click.option("--pairs", type=click.IntRange(3, 100), default=None,
              help="bench A B: run this many pairs (seeds) whatever the verdict, a measurement "
                   "(the first seed's pair included; a t-test needs two more) [default: stop "
                   "where acceptance stops].")
@click.option("--noise-pairs", type=click.IntRange(0, 20), default=2, show_default=True,
              help="bench A B without the population's noise: A beside itself on this many "
                   "seeds first.")
@click.option("--json", "as_json", is_flag=True, help="Only JSON lines; the last one is the summary.")
def bench(targets, repo, budget, clock, runner, device, slots, seed, repeats, pairs,
          noise_pairs, as_json):
    """Train and evaluate A, or compare B with A as evolve's acceptance does."""
    if len(targets) > 2:
        raise DarwinError("bench takes one target (A) or two (A B)")
    if budget is not None and budget <= 0:
        raise DarwinError("--budget must be a positive number of seconds")
    work = Path(tempfile.mkdtemp(prefix="darwin-bench-"))
    executor = None
    try:
        found = [_resolve(t, repo, work / f"t{i}") for i, t in enumerate(targets)]
        run = _settings(found, repo, budget, clock, device, slots, seed)
        executor = _executor(work, found, run, runner)
        run["layout"], run["runner"] = executor.layout, executor.runner
        say = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
        say("bench: " + ", ".join(f"{k} {v}" for k, v in run.items() if k != "rule"))
        if len(found) == 1:
            failed = _one(executor, found[0], run, repeats, say)
        else:
            failed = _two(executor, found, run, pairs, noise_pairs, say, as_json)
    finally:
        if executor is not None:
            executor.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        raise RunFailed(f"{failed} run(s) did not end ok (see their status and cause above)")


def _resolve(target: str, repo: str | None, dest: Path) -> dict:
    """A folder as it is, or a revision exported with pygit2: {path, commit, tree, repo}."""
    import pygit2

    from ..harness import ExportError, export_tree

    if repo is None and Path(target).is_dir():
        return {"name": target, "path": Path(target), "commit": None, "repo": None}
    path = repo or "."
    found = pygit2.discover_repository(str(path))
    if found is None:
        raise DarwinError(f"{target!r} is not a folder, and {Path(path).resolve()} is not "
                          "inside a git repository (use --repo)")
    git = pygit2.Repository(found)
    try:
        tree = export_tree(git, target, dest)
    except ExportError as exc:
        raise DarwinError(str(exc)) from exc
    obj = git.revparse_single(target)
    commit = str(obj.peel(pygit2.Commit).id) if obj.type in (
        pygit2.GIT_OBJECT_COMMIT, pygit2.GIT_OBJECT_TAG) else None
    return {"name": target, "path": dest, "commit": commit, "repo": found, "tree": tree}


def _settings(found: list[dict], repo, budget, clock, device, slots, seed) -> dict:
    """The run's settings: a population's run config where a target is in one, evolve's
    defaults otherwise, then the options given."""
    import pygit2

    from .. import runconfig
    from ..contract import load_contract
    from ..settings import EvolveSettings
    from ..clock import resolve_clock
    from ..harness.factory import default_slots

    config: dict = {}
    for f in found:
        if f["repo"]:
            stored = runconfig.read_stored(pygit2.Repository(f["repo"]))
            if stored:
                config = runconfig.read_config(pygit2.Repository(f["repo"]))
                break
    if device == "auto":
        from .evolve_cmds import _default_device
        device = _default_device()
    contract_budget = load_contract(found[0]["path"]).budget_s
    base = EvolveSettings.from_config(config) if config else EvolveSettings(
        budget_s=contract_budget, clock=load_contract(found[0]["path"]).clock)
    run_clock = resolve_clock(clock or base.clock, device=device)
    s = EvolveSettings.from_config(
        {"evolve": base.to_config()}, budget_s=budget, clock=run_clock, device=device,
        slots=slots or (base.slots if config else default_slots(device, run_clock)), seed=seed)
    return {"budget_s": s.budget_s, "clock": run_clock, "device": device, "slots": s.slots,
            "seed": s.seed, "settings": "the population's run config" if config
            else "evolve's defaults", "rule": s.acceptance(), "retries": s.infra_retries,
            "backoff_s": s.retry_backoff_s}


def _executor(work: Path, found: list[dict], run: dict, runner: str):
    """evolve's executor over a scratch repo holding the targets as commits."""
    import pygit2

    from ..create import tree_from_dir
    from ..run.base import SandboxUnavailable
    from ..harness.factory import make_executor

    git = pygit2.init_repository(str(work / "repo.git"), bare=True)
    sig = pygit2.Signature("darwin-git bench", "bench@darwin-git")
    for i, f in enumerate(found):
        tree = tree_from_dir(git, f["path"])
        f.setdefault("tree", str(tree))  # a revision keeps its own tree id
        f["job"] = str(git.create_commit(f"refs/heads/t{i}", sig, sig, f["name"], tree, []))
    try:
        return make_executor("local", Path(git.path), runner=runner, slots=run["slots"],
                             work_root=work / "jobs",
                             log=lambda msg: click.echo(f"docker image: {msg}", err=True))
    except SandboxUnavailable as exc:
        raise RunnerUnavailable(str(exc)) from exc


def _job(run: dict) -> dict:
    return {"budget_s": run["budget_s"], "device": run["device"], "clock": run["clock"],
            "gpus": 1 if run["device"] == "cuda" else 0}


def _show(result: dict, target: dict) -> dict:
    """The result as the target's (its commit where it has one), printed as a note holds it."""
    from ..result import dumps

    result.update(commit=target["commit"], tree=target["tree"])
    click.echo(dumps(result))
    return result


def _one(executor, target: dict, run: dict, repeats: int | None, say) -> int:
    from ..harness.executor import Job

    n = repeats or run["slots"]
    futures = [executor.submit(Job(target["job"], seed=run["seed"] + i, role="bench",
                                   **_job(run))) for i in range(n)]
    results = [_show(f.result(), target) for f in futures]
    for r in results:
        say(_line(r))
    losses = [r["val_loss"] for r in results if r["status"] == "ok"]
    if len(losses) > 1:
        say(f"val_loss over {len(losses)} seeds: mean {statistics.fmean(losses):.4f}  "
            f"sd {statistics.stdev(losses):.4f}")
    return sum(r["status"] != "ok" for r in results)


def _two(executor, found: list[dict], run: dict, pairs: int | None, noise_pairs: int, say,
         as_json: bool) -> int:
    from ..compare import compare, pair
    from ..result import loss_of
    from ..selection_rules import AcceptanceRule, Noise

    a, b = found
    rule: AcceptanceRule = run["rule"]
    if pairs:
        rule = AcceptanceRule(max_seeds=pairs, confidence=rule.confidence,
                              min_effect=rule.min_effect)
    failed = 0
    twins = []
    for i in range(noise_pairs):  # A beside itself: the spread of a paired difference
        r1, r2 = pair(executor, a["job"], a["job"], run["seed"] + 100 + i, _job(run),
                      run["retries"], run["backoff_s"], role="noise")
        for r in (r1, r2):
            _show(r, a)
            failed += r["status"] != "ok"
        if loss_of(r1) is not None and loss_of(r2) is not None:
            twins.append(loss_of(r1) - loss_of(r2))
            say(f"noise: A beside A on seed {r1['seed']}: {twins[-1]:+.4f} nats "
                f"(steps {_steps(r1)} / {_steps(r2)})")
    noise = Noise.of_twins(twins)

    def on_pair(seed, rb, ra):
        nonlocal failed
        for r, t in ((rb, b), (ra, a)):
            _show(r, t)
            failed += r["status"] != "ok"
        lb, la = loss_of(rb), loss_of(ra)
        d = f"{lb - la:+.4f}" if lb is not None and la is not None else "n/a"
        say(f"seed {seed}: B {_loss(rb)} ({_steps(rb)} steps)  A {_loss(ra)} "
            f"({_steps(ra)} steps)  B - A {d}")

    result = compare(executor, a["job"], b["job"], _job(run), rule, run["seed"], noise,
                     run["retries"], run["backoff_s"], all_pairs=bool(pairs), on_pair=on_pair)
    mean, low, high = result.interval()
    pooled = noise.plus(result.differences())
    summary = {"difference": mean, "interval": [low, high], "level": 0.95,
               "pairs": len(result.differences()), "verdict": result.verdict.to_dict(),
               "noise": {"sigma": pooled.sigma, "df": pooled.df},
               "settings": {k: v for k, v in run.items() if k != "rule"},
               "rule": rule.to_dict(), "a": a["name"], "b": b["name"]}
    if as_json:
        click.echo(json.dumps(summary, default=str))
    elif mean is not None:
        ci = f" [{low:+.4f}, {high:+.4f}] (95%)" if low is not None else " (no interval)"
        say(f"B - A = {mean:+.4f} nats{ci} over {summary['pairs']} pair(s) side by side")
        stops = " (acceptance stops where this says; every pair above ran)" if pairs else ""
        say(f"verdict evolve would reach{stops}: {result.verdict.reason}")
    else:
        say(f"no pair where both trained ok; verdict: {result.verdict.reason}")
    return failed


def _loss(r: dict) -> str:
    return f"{r['val_loss']:.4f}" if r.get("status") == "ok" else f"{r['status']} ({r.get('cause')})"


def _steps(r: dict):
    return (r.get("train") or {}).get("steps", "?")


def _line(r: dict) -> str:
    """One run for people: its numbers, or its failure's cause and reason."""
    from ..readmodel import failure_reason

    seed = f"seed {r.get('seed')}: "
    if r["status"] != "ok":
        return seed + failure_reason(r)[:200]
    tps = f"{r['tokens_per_s']:.0f} tok/s" if r.get("tokens_per_s") else "tok/s n/a"
    mfu = f"MFU {100 * r['mfu']:.2f}%" if r.get("mfu") is not None else "MFU n/a"
    train = (f"{r['train_cpu_s']:.1f} cpu-s ({r['train_wall_s']:.1f}s wall)"
             if r.get("clock") == "cpu" and r.get("train_cpu_s") is not None
             else f"{r.get('train_wall_s') or 0:.1f}s")
    return (f"{seed}ok  val_loss {r['val_loss']:.4f}  ppl {r['perplexity']:.2f}  "
            f"bpb {r['bpb']:.3f}  params {r['params']:,}  {_steps(r)} steps  {tps}  {mfu}  "
            f"train {train}  eval {r.get('eval_wall_s') or 0:.1f}s")
