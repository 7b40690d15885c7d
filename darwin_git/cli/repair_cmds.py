"""`darwin-git repair`: find the damaged pieces of a population and restore them from what git
still has (darwin_git/repair.py), saying what was lost."""
from __future__ import annotations

import click

from .options import emit_json, json_option, repo_option, user_errors


@click.command()
@click.option("--dry-run", is_flag=True, help="Only say what is damaged and what would be done.")
@repo_option
@json_option
@user_errors
def repair(dry_run, repo, as_json):
    """Repair a damaged population from its own history: note lines that cannot be read, a run
    config that cannot be read or was deleted, unreadable journal records, a deleted seed,
    notes or journal ref. Each repair says what it restored and what was lost. Memory and state
    (the run folder) need none: `darwin-git memory rebuild`, or delete state/.

    Exit 0 when the population is (now) whole; with --dry-run, 8 when something is damaged."""
    from .. import repair as fix
    from ..population import Population
    from ..population.errors import NotAPopulationRepo
    from .errors import Damaged, NotAPopulation

    try:
        pop = Population(repo, require_config=False)
    except NotAPopulationRepo as exc:
        raise NotAPopulation(str(exc)) from exc
    found = fix.inspect(pop, full=True)
    done = fix.repair(pop, dry_run=dry_run) if found else []
    if as_json:
        emit_json({"repo": str(pop.path), "dry_run": dry_run,
                   "damage": fix.to_dicts(found), "repairs": fix.to_dicts(done)})
    elif not found:
        click.echo(f"{pop.path}: nothing to repair (notes, run config, journal and seed all "
                   "read).")
    else:
        verb = "would repair" if dry_run else "repaired"
        click.echo(f"{pop.path}: {len(found)} damaged piece(s); {verb}:")
        for r in done:
            click.echo(f"  {r.piece}: {r.done}")
            click.echo(f"    lost: {r.lost}")
    if found and dry_run:
        raise Damaged(f"{len(found)} damaged piece(s); run `darwin-git repair` to repair them")
    if found and not dry_run:
        left = fix.inspect(pop, full=True)
        if left:
            raise Damaged("still damaged after the repair: " + "; ".join(d.what for d in left))
