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

from .population.journal import Journal
from .settings import EvolveSettings
from .population.graph import fitness_of, ref_labels, run_conditions
from .population.lineage import generation as inferred_generation
from .population.message import (AGENT_TRAILER, ATTEMPTS_TRAILER, COST_TRAILER, GENERATION_TRAILER,
                                 MODEL_TRAILER, MUTATOR_TRAILER, OPERATOR_TRAILER, SPEAKER_TRAILER,
                                 TOKENS_TRAILER, is_human, parse_message)
from .population.refs import ref_target
from .population.repo import AGENT_PREFIX, PRUNED_PREFIX, Population
from .selection_rules import describe_rule

FAILED_STATUSES = ("train_failed", "eval_failed", "timeout", "rejected")
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


# ----- the run's journal, with the time each record was written ----------------------------
def journal_records(pop: Population) -> list[tuple[int, dict]]:
    """(commit time, record), oldest first."""
    return Journal(pop.repo).timed_records()


def _evaluated_in(result: dict, node_generation: int | None,
                  done_times: list[tuple[int, int]]) -> int | None:
    """The generation a result was measured in: a cached copy belongs to the commit's own
    generation; else the result's `generation` field; else (older runs) the first journal
    record (noise floor = 0, then each generation's 'done') written after it."""
    if result.get("cached_from"):
        return node_generation
    if isinstance(result.get("generation"), int):
        return result["generation"]
    created = result.get("created")
    if isinstance(created, (int, float)):
        for g, t in done_times:
            if created <= t + 1:  # commit times have whole seconds
                return g
    return node_generation


# ----- the tree ----------------------------------------------------------------------------
def _kept_members(pop: Population) -> set[str]:
    """Commits on the first-parent line of any live or pruned agent: what selection kept."""
    seen: set[str] = set()
    tips = [ref_target(pop.repo, n) for n in pop.repo.references
            if n.startswith(AGENT_PREFIX) or n.startswith(PRUNED_PREFIX)]
    for tip in tips:
        c = pop.repo[tip]
        while str(c.id) not in seen:
            seen.add(str(c.id))
            if not c.parent_ids:
                break
            c = pop.repo[c.parent_ids[0]]
    return seen


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


def _commit_node(pop, c, trailers, summary, reasoning, results, conditions, labels, kept,
                 done_times) -> dict:
    op = trailers.get(OPERATOR_TRAILER)
    if not c.parent_ids or op == "seed":
        origin = "seed"
    elif is_human(trailers):
        origin = "human"
    elif op in ("crossover", "request", "revert"):
        origin = op  # a merge of two agents; a question to a human; undoing a failed answer
    else:
        origin = "mutation"
    fit = fitness_of(results, conditions)
    ok = [r for r in results if r.get("status") == "ok"]
    fresh = [r for r in ok if not r.get("cached_from")]
    shown = (fresh or ok or results or [None])[-1] or {}
    failed = bool(results) and not ok
    if origin == "seed":
        outcome = "seed"
    elif failed:
        outcome = "failed"
    elif not results:
        outcome = "pending"
    else:
        outcome = "kept" if str(c.id) in kept else "rejected"
    generation = _int(trailers.get(GENERATION_TRAILER))
    if generation is None:
        generation = inferred_generation(pop, c.id)
    attempts = _int(trailers.get(ATTEMPTS_TRAILER)) or 1
    evaluated_in = sorted({g for g in (_evaluated_in(r, generation, done_times)
                                       for r in results) if g is not None})
    return {
        "id": str(c.id), "kind": "commit", "parents": [str(p) for p in c.parent_ids],
        "refs": labels.get(c.id, []), "summary": summary, "reasoning": reasoning,
        "agent": trailers.get(AGENT_TRAILER), "speaker": trailers.get(SPEAKER_TRAILER),
        "operator": op or "human", "mutator": trailers.get(MUTATOR_TRAILER),
        "model": trailers.get(MODEL_TRAILER),
        "generation": generation,
        "evaluated_in": evaluated_in, "origin": origin, "outcome": outcome,
        "status": shown.get("status") if results else None,
        "cause": shown.get("cause") if failed else None,
        "detail": _last_line(shown.get("log_tail")) if failed else None,
        "fitness": fit.value, "seeds": fit.seeds, "per_seed": fit.per_seed,
        "spread": fit.spread, "val_loss": shown.get("val_loss"),
        # perplexity = exp(val_loss): of the fitness, like every number compared across nodes
        "perplexity": math.exp(fit.value) if fit.value is not None else None,
        "mfu": shown.get("mfu"), "mfu_measured_in": _evaluated_in(shown, generation, done_times)
        if shown else None,
        "tokens_per_s": shown.get("tokens_per_s"),
        "cached": bool(ok) and not fresh, "cached_from": shown.get("cached_from"),
        "measurements": len(fresh), "attempts": attempts, "retries": attempts - 1,
        "tokens": _int(trailers.get(TOKENS_TRAILER)) or 0,
        "cost_usd": _float(trailers.get(COST_TRAILER)),
        "time": c.commit_time,
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
    }


def category(node: dict) -> str:
    """The node's colour: failed, human, crossover, else its outcome."""
    if node["outcome"] == "failed":
        return "failed"
    if node["origin"] in ("human", "crossover"):
        return node["origin"]
    return node["outcome"]


def run_tree(pop: Population) -> dict:
    """Nodes (parents first), the noise floor, the winner and its ancestry, and the counts."""
    from .runconfig import read_config

    journal = journal_records(pop)
    records = [r for _, r in journal]
    noise = next((r for r in reversed(records) if r.get("phase") == "noise"), None)
    done_times = sorted({(0 if r.get("phase") == "noise" else r["generation"]): t
                         for t, r in journal if r.get("phase") in ("noise", "done")}.items())
    config = read_config(pop.repo)
    accept_k = float(config["evolve"]["accept_k"])
    done = [r for r in records if r.get("phase") == "done"]
    # The rule the run judged by, as its last generation recorded it (else as configured).
    rule = next((r["rule"] for r in reversed(done) if isinstance(r.get("rule"), dict)),
                None) or EvolveSettings.from_config(config).acceptance().to_dict()
    verdict_of = {v.get("commit"): v for r in done for v in r.get("verdicts") or []
                  if isinstance(v, dict)}  # a child's latest, if it was decided twice
    verdicts = list(verdict_of.values())
    conditions = run_conditions(pop)
    labels = ref_labels(pop)
    kept = _kept_members(pop)
    notes_tree = pop.notes._tree()[1]

    walker = pop.repo.walk(None, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE)
    for tip in dict.fromkeys(labels):
        walker.push(tip)
    nodes: list[dict] = []
    for c in walker:
        summary, reasoning, trailers = parse_message(c.message)
        records_ = pop.notes.records(c.id, None, notes_tree)
        results = [r for r in records_ if r.get("kind") == "result" and r.get("v") == 1]
        nodes.append(_commit_node(pop, c, trailers, summary, reasoning, results, conditions,
                                  labels, kept, done_times))
        for rec in records_:
            if rec.get("kind") == "attempt":
                nodes.append(_proposal_node(str(c.id), rec))

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
    gens = _generations(nodes, records)
    return {
        "repo": str(pop.path), "noise": noise, "sigma": sigma, "accept_k": accept_k,
        "prune_margin": prune_margin, "rule": rule, "verdicts": verdicts,
        "budget_s": conditions.budget_s, "clock": conditions.clock,
        "nodes": nodes, "winner": winner,
        "generations": gens, "failures": _failures(nodes), "models": _models(nodes),
        "totals": _totals(nodes),
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
    counts = collections.Counter()
    for n in nodes:
        if n["outcome"] == "failed":
            stage = "proposal" if n["kind"] == "proposal" else n["status"]
            counts[(stage, n["cause"] or "unknown")] += 1
    return {"by_cause": [{"stage": s, "stage_words": STAGE_WORDS.get(s, s), "cause": c,
                          "count": k} for (s, c), k in counts.most_common()],
            "total": sum(counts.values())}


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
    """Per generation: the journal's fitness (what selection saw), and, from the nodes,
    proposals, failures, retries, tokens and MFU (new measurements only; cached marked)."""
    done = {r["generation"]: r for r in records if r.get("phase") == "done"}
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
            "proposed": len(made),
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
        })
    return out
