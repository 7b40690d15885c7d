"""Search quality (issue 23, item 5): does evolve keep what a model proposes that helps, and
nothing that hurts? A scripted model proposes from a fixed menu of changes to the seed whose
effects are measured; evolve runs for a fixed number of evaluations; the best tip is read.

The command behind BENCHMARKS.md's table (a quiet machine; about 45 min to measure the menu,
then about an hour per configuration on 2 cores):

    .venv/bin/python benchmarks/search_quality.py --budget 20 --evaluations 150 \\
        --configs default,islands=1,max_seeds=3 --pairs 4 \\
        --effects /tmp/search-effects.json --json /tmp/search-quality.json

Smoke test (a few minutes; numbers mean nothing at this budget):

    .venv/bin/python benchmarks/search_quality.py --budget 5 --evaluations 10 --population 2 \\
        --configs default,max_seeds=3 --pairs 3 --items warmup_long

1. The menu (benchmarks/search_menu.py): real improvements of several sizes, neutral changes
   (behaviour-free: a comment, a renamed local; behaviour-changing but about neutral), harmful
   ones, and a synergy pair meant to help only together. Each item's *designed* kind is a
   belief; every label printed here is the *measurement's*.
2. Measure: each item against the seed with the engine itself (`darwin-git bench SEED VARIANT
   --pairs N --noise-pairs 0 --seed 2000`: pairs side by side, B - A in nats), on training
   seeds 2000.. that no run uses (runs compare on 0..max_seeds-1, headlines use 1000..). Also:
   the seed against a copy of itself (the null row), the synergy pair together, and all the
   measured improvements together. The 95% interval pools the spread of every row's pairs
   around its own mean with the null row's (darwin_git.compare.interval,
   darwin_git.selection_rules.Noise: the engine's estimator); a label is `improvement` when the interval is below 0, `harmful`
   when above, else `no effect seen`. --effects FILE keeps the measurement (reused when budget,
   pairs, seed and menu match).
3. Runs: for each configuration, a fresh population from seed_repo/ (`darwin-git init
   --no-check`, settings by `darwin-git config set`), `darwin-git evolve --mutator llm --model
   menu` against the scripted server (OPENAI_BASE_URL, OPENAI_API_KEY=sk-test), one generation
   per invocation (`--generations g`, a resume) until the training runs started (eval_started
   events: the noise floor's, screens, pairs, re-measures; the headline's apart) reach
   --evaluations, then one more invocation with headline_pairs restored measures the headline.
   `mutator.max_apply_attempts` is set to the menu's size + 1 (--max-apply-attempts): the
   scripted model does not read its memory, so a tree already evaluated is skipped by retry
   turns (free: no training) instead of failing the proposal after 3.
4. Read: the best tip (status's leaderboard), the menu items on every live tip (by content),
   distinct tips, the run's minimum detectable effect (the journal's noise record `mde`), and
   the goal: the best tip carries every measured improvement whose mean gain exceeds that
   MDE, and no measured-harmful item (a member of the synergy pair does not count as harmful
   on a tip that carries the whole pair when the pair measured as an improvement).

Configuration syntax: `default`, or `key=value` joined by `+` (`islands=1+max_seeds=3`):
`population` (alias `agents`) is init's --agents; a dotted key (`mutator.temperature`) or any
`[evolve]` key (`islands`, `migration_interval`, `min_distinct`, `max_seeds`, `noise_repeats`,
`crossovers`, ...) is stored with `darwin-git config set`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import search_menu as menu  # noqa: E402  (benchmarks/search_menu.py)
from load import load_avg  # noqa: E402  (benchmarks/load.py)

from darwin_git.compare import interval  # noqa: E402
from darwin_git.selection_rules import Noise  # noqa: E402

SEED_REPO = ROOT / "seed_repo"
MEASURE_SEED = 2000  # training seeds of the menu's measurement: never a run's (0.., 1000..)
CLI = [sys.executable, "-m", "darwin_git.cli"]


def darwin(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, text=True, capture_output=True, cwd=ROOT, **kw)


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


# ----- the menu's effects ---------------------------------------------------------------------
def seed_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in SEED_REPO.iterdir() if p.is_file()}


def menu_hash() -> str:
    text = json.dumps([(i.name, i.edits) for i in menu.MENU])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def variant(work: Path, name: str, items: list[str]) -> Path:
    """seed_repo/ with ``items`` applied, as a folder bench can take."""
    folder = work / "variants" / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(SEED_REPO, folder, ignore=shutil.ignore_patterns("__pycache__"))
    files = {p: t for p, t in seed_files().items() if p.endswith(".py")}
    for path, text in menu.apply_items(files, items).items():
        (folder / path).write_text(text)
    return folder


def bench(seed_dir: Path, other: Path, args) -> dict:
    """`darwin-git bench SEED OTHER` as a measurement: its pairs (B, A per seed) and summary."""
    cmd = ["bench", str(seed_dir), str(other), "--pairs", str(args.pairs), "--noise-pairs", "0",
           "--seed", str(args.measure_seed), "--budget", str(args.budget), "--json",
           "--runner", args.runner]
    if args.slots:
        cmd += ["--slots", str(args.slots)]
    t0 = time.time()
    done = darwin(cmd)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines or "difference" not in lines[-1]:
        raise SystemExit(f"bench failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    summary, runs = lines[-1], lines[:-1]
    trees = ({r.get("tree") for r in runs[0::2]}, {r.get("tree") for r in runs[1::2]})
    if len(runs) % 2 or len(trees[0]) != 1 or len(trees[1]) != 1:
        raise SystemExit(f"bench printed runs this script cannot pair (B, A per seed): {trees}")
    pairs = []
    for b, a in zip(runs[0::2], runs[1::2]):  # bench prints B then A for every pair
        lb = b.get("val_loss") if b.get("status") == "ok" else None
        la = a.get("val_loss") if a.get("status") == "ok" else None
        pairs.append({"seed": b.get("seed"), "b": lb, "a": la,
                      "b_status": b.get("status"), "a_status": a.get("status"),
                      "b_steps": (b.get("train") or {}).get("steps"),
                      "a_steps": (a.get("train") or {}).get("steps")})
    return {"pairs": pairs, "trees": {"b": trees[0].pop(), "a": trees[1].pop()},
            "cli": {"difference": summary.get("difference"),
                                    "interval": summary.get("interval"),
                                    "verdict": (summary.get("verdict") or {}).get("reason")},
            "exit": done.returncode, "wall_s": round(time.time() - t0, 1)}


def diffs_of(row: dict) -> list[float]:
    return [p["b"] - p["a"] for p in row["pairs"] if p["b"] is not None and p["a"] is not None]


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def label_rows(rows: list[dict]) -> None:
    """Each row's mean, pooled 95% interval and label (see the module's docstring)."""
    def noise_without(skip: int) -> Noise:
        total = Noise()
        for j, r in enumerate(rows):
            if j == skip:
                continue
            d = diffs_of(r)
            total = total + (Noise.of_twins(d) if r["name"] == "null" else Noise().plus(d))
        return total

    for i, row in enumerate(rows):
        d = diffs_of(row)
        mean, low, high = interval(d, noise_without(i))
        failed = sum(p["b_status"] != "ok" for p in row["pairs"])
        row.update(effect=mean, interval=[low, high], n=len(d), failed_runs=failed,
                   steps=_mean([p["b_steps"] for p in row["pairs"]]),
                   seed_steps=_mean([p["a_steps"] for p in row["pairs"]]))
        if failed and not d:
            row["label"] = "fails"
        elif low is not None and high < 0:
            row["label"] = "improvement"
        elif low is not None and low > 0:
            row["label"] = "harmful"
        else:
            row["label"] = "no effect seen"


def measure(args, work: Path) -> dict:
    names = [i.name for i in menu.MENU] if not args.items else args.items.split(",")
    unknown = [n for n in names if n not in menu.BY_NAME]
    if unknown:
        raise SystemExit(f"--items: not on the menu: {unknown}")
    seed_dir = variant(work, "seed", [])
    plan = [("null", "seed vs a copy of itself", [])] + \
        [(n, menu.BY_NAME[n].kind, [n]) for n in names]
    if all(n in names for n in menu.SYNERGY):
        plan.append(("+".join(menu.SYNERGY), "synergy pair together", list(menu.SYNERGY)))
    rows: list[dict] = []
    started = time.time()
    for name, kind, items in plan:
        say(f"measure {name} ({len(rows) + 1}/{len(plan)}) vs the seed, {args.pairs} pairs "
            f"at {args.budget:g} s, load {load_avg()}")
        rows.append({"name": name, "designed": kind, "items": items,
                     **bench(seed_dir, variant(work, name, items), args)})
    if len({r["trees"]["a"] for r in rows}) != 1:
        raise SystemExit("the seed's tree differs between measurements")
    label_rows(rows)
    best = [r for r in rows if r["label"] == "improvement" and r["name"] != "null"]
    together = sorted({i for r in best for i in r["items"]},
                      key=[i.name for i in menu.MENU].index)
    if len(together) > 1:
        say(f"measure all measured improvements together: {'+'.join(together)}")
        rows.append({"name": "all improvements", "designed": "measured improvements together",
                     "items": together, **bench(seed_dir, variant(work, "all", together), args)})
        label_rows(rows)
    return {"budget_s": args.budget, "pairs": args.pairs, "seed": args.measure_seed,
            "menu": menu_hash(), "rows": rows, "wall_s": round(time.time() - started, 1),
            "load_end": load_avg(), "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def effects(args, work: Path) -> dict | None:
    if args.no_measure:
        return None
    path = Path(args.effects) if args.effects else None
    if path and path.exists():
        found = json.loads(path.read_text())
        if (found.get("budget_s"), found.get("pairs"), found.get("seed"), found.get("menu")) == \
                (args.budget, args.pairs, args.measure_seed, menu_hash()):
            say(f"menu effects from {path} (measured {found.get('date')})")
            return found
        say(f"{path} was measured with other settings or another menu: measuring again")
    found = measure(args, work)
    if path:
        path.write_text(json.dumps(found, indent=1))
    return found


# ----- runs -----------------------------------------------------------------------------------
def parse_config(spec: str) -> dict:
    if spec == "default":
        return {}
    out = {}
    for part in spec.split("+"):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SystemExit(f"--configs: {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


class Events:
    """evolve's JSON-lines events over every invocation of one run."""

    def __init__(self, log: Path):
        self.log = log
        self.all: list[dict] = []

    def run(self, args: list[str], env: dict) -> int:
        with open(self.log, "a") as log:
            log.write(f"$ darwin-git {' '.join(args)}\n")
            log.flush()
            proc = subprocess.Popen(CLI + args, text=True, stdout=subprocess.PIPE,
                                    stderr=log, cwd=ROOT, env=env)
            for line in proc.stdout:
                log.write(line)
                if line.startswith("{"):
                    try:
                        self.all.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
            return proc.wait()

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.all if e.get("event") == kind]

    def runs(self, headline: bool = False) -> int:
        return sum((e.get("role") == "headline") == headline for e in self.of("eval_started"))


def run_config(name: str, settings: dict, args, work: Path) -> dict:
    folder = work / "runs" / name.replace("/", "_")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    repo = folder / "population"
    settings = dict(settings)
    agents = settings.pop("population", settings.pop("agents", None)) or args.population
    events = Events(folder / "evolve.log")
    t0 = time.time()
    init = darwin(["init", "--seed", str(SEED_REPO), "--agents", str(agents), "--repo", str(repo),
                   "--no-check"])
    if init.returncode:
        raise SystemExit(f"init failed: {init.stderr[-2000:]}")
    stored = {"mutator.max_apply_attempts": str(args.max_apply_attempts)}
    for key, value in settings.items():
        stored[key if "." in key else f"evolve.{key}"] = value
    headline_pairs = stored.pop("evolve.headline_pairs", None)
    stored["evolve.headline_pairs"] = "0"  # measured once, after the last generation
    for key, value in stored.items():
        done = darwin(["config", "set", "--repo", str(repo), key, value])
        if done.returncode:
            raise SystemExit(f"config set {key} {value}: {done.stderr.strip()}")
    with menu.MenuServer() as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
        env.pop("DARWIN_REPO", None)
        common = ["--repo", str(repo), "--budget", str(args.budget), "--mutator", "llm",
                  "--model", "menu", "--runner", args.runner, "--json"]
        if args.slots:
            common += ["--slots", str(args.slots)]
        g, rc, stop = 0, 0, None
        while True:
            g += 1
            rc = events.run(["evolve", *common, "--generations", str(g), "--no-report"], env)
            spent = events.runs()
            say(f"{name}: generation {g} done (exit {rc}), {spent} evaluations, "
                f"{time.time() - t0:.0f} s, load {load_avg()}")
            if rc:
                stop = f"evolve exited {rc}: " + next(
                    (e.get("reason", "") for e in reversed(events.of("stopped"))), "")
                break
            if spent >= args.evaluations:
                stop = f"{spent} evaluations >= {args.evaluations}"
                break
            if g >= args.max_generations:
                stop = f"--max-generations {args.max_generations}"
                break
        search_wall = time.time() - t0
        if headline_pairs != "0":  # the configuration's, else the engine's default
            darwin(["config", "unset", "--repo", str(repo), "evolve.headline_pairs"]
                   if headline_pairs is None else
                   ["config", "set", "--repo", str(repo), "evolve.headline_pairs", headline_pairs])
        last = len(read_done(repo))  # generations the journal closed
        if not rc:  # the headline: the best tip beside the seed on fresh seeds
            events.run(["evolve", *common, "--generations", str(last), "--report"], env)
        log = list(server.log)
    status = json.loads(darwin(["status", "--repo", str(repo), "--json"]).stdout or "{}")
    return {"name": name, "settings": settings, "population": int(agents), "stop": stop,
            "exit": rc, "generations": last, "evaluations": events.runs(),
            "headline_runs": events.runs(headline=True),
            "roles": _count(e.get("role") for e in events.of("eval_started")),
            "cached": sum(bool(e.get("cached")) for e in events.of("evaluated")),
            "search_wall_s": round(search_wall, 1), "wall_s": round(time.time() - t0, 1),
            "status": status, "tips": read_tips(repo), "journal": read_done(repo),
            "proposals": proposals(events), "server": summarise_server(log),
            "events_failed": [{k: e.get(k) for k in ("generation", "cause", "origin", "detail")}
                              for e in events.of("proposal_failed")],
            "repo": str(repo), "log": str(events.log), "load_end": load_avg()}


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def read_tips(repo: Path) -> dict:
    """Every live agent's tip: its commit, tree, and the menu items its files hold."""
    import pygit2

    git = pygit2.Repository(str(repo))
    out = {}
    for ref in git.references:
        if not ref.startswith("refs/heads/agents/"):
            continue
        commit = git.revparse_single(ref).peel(pygit2.Commit)
        files = {e.name: git[e.id].data.decode() for e in commit.tree
                 if e.name.endswith(".py") and e.type_str == "blob"}
        out[ref.removeprefix("refs/heads/agents/")] = {
            "commit": str(commit.id), "tree": str(commit.tree_id), "held": menu.held(files)}
    return out


def read_done(repo: Path) -> list[dict]:
    """The journal's per-generation facts (distinct tips, lost changes, evidence)."""
    import pygit2

    from darwin_git.population.journal import Journal

    return [{"generation": r.get("generation"), "diversity": r.get("diversity"),
             "lost": len(r.get("lost") or []), "evidence": r.get("evidence"),
             "evaluations_run": r.get("evaluations_run")}
            for r in Journal(pygit2.Repository(str(repo))).records() if r.get("phase") == "done"]


def proposals(events: Events) -> dict:
    """Per menu item: children made (committed proposals) and promoted."""
    item_of = {e["commit"]: (menu.BY_SUMMARY.get(e.get("summary")) or
                             menu.Item("?", "", "", "", "", ())).name
               for e in events.of("proposed")}
    out: dict = {}
    for e in events.of("proposed"):
        out.setdefault(item_of[e["commit"]], {"children": 0, "promoted": 0})["children"] += 1
    for e in events.of("verdict"):
        if e.get("action") == "promote" and e.get("commit") in item_of:
            out[item_of[e["commit"]]]["promoted"] += 1
    return out


def summarise_server(log: list[dict]) -> dict:
    calls = [e for e in log if e.get("kind") == "mutation"]
    return {"requests": len(log), "first_turns": sum(e["retries"] == 0 for e in calls),
            "retry_turns": sum(e["retries"] > 0 for e in calls),
            "nothing_left": sum(e["item"] is None for e in calls),
            "other": sum(e.get("kind") != "mutation" for e in log)}


# ----- the goal -----------------------------------------------------------------------------
def judge(run: dict, fx: dict | None) -> dict:
    board = (run["status"] or {}).get("agents") or []
    ranked = [r for r in board if r.get("val_loss") is not None]
    best = ranked[0] if ranked else None
    mde = ((run["status"] or {}).get("noise") or {}).get("mde")
    tips = run["tips"]
    best_held = tips.get(best["agent"], {}).get("held", []) if best else []
    out = {"best_agent": best and best["agent"], "best_val_loss": best and best["val_loss"],
           "best_seeds": best and best.get("seeds"), "best_held": best_held, "mde": mde,
           "distinct_tips": len({t["tree"] for t in tips.values()}),
           "headline": _headline(run)}
    if fx is None:
        return out
    rows = {r["name"]: r for r in fx["rows"]}
    pair = "+".join(menu.SYNERGY)
    pair_helps = rows.get(pair, {}).get("label") == "improvement"
    improvements = [r["name"] for r in fx["rows"] if r["label"] == "improvement"
                    and len(r["items"]) == 1]
    required = [n for n in improvements if mde is not None and rows[n]["effect"] <= -mde]
    harmful = [r["name"] for r in fx["rows"] if r["label"] == "harmful" and len(r["items"]) == 1]

    def harmful_on(held: list[str]) -> list[str]:
        whole_pair = pair_helps and all(s in held for s in menu.SYNERGY)
        return [h for h in harmful if h in held and not (whole_pair and h in menu.SYNERGY)]

    missing = [n for n in required if n not in best_held]
    on_best = harmful_on(best_held)
    on_any = sorted({h for t in tips.values() for h in harmful_on(t["held"])})
    out.update(improvements=improvements, required=required, missing=missing,
               harmful_on_best=on_best, harmful_on_any_tip=on_any,
               pair_on_best=all(s in best_held for s in menu.SYNERGY), pair_helps=pair_helps,
               goal=bool(best) and mde is not None and not missing and not on_best)
    return out


def _headline(run: dict):
    h = (run["status"] or {}).get("headline")
    if not h or h.get("mean") is None:
        return None
    return {"agent": h.get("agent"), "mean": h["mean"], "interval": h.get("interval"),
            "pairs": h.get("pairs")}


# ----- printing -----------------------------------------------------------------------------
def _f(v, fmt="+.4f"):
    return "n/a" if v is None else format(v, fmt)


def print_effects(fx: dict) -> None:
    print(f"\n### The menu's effects, measured ({fx['budget_s']:g} s budget, {fx['pairs']} pairs "
          f"side by side on seeds {fx['seed']}..{fx['seed'] + fx['pairs'] - 1}, "
          f"`darwin-git bench`; {fx['wall_s'] / 60:.0f} min, {fx['date']})\n")
    print("Labels are the measurement's (95% interval below 0: improvement; above: harmful; "
          "else no effect seen), not the design's.\n")
    print("| item | designed as | effect B - A (nats) | 95% interval (pooled) | label (measured) | "
          "bench's own interval | steps (item / seed) | pairs |")
    print("|---|---|---|---|---|---|---|---|")
    for r in fx["rows"]:
        lo, hi = r["interval"]
        own = r["cli"]["interval"] or [None, None]
        steps = f"{_f(r['steps'], '.0f')} / {_f(r['seed_steps'], '.0f')}"
        fails = f" ({r['failed_runs']} failed)" if r["failed_runs"] else ""
        print(f"| {r['name']} | {r['designed']} | {_f(r['effect'])} | [{_f(lo)}, {_f(hi)}] | "
              f"{r['label']}{fails} | [{_f(own[0])}, {_f(own[1])}] | {steps} | {r['n']} |")
    rows = {r["name"]: r for r in fx["rows"]}
    pair = "+".join(menu.SYNERGY)
    if pair in rows and all(s in rows for s in menu.SYNERGY):
        a, b, ab = (rows[s]["effect"] for s in (*menu.SYNERGY, pair))
        only = rows[pair]["label"] == "improvement" and all(
            rows[s]["label"] != "improvement" for s in menu.SYNERGY)
        if None not in (a, b, ab):
            print(f"\nSynergy pair: {pair} {ab:+.4f} vs {a:+.4f} and {b:+.4f} alone "
                  f"(interaction {ab - a - b:+.4f}); helps only together (by the labels): "
                  f"{'yes' if only else 'no'}")


def print_run(run: dict, j: dict, fx: dict | None) -> None:
    print(f"\n### Configuration `{run['name']}` ({run['population']} agents; "
          f"{', '.join(f'{k}={v}' for k, v in run['settings'].items()) or 'default settings'})\n")
    h = j["headline"]
    head = (f"{h['agent']} {h['mean']:+.4f} [{_f(h['interval'][0])}, {_f(h['interval'][1])}] "
            f"over {h['pairs']} fresh seeds") if h else "n/a"
    print(f"- stopped: {run['stop']}; {run['generations']} generations, {run['evaluations']} "
          f"evaluations (by role: "
          f"{ {k: v for k, v in run['roles'].items() if k != 'headline'} }; the headline's "
          f"{run['headline_runs']} apart), {run['cached']} cached; search "
          f"{run['search_wall_s'] / 60:.1f} min "
          f"({run['search_wall_s'] / max(1, run['evaluations']):.0f} s per evaluation), "
          f"with the headline {run['wall_s'] / 60:.1f} min; load at the end {run['load_end']}")
    print(f"- smallest effect acceptance can see (the run's MDE): {_f(j['mde'], '.4f')} nats; "
          f"distinct tips at the end: {j['distinct_tips']} of {len(run['tips'])}")
    print(f"- best tip: {j['best_agent']} {_f(j['best_val_loss'], '.4f')} over "
          f"{j['best_seeds']} seeds; headline vs the seed: {head}")
    print(f"- scripted model: {run['server']['first_turns']} proposals, "
          f"{run['server']['retry_turns']} retry turns, {run['server']['nothing_left']} with "
          f"nothing left to propose; {len(run['events_failed'])} proposals failed")
    if fx is None:
        print(f"- best tip holds: {', '.join(j['best_held']) or 'nothing from the menu'}")
        return
    rows = {r["name"]: r for r in fx["rows"]}
    print(f"- goal (best tip carries every measured improvement beyond the MDE: "
          f"{', '.join(j['required']) or 'none'}; and no measured-harmful item): "
          f"**{_goal(j)}**"
          + (f"; missing {', '.join(j['missing'])}" if j["missing"] else "")
          + (f"; harmful on the best tip: {', '.join(j['harmful_on_best'])}"
             if j["harmful_on_best"] else "")
          + f"; harmful on any live tip: {', '.join(j['harmful_on_any_tip']) or 'none'}; "
          f"synergy pair on the best tip: {'yes' if j['pair_on_best'] else 'no'}\n")
    print("| item | measured effect | label (measured) | beyond the MDE | children | promoted | "
          "on the best tip | live tips holding it |")
    print("|---|---|---|---|---|---|---|---|")
    for item in menu.MENU:
        r = rows.get(item.name)
        p = run["proposals"].get(item.name, {"children": 0, "promoted": 0})
        holding = sum(item.name in t["held"] for t in run["tips"].values())
        beyond = "n/a" if not r or r["effect"] is None or j["mde"] is None else \
            ("yes" if abs(r["effect"]) > j["mde"] else "no")
        print(f"| {item.name} | {_f(r and r['effect'])} | {r['label'] if r else 'not measured'} | "
              f"{beyond} | {p['children']} | {p['promoted']} | "
              f"{'yes' if item.name in j['best_held'] else 'no'} | "
              f"{holding} of {len(run['tips'])} |")


def _goal(j: dict) -> str:
    if "goal" not in j:
        return "n/a"
    return ("met" if j["goal"] else "not met") + ("" if j["required"] else " (nothing required)")


def print_summary(runs: list[dict], judged: list[dict], fx: dict | None) -> None:
    print("\n### Side by side\n")
    together = next((r for r in (fx or {}).get("rows", []) if r["name"] == "all improvements"),
                    None)
    if together:
        lo, hi = together["interval"]
        print(f"All measured improvements together ({', '.join(together['items'])}) vs the "
              f"seed: {_f(together['effect'])} [{_f(lo)}, {_f(hi)}] (the menu's best tree, to "
              "compare with each run's headline).\n")
    print("| configuration | agents | evaluations | generations | wall (min) | MDE | distinct "
          "tips | best tip holds | required improvements held | harmful on best / any tip | "
          "headline | goal |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run, j in zip(runs, judged):
        req = j.get("required")
        held = "n/a" if req is None else f"{len(req) - len(j['missing'])} of {len(req)}"
        harm = "n/a" if req is None else \
            f"{len(j['harmful_on_best'])} / {len(j['harmful_on_any_tip'])}"
        h = j["headline"]
        print(f"| {run['name']} | {run['population']} | {run['evaluations']} | "
              f"{run['generations']} | {run['wall_s'] / 60:.1f} | {_f(j['mde'], '.4f')} | "
              f"{j['distinct_tips']} | {', '.join(j['best_held']) or '-'} | {held} | {harm} | "
              f"{_f(h and h['mean'])} | "
              f"{_goal(j)} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=20.0,
                    help="training seconds per run (cpu clock)")
    ap.add_argument("--evaluations", type=int, default=150,
                    help="training runs per configuration (noise floor included, headline apart)")
    ap.add_argument("--configs", default="default,islands=1,max_seeds=3",
                    help="comma-separated: default, or key=value[+key=value]")
    ap.add_argument("--population", type=int, default=4, help="agents, unless a config says")
    ap.add_argument("--pairs", type=int, default=4,
                    help="pairs per menu item's measurement (at least 3)")
    ap.add_argument("--measure-seed", type=int, default=MEASURE_SEED)
    ap.add_argument("--items", help="measure only these menu items (comma-separated)")
    ap.add_argument("--effects", help="JSON file keeping the menu's measurement (reused)")
    ap.add_argument("--no-measure", action="store_true", help="runs only; no goal check")
    ap.add_argument("--measure-only", action="store_true")
    ap.add_argument("--runner", choices=["auto", "local", "docker"], default="auto")
    ap.add_argument("--slots", type=int, help="evaluations at once [engine's default]")
    ap.add_argument("--max-generations", type=int, default=100)
    ap.add_argument("--max-apply-attempts", type=int, default=len(menu.MENU) + 1)
    ap.add_argument("--work", help="folder for variants and populations (kept) [a temp dir]")
    ap.add_argument("--json", help="write everything measured to this file")
    args = ap.parse_args(argv)
    if args.pairs < 3:  # bench --pairs N is evolve's rule with max_seeds N, at least 3
        ap.error("--pairs must be at least 3")
    files = {p: t for p, t in seed_files().items() if p.endswith(".py")}
    menu.check_menu(files)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="search-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    say(f"work folder {work}; load {load_avg()}")
    fx = effects(args, work)
    if fx:
        print_effects(fx)
    runs, judged = [], []
    if not args.measure_only:
        for spec in args.configs.split(","):
            say(f"run {spec}: up to {args.evaluations} evaluations at {args.budget:g} s")
            run = run_config(spec, parse_config(spec), args, work)
            runs.append(run)
            judged.append(judge(run, fx))
            print_run(run, judged[-1], fx)
            sys.stdout.flush()
        print_summary(runs, judged, fx)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "budget_s": args.budget, "evaluations": args.evaluations, "configs": args.configs,
            "effects": fx, "runs": [{**r, "judged": j} for r, j in zip(runs, judged)],
            "menu": [{"name": i.name, "designed": i.kind, "why": i.why, "summary": i.summary}
                     for i in menu.MENU]}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
