"""`darwin-git config [get KEY | set KEY VALUE | unset KEY]`: the run's settings
(refs/darwin/config:run.toml) without git plumbing. Every change is a commit on the config
history, so a resumed run and every clone use it."""
from __future__ import annotations

import click

from .errors import DarwinError
from .options import emit_json, json_option, open_population, repo_option, user_errors

# Settings that decide which results are comparable (darwin_git.fitness.Conditions).
CONDITIONS = ("evolve.budget_s", "evolve.clock", "evolve.device")


def _show(value) -> str:
    import json

    from ..runconfig import toml_value

    if isinstance(value, dict):  # a whole table (e.g. one `config unset` removes)
        return json.dumps(value, sort_keys=True)
    return "-" if value is None else toml_value(value)


def _default(default, note: str | None) -> str:
    return "(at start)" if note else _show(default)


def _print_rows(rows: list[dict], title: str | None = None) -> None:
    """KEY VALUE SOURCE DEFAULT HELP (with the values a key takes), fitted to the terminal; a
    default decided at start is spelled out."""
    from ..runconfig import SCHEMA
    from .tables import Column, console, fit

    table = []
    for r in rows:
        setting = SCHEMA.get(r["key"])
        allowed = setting.allowed if setting is not None else None
        help_ = r["help"] + (f"; default: {r['default_note']}" if r["default_note"] else "") \
            + (f" [{allowed}]" if allowed and not setting.choices else "")
        table.append([r["key"], _show(r["value"]), r["source"],
                      _default(r["default"], r["default_note"]), help_])
    columns = [Column("KEY"), Column("VALUE", wrap=True), Column("SOURCE", drop=2),
               Column("DEFAULT", wrap=True, drop=1), Column("HELP", wrap=True, least=24)]
    con = console()
    con.print(fit(con, columns, table, title))


@click.group(invoke_without_command=True)
@repo_option
@json_option
@click.pass_context
@user_errors
def config(ctx, repo, as_json):
    """Show the run's settings: value, source (stored or default) and help of every key.

    Keys are dotted: top-level ones (written by init), [evolve] (the loop's rules, the fields
    of EvolveSettings) and [mutator] (the LLM mutator's, the fields of LLMConfig). A change
    applies when `evolve` next starts or resumes, in this clone and in every clone that pulls.
    """
    ctx.ensure_object(dict)
    ctx.obj["repo"] = repo
    if ctx.invoked_subcommand is not None:
        return
    from .. import runconfig

    pop = open_population(repo)
    rows = runconfig.describe(pop.repo)
    problems = runconfig.check_stored(runconfig.read_stored(pop.repo))
    if as_json:
        emit_json({"repo": str(pop.path), "ref": f"{runconfig.CONFIG_REF}:"
                   f"{runconfig.CONFIG_FILE}", "settings": rows, "problems": problems})
        return
    _print_rows(rows, f"Run settings of {pop.path} ({runconfig.CONFIG_REF}:"
                      f"{runconfig.CONFIG_FILE}); `darwin-git config set KEY VALUE` changes one.")
    for problem in problems:
        click.echo(f"error: {problem}", err=True)


def _repo(ctx, repo):
    return repo or (ctx.obj or {}).get("repo")


@config.command("get")
@click.argument("key")
@repo_option
@json_option
@click.pass_context
@user_errors
def get(ctx, key, repo, as_json):
    """Print one setting (its stored value, else its default); KEY may name a table."""
    from .. import runconfig

    pop = open_population(_repo(ctx, repo))
    rows = [r for r in runconfig.describe(pop.repo)
            if r["key"] == key or r["key"].startswith(key + ".")]
    if not rows:
        raise DarwinError(runconfig.unknown_key_message(key))
    if as_json:
        emit_json(rows[0] if len(rows) == 1 and rows[0]["key"] == key else {"settings": rows})
    elif len(rows) == 1 and rows[0]["key"] == key:
        row = rows[0]
        unset_dynamic = row["source"] == "default" and row["default_note"]
        click.echo(f"unset: {row['default_note']}" if unset_dynamic else _show(row["value"]))
    else:
        _print_rows(rows)


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.option("-m", "--message", help="Commit message [default: what changed].")
@repo_option
@json_option
@click.pass_context
@user_errors
def set_(ctx, key, value, message, repo, as_json):
    """Store KEY = VALUE (parsed and checked by the key's type) on refs/darwin/config."""
    from .. import runconfig

    pop = open_population(_repo(ctx, repo))
    setting = runconfig.SCHEMA.get(key)
    if setting is None:
        raise DarwinError(runconfig.unknown_key_message(key))
    if not setting.settable:
        raise DarwinError(f"{key} is written by `darwin-git init` and describes the "
                          "population; it cannot be set")
    new = runconfig.parse_value(key, value)
    stored = runconfig.read_stored(pop.repo)
    old = runconfig.get_path(stored, key)
    if new is None:  # an optional key set to nothing: the same as unset
        return _unset(pop, key, message, as_json)
    was = _show(old) if old is not None else f"default {_show(setting.default)}"
    data = runconfig.merged(stored, {})
    runconfig.set_path(data, key, new)
    if not runconfig.check_stored(data):  # other stored problems are `config`'s to show
        runconfig.check_settings(runconfig.merged(runconfig.DEFAULTS, data))
    oid = runconfig.store(pop.repo, data, message or
                          f"config: set {key} = {_show(new)} (was {was})")
    if as_json:
        emit_json({"key": key, "value": new, "previous": old, "commit": str(oid)})
    else:
        click.echo(f"{key} = {_show(new)} (was {was}); stored as {str(oid)[:10]} on "
                   f"{runconfig.CONFIG_REF}")
        if key in CONDITIONS and new != old:
            click.echo("note: fitness counts only results measured under the run's budget, "
                       "clock and device: results measured before this change no longer "
                       "count", err=True)


@config.command("unset")
@click.argument("key")
@click.option("-m", "--message", help="Commit message [default: what changed].")
@repo_option
@json_option
@click.pass_context
@user_errors
def unset(ctx, key, message, repo, as_json):
    """Remove KEY from run.toml (back to its default); also removes keys no longer known."""
    pop = open_population(_repo(ctx, repo))
    _unset(pop, key, message, as_json)


def _unset(pop, key, message, as_json):
    from .. import runconfig

    stored = runconfig.read_stored(pop.repo)
    setting = runconfig.SCHEMA.get(key)
    if setting is not None and not setting.settable:
        raise DarwinError(f"{key} is written by `darwin-git init` and describes the "
                          "population; it cannot be unset")
    old = runconfig.get_path(stored, key)
    data = runconfig.merged(stored, {})
    if not runconfig.del_path(data, key):
        if setting is None:
            raise DarwinError(runconfig.unknown_key_message(key))
        if as_json:
            emit_json({"key": key, "value": None, "previous": None, "commit": None})
        else:
            click.echo(f"{key} is not stored; it already has its default")
        return
    oid = runconfig.store(pop.repo, data, message or f"config: unset {key} (was {_show(old)})")
    now = "removed" if setting is None else \
        f"now default {setting.default_note or _show(setting.default)}"
    if as_json:
        emit_json({"key": key, "value": None, "previous": old, "commit": str(oid)})
    else:
        click.echo(f"{key} unset (was {_show(old)}; {now}); stored as {str(oid)[:10]} on "
                   f"{runconfig.CONFIG_REF}")
