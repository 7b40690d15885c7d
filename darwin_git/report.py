"""`darwin-git report`: what a run achieved, from the repo alone (journal, candidate refs,
notes, commit messages, read through darwin_git/readmodel.py). Writes
<run>/reports/report.html (the evolutionary tree, one self-contained page), report.md with
fitness.png and mfu.png, and returns the same numbers as a dict for --json. The counts come
from darwin_git/report_tree.py."""
from __future__ import annotations

import statistics
from pathlib import Path

from .population.message import GENERATION_TRAILER, OPERATOR_TRAILER
from .population.repo import Population
from .readmodel import ReadModel
from .report_html import render_html
from .report_tree import (best_mfu_text, delta_words, failure_words, flat_note, fmt,
                          lineage_note, measurement_lines, origin_lines, run_tree,
                          seed_runs_words, summary_lines)


def collect(pop: Population) -> dict:
    model = ReadModel(pop, pinned=True)
    # Every count below comes from the run's tree, so a failure, a retry or a cached result
    # is counted once, the same way in every section and in the HTML page.
    tree = run_tree(pop, model)
    noise = tree["noise"]  # the latest noise floor under the run's conditions, as the tree's
    per_gen = tree["generations"]
    by_op: dict[str, dict] = {}
    for n in tree["nodes"]:
        if n["origin"] in ("seed", "human", "request", "revert"):
            continue
        key = (n["operator"] or "?") + (f" ({n['model']})" if n["model"] else "")
        row = by_op.setdefault(key, {"tried": 0, "trained": 0, "kept": 0, "deltas": []})
        row["tried"] += 1
        row["trained"] += n["kind"] == "commit" and n["outcome"] in ("kept", "rejected")
        row["kept"] += n["outcome"] == "kept"
        if n["delta"] is not None:
            row["deltas"].append(n["delta"])
    for row in by_op.values():
        deltas = row.pop("deltas")
        row["mean_delta"] = statistics.fmean(deltas) if deltas else None

    winner = tree["winner"]
    best = {"agent": winner["agent"], "commit": winner["commit"],
            "val_loss": winner["fitness"], "perplexity": winner["perplexity"],
            "mfu": winner["mfu"], "cached": winner["cached"]} if winner else None
    lineage = _lineage(pop, model, best["agent"]) if best else []
    nodes = {n["id"]: n for n in tree["nodes"]}
    for step in lineage:  # the numbers of the tree: one fitness on the whole page
        node = nodes.get(step["commit"])
        if node:
            step.update(val_loss=node["fitness"], delta=node["delta"])
    totals = tree["totals"]
    return {"noise": noise, "sigma": tree["sigma"], "accept_k": tree["accept_k"],
            "prune_margin": tree["prune_margin"], "rule": tree["rule"],
            "verdicts": tree["verdicts"], "clock": tree["clock"], "generations": per_gen, "best": best, "winner": winner,
            "lineage": lineage, "lineage_note": lineage_note(tree) if not lineage else None,
            "summary": summary_lines(tree), "flat_note": flat_note(tree), "totals": totals,
            "mutations": totals["decided"], "failed": totals["failed"],
            "failure_rate": totals["failure_rate"],
            "failures_by_cause": {f"{f['stage']}: {f['cause']}": f["count"]
                                  for f in tree["failures"]["by_cause"]},
            "failures": tree["failures"], "models": tree["models"], "by_operator": by_op,
            "nodes": tree["nodes"], "repo": tree["repo"], "leaderboard": model.leaderboard(),
            # added beside the numbers above: how finely the run measured, and what it found
            # where selection never looked
            "measurement": measurement_lines(tree), "headline": tree["headline"],
            "mde": (noise or {}).get("mde"), "paired_sigma": (noise or {}).get("paired_sigma"),
            "lost": tree["lost"]}


def _lineage(pop: Population, model: ReadModel, agent: str) -> list[dict]:
    """The best agent's accepted changes, oldest first, each with its reasoning and delta,
    and what it earned seed by seed beside its parent (the optimizer steps of both runs)."""
    out = []
    c = pop.repo[pop.tip(agent)]
    while c.parent_ids:
        parent = pop.repo[c.parent_ids[0]]
        rec = model.record(c.id)
        a, b = rec.fitness.loss, model.loss(parent.id)
        out.append({"commit": rec.commit, "summary": rec.summary, "reasoning": rec.reasoning,
                    "operator": rec.trailers.get(OPERATOR_TRAILER),
                    "generation": rec.trailers.get(GENERATION_TRAILER),
                    "val_loss": a, "delta": (a - b) if None not in (a, b) else None,
                    "seed_runs": [v.to_dict() for v in rec.per_seed]})
        c = parent
    return list(reversed(out))


def _plot(path: Path, gens: list[dict], keys: list[tuple[str, str]], ylabel: str,
          baseline: float | None = None, hollow: dict[str, str] | None = None) -> None:
    """One line per key; where ``hollow[key]`` names a true field, the point is drawn hollow
    (not a new measurement: a cached result, or one from an earlier generation)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    xs = [g["generation"] for g in gens]
    for key, label in keys:
        ys = [g[key] if isinstance(g[key], (int, float)) else float("nan") for g in gens]
        line, = ax.plot(xs, ys, marker="o", label=label)
        flag = (hollow or {}).get(key)
        if flag:
            cached = [(x, y) for x, y, g in zip(xs, ys, gens) if g.get(flag)]
            if cached:
                ax.plot(*zip(*cached), linestyle="none", marker="o", markerfacecolor="white",
                        markeredgecolor=line.get_color(), label=f"{label} (not new)")
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
    """report.html, and report.md with its PNGs, in ``out_dir``; returns report.html's path
    (the page to open)."""
    data = collect(pop)
    out_dir = Path(out_dir or pop.reports_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gens = data["generations"]
    seed_loss = (data["noise"] or {}).get("mean")
    if gens:
        _plot(out_dir / "fitness.png", gens, [("best", "best"), ("median", "median")],
              "val_loss (lower is better)", seed_loss)
        reused = [{**g, "best_mfu_reused": not g["best_mfu_new"]} for g in gens]
        _plot(out_dir / "mfu.png", reused, [("best_mfu", "best agent"),
                                            ("median_new_mfu", "median of new measurements")],
              "MFU", hollow={"best_mfu": "best_mfu_reused"})
    (out_dir / "report.md").write_text(render_markdown(data, has_plots=bool(gens)))
    page = out_dir / "report.html"
    page.write_text(render_html(_tree_of(data), data["lineage"], page_extras(pop, data)))
    return page


def page_extras(pop: Population, data: dict) -> dict:
    """What the page shows of each commit node beyond collect()'s numbers (so --json stays as
    it is): its author; its refs by kind (a live agent's, a pruned agent's, the seed), so the
    tree can name them and fade a pruned agent's branch; and, for a human's commit, the last
    generation that had finished when it was made."""
    import pygit2

    agents = set(pop.agents())
    run = ReadModel(pop).run
    out = {}
    for n in data["nodes"]:
        if n["kind"] != "commit":
            continue
        c = pop.repo[pygit2.Oid(hex=n["id"])]
        labels = []
        for ref in n["refs"]:
            if ref == "seed":
                labels.append({"kind": "seed", "name": ref})
            elif ref.startswith("pruned:"):
                labels.append({"kind": "pruned", "name": ref[len("pruned:"):]})
            elif ref in agents:
                labels.append({"kind": "agent", "name": ref})
        made_after = None
        if n["origin"] == "human":
            made_after = run.finished_by(c.commit_time)
            # times are whole seconds: a generation that evaluated the commit was not yet
            # done when it was made, whatever a tie in the clock says
            if n.get("evaluated_in"):
                made_after = min(made_after, min(n["evaluated_in"]) - 1)
        out[n["id"]] = {"author": c.author.name, "labels": labels, "made_after": made_after}
    return out


def _tree_of(data: dict) -> dict:
    """collect()'s dict in the shape report_html reads (run_tree's)."""
    return {"repo": data["repo"], "noise": data["noise"], "sigma": data["sigma"],
            "accept_k": data["accept_k"], "prune_margin": data["prune_margin"],
            "rule": data["rule"], "verdicts": data["verdicts"], "clock": data["clock"],
            "nodes": data["nodes"],
            "winner": data["winner"], "generations": data["generations"],
            "failures": data["failures"], "models": data["models"], "totals": data["totals"],
            "headline": data["headline"], "lost": data["lost"]}


def _mfu(v) -> str:
    return f"{v:.2%}" if isinstance(v, (int, float)) else "-"


def _or_dash(v) -> str:
    return "-" if v is None else str(v)


def render_markdown(d: dict, has_plots: bool = True) -> str:
    lines = ["# darwin-git run report", ""]
    for sentence in d["summary"] + d.get("measurement", []):
        lines += [sentence, ""]
    t = d["totals"]
    lines += [f"{t['candidates']} candidates: {t['kept']} kept, {t['rejected']} rejected, "
              f"{t['failed']} failed, {t['pending']} not evaluated; {t['cached']} scored from "
              f"a cached result (an identical tree), not measured again; {t['retries']} "
              f"retries. The evolutionary tree, with every candidate's reasoning, is in "
              f"report.html.", ""]
    if has_plots:
        lines += ["![fitness per generation](fitness.png) ![MFU per generation](mfu.png)", ""]
    lines += ["## Per generation", ""]
    if not d["generations"]:
        lines += ["No generation has finished yet.", ""]
    else:
        if len(d["generations"]) == 1:
            lines += ["Only one generation so far: each plot has a single point.", ""]
        elif d["flat_note"]:
            lines += [d["flat_note"], ""]
        lines += ["| gen | best val_loss | median | best agent | best agent's MFU | "
                  "median MFU of new measurements | proposed | failed: no commit | "
                  "failed: did not train or score | kept | retries | tokens |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for g in d["generations"]:
            lines.append(f"| {g['generation']} | {fmt(g['best'])} | {fmt(g['median'])} | "
                         f"{g['best_agent'] or '-'} | "
                         f"{best_mfu_text(g, lambda sha: f'`{sha[:10]}`')} | "
                         f"{_mfu(g['median_new_mfu'])} | {g['proposed']} | "
                         f"{g['failed_proposals']} | {g['failed_evaluations']} | {g['kept']} | "
                         f"{g['retries']} | {g['tokens']} |")
        lines += ["", "How different the live agents were when each generation closed (clones "
                  "count once), and the promotions it lost:", "",
                  "| gen | distinct tips | agents | changed lines between two distinct tips | "
                  "promotions lost |", "|---|---|---|---|---|"]
        for g in d["generations"]:
            lines.append(f"| {g['generation']} | {_or_dash(g.get('distinct'))} | "
                         f"{_or_dash(g.get('agents'))} | {fmt(g.get('pairwise_lines'), '.0f')} | "
                         f"{g.get('lost', 0)} |")
    lines += ["", "## Lineage of the best agent", ""]
    if not d["lineage"]:
        lines += [d["lineage_note"] or "The best agent has no changes of its own.", ""]
    for step in d["lineage"]:
        lines += [f"- `{step['commit'][:10]}` (gen {step['generation']}, {step['operator']}): "
                  f"**{step['summary']}** — val_loss {fmt(step['val_loss'])}, "
                  f"{delta_words(step['delta'])} than its parent"]
        if step.get("seed_runs"):
            lines += ["  seed by seed, this change / its parent (optimizer steps): "
                      + seed_runs_words(step["seed_runs"])]
        if step["reasoning"]:
            lines += ["  > " + step["reasoning"].strip().replace("\n", "\n  > ")]
    lines += ["", "## Failures", "", failure_words(t), ""]
    for f in d["failures"]["by_cause"]:
        lines.append(f"- {f['stage_words']}: {f['cause']}: {f['count']}")
    lines += [""] + origin_lines(d["failures"])
    lines += ["", "## Models: retries, tokens and cost", ""]
    if not d["models"]:
        lines += ["No proposals yet."]
    else:
        lines += ["| model / mutator | proposals | committed | no commit | did not train or "
                  "score | kept | attempts | retries | tokens | cost $ |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for m in d["models"]:
            lines.append(f"| {m['model']} | {m['proposals']} | {m['committed']} | "
                         f"{m['failed_proposals']} | {m['failed_evaluations']} | {m['kept']} | "
                         f"{m['attempts']} | {m['retries']} | {m['tokens']} | "
                         f"{fmt(m['cost_usd'], '.4f')} |")
    lines += ["", "## Operators", "",
              "| operator | tried | trained ok | kept | mean change of val_loss |",
              "|---|---|---|---|---|"]
    for op, r in sorted(d["by_operator"].items()):
        lines.append(f"| {op} | {r['tried']} | {r['trained']} | {r['kept']} | "
                     f"{delta_words(r['mean_delta'])} |")
    return "\n".join(lines) + "\n"
