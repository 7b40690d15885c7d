"""Options shared by the command groups: `--repo` (env DARWIN_REPO) and `--json`."""
from __future__ import annotations

import json
import sys

import click

from .errors import DarwinError, NotAPopulation

repo_option = click.option(
    "--repo", "repo", envvar="DARWIN_REPO", default=None, metavar="DIR",
    help="Population repo [env DARWIN_REPO; default ./darwin-run/population].")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Machine-readable JSON on stdout.")


def open_population(repo):
    """The Population at --repo, or a NotAPopulation user error."""
    from ..population import Population, PopulationError
    from ..population.errors import NotAPopulationRepo

    try:
        return Population(repo)
    except NotAPopulationRepo as exc:
        raise NotAPopulation(str(exc)) from exc
    except PopulationError as exc:
        raise DarwinError(str(exc)) from exc


def user_errors(fn):
    """Turn population/config errors raised inside a command into clean CLI errors."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..population import PopulationError
        from ..population.errors import NotAPopulationRepo
        from ..runconfig import ConfigError

        try:
            return fn(*args, **kwargs)
        except NotAPopulationRepo as exc:
            raise NotAPopulation(str(exc)) from exc
        except (PopulationError, ConfigError) as exc:
            raise DarwinError(str(exc)) from exc
    return wrapper


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")
