"""The run's configuration, stored in the population repo itself at `refs/darwin/config`
(a commit whose tree holds `run.toml`), so any clone knows how to continue the run.

Read it as a dict: stored values over DEFAULTS (deep-merged), so keys added to DEFAULTS later
appear in old runs too. Each write is a new commit on top of the last (a config history).
"""
from __future__ import annotations

import copy
import json
import math

import pygit2

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .population.refs import engine_signature, ref_target, update_refs

CONFIG_REF = "refs/darwin/config"
CONFIG_FILE = "run.toml"

DEFAULTS: dict = {
    "version": 1,
    "population_size": 4,
    "budget_s": 60.0,
    "tokenizer": "char",
    # the LLM mutator's settings (darwin_git.mutate.config.LLMConfig); secrets stay in the env
    "mutator": {"model": "gpt-4o-mini", "temperature": 0.7, "max_apply_attempts": 3},
    # the loop's rules (darwin_git.evolve.settings.EvolveSettings), written by `evolve`
    "evolve": {},
}


class ConfigError(Exception):
    """run.toml cannot be read or written."""


def merged(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_stored(repo: pygit2.Repository) -> dict:
    """Only what run.toml holds (no defaults); {} when there is no config yet."""
    tip = ref_target(repo, CONFIG_REF)
    if tip is None:
        return {}
    tree = repo[tip].peel(pygit2.Commit).tree
    try:
        text = repo[tree[CONFIG_FILE].id].data.decode()
    except KeyError:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_REF}:{CONFIG_FILE} is not valid TOML: {exc}") from exc


def read_config(repo: pygit2.Repository) -> dict:
    return merged(DEFAULTS, read_stored(repo))


def write_config(repo: pygit2.Repository, values: dict, message: str = "Update run config",
                 replace: bool = False) -> pygit2.Oid:
    """Store ``values`` merged over what is stored (or instead of it with replace=True)."""
    tip = ref_target(repo, CONFIG_REF)
    stored = {} if replace else read_stored(repo)
    text = dumps_toml(merged(stored, values))
    tb = repo.TreeBuilder()
    tb.insert(CONFIG_FILE, repo.create_blob(text.encode()), pygit2.GIT_FILEMODE_BLOB)
    sig = engine_signature()
    oid = repo.create_commit(None, sig, sig, message.rstrip("\n") + "\n", tb.write(),
                             [tip] if tip else [])
    update_refs(repo, [(CONFIG_REF, tip, oid)], "darwin-git: config")
    return oid


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ConfigError(f"cannot store non-finite number {v} in {CONFIG_FILE}")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ConfigError(f"cannot store {type(v).__name__} {v!r} in {CONFIG_FILE}")


def dumps_toml(data: dict, prefix: str = "") -> str:
    """Plain scalars, lists and nested tables: all run.toml needs."""
    lines, tables = [], []
    for k in sorted(data):
        key = k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)
        v = data[k]
        if v is None:
            continue
        if isinstance(v, dict):
            tables.append((key, v))
        else:
            lines.append(f"{key} = {_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, sub in tables:
        name = f"{prefix}.{key}" if prefix else key
        out += f"\n[{name}]\n" + dumps_toml(sub, name)
    return out
