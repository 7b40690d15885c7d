"""`darwin-git report`: plots and a Markdown page of a run, from the repo alone."""
from __future__ import annotations

from pathlib import Path

import click

from .options import emit_json, json_option, open_population, repo_option, user_errors


@click.command()
@repo_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write report.md and the PNGs [default: <run>/reports].")
@json_option
@user_errors
def report(repo, out_dir, as_json):
    """Best and median fitness and MFU per generation (PNG), the best agent's lineage with
    the reasoning of each accepted change, failure rate by cause, success per operator."""
    from ..report import collect, write_report

    pop = open_population(repo)
    path = write_report(pop, out_dir)
    if as_json:
        emit_json({"report": str(path), **collect(pop)})
    else:
        click.echo(f"Report: {path}")
