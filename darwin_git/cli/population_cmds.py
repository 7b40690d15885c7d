"""`darwin-git init | status | log | show`: create and read a population repo."""
from __future__ import annotations

from pathlib import Path

import click

from ..runconfig import DEFAULT_AGENTS
from .options import (emit_json, json_option, open_population, repo_option, user_errors,
                      warn_if_damaged)


def _console():
    from .tables import console
    return console()


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@click.command()
@click.option("--seed", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Seed training repo (a folder with darwin.toml).")
@click.option("--agents", type=click.IntRange(1, 100000), default=DEFAULT_AGENTS, show_default=True,
              envvar="DARWIN_AGENTS", help="Number of agent branches [env DARWIN_AGENTS].")
@click.option("--bare", is_flag=True, help="Create a bare population repo.")
@click.option("--no-hooks", is_flag=True, help="Do not install the git hooks.")
@click.option("--no-check", is_flag=True,
              help="Create the population without checking the seed's files and without "
                   "its trial training run (darwin.toml's fields are always checked).")
@repo_option
@json_option
@user_errors
def init(seed, agents, bare, no_hooks, no_check, repo, as_json):
    """Create a population repo from a seed, with N agent branches.

    The seed is checked first, and nothing is created if it fails: its files against
    darwin.toml (entry module and function, mutable paths, the train script), then one short
    training run through the harness on the CPU (about half a minute)."""
    from ..create import init_population

    if not no_check and not as_json:
        click.echo("Checking the seed: one short training run (--no-check skips it)...",
                   err=True)
    pop = init_population(repo, seed=seed, agents=agents, bare=bare, hooks=not no_hooks,
                          check="none" if no_check else "train")
    info = {"repo": str(pop.path), "memory": str(pop.memory_dir), "bare": bare,
            "agents": list(pop.agents()), "seed": str(pop.commit("seed").id)}
    if as_json:
        emit_json(info)
        return
    click.echo(f"Created population at {pop.path} with {len(info['agents'])} agents "
               f"({info['agents'][0]} .. {info['agents'][-1]}).")
    click.echo(f"Memory: {pop.memory_dir}")
    click.echo("Publish it with: darwin-git push REMOTE")


@click.command()
@repo_option
@json_option
@user_errors
def status(repo, as_json):
    """Leaderboard of live agents (fitness = mean val_loss over seeds under the run's budget,
    clock, device and harness; lower is better), with the spread over its seeds (± sd), how
    many seeds stand behind it, the run's noise σ and acceptance rule, and a warning when runs
    were too short to learn. A tip with commits nobody evaluated yet shows them as +N."""
    from ..evolve.selection import diversity
    from ..population.errors import DamagedPopulation
    from ..progress import headline_words, rule_words
    from ..readmodel import ReadModel
    from ..runconfig import read_config
    from ..settings import EvolveSettings

    pop = open_population(repo)
    warn_if_damaged(pop)
    model = ReadModel(pop, pinned=True)
    run = model.conditions
    rows = model.leaderboard()
    try:
        noise, headline = model.run.noise, model.run.headline
    except DamagedPopulation:  # warned above: the leaderboard stands without the journal's
        noise = headline = None
    try:
        rule = EvolveSettings.from_config(read_config(pop.repo)).acceptance().to_dict()
    except ValueError:  # a stored setting the rules refuse: evolve says so; status still shows
        rule = None
    sigma = noise.get("sigma") if noise else None
    infra = sum(len(model.infrastructure_failures(r["commit"])) for r in rows)
    spread = diversity(pop)
    if as_json:
        emit_json({"repo": str(pop.path), "agents": rows, "sigma": sigma, "rule": rule,
                   "conditions": vars(run),
                   "noise": {k: noise.get(k) for k in ("sigma", "paired_sigma", "paired_df",
                                                       "mde")} if noise else None,
                   "headline": headline, "infrastructure_failures": infra,
                   "diversity": spread})
        return
    from .tables import Column, fit

    caption = (f"{run.budget_s:g} s of {run.clock} time per run on {run.device}; "
               + (f"noise σ {sigma:.4f} (the seed over {noise.get('repeats')} seeds)"
                  if sigma is not None else "noise σ not measured yet")
               + (f"; acceptance: {rule_words(rule)}" if rule else ""))
    # what a narrow terminal can do without goes first: throughput, spread; the summary last
    columns = [Column("#", "right"), Column("agent"), Column("val_loss", "right"),
               Column("± sd", "right", drop=5), Column("seeds", "right", drop=7),
               Column("ppl", "right", drop=3), Column("tok/s", "right", drop=1),
               Column("MFU", "right", drop=2), Column("status", wrap=True),
               Column("gen", "right", drop=4), Column("tip", drop=6),
               Column("summary", wrap=True, drop=8, least=16)]
    table_rows = []
    for r in rows:
        tip = r["commit"][:10] + (f" +{r['pending']}" if r["pending"] else "")
        mfu = None if r["mfu"] is None else r["mfu"] * 100
        status = r["status"] + (" (too short)" if r.get("too_short") else "")
        table_rows.append([str(r["rank"]), r["agent"], _fmt(r["val_loss"], ".4f"),
                           _fmt(r.get("spread"), ".4f"), str(r["seeds"]),
                           _fmt(r["perplexity"], ".2f"), _fmt(r["tokens_per_s"], ",.0f"),
                           "-" if mfu is None else f"{mfu:.1f}%", status,
                           str(r["generation"]), tip, r["summary"][:60]])
    con = _console()
    con.print(fit(con, columns, table_rows, f"darwin-git population: {pop.path}", caption))
    con.print(f"diversity: {spread['distinct']} distinct tips of {spread['agents']} agents "
              f"(clones count once), {spread['pairwise_lines']:.0f} changed lines between two "
              "distinct tips on average", markup=False)
    if noise and noise.get("mde") is not None:
        con.print(f"smallest effect acceptance can see: {noise['mde']:.4f} nats (a paired "
                  f"difference spreads by {noise['paired_sigma']:.4f}, the seed beside itself)",
                  markup=False)
    if headline:
        con.print(headline_words(headline), markup=False)
    if infra:
        con.print(f"{infra} evaluation(s) of these tips failed for the engine's or the "
                  "infrastructure's reasons (not the code's): counted apart, run again",
                  markup=False)
    for r in rows:
        if r.get("too_short"):
            con.print(f"warning: {r['agent']}: {r['too_short']}", markup=False)


@click.command()
@click.argument("agent", required=False)
@click.option("-n", "--max-count", type=click.IntRange(1), default=200, show_default=True,
              help="Show at most this many commits.")
@repo_option
@json_option
@user_errors
def log(agent, max_count, repo, as_json):
    """Lineage graph of all agents (pruned ones included), or of one AGENT.

    Every parent edge is drawn: each line of descent keeps its column until it reaches its
    parent ("*" a commit, "*-." a merge opening a lane for its other parent, "/" and "_" a
    lane joining the one to its left). [val_loss over N seeds] is the commit's fitness,
    the same number status and the report show."""
    from ..graph import each_ref_once, lineage, render

    pop = open_population(repo)
    warn_if_damaged(pop)
    rows = lineage(pop, agent, max_count)
    if as_json:
        emit_json({"commits": rows})
        return
    for line in render(each_ref_once(pop, rows)):
        click.echo(line)


@click.command()
@click.argument("rev")
@click.option("--no-diff", is_flag=True, help="Leave the diff out.")
@repo_option
@json_option
@user_errors
def show(rev, no_diff, repo, as_json):
    """Reasoning, diff and metrics of an agent's tip or any commit. Its fitness counts the
    results measured under the run's conditions; every result line is listed."""
    from ..readmodel import ReadModel

    pop = open_population(repo)
    warn_if_damaged(pop)
    c = pop.commit(rev)
    rec = ReadModel(pop, pinned=True).record(c.id)
    fit, summary, reasoning, trailers = rec.fitness, rec.summary, rec.reasoning, rec.trailers
    parent = pop.repo[c.parent_ids[0]].tree if c.parent_ids else None
    diff = pop.repo.diff(parent, c.tree) if parent is not None else c.tree.diff_to_tree(swap=True)
    records = list(rec.notes)
    info = {"commit": rec.commit, "parents": list(rec.parents),
            "author": f"{c.author.name} <{c.author.email}>", "time": rec.time,
            "summary": summary, "reasoning": reasoning, "trailers": trailers,
            "records": records, "result": rec.results[-1] if rec.results else None,
            "fitness": {"val_loss": fit.loss, "seeds": fit.n, "failed": fit.failed},
            "diff": None if no_diff else diff.patch or ""}
    if as_json:
        emit_json(info)
        return
    con = _console()
    con.print(f"[bold]commit {c.id}[/bold]")
    con.print(f"Author: {info['author']}")
    con.print(f"\n    {summary}\n")
    if reasoning:
        con.print("\n".join("    " + l for l in reasoning.splitlines()) + "\n", markup=False)
    for k, v in trailers.items():
        con.print(f"    {k}: {v}", markup=False)
    res = info["result"]
    if res:
        con.print(f"\nResult: status={res.get('status')} val_loss={_fmt(res.get('val_loss'), '.4f')}"
                  f" ppl={_fmt(res.get('perplexity'), '.2f')} "
                  f"tok/s={_fmt(res.get('tokens_per_s'), ',.0f')} "
                  f"mfu={_fmt(res.get('mfu'), '.4f')} params={res.get('params') or '-'}",
                  markup=False)
    if fit.loss is not None or fit.failed:
        con.print("Fitness: " + (f"val_loss {fit.loss:.4f} (mean over {fit.n} seed(s))"
                                 if not fit.failed else "failed under the run's conditions"),
                  markup=False)
    for r in records:
        if r.get("kind") == "attempt":
            con.print(f"Attempt failed: {r.get('cause')}: {r.get('detail')}", markup=False)
        elif r.get("kind") == "raw":
            text = str(r.get("text"))
            con.print("Unreadable note line (see `darwin-git repair`): "
                      + (text if len(text) <= 200 else text[:197] + "..."), markup=False)
    if not no_diff and info["diff"]:
        con.print("")
        click.echo(info["diff"], nl=False)
