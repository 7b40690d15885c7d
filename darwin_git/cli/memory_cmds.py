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
    from .tables import console

    console().print(f"{agent}: proposed {len(doc['proposals'])} change(s); its code has "
                    f"{len(doc['entries'])} change(s) and {len(doc['failures'])} failed "
                    f"attempt(s); best {doc['best']['fitness'] if doc['best'] else '-'}",
                    markup=False)
    click.echo(f"What {agent} proposed:")
    _rows(mem.proposals(pop, agent)[:limit], lambda e: f"-> {e.target}")
    click.echo(f"Changes to {agent}'s code:")
    _rows(mem.entries(pop, agent, limit), lambda e: f"by {e.speaker or 'human'}")


def _rows(entries, who) -> None:
    from .tables import Column, console, fit

    if not entries:
        click.echo("  (none)")
        return
    rows = [[e.outcome or e.status, "-" if e.delta is None else f"{e.delta:+.4f}", who(e),
             e.operator, e.summary, e.reason or ""] for e in entries]
    columns = [Column("outcome"), Column("delta", "right"), Column("who", drop=2),
               Column("operator", drop=1), Column("summary", wrap=True, least=16),
               Column("why", wrap=True, least=16, drop=3)]
    if not any(r[-1] for r in rows):
        columns, rows = columns[:-1], [r[:-1] for r in rows]
    con = console()
    con.print(fit(con, columns, rows))
