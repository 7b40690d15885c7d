"""The evolutionary tree of a whole run, from the repo alone: every candidate as a node (each
commit of the lineage, and each proposal that made no commit), its outcome, and the counts
the report shows. The Markdown and the HTML report read their numbers from here, so a failure,
a retry or a cached result is counted once, the same way everywhere.

Outcomes: ``seed``; ``kept`` (on the first-parent line of a live or pruned agent: selection
advanced an agent to it); ``rejected`` (scored, not kept); ``failed`` (it did not train or
score, or the proposal made no commit); ``pending`` (never evaluated on its own). A child's
``verdict`` is the acceptance rule's (the paired, sequential test of
selection_rules.decide), as the generation's journal record holds it, reason included. Origins:
``seed``, ``mutation``, ``crossover`` (an engine merge), ``human`` (a commit without a darwin
operator: a human's change or merge), ``request`` (the engine's question to a human, on a
request branch) and ``revert`` (the engine undoing an answer that failed).
"""
from __future__ import annotations

import collections
import math
import statistics

import pygit2

from .origin import ORIGINS, of_attempt, of_result
from .population.lineage import ref_labels
from .population.message import ATTEMPTS_TRAILER, COST_TRAILER, TOKENS_TRAILER
from .population.repo import Population
from .readmodel import CommitRecord, ReadModel, RunRecords
from .selection_rules import describe_rule
from .settings import EvolveSettings

STAGE_WORDS = {"proposal": "the proposal made no commit", "train_failed": "training failed",
               "eval_failed": "scoring failed", "timeout": "ran out of time",
               "rejected": "the harness refused the tree"}


# ----- words for numbers -------------------------------------------------------------------
def fmt(v, spec: str = ".4f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def change(new: float, old: float, spec: str = ".4f") -> str:
    """'0.1000 lower (better)': val_loss and perplexity are better lower."""
    if new == old:
        return "no lower and no higher"
    word, verdict = ("lower", "better") if new < old else ("higher", "worse")
    return f"{format(abs(new - old), spec)} {word} ({verdict})"


def relative_change(new: float, old: float) -> str:
    """'56.3% lower (better)'."""
    if old == 0 or new == old:
        return "unchanged"
    word, verdict = ("lower", "better") if new < old else ("higher", "worse")
    return f"{abs(new - old) / abs(old):.1%} {word} ({verdict})"


def verdict_words(verdicts: list[dict]) -> str:
    """What the acceptance rule decided, counted by verdict and by the seeds it took:
    '1 promoted after 3 seeds (p = 0.004); 9 rejected after 1 seed, 2 after 3 seeds
    (p = 0.08, 0.21)'. Verdicts still waiting for a seed are 'still being compared'."""
    parts = []
    for action, verb in (("promote", "promoted"), ("reject", "rejected")):
        by_n: dict[int, list] = collections.defaultdict(list)
        for v in verdicts:
            if v.get("action") == action:
                by_n[_int(v.get("n")) or 0].append(v.get("p"))
        groups = []
        for n in sorted(by_n):
            ps = sorted(p for p in by_n[n] if isinstance(p, (int, float)))
            tested = f" (p = {', '.join(format(p, '.2g') for p in ps)})" if ps else ""
            groups.append(f"{len(by_n[n])}{' ' + verb if not groups else ''} after "
                          f"{n} seed{'s' if n != 1 else ''}{tested}")
        if groups:
            parts.append(", ".join(groups))
    waiting = sum(v.get("action") == "more" for v in verdicts)
    if waiting:
        parts.append(f"{waiting} still being compared")
    return "; ".join(parts)


def _not_promoted(d: dict) -> str:
    """'no change was promoted: 9 rejected after 1 seed, ...' (the reasons, counted)."""
    words = verdict_words(d.get("verdicts") or [])
    return "no change was promoted" + (f": {words}" if words else "")


def delta_words(delta: float | None) -> str:
    """A val_loss difference (child minus parent) in words: '0.0500 lower (better)'."""
    return "-" if delta is None else change(delta, 0.0)


def summary_lines(d: dict) -> list[str]:
    """The page's opening sentences (also the Markdown's)."""
    out = []
    noise, winner = d.get("noise"), d.get("winner")
    rule = d.get("rule")
    rule_text = (f" A change is promoted by the acceptance rule: "
                 f"{describe_rule(rule)}." if rule else "")
    if noise and noise.get("mean") is not None:
        out.append(f"Seed: val_loss {fmt(noise['mean'])} (mean of {noise.get('repeats')} runs "
                   f"with different seeds, {noise.get('budget_s')} s of {d.get('clock')} time "
                   f"each); noise σ = {fmt(noise.get('sigma'))}.{rule_text} σ sets only "
                   f"pruning's margin: an agent within k·σ = {fmt(d.get('prune_margin'))} "
                   f"(k = {d.get('accept_k'):g}) of the best is never pruned.")
    else:
        out.append("The noise floor has not been measured yet: no generation has run."
                   + rule_text)
    seed_mean = noise.get("mean") if noise else None
    if winner and winner["seed_code"]:
        out.append(f"Best agent: {winner['agent']}, still the seed's code (val_loss "
                   f"{fmt(winner['fitness'])}).")
    elif winner:
        words = ""
        if seed_mean is not None:  # perplexity = exp(val_loss): both from the same fitness
            ppl, ppl_seed = math.exp(winner["fitness"]), math.exp(seed_mean)
            words = (f": {change(winner['fitness'], seed_mean)} than the seed's "
                     f"{fmt(seed_mean)}; perplexity {ppl:.2f} vs the seed's {ppl_seed:.2f}, "
                     f"{relative_change(ppl, ppl_seed)}")
        out.append(f"Best agent: {winner['agent']} at {winner['commit'][:10]}, val_loss "
                   f"{fmt(winner['fitness'])}{words}.")
    if d.get("verdicts"):
        out.append(f"Verdicts: {verdict_words(d['verdicts'])}.")
    return out


def measurement_lines(d: dict) -> list[str]:
    """How finely the run measured, and what it found where selection never looked: the
    smallest effect acceptance can see (the noise floor's), the headline (the best tip beside
    the seed on fresh seeds: gain, interval, cost), the runs the engine lost (counted apart
    from the code's failures) and the promotions that left the population."""
    out = []
    noise = d.get("noise") or {}
    if noise.get("mde") is not None:
        out.append(f"Smallest effect acceptance can see: {fmt(noise['mde'])} nats (80% power; "
                   f"a paired difference, the seed beside itself, spreads by "
                   f"{fmt(noise.get('paired_sigma'))}); smaller gains are mostly missed.")
    if d.get("headline"):
        from .progress import headline_words

        words = headline_words(d["headline"])
        out.append(words[:1].upper() + words[1:] + ".")
    infra = (d.get("failures") or {}).get("infrastructure") or []
    if infra:
        n = sum(f["count"] for f in infra)
        causes = ", ".join(f"{f['cause']} ({f['origin']}, {f['count']})" for f in infra)
        out.append(f"{n} run(s) failed for the engine's or the infrastructure's reasons, not "
                   f"the code's: {causes}; each was run again and none counts as a result.")
    lost = d.get("lost") or []
    if lost:
        out.append(f"{len(lost)} promoted change(s) left the population when their agent was "
                   "pruned: " + "; ".join(f"g{e['generation']} {e['agent']}: {e['summary']}"
                                          for e in lost) + ".")
    return out


def best_mfu_text(g: dict, code=lambda sha: sha[:10]) -> str:
    """The best agent's MFU in a generation, saying when it is not a new measurement."""
    v = g["best_mfu"]
    if not isinstance(v, (int, float)):
        return "-"
    if g["best_mfu_new"]:
        return f"{v:.2%}"
    if g["best_mfu_cached"]:
        source = g["best_mfu_source"]
        return f"{v:.2%} (cached from {code(source)})" if source else f"{v:.2%} (cached)"
    when = g["best_mfu_measured_in"]
    where = "the noise-floor runs" if when == 0 else f"generation {when}"
    return f"{v:.2%} (measured in {where})" if when is not None else f"{v:.2%} (earlier)"


def seed_runs_words(rows: list[dict]) -> str:
    """A change beside its parent seed by seed, with the optimizer steps each run made:
    'seed 0 2.5070/2.6065 (120/120 steps, side by side), seed 1 ...'."""
    def steps(v):
        return "?" if v is None else f"{v:g}"
    return ", ".join(
        f"seed {r['seed']} {fmt(r['value'])}/{fmt(r['parent'])} ({steps(r['steps'])}/"
        f"{steps(r['parent_steps'])} steps{', side by side' if r['side_by_side'] else ''})"
        for r in rows)


def origin_lines(failures: dict) -> list[str]:
    """Failed candidates by whose failure it was, and the runs the engine lost, apart."""
    names = {"code": "the code's own", "llm": "the LLM's (no usable reply)",
             "engine": "the engine's or the machine's"}
    out = []
    if failures.get("by_origin"):
        out.append("Whose failures they were: " + ", ".join(
            f"{k} {names.get(o, o)}" for o, k in failures["by_origin"].items()) + ".")
    for f in failures.get("infrastructure") or []:
        out.append(f"- run again after a failure of the {f['origin']}: {f['cause']}: "
                   f"{f['count']}")
    return out


def failure_words(t: dict) -> str:
    if not t["decided"]:
        return "No candidate has been decided yet."
    if not t["failed"]:
        return f"None of the {t['decided']} decided candidates failed."
    return (f"{t['failed']} of {t['decided']} decided candidates failed "
            f"({fmt(t['failure_rate'], '.1%')}): {t['proposals_failed']} proposal(s) made no "
            f"commit, {t['evaluations_failed']} did not train or score.")


def flat_note(d: dict) -> str | None:
    """Why the fitness plot is a flat line, when it is."""
    bests = [g["best"] for g in d["generations"] if g["best"] is not None]
    if len(bests) < 2 or max(bests) != min(bests):
        return None
    if d.get("winner") and d["winner"]["seed_code"]:
        return (f"The best line is flat: {_not_promoted(d)}, so every agent's best is still "
                f"the seed's code.")
    first = next(g["generation"] for g in d["generations"] if g["best"] is not None)
    noise = d.get("noise") or {}
    than_seed = (f" ({change(bests[0], noise['mean'])} than the seed's {fmt(noise['mean'])})"
                 if noise.get("mean") is not None else "")
    return (f"The best line is flat: the best agent of generation {first}{than_seed} was not "
            "beaten by a later generation.")


def lineage_note(d: dict) -> str | None:
    """Why the best agent's lineage is empty, when it is."""
    winner = d.get("winner")
    if winner is None:
        return "No agent has a fitness yet: nothing was scored."
    kept = [n for n in d["nodes"] if n["in_winner"] and n["origin"] != "seed"]
    if kept:
        return None
    promoted = [v for v in d.get("verdicts") or [] if v.get("action") == "promote"]
    if not promoted:
        return f"{winner['agent']} still has the seed's code: {_not_promoted(d)}."
    return (f"{winner['agent']} still has the seed's code: {len(promoted)} change(s) were "
            f"promoted but none is on the best agent's line.")


# ----- the tree ----------------------------------------------------------------------------
def _int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _commit_node(rec: CommitRecord, labels: dict, run: RunRecords) -> dict:
    origin = rec.made_by
    results = rec.results
    shown = rec.latest_run or {}
    failed = rec.never_ok
    if origin == "seed":
        outcome = "seed"
    elif failed:
        outcome = "failed"
    elif not results:
        outcome = "pending"
    else:
        outcome = "kept" if rec.selected else "rejected"
    generation = rec.generation
    attempts = _int(rec.trailers.get(ATTEMPTS_TRAILER)) or 1
    fit = rec.fitness
    return {
        "id": rec.commit, "kind": "commit", "parents": list(rec.parents),
        "refs": labels.get(pygit2.Oid(hex=rec.commit), []), "summary": rec.summary,
        "reasoning": rec.reasoning, "agent": rec.agent, "speaker": rec.speaker,
        "operator": rec.operator or "human", "mutator": rec.mutator, "model": rec.model,
        "generation": generation,
        "evaluated_in": rec.evaluated_in, "origin": origin, "outcome": outcome,
        "status": shown.get("status") if results else None,
        "cause": shown.get("cause") if failed else None,
        "detail": _last_line(shown.get("log_tail")) if failed else None,
        "fitness": fit.loss, "seeds": rec.seeds, "per_seed": rec.seed_losses,
        "spread": rec.spread, "val_loss": shown.get("val_loss"),
        # perplexity = exp(val_loss): of the fitness, like every number compared across nodes
        "perplexity": math.exp(fit.loss) if fit.loss is not None else None,
        "mfu": shown.get("mfu"), "mfu_measured_in": run.measured_in(shown, generation)
        if shown else None,
        "tokens_per_s": shown.get("tokens_per_s"),
        "cached": rec.cached, "cached_from": shown.get("cached_from"),
        "measurements": len(rec.fresh_runs), "attempts": attempts, "retries": attempts - 1,
        "tokens": _int(rec.trailers.get(TOKENS_TRAILER)) or 0,
        "cost_usd": _float(rec.trailers.get(COST_TRAILER)),
        "time": rec.time,
        # what it earned seed by seed against its parent, with the steps each run made
        "seed_runs": [v.to_dict() for v in rec.per_seed] if outcome != "seed" else [],
        "failure_origin": (of_result(shown) if failed else None),
        "infrastructure": [{"origin": of_result(r), "cause": r.get("cause")}
                           for r in rec.infrastructure],
    }


def _last_line(text: str | None) -> str | None:
    lines = [l for l in (text or "").splitlines() if l.strip()]
    return lines[-1][:300] if lines else None


def _proposal_node(parent: str, rec: dict) -> dict:
    attempts = _int(rec.get("attempts")) or 1
    tokens = rec.get("tokens") or {}
    g = _int(rec.get("generation"))
    return {
        "id": f"proposal:{parent[:12]}:g{g}:{rec.get('slot') or rec.get('mutator_agent')}",
        "kind": "proposal", "parents": [parent], "refs": [],
        "summary": f"No commit: {rec.get('cause')}", "reasoning": rec.get("detail") or "",
        "agent": rec.get("agent"), "speaker": rec.get("mutator_agent"),
        "operator": rec.get("operator"), "mutator": rec.get("mutator"),
        "model": rec.get("model"), "generation": g, "evaluated_in": [], "origin": "mutation",
        "outcome": "failed", "status": "proposal_failed", "cause": rec.get("cause"),
        "detail": rec.get("detail"), "fitness": None, "seeds": [], "per_seed": [],
        "spread": None, "val_loss": None, "perplexity": None, "mfu": None,
        "tokens_per_s": None, "mfu_measured_in": None, "cached": False, "cached_from": None,
        "measurements": 0,
        "attempts": attempts, "retries": attempts - 1,
        "tokens": _int(tokens.get("total") if isinstance(tokens, dict) else tokens) or 0,
        "cost_usd": _float(rec.get("cost_usd")), "time": None,
        "seed_runs": [], "failure_origin": of_attempt(rec), "infrastructure": [],
    }


def category(node: dict) -> str:
    """The node's colour: failed, human, crossover, else its outcome."""
    if node["outcome"] == "failed":
        return "failed"
    if node["origin"] in ("human", "crossover"):
        return node["origin"]
    return node["outcome"]


def run_tree(pop: Population, model: ReadModel | None = None) -> dict:
    """Nodes (parents first), the noise floor, the winner and its ancestry, and the counts
    (``model``: the population's read model, pinned; made here when not given)."""
    from .runconfig import read_config

    model = model or ReadModel(pop, pinned=True)
    run = model.run
    noise = run.noise  # the latest noise floor under the run's conditions
    config = read_config(pop.repo)
    accept_k = float(config["evolve"]["accept_k"])
    # The rule the run judged by, as its last generation recorded it (else as configured).
    rule = run.rule or EvolveSettings.from_config(config).acceptance().to_dict()
    verdict_of = run.decided_verdicts  # a child's latest, if it was decided twice
    verdicts = list(verdict_of.values())
    conditions = model.conditions
    labels = ref_labels(pop)

    walker = pop.repo.walk(None, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
    for tip in dict.fromkeys(labels):
        walker.push(tip)
    nodes: list[dict] = []
    records: dict[str, CommitRecord] = {}
    for c in walker:
        rec = records[str(c.id)] = model.record(c.id)
        nodes.append(_commit_node(rec, labels, run))
        for attempt in rec.failed_proposals:
            nodes.append(_proposal_node(rec.commit, attempt))

    by_id = {n["id"]: n for n in nodes}
    sigma = noise.get("sigma") if noise else None
    prune_margin = accept_k * sigma if sigma is not None else None
    for n in nodes:
        n["category"] = category(n)
        v = verdict_of.get(n["id"])
        n["verdict"] = {k: v.get(k) for k in ("action", "reason", "n", "mean_diff", "p")} \
            if v else None
        parent = by_id.get(n["parents"][0]) if n["parents"] else None
        if parent and n["fitness"] is not None and parent["fitness"] is not None:
            n["delta"] = n["fitness"] - parent["fitness"]
            n["delta_text"] = f"val_loss {change(n['fitness'], parent['fitness'])} than its " \
                              f"parent's {fmt(parent['fitness'])}"
        else:
            n["delta"], n["delta_text"] = None, None

    winner = _winner(pop, by_id)
    ancestry = _ancestry(pop, winner["commit"]) if winner else set()
    for n in nodes:
        n["in_winner"] = n["id"] in ancestry
    gens = _generations(nodes, run.generations)
    return {
        "repo": str(pop.path), "noise": noise, "sigma": sigma, "accept_k": accept_k,
        "prune_margin": prune_margin, "rule": rule, "verdicts": verdicts,
        "budget_s": conditions.budget_s, "clock": conditions.clock,
        "nodes": nodes, "winner": winner,
        "generations": gens, "failures": _failures(nodes), "models": _models(nodes),
        "totals": _totals(nodes),
        "headline": run.headline, "lost": _lost(run.generations),
    }


def _winner(pop: Population, by_id: dict) -> dict | None:
    """The live agent with the best fitness (ties: the first name)."""
    best = None
    for agent, tip in pop.agents().items():
        node = by_id.get(str(tip))
        if node is None or node["fitness"] is None:
            continue
        if best is None or node["fitness"] < best["fitness"]:
            best = {"agent": agent, "commit": str(tip), "fitness": node["fitness"],
                    "perplexity": node["perplexity"], "mfu": node["mfu"],
                    "cached": node["cached"], "seed_code": node["origin"] == "seed"}
    return best


def _ancestry(pop: Population, commit: str) -> set[str]:
    walker = pop.repo.walk(pygit2.Oid(hex=commit), pygit2.GIT_SORT_TOPOLOGICAL)
    return {str(c.id) for c in walker}


def _candidates(nodes: list[dict]) -> list[dict]:
    """Everything the run tried: every node but the seed and the requests to humans."""
    return [n for n in nodes if n["origin"] not in ("seed", "request")]


def _failures(nodes: list[dict]) -> dict:
    """Failed candidates by stage and cause, and by whose failure it was (origin.py: the
    code's, the LLM's, the engine's); apart from them, the runs the engine or its
    infrastructure lost (each retried: they say nothing about the code)."""
    counts, origins, infra = (collections.Counter() for _ in range(3))
    for n in nodes:
        if n["outcome"] == "failed":
            stage = "proposal" if n["kind"] == "proposal" else n["status"]
            counts[(stage, n["cause"] or "unknown")] += 1
            origins[n["failure_origin"] or "code"] += 1
        for f in n["infrastructure"]:
            infra[(f["origin"], f["cause"] or "unknown")] += 1
    return {"by_cause": [{"stage": s, "stage_words": STAGE_WORDS.get(s, s), "cause": c,
                          "count": k} for (s, c), k in counts.most_common()],
            "total": sum(counts.values()),
            "by_origin": {o: origins[o] for o in ORIGINS if origins[o]},
            "infrastructure": [{"origin": o, "cause": c, "count": k}
                               for (o, c), k in infra.most_common()],
            "infrastructure_total": sum(infra.values())}


def _totals(nodes: list[dict]) -> dict:
    cands = _candidates(nodes)
    decided = [n for n in cands if n["outcome"] != "pending"]
    failed = [n for n in cands if n["outcome"] == "failed"]
    return {
        "candidates": len(cands), "decided": len(decided),
        "commits": sum(n["kind"] == "commit" for n in nodes),
        "proposals_failed": sum(n["kind"] == "proposal" for n in failed),
        "evaluations_failed": sum(n["kind"] == "commit" for n in failed),
        "failed": len(failed), "kept": sum(n["outcome"] == "kept" for n in cands),
        "rejected": sum(n["outcome"] == "rejected" for n in cands),
        "pending": sum(n["outcome"] == "pending" for n in cands),
        "cached": sum(n["cached"] for n in cands),
        "retries": sum(n["retries"] for n in cands),
        "tokens": sum(n["tokens"] for n in cands),
        "cost_usd": _sum_or_none(n["cost_usd"] for n in cands),
        "failure_rate": len(failed) / len(decided) if decided else None,
    }


def _sum_or_none(values) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals), 8) if vals else None


def _models(nodes: list[dict]) -> list[dict]:
    """Per model (or, without one, per mutator): proposals, outcomes, attempts, tokens, cost."""
    rows: dict[str, dict] = {}
    for n in _candidates(nodes):
        if n["origin"] in ("human", "revert"):
            continue
        key = n["model"] or n["mutator"] or n["operator"] or "?"
        row = rows.setdefault(key, {"model": key, "proposals": 0, "committed": 0,
                                    "failed_proposals": 0, "failed_evaluations": 0,
                                    "kept": 0, "attempts": 0, "retries": 0, "tokens": 0,
                                    "cost_usd": None})
        row["proposals"] += 1
        row["committed"] += n["kind"] == "commit"
        row["failed_proposals"] += n["kind"] == "proposal"
        row["failed_evaluations"] += n["kind"] == "commit" and n["outcome"] == "failed"
        row["kept"] += n["outcome"] == "kept"
        row["attempts"] += n["attempts"]
        row["retries"] += n["retries"]
        row["tokens"] += n["tokens"]
        if n["cost_usd"] is not None:
            row["cost_usd"] = round((row["cost_usd"] or 0.0) + n["cost_usd"], 8)
    return sorted(rows.values(), key=lambda r: (-r["proposals"], r["model"]))


def _generations(nodes: list[dict], records: list[dict]) -> list[dict]:
    """Per generation (``records``: the "done" records): the journal's fitness (what selection
    saw), its children committed and its diversity, and, from the nodes, failures, retries,
    tokens and MFU (new measurements only; cached marked)."""
    done = {r["generation"]: r for r in records}
    by_id = {n["id"]: n for n in nodes}
    out = []
    for g in sorted(done):
        rec = done[g]
        made = [n for n in nodes if n["generation"] == g and n["origin"] in ("mutation",
                                                                          "crossover")]
        evaluated = [n for n in nodes if g in n["evaluated_in"]]
        fresh_mfu = [n["mfu"] for n in evaluated if n["measurements"] and
                     isinstance(n["mfu"], (int, float))]
        best = rec.get("best") or {}
        best_node = by_id.get(best.get("commit"))
        # the best agent's MFU is new only when measured (not copied) in this generation
        measured_in = best_node["mfu_measured_in"] if best_node else None
        best_new = bool(best_node) and not best_node["cached"] and measured_in == g
        made_ids = {n["id"] for n in made}
        failed = [n for n in made + [n for n in evaluated if n["id"] not in made_ids]
                  if n["outcome"] == "failed"]
        out.append({
            "generation": g, "best": best.get("val_loss"), "best_agent": best.get("agent"),
            "best_commit": best.get("commit"), "median": rec.get("median"),
            "best_mfu": best_node["mfu"] if best_node else best.get("mfu"),
            "best_mfu_cached": bool(best_node and best_node["cached"]),
            "best_mfu_source": best_node["cached_from"] if best_node else None,
            "best_mfu_new": best_new, "best_mfu_measured_in": measured_in,
            "max_new_mfu": max(fresh_mfu) if fresh_mfu else None,
            "median_new_mfu": statistics.median(fresh_mfu) if fresh_mfu else None,
            "new_measurements": len(fresh_mfu),
            # children committed, as the generation's record counts them (a proposal that made
            # no commit is a failed one, not a proposed child)
            "proposed": rec["proposed"] if isinstance(rec.get("proposed"), int)
            else sum(n["kind"] == "commit" for n in made),
            "failed": len(failed),
            "failed_proposals": sum(n["kind"] == "proposal" for n in failed),
            "failed_evaluations": sum(n["kind"] == "commit" for n in failed),
            "kept": sum(n["outcome"] == "kept" for n in made),
            "advanced": rec.get("advanced"), "replaced": rec.get("replaced"),
            "human": sum(n["origin"] == "human" for n in evaluated),
            "cached": sum(n["cached"] for n in evaluated),
            "retries": sum(n["retries"] for n in made),
            "tokens": sum(n["tokens"] for n in made),
            "cost_usd": _sum_or_none(n["cost_usd"] for n in made),
            "sigma": rec.get("sigma"),
            # how different the live agents were when it closed (selection.diversity)
            "agents": (rec.get("diversity") or {}).get("agents"),
            "distinct": (rec.get("diversity") or {}).get("distinct"),
            "pairwise_lines": (rec.get("diversity") or {}).get("pairwise_lines"),
            "lost": len(rec.get("lost") or []),
        })
    return out


def _lost(records: list[dict]) -> list[dict]:
    """Promoted changes that left the population (their agent was pruned), oldest first, as
    the "done" records hold them."""
    return [{k: e.get(k) for k in ("generation", "commit", "agent", "speaker", "summary",
                                   "reason")}
            for r in records for e in r.get("lost") or [] if isinstance(e, dict)]
