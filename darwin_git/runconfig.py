"""The run's configuration, stored in the population repo itself at `refs/darwin/config`
(a commit whose tree holds `run.toml`), so any clone knows how to continue the run.

Every key the file may hold is declared in SCHEMA: its type, default and a one-line help. The
`[evolve]` keys are the fields of darwin_git.settings.EvolveSettings and the `[mutator]`
keys those of darwin_git.mutate.config.LLMConfig, read from the dataclasses themselves (types
from their annotations, help from the comment beside each field), so a field added there is a
setting here with nothing else to change. A key SCHEMA does not know is an error on read and
on write, naming the key and the known ones: a typo never runs silently with the default.

Read it as a dict: stored values over the static defaults, so keys added later appear in old
runs too. Each write is a new commit on top of the last (a config history).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import io
import json
import math
import tokenize
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import pygit2

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .bounds import AT_LEAST_1, POSITIVE, Bounds
from .clock import CLOCKS
from .contract import DEFAULT_BUDGET_S
from .mutate.config import LLMConfig
from .population.refs import engine_signature, ref_target, update_refs
from .population.repo import CONFIG_REF
from .selection_rules import SelectionSettings
from .settings import PAIRINGS, EvolveSettings

CONFIG_FILE = "run.toml"


class ConfigError(Exception):
    """run.toml cannot be read or written, or a setting is unknown or of the wrong type."""


class ConfigDamaged(ConfigError):
    """run.toml on refs/darwin/config cannot be read at all (not TOML, not there): only an
    earlier version can stand in for it (`darwin-git repair`)."""


REPAIR_HINT = ("`darwin-git repair` restores its last readable version (`git log -p "
               "refs/darwin/config` shows them all) and names the changes that were lost")


@dataclass(frozen=True)
class Setting:
    key: str  # dotted: "budget_s", "evolve.accept_k", "mutator.timeout_s"
    kind: type  # int, float, str, bool or list
    default: object  # None: unset
    help: str
    optional: bool = False  # may be unset (None)
    choices: tuple = ()
    settable: bool = True  # False: written by `init`, it describes the population
    default_note: str | None = None  # the default is decided when the run starts
    bounds: Bounds | None = None  # the range of a number (darwin_git/bounds.py)

    @property
    def table(self) -> str:
        return self.key.rpartition(".")[0]

    @property
    def type_name(self) -> str:
        name = "|".join(map(repr, self.choices)) if self.choices else self.kind.__name__
        return name + (" (optional)" if self.optional else "")

    @property
    def allowed(self) -> str | None:
        """The values it takes in words, beyond its type: 'one of cpu, wall', '>= 0'."""
        if self.choices:
            return f"one of {', '.join(map(str, self.choices))}"
        return self.bounds.words() if self.bounds else None


DEFAULT_AGENTS = 4  # agents in a new population (init --agents, evolve --population)
# Keys written by `init`; budget_s is the seed's darwin.toml budget, [evolve] budget_s wins.
_TOP = (
    Setting("version", int, 1, "format of run.toml", settable=False, bounds=Bounds(1, 1)),
    Setting("population_size", int, DEFAULT_AGENTS, "agents the population was created with",
            settable=False, bounds=AT_LEAST_1),
    Setting("budget_s", float, DEFAULT_BUDGET_S, "training seconds per evaluation from the seed's "
            "darwin.toml (evolve.budget_s, once stored, wins)", settable=False,
            bounds=POSITIVE),
    Setting("tokenizer", str, "char", "the seed's tokenizer", settable=False),
    Setting("seed_name", str, None, "folder name of the seed the population started from",
            optional=True, settable=False),
    Setting("agents", list, None, "agent names the population was created with",
            optional=True, settable=False),
)
# Defaults `evolve` decides when it starts, when the run has not stored a value.
_RUN_TIME_DEFAULTS = {
    "evolve.budget_s": "the top-level budget_s (the seed's darwin.toml)",
    "evolve.device": "cuda when available, else cpu",
    "evolve.slots": "1 per GPU; on CPU 1 per core (cpu clock), 1 per 2 cores (wall clock)",
}
_CHOICES = {"evolve.pairing": PAIRINGS, "evolve.clock": CLOCKS}  # device: EvolveSettings checks
# Never stored: run.toml travels with every push of the population.
_SECRETS = {"mutator.api_key": "set OPENAI_API_KEY in the environment instead"}
TABLES = {"evolve": EvolveSettings, "mutator": LLMConfig}
# Help for fields whose line carries no comment (a comment there wins).
_HELP = {
    "evolve.device": "training device: cpu or cuda",
    "mutator.model": "model name the OpenAI-compatible server serves",
    "mutator.temperature": "sampling temperature of the mutation replies",
    "mutator.price_completion_per_1m": "USD per 1M completion tokens, for cost reporting",
}


def _field_comments(cls) -> dict[str, str]:
    """field name -> the comment on its line in the class source (its one-line help)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    lines = source.splitlines()
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        code = lines[tok.start[0] - 1][:tok.start[1]].strip()
        name = code.split(":", 1)[0].strip()
        if name in names and ":" in code and name not in out:
            out[name] = tok.string.lstrip("#").strip()
    return out


def _kind(annotation) -> tuple[type, bool, tuple]:
    """(kind, optional, choices) of a field annotation like `float | None` or Literal[...]."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        kind, _, choices = _kind(rest[0]) if len(rest) == 1 else (object, False, ())
        return kind, type(None) in args, choices
    if origin is typing.Literal:
        return type(args[0]), False, tuple(args)
    if origin in (list, tuple) or annotation in (list, tuple):
        return list, False, ()
    if annotation is Path:
        return str, False, ()
    if annotation in (int, float, str, bool):
        return annotation, False, ()
    return object, False, ()


def _table_settings(table: str, cls) -> list[Setting]:
    hints = typing.get_type_hints(cls)
    # EvolveSettings hands elites, tournament_size, ... to SelectionSettings, which says why.
    helps = {**_field_comments(SelectionSettings), **_field_comments(cls)}
    bounds = getattr(cls, "BOUNDS", {})
    out = []
    for f in dataclasses.fields(cls):
        key = f"{table}.{f.name}"
        if key in _SECRETS:
            continue
        kind, optional, choices = _kind(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else \
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if isinstance(default, Path):
            default = str(default)
        out.append(Setting(key, kind, default, helps.get(f.name) or _HELP.get(key, ""),
                           optional,
                           _CHOICES.get(key, choices),
                           default_note=_RUN_TIME_DEFAULTS.get(key), bounds=bounds.get(f.name)))
    return out


def schema() -> dict[str, Setting]:
    """Every known key, top-level first, then [evolve] and [mutator] in field order."""
    settings = list(_TOP)
    for table, cls in TABLES.items():
        settings += _table_settings(table, cls)
    return {s.key: s for s in settings}


SCHEMA = schema()


# ----- dotted keys over nested dicts -------------------------------------------------------
def flatten(data: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and (not prefix and k in TABLES or key not in SCHEMA):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def get_path(data: dict, key: str, default=None):
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_path(data: dict, key: str, value) -> None:
    *tables, name = key.split(".")
    node = data
    for part in tables:
        node = node.setdefault(part, {})
    node[name] = value


def del_path(data: dict, key: str) -> bool:
    """Remove a dotted key; tables it leaves empty go too. False when it was not there."""
    *tables, name = key.split(".")
    nodes = [data]
    for part in tables:
        node = nodes[-1].get(part)
        if not isinstance(node, dict):
            return False
        nodes.append(node)
    if name not in nodes[-1]:
        return False
    del nodes[-1][name]
    for i in range(len(tables) - 1, -1, -1):
        if nodes[i + 1]:
            break
        del nodes[i][tables[i]]
    return True


def static_defaults() -> dict:
    """The defaults that do not depend on the machine, as a nested dict."""
    out: dict = {table: {} for table in TABLES}
    for s in SCHEMA.values():
        if s.default is not None and s.default_note is None:
            set_path(out, s.key, copy.deepcopy(s.default))
    return out


DEFAULTS = static_defaults()


# ----- validation --------------------------------------------------------------------------
def _section(key: str) -> str:
    table = key.rpartition(".")[0]
    return f"[{table}] {key.rpartition('.')[2]}" if table else key


def unknown_key_message(key: str) -> str:
    if key in _SECRETS:
        return f"{key} is a secret and is never stored in {CONFIG_FILE}: {_SECRETS[key]}"
    table = key.rpartition(".")[0]
    close = difflib.get_close_matches(key, list(SCHEMA), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    if table and table not in TABLES:
        return (f"unknown run setting {key}{hint}: there is no [{table}] table; known tables: "
                f"{', '.join(f'[{t}]' for t in TABLES)} (`darwin-git config` lists every key)")
    known = [k.rpartition(".")[2] for k in SCHEMA if k.rpartition(".")[0] == table]
    where = f"[{table}] " if table else "top-level "
    return f"unknown run setting {key}{hint}; known {where}keys: {', '.join(known)}"


def check_value(key: str, value):
    """The value converted to the setting's type (an int is a valid float), or ConfigError."""
    s = SCHEMA.get(key)
    if s is None:
        raise ConfigError(unknown_key_message(key))
    if value is None:
        if s.optional or s.default is None:
            return None
        raise ConfigError(f"{_section(key)} cannot be empty")
    kind, ok = s.kind, True
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise ConfigError(f"{_section(key)} must be a finite number, got {value}")
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is str:
        ok = isinstance(value, str)
    elif kind is list:
        ok = isinstance(value, (list, tuple))
    if not ok:
        raise ConfigError(f"{_section(key)} must be {s.type_name}, got {value!r}")
    if s.choices and value not in s.choices:
        raise ConfigError(f"{_section(key)} must be one of "
                          f"{', '.join(map(str, s.choices))}, got {value!r}")
    problem = s.bounds.problem(_section(key), value) if s.bounds else None
    if problem:
        raise ConfigError(problem)
    return value


def parse_value(key: str, text: str):
    """A command-line VALUE as the setting's type: `config set evolve.accept_k 2`."""
    s = SCHEMA.get(key)
    if s is None:
        raise ConfigError(unknown_key_message(key))
    raw = text.strip()
    if s.kind is str:
        value = text
    elif s.kind is bool:
        words = {"true": True, "yes": True, "on": True, "1": True,
                 "false": False, "no": False, "off": False, "0": False}
        if raw.lower() not in words:
            raise ConfigError(f"{_section(key)} must be true or false, got {text!r}")
        value = words[raw.lower()]
    elif s.kind in (int, float):
        try:
            value = int(raw) if s.kind is int else float(raw)
        except ValueError:
            raise ConfigError(f"{_section(key)} must be {s.kind.__name__}, got {text!r}") \
                from None
    else:  # lists and other TOML values, written as in run.toml
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(f"{_section(key)} must be a TOML value, got {text!r}") from None
    return check_value(key, value)


def check_stored(stored: dict) -> list[str]:
    """Every problem of a stored run.toml, each with the way to fix it; [] when fine."""
    problems = []
    for key, value in flatten(stored).items():
        fix = f"; fix with `darwin-git config unset {key}`"
        if key not in SCHEMA:
            problems.append(f"{unknown_key_message(key)}{fix}")
            continue
        try:
            check_value(key, value)
        except ConfigError as exc:
            problems.append(f"{exc}; fix with `darwin-git config set {key} VALUE` or "
                            f"`darwin-git config unset {key}`")
    return problems


def check_settings(config: dict) -> None:
    """The whole config through the dataclasses that use it, so their own rules (a range, a
    combination) refuse a value when it is set, not when the next `evolve` starts."""
    checks = (("evolve", lambda: EvolveSettings.from_config(config)),
              ("mutator", lambda: LLMConfig.from_env_and_config(config.get("mutator") or {},
                                                                env={})))
    for table, check in checks:
        try:
            check()
        except (TypeError, ValueError) as exc:
            text = str(exc)
            raise ConfigError(text if text.startswith("[") else f"[{table}] {text}") from exc


# ----- reading and writing -----------------------------------------------------------------
def merged(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_stored(repo: pygit2.Repository) -> dict:
    """Only what run.toml holds (no defaults, not checked); {} when there is no config yet."""
    tip = ref_target(repo, CONFIG_REF)
    if tip is None:
        return {}
    return parse_stored(repo, tip)


def parse_stored(repo: pygit2.Repository, commit) -> dict:
    """run.toml as stored at ``commit`` of the config history; ConfigDamaged when that
    version cannot be read (no run.toml, not UTF-8, not TOML)."""
    try:
        tree = repo[commit].peel(pygit2.Commit).tree
        text = repo[tree[CONFIG_FILE].id].data.decode()
        return tomllib.loads(text)
    except KeyError:
        why = f"holds no {CONFIG_FILE}"
    except UnicodeDecodeError:
        why = "is not UTF-8 text"
    except tomllib.TOMLDecodeError as exc:
        why = f"is not valid TOML ({exc})"
    raise ConfigDamaged(f"{CONFIG_REF}:{CONFIG_FILE} {why}: the run's settings cannot be read. "
                        f"{REPAIR_HINT}")


def read_config(repo: pygit2.Repository) -> dict:
    """Stored values over the static defaults; a stored key that is unknown or of the wrong
    type is a ConfigError naming it and the command that fixes it."""
    stored = read_stored(repo)
    problems = check_stored(stored)
    if problems:
        raise ConfigError(f"{CONFIG_REF}:{CONFIG_FILE}: " + "\n".join(problems))
    values = {k: check_value(k, v) for k, v in flatten(stored).items()}
    out = copy.deepcopy(DEFAULTS)
    for key, value in values.items():
        set_path(out, key, value)
    return out


def write_config(repo: pygit2.Repository, values: dict, message: str = "Update run config",
                 replace: bool = False) -> pygit2.Oid:
    """Store ``values`` merged over what is stored (or instead of it with replace=True).
    Every key in ``values`` must be known and of its type."""
    for key, value in flatten(values).items():
        check_value(key, value)
    stored = {} if replace else read_stored(repo)
    return store(repo, merged(stored, values), message)


def store(repo: pygit2.Repository, data: dict, message: str) -> pygit2.Oid:
    """Commit ``data`` as the whole run.toml on top of the config history (no checks: the
    way `config unset` removes a key that is not known)."""
    tip = ref_target(repo, CONFIG_REF)
    text = dumps_toml(data)
    tb = repo.TreeBuilder()
    tb.insert(CONFIG_FILE, repo.create_blob(text.encode()), pygit2.GIT_FILEMODE_BLOB)
    sig = engine_signature()
    oid = repo.create_commit(None, sig, sig, message.rstrip("\n") + "\n", tb.write(),
                             [tip] if tip else [])
    update_refs(repo, [(CONFIG_REF, tip, oid)], "darwin-git: config")
    return oid


def describe(repo: pygit2.Repository) -> list[dict]:
    """One row per known key (and per stored unknown key): value, source, default, help."""
    stored = flatten(read_stored(repo))
    rows = []
    for key, s in SCHEMA.items():
        here = key in stored
        default = None if s.default_note else s.default  # decided at start, not known here
        rows.append({"key": key, "value": stored[key] if here else default,
                     "source": "stored" if here else "default", "default": default,
                     "default_note": s.default_note, "type": s.type_name,
                     "settable": s.settable, "help": s.help})
    for key in stored.keys() - SCHEMA.keys():
        rows.append({"key": key, "value": stored[key], "source": "stored (unknown key)",
                     "default": None, "default_note": None, "type": None, "settable": False,
                     "help": unknown_key_message(key)})
    return rows


def toml_value(v) -> str:
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
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
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
            lines.append(f"{key} = {toml_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, sub in tables:
        name = f"{prefix}.{key}" if prefix else key
        out += f"\n[{name}]\n" + dumps_toml(sub, name)
    return out
