"""`darwin-git report`: what a run achieved, from the repo alone (journal, candidate refs,
notes, commit messages). Writes <run>/reports/report.md, fitness.png and mfu.png, and returns
the same numbers as a dict for --json."""
from __future__ import annotations

import collections
import statistics
from pathlib import Path

import pygit2

from .evolve.journal import Journal
from .fitness import fitness, leaderboard, run_conditions
from .population.notes import Notes
from .population.refs import ref_target
from .population.repo import CANDIDATE_PREFIX, Population


def collect(pop: Population) -> dict:
    journal = Journal(pop.repo)
    records = journal.records()
    noise = next((r for r in records if r.get("phase") == "noise"), None)
    done = {r["generation"]: r for r in records if r.get("phase") == "done"}
    gens = [done[g] for g in sorted(done)]
    run = run_conditions(pop)

    def fit(commit) -> float | None:
        return fitness(pop, commit, run).loss

    per_gen = []
    for r in gens:
        board = r.get("leaderboard") or []
        mfus = [a["mfu"] for a in board if isinstance(a.get("mfu"), (int, float))]
        per_gen.append({"generation": r["generation"],
                        "best": (r.get("best") or {}).get("val_loss"),
                        "best_agent": (r.get("best") or {}).get("agent"),
                        "median": r.get("median"),
                        "best_mfu": (r.get("best") or {}).get("mfu"),
                        "median_mfu": statistics.median(mfus) if mfus else None,
                        "proposed": r.get("proposed"), "failed": r.get("failed"),
                        "advanced": r.get("advanced"), "tokens": r.get("tokens")})

    # every candidate of the run, with its operator, model, outcome and whether it was kept
    on_branches = _first_parent_members(pop)
    candidates = []
    for name in sorted(pop.repo.references):
        if not name.startswith(CANDIDATE_PREFIX):
            continue
        commit = pop.commit(ref_target(pop.repo, name))
        _, _, trailers = pop.message(commit.id)
        results = pop.records(commit.id, "result")
        last = results[-1] if results else {}
        parent_fit = fit(commit.parent_ids[0]) if commit.parent_ids else None
        child_fit = fit(commit.id)
        candidates.append({
            "ref": name, "commit": str(commit.id), "operator": trailers.get("Darwin-Operator"),
            "model": trailers.get("Darwin-Model"), "status": last.get("status", "pending"),
            "cause": last.get("cause"), "kept": str(commit.id) in on_branches,
            "delta": (child_fit - parent_fit) if None not in (child_fit, parent_fit) else None})
    attempts = [rec for _, blob in pop.notes.annotated().items()
                for rec in Notes.parse_text(pop.repo[blob].data.decode("utf-8", "replace"))
                if rec.get("kind") == "attempt"]

    total = len(candidates) + len(attempts)
    causes = collections.Counter(f"proposal: {a.get('cause')}" for a in attempts)
    causes.update(f"{c['status']}: {c['cause']}" for c in candidates
                  if c["status"] not in ("ok", "pending"))
    failed = sum(causes.values())
    by_op: dict[str, dict] = {}
    for c in candidates:
        key = c["operator"] or "?"
        if c["model"]:
            key += f" ({c['model']})"
        row = by_op.setdefault(key, {"tried": 0, "trained": 0, "kept": 0, "deltas": []})
        row["tried"] += 1
        row["trained"] += c["status"] == "ok"
        row["kept"] += c["kept"]
        if c["delta"] is not None:
            row["deltas"].append(c["delta"])
    for a in attempts:
        key = (a.get("operator") or "?") + (f" ({a['model']})" if a.get("model") else "")
        by_op.setdefault(key, {"tried": 0, "trained": 0, "kept": 0, "deltas": []})["tried"] += 1
    for row in by_op.values():
        row["mean_delta"] = statistics.fmean(row.pop("deltas")) if row.get("deltas") else None
        row.pop("deltas", None)

    best = gens[-1]["best"] if gens and gens[-1].get("best") else None
    lineage = _lineage(pop, best["agent"], fit) if best and best["agent"] in pop.agents() else []
    return {"noise": noise, "generations": per_gen, "best": best, "lineage": lineage,
            "leaderboard": leaderboard(pop, run),
            "mutations": total, "failed": failed,
            "failure_rate": failed / total if total else None,
            "failures_by_cause": dict(causes.most_common()), "by_operator": by_op}


def _first_parent_members(pop: Population, depth: int = 10000) -> set[str]:
    seen: set[str] = set()
    for tip in pop.agents().values():
        c = pop.repo[tip]
        for _ in range(depth):
            if str(c.id) in seen:
                break
            seen.add(str(c.id))
            if not c.parent_ids:
                break
            c = pop.repo[c.parent_ids[0]]
    return seen


def _lineage(pop: Population, agent: str, fit) -> list[dict]:
    """The best agent's accepted changes, oldest first, each with its reasoning and delta."""
    out = []
    c = pop.repo[pop.tip(agent)]
    while c.parent_ids:
        parent = pop.repo[c.parent_ids[0]]
        summary, reasoning, trailers = pop.message(c.id)
        a, b = fit(c.id), fit(parent.id)
        out.append({"commit": str(c.id), "summary": summary, "reasoning": reasoning,
                    "operator": trailers.get("Darwin-Operator"),
                    "generation": trailers.get("Darwin-Generation"),
                    "val_loss": a, "delta": (a - b) if None not in (a, b) else None})
        c = parent
    return list(reversed(out))


def _plot(path: Path, gens: list[dict], keys: list[tuple[str, str]], ylabel: str,
          baseline: float | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    xs = [g["generation"] for g in gens]
    for key, label in keys:
        ys = [g[key] if isinstance(g[key], (int, float)) else float("nan") for g in gens]
        ax.plot(xs, ys, marker="o", label=label)
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="seed")
    ax.set_xlabel("generation")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(pop: Population, out_dir: Path | None = None) -> Path:
    data = collect(pop)
    out_dir = Path(out_dir or pop.reports_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gens = data["generations"]
    seed_loss = (data["noise"] or {}).get("mean")
    if gens:
        _plot(out_dir / "fitness.png", gens, [("best", "best"), ("median", "median")],
              "val_loss (lower is better)", seed_loss)
        _plot(out_dir / "mfu.png", gens, [("best_mfu", "best agent"), ("median_mfu", "median")],
              "MFU")
    md = out_dir / "report.md"
    md.write_text(render_markdown(data, has_plots=bool(gens)))
    return md


def _f(v, spec=".4f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def render_markdown(d: dict, has_plots: bool = True) -> str:
    lines = ["# darwin-git run report", ""]
    n = d["noise"]
    if n:
        lines += [f"Seed: val_loss {_f(n.get('mean'))} ± {_f(n.get('sigma'))} (σ over "
                  f"{n.get('repeats')} runs, {n.get('budget_s')} s budget each).", ""]
    best = d["best"]
    if best and n and n.get("mean"):
        import math
        gain = (math.exp(n["mean"]) - math.exp(best["val_loss"])) / math.exp(n["mean"])
        lines += [f"Best agent: **{best['agent']}** at `{best['commit'][:10]}`, val_loss "
                  f"{_f(best['val_loss'])} (perplexity {_f(best.get('perplexity'), '.2f')}, "
                  f"{gain:+.2%} perplexity vs the seed; MFU {_f(best.get('mfu'), '.2%')}).", ""]
    if has_plots:
        lines += ["![fitness per generation](fitness.png) ![MFU per generation](mfu.png)", ""]
    lines += ["## Per generation", "",
              "| gen | best val_loss | median | best MFU | median MFU | proposed | failed proposals | advanced |",
              "|---|---|---|---|---|---|---|---|"]
    for g in d["generations"]:
        lines.append(f"| {g['generation']} | {_f(g['best'])} | {_f(g['median'])} | "
                     f"{_f(g['best_mfu'], '.2%')} | {_f(g['median_mfu'], '.2%')} | "
                     f"{g['proposed'] if g['proposed'] is not None else '-'} | "
                     f"{g['failed'] if g['failed'] is not None else '-'} | "
                     f"{g['advanced'] if g['advanced'] is not None else '-'} |")
    lines += ["", "## Lineage of the best agent", ""]
    for step in d["lineage"]:
        lines += [f"- `{step['commit'][:10]}` (gen {step['generation']}, {step['operator']}): "
                  f"**{step['summary']}** — val_loss {_f(step['val_loss'])}, "
                  f"delta {_f(step['delta'], '+.4f')}"]
        if step["reasoning"]:
            lines += ["  > " + step["reasoning"].strip().replace("\n", "\n  > ")]
    rate = d["failure_rate"]
    lines += ["", "## Mutation failures", "",
              f"{d['failed']} of {d['mutations']} mutations failed "
              f"({_f(rate, '.1%') if rate is not None else '-'}).", ""]
    for cause, count in d["failures_by_cause"].items():
        lines.append(f"- {cause}: {count}")
    lines += ["", "## Operators and models", "",
              "| operator | tried | trained ok | kept | mean delta |", "|---|---|---|---|---|"]
    for op, r in sorted(d["by_operator"].items()):
        lines.append(f"| {op} | {r['tried']} | {r['trained']} | {r['kept']} | "
                     f"{_f(r['mean_delta'], '+.4f')} |")
    return "\n".join(lines) + "\n"
