"""Options shared by the command groups: `--repo` (env DARWIN_REPO) and `--json`."""
from __future__ import annotations

import json
import sys

import click

from .errors import Damaged, DarwinError, NotAPopulation

repo_option = click.option(
    "--repo", "repo", envvar="DARWIN_REPO", default=None, metavar="DIR",
    help="Population repo [env DARWIN_REPO; default ./darwin-run/population].")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Machine-readable JSON on stdout.")


def open_population(repo):
    """The Population at --repo, or a NotAPopulation user error."""
    from ..population import Population, PopulationError
    from ..population.errors import DamagedPopulation, NotAPopulationRepo

    try:
        return Population(repo)
    except NotAPopulationRepo as exc:
        raise NotAPopulation(str(exc)) from exc
    except DamagedPopulation as exc:
        raise Damaged(str(exc)) from exc
    except PopulationError as exc:
        raise DarwinError(str(exc)) from exc


def user_errors(fn):
    """Turn population/config errors raised inside a command into clean CLI errors."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..population import PopulationError
        from ..population.errors import DamagedPopulation, NotAPopulationRepo
        from ..runconfig import ConfigDamaged, ConfigError

        try:
            return fn(*args, **kwargs)
        except NotAPopulationRepo as exc:
            raise NotAPopulation(str(exc)) from exc
        except (DamagedPopulation, ConfigDamaged) as exc:
            raise Damaged(str(exc)) from exc
        except (PopulationError, ConfigError) as exc:
            raise DarwinError(str(exc)) from exc
        except OSError as exc:  # the run folder (memory, state, reports) unusable
            hint = _run_folder_hint(exc, kwargs.get("repo"))
            if hint is None:
                raise
            raise Damaged(f"cannot use {exc.filename}: {exc.strerror or exc}; {hint}") from exc
    return wrapper


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def warn_if_damaged(pop) -> None:
    """Tell a reader (on stderr, so --json stays as it is) which pieces it cannot see."""
    from ..repair import warnings

    for line in warnings(pop):
        click.echo(line, err=True)


def refuse_if_damaged(pop, doing: str) -> None:
    """A command that writes what it derives from the population stops on a damaged one
    (exit 8), before it changes anything."""
    from ..population.errors import DamagedPopulation
    from ..repair import require_intact

    try:
        require_intact(pop, doing)
    except DamagedPopulation as exc:
        raise Damaged(str(exc)) from exc


def _run_folder_hint(exc: OSError, repo) -> str | None:
    from ..population.layout import damage_hint, resolve_repo

    if exc.filename is None:
        return None
    return damage_hint(exc.filename, resolve_repo(repo))
