"""`darwin-git report`: the run's page (report.html, the evolutionary tree) and a Markdown
page with plots, from the repo alone."""
from __future__ import annotations

from pathlib import Path

import click

from .options import (emit_json, json_option, open_population, repo_option, user_errors,
                      warn_if_damaged)


@click.command()
@repo_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write report.html, report.md and the PNGs "
                   "[default: <run>/reports].")
@json_option
@user_errors
def report(repo, out_dir, as_json):
    """report.html: the evolutionary tree of the whole run (every candidate, coloured by
    outcome, with its reasoning, operator, model, delta, seeds and σ on click), fitness and
    MFU per generation, failures by cause, retries, tokens and cost per model; one file that
    opens in any browser, offline. report.md: the same numbers in Markdown, with PNG plots."""
    from ..report import collect, write_report

    pop = open_population(repo)
    warn_if_damaged(pop)
    path = write_report(pop, out_dir)
    if as_json:
        emit_json({"report": str(path), "markdown": str(path.with_name("report.md")),
                   **collect(pop)})
    else:
        click.echo(f"Report: {path} (and report.md beside it)")
