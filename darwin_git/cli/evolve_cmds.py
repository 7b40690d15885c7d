"""`darwin-git evolve`: the main job. Creates the population on first use, then runs (or
resumes) generations until a budget runs out, and ends with the leaderboard and the report."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..clock import CLOCKS
from ..harness.factory import EXECUTORS
from ..run.base import DEVICES
from ..run.runner import RUNNERS
from ..runconfig import DEFAULT_AGENTS
from ..selection_rules import AcceptanceRule
from ..settings import PAIRINGS, EvolveSettings
from .errors import DarwinError, LockHeld, NoEvidence, RunnerUnavailable
from .options import open_population, refuse_if_damaged, repo_option, user_errors


# Where mutations come from (_mutator): the LLM when an endpoint is configured, else built-in.
MUTATORS = ("auto", "builtin", "llm")


def _range(name: str, kind: type = float):
    """The option's type: the setting's own range (EvolveSettings.BOUNDS), one rule for both."""
    return EvolveSettings.BOUNDS[name].click_type(kind)


@click.command()
@repo_option
@click.option("--seed", "seed_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Seed training repo for a new population [default: the bundled seed_repo].")
@click.option("--generations", "-g", type=_range("generations", int), envvar="DARWIN_GENERATIONS",
              help="Total generations of the run; a resumed run continues up to it "
                   f"[default {EvolveSettings.generations}].")
@click.option("--population", "-n", type=click.IntRange(1), envvar="DARWIN_POPULATION",
              help=f"Agents in a new population [default {DEFAULT_AGENTS}].")
@click.option("--budget", "budget_s", type=_range("budget_s"), envvar="DARWIN_BUDGET",
              help="Training budget per evaluation, in seconds of --clock [default: darwin.toml's "
                   "budget_s].")
@click.option("--slots", type=_range("slots", int), envvar="DARWIN_SLOTS",
              help="Evaluations at once [default: 1 per GPU; on CPU 1 per core on the cpu clock, 1 per 2 cores on the wall clock].")
@click.option("--runner", type=click.Choice(RUNNERS), default="auto",
              envvar="DARWIN_RUNNER", show_default=True,
              help="auto: docker when a daemon answers (the offline image is built if missing), else local.")
@click.option("--executor", "executor_kind", type=click.Choice(EXECUTORS),
              default="local", envvar="DARWIN_EXECUTOR", show_default=True,
              help="Where evaluations run: slots on this machine, or Ray tasks (local Ray, or "
                   "the cluster of --ray-address); needs pip install 'darwin-git[ray]'.")
@click.option("--ray-address", envvar="DARWIN_RAY_ADDRESS",
              help="Ray cluster to join (e.g. auto, ray://head:10001) [default: RAY_ADDRESS, "
                   "else a local Ray started for this run].")
@click.option("--device", type=click.Choice(DEVICES), envvar="DARWIN_DEVICE",
              help="Training device [default: cuda when available, else cpu].")
@click.option("--mutator", type=click.Choice(MUTATORS), default="auto",
              envvar="DARWIN_MUTATOR", show_default=True,
              help="auto: the LLM when OPENAI_API_KEY or OPENAI_BASE_URL is set, else built-in.")
@click.option("--model", envvar="DARWIN_LLM_MODEL",
              help="LLM model name [env DARWIN_LLM_MODEL; default: run config, gpt-4o-mini].")
@click.option("--pairing", type=click.Choice(PAIRINGS),
              help="Who rewrites whom [default ring: agent i rewrites agent i+1].")
@click.option("--crossovers", type=_range("crossovers", int), help="Crossover children per generation.")
@click.option("--clock", type=click.Choice(CLOCKS), envvar="DARWIN_CLOCK",
              help="The clock --budget is measured on: cpu (CPU seconds of the whole training "
                   "process tree; it does not shrink when other work shares the machine) or "
                   "wall [env DARWIN_CLOCK; default: cpu on CPU devices, wall on CUDA].")
@click.option("--max-seeds", type=_range("max_seeds", int), envvar="DARWIN_MAX_SEEDS",
              help="Seeds a child is compared with its parent on: its first (the screen), "
                   "then pairs side by side with its parent, before the t-test decides [env "
                   f"DARWIN_MAX_SEEDS; default {AcceptanceRule.max_seeds}].")
@click.option("--confidence", type=_range("confidence"),
              help="Confidence of the one-sided t-test of the pairs that promotes a child "
                   f"[default {AcceptanceRule.confidence}].")
@click.option("--min-effect", type=_range("min_effect"),
              help="Mean gain in nats (val_loss) a promoted child must also reach besides "
                   f"the test [default {AcceptanceRule.min_effect}: the test alone; the run "
                   "prints the smallest gain the test can see].")
@click.option("--accept-k", type=_range("accept_k"),
              help="Pruning's noise bar: an agent within k noise sigmas of the best is never "
                   f"pruned [default {EvolveSettings.accept_k}].")
@click.option("--noise-repeats", type=_range("noise_repeats", int),
              help="Seeds (seed, seed+1, ...) the seed is trained on twice side by side to "
                   f"measure the noise floor [default {EvolveSettings.noise_repeats}].")
@click.option("--max-wall", "max_wall_s", type=_range("max_wall_s"), envvar="DARWIN_MAX_WALL",
              help="Stop after this many seconds (at a consistent state).")
@click.option("--max-tokens", type=_range("max_tokens", int), help="Stop once LLM tokens reach this.")
@click.option("--max-cost", "max_cost_usd", type=_range("max_cost_usd"),
              help="Stop once the LLM cost (USD, needs prices in config) reaches this.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Set any [evolve] setting for this run, checked and stored like `darwin-git "
                   "config set evolve.KEY VALUE` (e.g. --set islands=1 --set headline_pairs=0); "
                   "repeatable.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="A new population's seed must pass the seed check first (its files, then one "
                   "short training run through the harness).")
@click.option("--json", "json_events", is_flag=True, help="JSON-lines events on stdout.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write the report at the end.")
@user_errors
def evolve(repo, seed_dir, generations, population, budget_s, slots, runner, executor_kind,
           ray_address, device, mutator, model, pairing, crossovers, clock, max_seeds,
           confidence, min_effect, accept_k, noise_repeats, max_wall_s, max_tokens,
           max_cost_usd, assignments, check, json_events, report):
    """Run the evolutionary loop (the main job); run it again to resume.

    Each generation every agent proposes a mutation to another agent's training code (within
    its island); all children train in isolation and the harness scores them. A child is
    compared with its parent on the same training seeds: rejected after one run unless better
    on the first seed, else trained side by side with its parent on more seeds and promoted
    when a one-sided t-test of the pairs, against the noise measured in the run, says so; its
    agent fast-forwards to it. The worst agents are pruned and replaced. A generation that
    gives no evidence about the code changes nothing; two in a row stop the run (exit 7).
    """
    from .. import runconfig
    from ..evolve.loop import Evolution
    from ..settings import EvolveSettings
    from ..lock import LockBusy, population_lock
    from ..create import default_seed, init_population
    from ..graph import LINEAGE_GIT_ARGS
    from ..population.layout import resolve_repo
    from ..progress import make_sink
    from ..report import write_report
    from ..run.base import SandboxUnavailable
    from ..clock import resolve_clock
    from ..harness.factory import default_slots, make_executor
    from ..harness.ray_executor import RayUnavailable

    assigned = _assigned(assignments)  # checked before anything is created
    path = resolve_repo(repo)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        if repo is not None and seed_dir is None:
            raise DarwinError(_no_population(path))
        pop = init_population(path, seed=seed_dir, agents=population or DEFAULT_AGENTS,
                              check="train" if check else "none",
                              device=device or _default_device(),
                              budget_s=budget_s, clock=clock)  # checked as the run will train it
        click.echo(f"Created a population of {len(pop.agents())} agents at {pop.path} from "
                   f"the seed {seed_dir or f'{default_seed()} (bundled)'}", err=True)
    else:
        pop = open_population(path)
        refuse_if_damaged(pop, "evolve would build on it (results it cannot read would be "
                               "measured again, or lost)")
        _name_the_seed(pop, seed_dir)
    if population and population != len(pop.agents()) and not json_events:
        click.echo(f"note: the population already has {len(pop.agents())} agents; "
                   "--population only applies to a new one", err=True)
    config = runconfig.read_config(pop.repo)
    device = device or config.get("evolve", {}).get("device") or _default_device()
    run_clock = resolve_clock(clock or config.get("evolve", {}).get("clock"), device=device)
    try:
        settings = EvolveSettings.from_config(
            config, generations=generations, budget_s=budget_s,
            slots=slots or default_slots(device, run_clock), device=device, pairing=pairing,
            crossovers=crossovers, clock=clock, max_seeds=max_seeds, confidence=confidence,
            min_effect=min_effect, accept_k=accept_k, noise_repeats=noise_repeats,
            max_wall_s=max_wall_s, max_tokens=max_tokens, max_cost_usd=max_cost_usd,
            **assigned)
    except ValueError as exc:  # a stored [evolve] value the rules refuse
        raise DarwinError(f"run settings: {exc}")

    lock = population_lock(pop.path)
    try:
        lock.acquire()
    except LockBusy as exc:
        raise LockHeld(f"{exc}. Wait for it or stop it; the lock frees itself when it exits.")
    sink = make_sink(json_events)
    executor = None
    try:
        try:  # with ray and no --slots, the cluster's CPUs (or GPUs) decide how many at once
            executor = make_executor(
                executor_kind, pop.path, runner=runner, ray_address=ray_address,
                slots=settings.slots if executor_kind == "local" else slots,
                work_root=pop.state_dir / "work",
                log=lambda msg: click.echo(f"docker image: {msg}", err=True))
        except (SandboxUnavailable, RayUnavailable) as exc:
            raise RunnerUnavailable(str(exc))
        mut, resolver = _mutator(mutator, model, config)
        summary = Evolution(pop, settings, executor, mut, sink, resolver=resolver).run()
    finally:
        sink.close()
        if executor is not None:
            executor.shutdown()
        lock.release()
    report_path = str(write_report(pop)) if report else None
    if json_events:  # one line, like every other event
        click.echo(json.dumps({"event": "summary", **summary, "report": report_path},
                              default=str))
        if summary.get("no_evidence"):
            raise NoEvidence(summary["no_evidence"])
        return
    _print_leaderboard(summary)
    if summary.get("headline"):
        from ..progress import headline_words
        click.echo(headline_words(summary["headline"]))
    click.echo(f"{summary['stopped']}. Inspect with: darwin-git log, or "
               f"git -C {pop.path} {LINEAGE_GIT_ARGS}")
    if report_path:
        click.echo(f"Report: {report_path}")
    if summary.get("no_evidence"):
        raise NoEvidence(f"{summary['no_evidence']}. Fix the cause and run evolve again to "
                         "continue (evolve.max_empty_generations sets how many empty "
                         "generations it tolerates).")


def _no_population(path: Path) -> str:
    """An explicit --repo (or DARWIN_REPO) where there is no population: never a silent new
    run from the bundled seed (a typo'd path would start someone else's experiment)."""
    from click.core import ParameterSource

    from ..create import default_seed

    ctx = click.get_current_context()
    named = "DARWIN_REPO" if ctx.get_parameter_source("repo") == ParameterSource.ENVIRONMENT \
        else "--repo"
    return (f"no population at {path} ({named}); evolve creates one there only when --seed "
            f"says what it grows from: add --seed DIR (the bundled seed is {default_seed()}), "
            "or correct the path")


def _name_the_seed(pop, seed_dir: Path | None) -> None:
    """Say which seed this population grew from; refuse a --seed that is not it (--seed only
    creates: it is never silently ignored)."""
    from .. import runconfig
    from ..population import SEED_REF
    from ..create import seed_differences

    name = runconfig.read_stored(pop.repo).get("seed_name") or "?"
    root = pop.repo.references.get(SEED_REF)
    sha = str(root.peel().id)[:10] if root is not None else "its seed ref is missing"
    if seed_dir is not None:
        differ = seed_differences(pop, seed_dir) if root is not None else ["(no seed to compare)"]
        if differ:
            shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5
                                             else "")
            raise DarwinError(
                f"{pop.path} already holds a population, grown from the seed {name!r} ({sha}); "
                f"--seed {seed_dir} is another seed ({len(differ)} file(s) differ: {shown}). "
                "--seed only says what a new population grows from: drop it to resume this "
                "population, or choose a new --repo for the new seed")
        click.echo(f"Resuming the population at {pop.path}; --seed {seed_dir} is its seed "
                   f"{name!r} ({sha})", err=True)
        return
    click.echo(f"Resuming the population at {pop.path}, grown from the seed {name!r} ({sha})",
               err=True)


def _assigned(assignments: tuple[str, ...]) -> dict:
    """--set KEY=VALUE ... as [evolve] settings, each parsed and checked as `config set` does."""
    from .. import runconfig

    out = {}
    for item in assignments:
        key, eq, text = item.partition("=")
        key = key.strip().removeprefix("evolve.")
        if not eq or not key:
            raise DarwinError(f"--set {item!r}: write KEY=VALUE, e.g. --set islands=1")
        try:
            out[key] = runconfig.parse_value(f"evolve.{key}", text)
        except runconfig.ConfigError as exc:
            raise DarwinError(f"--set {item}: {exc}") from exc
    return out


def _default_device() -> str:
    try:
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:
        return "cpu"


def _mutator(kind: str, model: str | None, config: dict):
    from ..mutate.operators import BuiltinMutator

    llm_env = os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")
    if kind == "builtin" or (kind == "auto" and not llm_env):
        return BuiltinMutator(), None
    from ..mutate.config import LLMConfig, LLMConfigError
    from ..mutate.llm import LLMMutator

    settings = dict(config.get("mutator", {}))
    if model:
        settings["model"] = model
    try:
        llm = LLMMutator(LLMConfig.from_env_and_config(settings))
    except LLMConfigError as exc:
        raise DarwinError(f"LLM mutator: {exc}")
    return llm, llm


def _print_leaderboard(summary: dict) -> None:
    from ..progress import rule_words
    from .tables import Column, console, fit

    sigma = summary.get("sigma")
    caption = (f"noise σ {sigma:.4f} (the seed over seeds)" if sigma is not None
               else "noise σ not measured")
    if summary.get("rule"):
        caption += f"; acceptance: {rule_words(summary['rule'])}"
    columns = [Column("agent"), Column("val_loss", "right"), Column("± sd", "right", drop=5),
               Column("seeds", "right", drop=6), Column("perplexity", "right", drop=3),
               Column("tokens/s", "right", drop=1), Column("MFU", "right", drop=2),
               Column("commit", drop=4), Column("warning", wrap=True, least=16)]
    fmt = lambda v, s: "-" if not isinstance(v, (int, float)) else format(v, s)
    rows = [[r["agent"], fmt(r["val_loss"], ".4f"), fmt(r.get("spread"), ".4f"),
             str(r["seeds"]), fmt(r["perplexity"], ".2f"), fmt(r["tokens_per_s"], ".0f"),
             fmt(r["mfu"], ".2%"), r["commit"][:10], r.get("too_short") or ""]
            for r in summary["leaderboard"]]
    if not any(row[-1] for row in rows):  # no warning: no empty column
        columns, rows = columns[:-1], [row[:-1] for row in rows]
    con = console()
    con.print(fit(con, columns, rows,
                  "leaderboard (val_loss: mean over seeds, lower is better)", caption))
