"""`darwin-git memory`: rebuild, update or print the per-agent JSON memory."""
from __future__ import annotations

import click

from .options import (emit_json, json_option, open_population, refuse_if_damaged, repo_option,
                      user_errors, warn_if_damaged)


@click.group()
def memory():
    """Inspect or rebuild the JSON memory (a mirror of commits + notes)."""


@memory.command()
@repo_option
@json_option
@user_errors
def rebuild(repo, as_json):
    """Regenerate every agent's memory file from the repo alone."""
    from .. import memory as mem

    pop = open_population(repo)
    refuse_if_damaged(pop, "a memory rebuilt now would lack what cannot be read, and say "
                           "nothing of it")
    paths = mem.rebuild(pop)
    if as_json:
        emit_json({"memory": str(pop.memory_dir), "files": [p.name for p in paths]})
    else:
        click.echo(f"Rebuilt {len(paths)} memory file(s) in {pop.memory_dir}")


@memory.command()
@click.argument("agents", nargs=-1)
@click.option("--quiet", "-q", is_flag=True)
@repo_option
@user_errors
def update(agents, quiet, repo):
    """Refresh the memory of AGENTS (default: all); the hooks call this."""
    from .. import memory as mem

    pop = open_population(repo)
    refuse_if_damaged(pop, "a memory updated now would lack what cannot be read")
    paths = mem.update(pop, list(agents) or None)
    if not quiet:
        click.echo(f"Updated {len(paths)} memory file(s) in {pop.memory_dir}")


@memory.command(name="show")
@click.argument("agent")
@click.option("--limit", type=click.IntRange(1), default=8, show_default=True)
@repo_option
@json_option
@user_errors
def show_memory(agent, limit, repo, as_json):
    """An agent's memory: what it proposed (as the speaking agent) and what happened, then the
    history of its own code; each grouped kept / rejected / failed / pending, by delta."""
    from .. import memory as mem

    pop = open_population(repo)
    warn_if_damaged(pop)
    doc = mem.load(pop, agent)
    if as_json:
        emit_json(doc)
        return
    click.echo(f"{agent}: proposed {len(doc['proposals'])} change(s); its code has "
               f"{len(doc['entries'])} change(s) and {len(doc['failures'])} failed attempt(s); "
               f"best {doc['best']['fitness'] if doc['best'] else '-'}")
    click.echo(f"What {agent} proposed:")
    _rows(mem.proposals(pop, agent)[:limit], lambda e: f"-> {e.target}")
    click.echo(f"Changes to {agent}'s code:")
    _rows(mem.entries(pop, agent, limit), lambda e: f"by {e.speaker or 'human'}")


def _rows(entries, who) -> None:
    if not entries:
        click.echo("  (none)")
    for e in entries:
        delta = "-" if e.delta is None else f"{e.delta:+.4f}"
        reason = f"  ({e.reason})" if e.reason else ""
        click.echo(f"  {e.outcome or e.status:<9} {delta:>9}  {who(e):<14} {e.operator:<18} "
                   f"{e.summary}{reason}")
