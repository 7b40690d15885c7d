// The report's script: draws the evolutionary tree and the per-generation charts as SVG from
// the run's data (the JSON in #darwin-data), and shows a node's details on click. Text that
// came from a model or a human is only ever set as textContent, never as markup.
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
  nodes.forEach(n => { byId[n.id] = n; Object.assign(n, (data.extras || {})[n.id] || {}); });
  nodes.forEach(n => { n.labels = n.labels || []; });

  // Lines of descent: what a live agent grew from, and what only a pruned agent did.
  function ancestors(starts) {
    const seen = new Set(), todo = [...starts];
    while (todo.length) {
      const n = todo.pop();
      if (!n || seen.has(n.id)) continue;
      seen.add(n.id);
      n.parents.forEach(p => todo.push(byId[p]));
    }
    return seen;
  }
  const live = ancestors(nodes.filter(n => n.labels.some(l => l.kind === "agent")));
  const prunedLine = ancestors(nodes.filter(n => n.labels.some(l => l.kind === "pruned")));
  nodes.forEach(n => { n.pruned = prunedLine.has(n.id) && !live.has(n.id); });
  // A commit without the trailer (a human's, made without the hooks) belongs to the agent
  // whose branch it is on.
  nodes.forEach(n => {
    const own = n.labels.find(l => l.kind === "agent" || l.kind === "pruned");
    n.agent = n.agent || (own ? own.name : null);
  });

  function labelText(n) {
    const parts = [];
    n.labels.forEach(l => {
      if (l.kind === "seed") parts.push("seed");
      else if (l.kind === "agent") parts.push(l.name);
      else if (l.kind === "pruned") parts.push("✂ " + l.name + " (pruned)");
    });
    return parts.join(", ");
  }

  const box = document.getElementById("tree-box");
  const svg = document.getElementById("tree");
  const LEFT = 84, TOP = 34, DY = 64, R = 9, MAX_LABEL = 240;
  // Labels are measured first: two columns stand far enough apart for a label between them.
  const probe = el("text", {class: "node-label"}, svg);
  nodes.forEach(n => {
    n.label = labelText(n);
    probe.textContent = n.label;
    n.labelWidth = n.label ? Math.min(probe.getComputedTextLength(), MAX_LABEL) : 0;
  });
  probe.remove();
  const maxX = Math.max(0, ...nodes.map(n => n.x)), maxY = Math.max(0, ...nodes.map(n => n.y));
  const need = Math.max(72, Math.max(0, ...nodes.map(n => n.labelWidth)) + 2 * R + 16);
  // ... and the columns spread out to use the page's width (up to a readable distance)
  const fill = (box.clientWidth - LEFT - 40) / (maxX + 1);
  const DX = Math.max(need, Math.min(fill, 200));
  const px = n => LEFT + n.x * DX, py = n => TOP + n.y * DY;
  const W = Math.max(box.clientWidth, LEFT + maxX * DX + need + 20);
  const H = TOP + maxY * DY + 48;
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);

  const bands = {};
  nodes.forEach(n => { bands[n.band] = Math.min(bands[n.band] ?? Infinity, n.y); });
  for (const y of Object.values(bands)) {
    el("line", {class: "band-line", x1: 0, x2: W, y1: py({y}) - DY / 2, y2: py({y}) - DY / 2},
       svg);
  }
  const edges = el("g", {}, svg), dots = el("g", {}, svg), texts = el("g", {}, svg);
  nodes.forEach(n => n.parents.forEach((p, i) => {
    const parent = byId[p];
    if (!parent) return;
    const cls = ["edge", n.kind === "proposal" ? "proposal" : i > 0 ? "merge" : "",
                 n.in_winner && parent.in_winner ? "winner" : "", n.pruned ? "pruned" : ""];
    const x1 = px(parent), y1 = py(parent), x2 = px(n), y2 = py(n);
    // A first parent's line bends into the child's column in the first gap, then runs
    // down the column (kept free for it); a merge's second parent comes straight across.
    const bend = i === 0 ? y1 + DY : y2, my = (y1 + bend) / 2;
    el("path", {class: cls.join(" ").trim(),
                d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${bend} L${x2},${y2}`}, edges);
  }));

  const details = document.getElementById("details");
  let selected = null;
  function generationWords(n) {
    const evaluated = n.evaluated_in.length && n.evaluated_in.join(",") !== String(n.generation)
      ? " (evaluated in " + n.evaluated_in.join(", ") + ")" : "";
    if (n.origin === "human" && typeof n.made_after === "number") {
      return (n.made_after === 0 ? "made before generation 1" : "made after generation " +
              n.made_after) + " by a human" + (n.evaluated_in.length ? ", evaluated in " +
              n.evaluated_in.join(", ") : ", not evaluated yet");
    }
    return (n.generation === null || n.generation === undefined ? "-" : String(n.generation))
      + evaluated;
  }
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
      ["outcome", n.outcome + (n.in_winner ? " (on the best agent's line)" : "")
         + (n.pruned ? " (on a pruned agent's branch)" : "")],
      ["origin", n.origin === "human" ? "human commit" + (n.parents.length > 1 ? " (a merge)"
         : "") : n.origin],
      ["made by", n.origin === "human" || n.origin === "seed" ? n.author : null],
      ["refs", n.refs.join(", ")],
      ["agent", n.agent], ["proposed by", n.speaker],
      ["operator / model", [n.operator, n.model || n.mutator].filter(Boolean).join(" / ")],
      ["generation", generationWords(n)],
      ["fitness (val_loss)", n.fitness === null ? null : num(n.fitness, 4) +
         (n.seeds.length > 1 ? " (mean of " + n.seeds.length + " seeds)" : "")],
      ["change", n.delta_text],
      ["verdict", n.verdict ? n.verdict.reason : null],
      ["seeds", n.seeds.length ? n.seeds.map((s, i) => s + ": " + num(n.per_seed[i], 4))
         .join(", ") : null],
      ["beside its parent, seed by seed (optimizer steps)", (n.seed_runs || []).length
         ? n.seed_runs.map(r => r.seed + ": " + num(r.value, 4) + " vs " + num(r.parent, 4) +
             " (" + (r.steps === null ? "?" : r.steps) + "/" +
             (r.parent_steps === null ? "?" : r.parent_steps) + " steps" +
             (r.side_by_side ? ", side by side" : "") + ")").join(", ") : null],
      ["σ over its seeds", n.spread === null ? null : num(n.spread, 4)],
      ["σ of the run (noise floor)", num(data.sigma, 4)],
      ["perplexity (exp of the fitness)", num(n.perplexity, 2)],
      ["MFU (latest measurement)", pct(n.mfu)],
      ["tokens/s (latest measurement)", num(n.tokens_per_s, 0)],
      ["cached", n.cached ? "yes: a copy of the result of " + n.cached_from +
         " (identical tree), not a new measurement" : null],
      ["status", n.status], ["cause", n.cause], ["detail", n.detail],
      ["whose failure", n.failure_origin && n.outcome === "failed" ? n.failure_origin : null],
      ["runs the engine lost (run again)", (n.infrastructure || []).length
         ? n.infrastructure.map(f => f.cause + " (" + f.origin + ")").join(", ") : null],
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

  const groups = {};
  nodes.forEach(n => {
    const g = el("g", {class: "node " + n.category + (n.in_winner ? " winner" : "")
                              + (n.pruned ? " pruned" : ""),
                       "data-id": n.id, transform: `translate(${px(n)},${py(n)})`}, dots);
    groups[n.id] = g;
    const stroke = n.in_winner ? "#e0a800" : n.outcome === "kept" &&
      n.category !== "kept" ? data.colours.kept : "#555";
    const attrs = {fill: data.colours[n.category], stroke: stroke,
                   "stroke-width": n.in_winner ? 3 : 1.5};
    if (n.cached) attrs["stroke-dasharray"] = "3 2";
    if (n.kind === "proposal") {
      el("rect", {...attrs, x: -6, y: -6, width: 12, height: 12,
                  transform: "rotate(45)"}, g);
    } else {
      el("circle", {...attrs, r: n.origin === "seed" ? R + 2 : R}, g);
    }
    el("title", {}, g).textContent = (n.summary || n.id) + " — " + n.outcome +
      (n.origin === "human" && n.author ? ", a human commit by " + n.author : "") +
      (n.fitness === null ? "" : ", val_loss " + num(n.fitness, 4)) +
      (n.label ? " [" + n.label + "]" : "");
    g.addEventListener("click", () => show(n, g));
  });

  // Labels: to the right of their node, else to the left, below or above, wherever they
  // cover no other node and no other label.
  const taken = nodes.map(n => ({x0: px(n) - R - 2, x1: px(n) + R + 2, y0: py(n) - R - 2,
                                 y1: py(n) + R + 2}));
  const overlaps = (a, b) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
  nodes.filter(n => n.label).sort((a, b) => a.y - b.y || a.x - b.x).forEach(n => {
    const x = px(n), y = py(n), w = n.labelWidth, h = 13;
    const spots = [[x + R + 5, y + 4, "start"], [x - R - 5, y + 4, "end"],
                   [x, y + R + 15, "middle"], [x, y - R - 6, "middle"]];
    const area = ([lx, ly, anchor]) => {
      const x0 = anchor === "start" ? lx : anchor === "end" ? lx - w : lx - w / 2;
      return {x0: x0, x1: x0 + w, y0: ly - h + 2, y1: ly + 3};
    };
    const spot = spots.find(s => area(s).x0 >= LEFT - 20 && !taken.some(t => overlaps(t, area(s))))
      || spots[0];
    taken.push(area(spot));
    const t = el("text", {class: "node-label" + (n.labels.some(l => l.kind === "pruned")
                                                 ? " pruned-label" : ""),
                          x: spot[0], y: spot[1], "text-anchor": spot[2],
                          "data-id": n.id}, texts);
    t.textContent = n.label;
    if (t.getComputedTextLength() > MAX_LABEL) {  // too long for one column: shortened
      t.setAttribute("textLength", MAX_LABEL);
      t.setAttribute("lengthAdjust", "spacingAndGlyphs");
    }
  });

  // The generation gutter: drawn last, on top, and kept at the left edge when the tree
  // scrolls sideways, so every row says which generation it is.
  const gutter = el("g", {class: "gutter"}, svg);
  el("rect", {x: 0, y: 0, width: LEFT - 22, height: H}, gutter);
  el("line", {x1: LEFT - 22, x2: LEFT - 22, y1: 0, y2: H}, gutter);
  for (const [band, y] of Object.entries(bands)) {
    el("text", {class: "band-label", x: 6, y: py({y}) + 4}, gutter).textContent =
      band === "0" ? "seed" : "gen " + band;
  }
  box.addEventListener("scroll", () => {
    gutter.setAttribute("transform", `translate(${box.scrollLeft},0)`);
  });

  // Open on the best agent: its node selected, in view.
  const best = data.winner ? byId[data.winner.commit] : null;
  if (best) {
    show(best, groups[best.id]);
    box.scrollLeft = Math.max(0, px(best) - box.clientWidth / 2);
    box.scrollTop = Math.max(0, py(best) - box.clientHeight / 2);
    gutter.setAttribute("transform", `translate(${box.scrollLeft},0)`);
  }

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
