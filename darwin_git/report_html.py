"""`report.html`: one self-contained page (no server, no network, nothing fetched: the style,
the script and the data are all inside it). The page's template, style and script are package
data files (darwin_git/report_assets/: report.html, report.css, report.js), put together here
into one file. The run's data (darwin_git/report_tree.py) is embedded as JSON; the script
draws the evolutionary tree and the per-generation charts as SVG from it, and shows a node's
details on hover and click. Tables and words are written here, so the page reads without the
script too.

Text that came from a model or a human (summaries, reasoning, causes) is only ever inserted as
text (html.escape here, textContent in the script), never as markup.
"""
from __future__ import annotations

import html
import json
import math
from importlib import resources
from string import Template

from .report_tree import (best_mfu_text, delta_words, failure_words, flat_note, fmt,
                          lineage_note, measurement_lines, origin_lines, seed_runs_words,
                          summary_lines)

COLOURS = {"kept": "#2e9d4f", "rejected": "#9aa3ad", "failed": "#d64541", "human": "#3b7dd8",
           "crossover": "#9b59b6", "pending": "#ffffff", "seed": "#222222"}
LEGEND = {"kept": "kept (selection advanced an agent to it)",
          "rejected": "rejected (scored, not kept: its verdict says why)",
          "failed": "failed (no commit, or did not train or score)",
          "human": "human commit or merge", "crossover": "crossover (merge of two agents)",
          "pending": "not evaluated on its own", "seed": "seed"}


ASSETS = "report_assets"


def asset(name: str) -> str:
    """A file of the page (report.html, report.css, report.js) as installed with the package."""
    return resources.files(__package__).joinpath(ASSETS, name).read_text(encoding="utf-8")


def layout(nodes: list[dict]) -> None:
    """Give each node a column x and a row y. Rows: one band per generation, every node below
    its parents. Columns: a child continues its first parent's column when it is the first to
    claim it (a kept child before the others), else it opens the nearest free column to the
    right; a column stays reserved from the parent's row down to the child's, so a line of
    descent never runs through another node and siblings never look like parent and child."""
    def band(n):
        if n["origin"] == "human" and n["evaluated_in"]:
            return min(n["evaluated_in"])  # a human commit shows when the run picked it up
        return n["generation"] or 0

    rank: dict[str, int] = {}
    start = 0
    for b in sorted({band(n) for n in nodes}):
        members = [n for n in nodes if band(n) == b]
        for n in members:
            above = [rank[p] + 1 for p in n["parents"] if p in rank]
            rank[n["id"]] = max([start] + above)
        start = max(rank[n["id"]] for n in members) + 1
    for n in nodes:  # parents first: a child is always below every parent
        rank[n["id"]] = max([rank[n["id"]]] + [rank[p] + 1 for p in n["parents"] if p in rank])

    col: dict[str, int] = {}
    busy: dict[int, set[int]] = {}  # column -> rows taken by a node or a line through it
    claimed: set[str] = set()  # parents whose column a child has continued
    for r in sorted(set(rank.values())):
        row = [n for n in nodes if rank[n["id"]] == r]
        first = lambda n: n["parents"][0] if n["parents"] and n["parents"][0] in col else None
        row.sort(key=lambda n: (col[first(n)] if first(n) else -1, n["outcome"] != "kept",
                                n["kind"] != "commit", n.get("agent") or "", n["id"]))
        for n in row:
            p = first(n)
            rows = set(range(rank[p] + 1, r + 1)) if p else {r}
            c = col[p] if p else 0
            if p is None or p in claimed or busy.get(c, set()) & rows:
                while busy.get(c, set()) & rows:
                    c += 1
            if p is not None and c == col[p]:
                claimed.add(p)
            col[n["id"]] = c
            busy.setdefault(c, set()).update(rows)
    for n in nodes:
        n["x"], n["y"], n["band"] = col[n["id"]], rank[n["id"]], band(n)


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def _table(headers: list[str], rows: list[list], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _embed(data) -> str:
    """JSON (no NaN: the page's JSON.parse would refuse it) that cannot end the <script>
    element it sits in."""
    text = json.dumps(_finite(data), sort_keys=True, default=str, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _mfu(v) -> str:
    return f"{v:.2%}" if isinstance(v, (int, float)) else "-"


def render_html(d: dict, lineage: list[dict], extras: dict | None = None) -> str:
    """The page. ``d`` is run_tree()'s dict; ``lineage`` the best agent's accepted changes
    (oldest first), as the Markdown lists them; ``extras`` what only the page shows of a
    commit node (its author, its refs by kind, when a human made it: report.page_extras)."""
    layout(d["nodes"])
    t = d["totals"]
    gens = d["generations"]
    gen_rows = [[g["generation"], fmt(g["best"]), fmt(g["median"]), g["best_agent"] or "-",
                 best_mfu_text(g),
                 _mfu(g["median_new_mfu"]), g["new_measurements"], g["proposed"],
                 f"{g['failed']} ({g['failed_proposals']} no commit, "
                 f"{g['failed_evaluations']} did not train or score)",
                 g["kept"], g["cached"], g["retries"], g["tokens"], fmt(g["cost_usd"], ".4f"),
                 "-" if g.get("distinct") is None else g["distinct"],
                 fmt(g.get("pairwise_lines"), ".0f"), g.get("lost", 0)]
                for g in gens]
    fail_rows = [[f["stage_words"], f["cause"], f["count"]] for f in d["failures"]["by_cause"]]
    model_rows = [[m["model"], m["proposals"], m["committed"], m["failed_proposals"],
                   m["failed_evaluations"], m["kept"], m["attempts"], m["retries"], m["tokens"],
                   fmt(m["cost_usd"], ".4f")] for m in d["models"]]
    note = lineage_note(d)
    steps = "".join(
        f"<li><code>{_e(s['commit'][:10])}</code> gen {_e(s.get('generation'))}, "
        f"{_e(s.get('operator'))}: <b>{_e(s['summary'])}</b> — val_loss "
        f"{_e(fmt(s['val_loss']))}, {_e(delta_words(s.get('delta')))} than its parent"
        + (f"<br>seed by seed, this change / its parent (optimizer steps): "
           f"{_e(seed_runs_words(s['seed_runs']))}" if s.get("seed_runs") else "")
        + f"<blockquote>{_e(s.get('reasoning'))}</blockquote></li>" for s in lineage)
    legend = "".join(f'<span class="key"><svg width="14" height="14"><circle cx="7" cy="7" '
                     f'r="6" fill="{c}" stroke="#555"/></svg>{_e(LEGEND[k])}</span>'
                     for k, c in COLOURS.items())
    failed_words = failure_words(t)
    data = {k: v for k, v in d.items()}
    data["colours"] = COLOURS
    data["extras"] = extras or {}
    return Template(asset("report.html")).substitute(
        title=_e(f"darwin-git run report: {d['repo']}"),
        style=asset("report.css"), script=asset("report.js"), data=_embed(data),
        summary="".join(f"<p>{_e(s)}</p>" for s in summary_lines(d) + measurement_lines(d)),
        counts=_e(f"{t['candidates']} candidates: {t['kept']} kept, {t['rejected']} rejected, "
                  f"{t['failed']} failed, {t['pending']} not evaluated; {t['cached']} scored "
                  f"from a cached result (an identical tree), not measured again; "
                  f"{t['retries']} retries; {t['tokens']} LLM tokens"
                  + (f", ${t['cost_usd']:.4f}" if t["cost_usd"] is not None else "") + "."),
        legend=legend,
        generations=_table(["gen", "best val_loss", "median", "best agent", "best agent's MFU",
                            "median MFU of new measurements", "new measurements", "proposed",
                            "failed", "kept", "cached", "retries", "tokens", "cost $",
                            "distinct tips", "changed lines between tips",
                            "promotions lost"],
                           gen_rows, "No generation has finished yet."),
        single=_e("Only one generation so far: each line is a single point." if len(gens) == 1
                  else flat_note(d) or ""),
        failed_words=_e(failed_words),
        failures=_table(["stage", "cause", "count"], fail_rows, "No failures.")
        + "".join(f"<p>{_e(line)}</p>" for line in origin_lines(d["failures"])),
        models=_table(["model / mutator", "proposals", "committed", "no commit",
                       "did not train or score", "kept", "attempts", "retries", "tokens",
                       "cost $"], model_rows, "No proposals yet."),
        lineage=f"<ol>{steps}</ol>" if steps else f'<p class="empty">{_e(note)}</p>',
    )
