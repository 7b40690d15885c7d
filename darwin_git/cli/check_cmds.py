"""`darwin-git check DIR`: every missing piece of a training repo, each with its fix."""
from __future__ import annotations

from pathlib import Path

import click

from .errors import DarwinError
from .options import emit_json, json_option, user_errors


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--train", "train_once", is_flag=True,
              help="Also train and score it once through the harness on the CPU (about half "
                   "a minute), as init does.")
@click.option("--suggest", is_flag=True,
              help="Print a darwin.toml guessed from the repo's files, and nothing else.")
@json_option
@user_errors
def check(directory, train_once, suggest, as_json):
    """List every missing piece of the training repo DIRECTORY, one line each with its fix:
    darwin.toml (a guess at one when there is none), the files it names, what the training
    code does not do yet (read DARWIN_DATA, write into DARWIN_OUT, stop on its budget, save
    darwin's checkpoint, use DARWIN_SEED), imports the training interpreter lacks, and which
    built-in operators fit it. SEEDS.md explains each piece. Exit 2 when a piece is missing."""
    from ..harness import seedcheck

    if suggest:
        click.echo(seedcheck.suggest_contract(directory), nl=False)
        return
    contract, found = seedcheck.findings(directory)
    operators = _operators(directory, contract) if contract is not None else None
    result = None
    errors = [f for f in found if f.level == "error"]
    if train_once and contract is not None and not errors:
        if not as_json:
            click.echo("Training it once through the harness (local sandbox, CPU)...", err=True)
        result = seedcheck.preflight(directory, contract)
    if as_json:
        emit_json({"directory": str(directory),
                   "findings": [{"level": f.level, "what": f.what, "fix": f.fix}
                                for f in found],
                   "operators": operators, "train": result})
    else:
        click.echo(f"{directory}: {len(errors)} missing, "
                   f"{len(found) - len(errors)} to look at (SEEDS.md explains each piece)")
        for f in found:
            click.echo(f"{f.level:8s} {f.line()}")
        if operators is not None:
            fit = operators["fit"]
            click.echo(f"{'ok' if fit else 'warning':8s} {len(fit)} of {len(fit) + len(operators['not'])} "
                       f"built-in operators fit{': ' + ', '.join(fit) if fit else ''}")
            for name, why in operators["not"].items():
                click.echo(f"{'':8s} {name}: {why}")
        if result is not None:
            click.echo(_train_line(result))
    if errors or (result is not None and result.get("status") != "ok"):
        raise DarwinError(f"{directory} is not ready to be a seed"
                          + (f": {len(errors)} missing piece(s)" if errors else ""))
    if not as_json:
        click.echo(f"Ready: darwin-git init --seed {directory}")


def _operators(directory: Path, contract) -> dict:
    """Which built-in operators fit the repo's mutable files (config files the command names
    and the model entry's module count as read-only)."""
    from ..mutate.operators import operator_fit
    from ..mutate.policy import model_path
    from ..harness.seedcheck import seed_files

    files, read_only = {}, {}
    for rel in seed_files(directory):
        if not rel.endswith(".py"):
            continue
        try:
            text = (Path(directory) / rel).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if contract.is_mutable(rel):
            files[rel] = text
        elif rel in contract.config_files or rel == model_path(contract):
            read_only[rel] = text
    fit = operator_fit(files, contract, read_only=read_only)
    return {"fit": [n for n, why in fit if why is None],
            "not": {n: why for n, why in fit if why is not None}}


def _train_line(result: dict) -> str:
    if result.get("status") == "ok":
        steps = (result.get("train") or {}).get("steps")
        return (f"{'ok':8s} trained {result.get('budget_s'):g} s ({result.get('clock')} clock)"
                f"{f', {steps} steps' if steps is not None else ''} and scored: val_loss "
                f"{result.get('val_loss'):.4f}")
    tail = [ln for ln in (result.get("log_tail") or "").splitlines() if ln.strip()]
    line = (f"{'error':8s} one training run: {result.get('status')} ({result.get('cause')}): "
            f"{tail[-1][:300] if tail else 'no output'}")
    if result.get("preflight"):  # the model's own error, from a run shown no validation text
        line += "\n" + "\n".join(f"{'':8s} {ln}" for ln in result["preflight"].splitlines())
    return line
