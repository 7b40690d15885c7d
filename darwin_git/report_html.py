"""`report.html`: one self-contained page (no server, no network, nothing fetched: the style,
the script and the data are all inside it). The run's data (darwin_git/report_tree.py) is
embedded as JSON; the script draws the evolutionary tree and the per-generation charts as
SVG from it, and shows a node's details on hover and click. Tables and words are written here,
so the page reads without the script too.

Text that came from a model or a human (summaries, reasoning, causes) is only ever inserted as
text (html.escape here, textContent in the script), never as markup.
"""
from __future__ import annotations

import html
import json
import math

from .report_tree import (best_mfu_text, delta_words, failure_words, flat_note, fmt,
                          lineage_note, summary_lines)

COLOURS = {"kept": "#2e9d4f", "rejected": "#9aa3ad", "failed": "#d64541", "human": "#3b7dd8",
           "crossover": "#9b59b6", "pending": "#ffffff", "seed": "#222222"}
LEGEND = {"kept": "kept (selection advanced an agent to it)",
          "rejected": "rejected (scored, not kept: its verdict says why)",
          "failed": "failed (no commit, or did not train or score)",
          "human": "human commit or merge", "crossover": "crossover (merge of two agents)",
          "pending": "not evaluated on its own", "seed": "seed"}


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


def render_html(d: dict, lineage: list[dict]) -> str:
    """The page. ``d`` is run_tree()'s dict; ``lineage`` the best agent's accepted changes
    (oldest first), as the Markdown lists them."""
    layout(d["nodes"])
    t = d["totals"]
    gens = d["generations"]
    gen_rows = [[g["generation"], fmt(g["best"]), fmt(g["median"]), g["best_agent"] or "-",
                 best_mfu_text(g),
                 _mfu(g["median_new_mfu"]), g["new_measurements"], g["proposed"],
                 f"{g['failed']} ({g['failed_proposals']} no commit, "
                 f"{g['failed_evaluations']} did not train or score)",
                 g["kept"], g["cached"], g["retries"], g["tokens"], fmt(g["cost_usd"], ".4f")]
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
        f"<blockquote>{_e(s.get('reasoning'))}</blockquote></li>" for s in lineage)
    legend = "".join(f'<span class="key"><svg width="14" height="14"><circle cx="7" cy="7" '
                     f'r="6" fill="{c}" stroke="#555"/></svg>{_e(LEGEND[k])}</span>'
                     for k, c in COLOURS.items())
    failed_words = failure_words(t)
    data = {k: v for k, v in d.items()}
    data["colours"] = COLOURS
    return PAGE.format(
        title=_e(f"darwin-git run report: {d['repo']}"),
        style=STYLE, script=SCRIPT, data=_embed(data),
        summary="".join(f"<p>{_e(s)}</p>" for s in summary_lines(d)),
        counts=_e(f"{t['candidates']} candidates: {t['kept']} kept, {t['rejected']} rejected, "
                  f"{t['failed']} failed, {t['pending']} not evaluated; {t['cached']} scored "
                  f"from a cached result (an identical tree), not measured again; "
                  f"{t['retries']} retries; {t['tokens']} LLM tokens"
                  + (f", ${t['cost_usd']:.4f}" if t["cost_usd"] is not None else "") + "."),
        legend=legend,
        generations=_table(["gen", "best val_loss", "median", "best agent", "best agent's MFU",
                            "median MFU of new measurements", "new measurements", "proposed",
                            "failed", "kept", "cached", "retries", "tokens", "cost $"],
                           gen_rows, "No generation has finished yet."),
        single=_e("Only one generation so far: each line is a single point." if len(gens) == 1
                  else flat_note(d) or ""),
        failed_words=_e(failed_words),
        failures=_table(["stage", "cause", "count"], fail_rows, "No failures."),
        models=_table(["model / mutator", "proposals", "committed", "no commit",
                       "did not train or score", "kept", "attempts", "retries", "tokens",
                       "cost $"], model_rows, "No proposals yet."),
        lineage=f"<ol>{steps}</ol>" if steps else f'<p class="empty">{_e(note)}</p>',
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>darwin-git run report</h1>{summary}<p>{counts}</p></header>
<main>
<section id="tree-section">
<h2>Evolutionary tree</h2>
<p class="hint">Every candidate of the run, one row band per generation. Solid lines lead from a
parent to its child, dashed ones from a merge's second parent; the gold line is the best
agent's ancestry. Hover a node for its summary, click it for everything about it.</p>
<div class="legend">{legend}<span class="key"><svg width="14" height="14"><circle cx="7" cy="7"
r="6" fill="#fff" stroke="#555" stroke-dasharray="2 2"/></svg>dashed outline: scored from a
cached result</span></div>
<div class="tree-row">
<div id="tree-box"><svg id="tree" xmlns="http://www.w3.org/2000/svg"></svg></div>
<aside id="details"><p class="empty">Click a node.</p></aside>
</div>
</section>
<section>
<h2>Fitness per generation</h2>
<p class="hint">val_loss, lower is better. The grey band is the seed ± σ, the spread of its
val_loss over seeds (the noise floor). Changes are promoted by the paired test, seed by seed,
not by this band. {single}</p>
<svg id="fitness-chart" class="chart" xmlns="http://www.w3.org/2000/svg"></svg>
<h2>MFU per generation</h2>
<p class="hint">A hollow point is not a new measurement: the best agent's tree was scored from
a cached result (an identical tree), or measured in an earlier generation. Median and max are
over the measurements made in that generation only.</p>
<svg id="mfu-chart" class="chart" xmlns="http://www.w3.org/2000/svg"></svg>
{generations}
</section>
<section>
<h2>Failures by cause</h2>
<p>{failed_words}</p>
{failures}
</section>
<section>
<h2>Models: retries, tokens and cost</h2>
<p class="hint">attempts: LLM round trips (a retry is every one after the first).</p>
{models}
</section>
<section>
<h2>Lineage of the best agent</h2>
{lineage}
</section>
</main>
<script type="application/json" id="darwin-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 1.5em 3em; color: #1d2329; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
.hint { color: #5b6570; } .empty { color: #5b6570; font-style: italic; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #d8dde2; padding: .25em .6em; text-align: left; }
th { background: #f2f4f6; }
.legend { display: flex; flex-wrap: wrap; gap: .3em 1.2em; margin: .4em 0; }
.key { display: inline-flex; align-items: center; gap: .35em; }
.tree-row { display: flex; gap: 1em; align-items: flex-start; }
#tree-box { flex: 1 1 auto; overflow: auto; max-height: 80vh; border: 1px solid #d8dde2; }
#details { flex: 0 0 26em; max-height: 80vh; overflow: auto; border: 1px solid #d8dde2;
           padding: .6em .9em; position: sticky; top: 0; }
#details dt { font-weight: 600; margin-top: .35em; } #details dd { margin: 0; white-space: pre-wrap; }
.node { cursor: pointer; } .node.selected circle, .node.selected rect { stroke: #000; stroke-width: 3; }
.edge { fill: none; stroke: #a7b0b9; stroke-width: 1.4; }
.edge.merge { stroke-dasharray: 5 4; } .edge.proposal { stroke-dasharray: 2 3; }
.edge.winner { stroke: #e0a800; stroke-width: 3.5; }
.band-label { fill: #5b6570; font-size: 12px; } .band-line { stroke: #eef0f2; }
.node-label { font-size: 10px; fill: #39424b; }
.chart { width: 100%; max-width: 720px; height: 260px; display: block; }
.axis { stroke: #5b6570; } .grid { stroke: #eef0f2; } .tick { font-size: 11px; fill: #5b6570; }
blockquote { margin: .3em 0 .8em 1em; color: #39424b; white-space: pre-wrap; }
"""

SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("darwin-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  function num(v, digits) { return typeof v === "number" ? v.toFixed(digits) : "-"; }
  function pct(v) { return typeof v === "number" ? (100 * v).toFixed(2) + "%" : "-"; }

  // ----- the tree -----------------------------------------------------------------------
  const nodes = data.nodes, byId = {};
  nodes.forEach(n => { byId[n.id] = n; });
  const DX = 84, DY = 64, LEFT = 80, TOP = 30;
  const px = n => LEFT + n.x * DX, py = n => TOP + n.y * DY;
  const svg = document.getElementById("tree");
  const maxX = Math.max(0, ...nodes.map(n => n.x)), maxY = Math.max(0, ...nodes.map(n => n.y));
  svg.setAttribute("width", LEFT + maxX * DX + 160);
  svg.setAttribute("height", TOP + maxY * DY + 40);
  const bands = {};
  nodes.forEach(n => { bands[n.band] = Math.min(bands[n.band] ?? Infinity, n.y); });
  for (const [band, y] of Object.entries(bands)) {
    el("line", {class: "band-line", x1: 0, x2: LEFT + maxX * DX + 160,
                y1: py({y}) - DY / 2, y2: py({y}) - DY / 2}, svg);
    el("text", {class: "band-label", x: 6, y: py({y}) + 4}, svg).textContent =
      band === "0" ? "seed" : "gen " + band;
  }
  const edges = el("g", {}, svg), dots = el("g", {}, svg);
  nodes.forEach(n => n.parents.forEach((p, i) => {
    const parent = byId[p];
    if (!parent) return;
    const cls = ["edge", n.kind === "proposal" ? "proposal" : i > 0 ? "merge" : "",
                 n.in_winner && parent.in_winner ? "winner" : ""].join(" ");
    const x1 = px(parent), y1 = py(parent), x2 = px(n), y2 = py(n);
    // A first parent's line bends into the child's column in the first gap, then runs
    // down the column (kept free for it); a merge's second parent comes straight across.
    const bend = i === 0 ? y1 + DY : y2, my = (y1 + bend) / 2;
    el("path", {class: cls, d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${bend} L${x2},${y2}`},
       edges);
  }));
  const details = document.getElementById("details");
  let selected = null;
  function show(n, g) {
    if (selected) selected.classList.remove("selected");
    selected = g; g.classList.add("selected");
    details.replaceChildren();
    const h = document.createElement("h3");
    h.textContent = n.summary || n.id;
    details.appendChild(h);
    const dl = document.createElement("dl");
    const rows = [
      ["commit", n.kind === "commit" ? n.id : "none: " + n.id],
      ["outcome", n.outcome + (n.in_winner ? " (on the best agent's line)" : "")],
      ["origin", n.origin], ["refs", n.refs.join(", ")],
      ["agent", n.agent], ["proposed by", n.speaker],
      ["operator / model", [n.operator, n.model || n.mutator].filter(Boolean).join(" / ")],
      ["generation", n.generation + (n.evaluated_in.length && n.evaluated_in.join(",") !==
         String(n.generation) ? " (evaluated in " + n.evaluated_in.join(", ") + ")" : "")],
      ["fitness (val_loss)", n.fitness === null ? null : num(n.fitness, 4) +
         (n.seeds.length > 1 ? " (mean of " + n.seeds.length + " seeds)" : "")],
      ["change", n.delta_text],
      ["verdict", n.verdict ? n.verdict.reason : null],
      ["seeds", n.seeds.length ? n.seeds.map((s, i) => s + ": " + num(n.per_seed[i], 4))
         .join(", ") : null],
      ["σ over its seeds", n.spread === null ? null : num(n.spread, 4)],
      ["σ of the run (noise floor)", num(data.sigma, 4)],
      ["perplexity (exp of the fitness)", num(n.perplexity, 2)],
      ["MFU (latest measurement)", pct(n.mfu)],
      ["tokens/s (latest measurement)", num(n.tokens_per_s, 0)],
      ["cached", n.cached ? "yes: a copy of the result of " + n.cached_from +
         " (identical tree), not a new measurement" : null],
      ["status", n.status], ["cause", n.cause], ["detail", n.detail],
      ["attempts", n.attempts > 1 ? n.attempts + " (" + n.retries + " retries)" : null],
      ["tokens", n.tokens || null],
      ["cost $", n.cost_usd === null ? null : num(n.cost_usd, 6)],
      ["reasoning", n.reasoning],
    ];
    for (const [k, v] of rows) {
      if (v === null || v === undefined || v === "" || v === "-") continue;
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = String(v);
      dl.append(dt, dd);
    }
    details.appendChild(dl);
  }
  nodes.forEach(n => {
    const g = el("g", {class: "node " + n.category + (n.in_winner ? " winner" : ""),
                       "data-id": n.id, transform: `translate(${px(n)},${py(n)})`}, dots);
    const stroke = n.in_winner ? "#e0a800" : n.outcome === "kept" &&
      n.category !== "kept" ? data.colours.kept : "#555";
    const attrs = {fill: data.colours[n.category], stroke: stroke,
                   "stroke-width": n.in_winner ? 3 : 1.5};
    if (n.cached) attrs["stroke-dasharray"] = "3 2";
    if (n.kind === "proposal") {
      el("rect", {...attrs, x: -6, y: -6, width: 12, height: 12,
                  transform: "rotate(45)"}, g);
    } else {
      el("circle", {...attrs, r: n.origin === "seed" ? 11 : 9}, g);
    }
    el("title", {}, g).textContent = (n.summary || n.id) + " — " + n.outcome +
      (n.fitness === null ? "" : ", val_loss " + num(n.fitness, 4));
    const live = n.refs.filter(r => /^agent-|^seed$/.test(r));
    if (live.length) {
      el("text", {class: "node-label", x: 13, y: 4}, g).textContent = live.join(", ");
    }
    g.addEventListener("click", () => show(n, g));
  });

  // ----- charts -------------------------------------------------------------------------
  function chart(id, series, opts) {
    const svg = document.getElementById(id);
    const W = 720, H = 260, L = 64, R = 150, T = 14, B = 34;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const gens = data.generations.map(g => g.generation);
    const ys = [];
    series.forEach(s => s.values.forEach(v => { if (typeof v === "number") ys.push(v); }));
    (opts.extra || []).forEach(v => { if (typeof v === "number") ys.push(v); });
    if (!gens.length || !ys.length) {
      el("text", {class: "tick", x: L, y: H / 2}, svg).textContent = opts.empty;
      return;
    }
    let lo = Math.min(...ys), hi = Math.max(...ys);
    if (hi - lo < 1e-9) { lo -= Math.abs(lo) * 0.05 + 1e-3; hi += Math.abs(hi) * 0.05 + 1e-3; }
    const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
    const g0 = Math.min(...gens), g1 = Math.max(...gens);
    const X = g => L + (g1 === g0 ? (W - L - R) / 2 : (g - g0) / (g1 - g0) * (W - L - R));
    const Y = v => T + (hi - v) / (hi - lo) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const v = lo + (hi - lo) * i / 4;
      el("line", {class: "grid", x1: L, x2: W - R, y1: Y(v), y2: Y(v)}, svg);
      el("text", {class: "tick", x: L - 6, y: Y(v) + 4, "text-anchor": "end"}, svg)
        .textContent = opts.fmt(v);
    }
    gens.forEach(g => {
      el("text", {class: "tick", x: X(g), y: H - B + 16, "text-anchor": "middle"}, svg)
        .textContent = g;
    });
    el("text", {class: "tick", x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle"}, svg)
      .textContent = "generation";
    el("line", {class: "axis", x1: L, x2: L, y1: T, y2: H - B}, svg);
    el("line", {class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B}, svg);
    if (opts.band) {
      const [a, b] = opts.band;
      el("rect", {x: L, width: W - L - R, y: Y(b), height: Math.max(1, Y(a) - Y(b)),
                  fill: "#e4e7ea", opacity: 0.7}, svg);
    }
    if (typeof opts.baseline === "number") {
      el("line", {x1: L, x2: W - R, y1: Y(opts.baseline), y2: Y(opts.baseline),
                  stroke: "#5b6570", "stroke-dasharray": "5 4"}, svg);
      el("text", {class: "tick", x: L + 6, y: Y(opts.baseline) - 5}, svg)
        .textContent = "seed";
    }
    series.forEach((s, si) => {
      const pts = gens.map((g, i) => [g, s.values[i], (s.hollow || [])[i]])
        .filter(p => typeof p[1] === "number");
      if (pts.length > 1) {
        el("path", {fill: "none", stroke: s.colour, "stroke-width": 2,
                    d: pts.map((p, i) => (i ? "L" : "M") + X(p[0]) + "," + Y(p[1])).join(" ")},
           svg);
      }
      pts.forEach(p => {
        const c = el("circle", {class: "point", cx: X(p[0]), cy: Y(p[1]), r: 4,
                                fill: p[2] ? "#fff" : s.colour, stroke: s.colour,
                                "stroke-width": 2}, svg);
        el("title", {}, c).textContent = `${s.label}, generation ${p[0]}: ${opts.fmt(p[1])}` +
          (p[2] ? " (not a new measurement)" : "");
      });
      el("text", {class: "tick", x: W - R + 6, y: T + 14 + si * 16, style: "fill:" + s.colour},
         svg).textContent = s.label;
    });
  }
  const G = data.generations, noise = data.noise || {};
  const sigma = typeof data.sigma === "number" ? data.sigma : 0;
  chart("fitness-chart", [
    {label: "best", colour: "#2e9d4f", values: G.map(g => g.best)},
    {label: "median", colour: "#3b7dd8", values: G.map(g => g.median)},
  ], {fmt: v => v.toFixed(3), baseline: noise.mean,
      band: typeof noise.mean === "number" ? [noise.mean - sigma, noise.mean + sigma] : null,
      extra: typeof noise.mean === "number" ? [noise.mean - sigma, noise.mean + sigma] : [],
      empty: "No generation has finished yet."});
  chart("mfu-chart", [  // the best agent's last, on top
    {label: "max of new", colour: "#9b59b6", values: G.map(g => g.max_new_mfu)},
    {label: "median of new", colour: "#3b7dd8", values: G.map(g => g.median_new_mfu)},
    {label: "best agent", colour: "#2e9d4f", values: G.map(g => g.best_mfu),
     hollow: G.map(g => !g.best_mfu_new)},
  ], {fmt: v => (100 * v).toFixed(2) + "%", empty: "No MFU measured yet."});
  document.body.dataset.ready = "1";
})();
"""
