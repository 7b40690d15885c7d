"""A small finished run built with the public APIs (no training): what `log` and the report
are tested against. Two generations of three agents, with everything a real run shows:

    seed (3 noise runs, seeds 0-2)
    g1: agent-00 <- c1 ok 3.20, promoted after 3 seeds and kept (an LLM change that needed
            2 attempts)
        agent-01 <- c2 ok 3.425, rejected after 1 seed (worse than the seed on seed 0)
        agent-02 <- c3 train_failed / out_of_memory, rejected after 1 seed
    between: a human commit on agents/agent-01 (stock git), evaluated in g2: ok 3.30
    g2: agent-00 <- c4 ok 3.10, promoted and kept
        agent-00 <- crossover of agent-00 and agent-01 (a merge), ok 3.15, rejected after 3
            seeds (p = 0.21)
        agent-02 <- c5, the same tree as c1: its result is a cached copy, promoted and kept
        agent-01: a proposal that made no commit (diff_failed after 3 attempts)
        selection prunes agent-01 and spawns agent-03 from agent-00
    after: agent-03 asks a human (a request commit on requests/agent-03/1); the human answers
        on that branch and merges it into agents/agent-03 with --no-ff (not evaluated yet)
"""
from __future__ import annotations

import statistics

from darwin_git.mutate.base import Mutation, MutationFailure
from darwin_git.population.journal import Journal
from darwin_git.population.refs import update_refs
from darwin_git.result import make_result

BUDGET = 5.0
SIGMA = 0.01
NOISE = [3.40, 3.42, 3.47]  # the latest run (3.47) is not the fitness (their mean)
CAND = "refs/darwin/candidates/"

# text a human (or a model) may write: the report must show it, never run it
MARKUP = "Bigger is <b>better</b></script><script>document.title='owned'</script>"

# commits that are nodes of the run's tree, and the one proposal that made none
COMMITS = 11
ATTEMPTS = 1

# The rule this known run was decided by (the paired t-test of darwin-git 0.1's loop over
# three seeds): what the report must state, in that rule's own terms.
RULE = {"test": "one-sided paired t-test", "max_seeds": 3, "confidence": 0.95,
        "min_effect": 0.02}


def result(val_loss=None, status="ok", seed=0, mfu=0.02, tokens_per_s=1000.0, generation=None,
           **kw):
    """A result as the harness writes it; `generation` is when it was measured."""
    import math
    ppl = math.exp(val_loss) if val_loss is not None else None
    return make_result(status, val_loss=val_loss, perplexity=ppl, tokens_per_s=tokens_per_s,
                       mfu=mfu if status == "ok" else None, budget_s=BUDGET, device="cpu",
                       clock="cpu",
                       seed=seed, params=1000, generation=generation, **kw)


def mutation(summary, text, tokens=100, attempts=1, cost=0.001, model="m-small"):
    return Mutation(summary=summary, reasoning=f"Why: {summary.lower()} should help.",
                    changes={"train.py": text}, operator="llm", mutator=f"llm:{model}",
                    model=model, tokens={"prompt": tokens - 20, "completion": 20,
                                         "total": tokens},
                    cost_usd=cost, attempts=attempts)


def candidate(pop, g, slot, parent, mut, agent, speaker):
    oid = pop.commit_mutation(parent, mut, agent, g, mutator_agent=speaker)
    update_refs(pop.repo, [(f"{CAND}g{g:04d}/{slot}", None, oid)], "test: candidate")
    return oid


def verdict(commit, agent, parent, action, reason, n, p=None, mean_diff=None) -> dict:
    """A child's verdict as the generation's "done" record holds it (select.Verdict.to_dict)."""
    return {"commit": str(commit), "agent": agent, "parent": str(parent), "label": "",
            "action": action, "reason": reason, "n": n, "mean_diff": mean_diff, "p": p,
            "advanced": action == "promote"}


def done(journal, g, pop, best_agent, best, mfu, proposed, failed, advanced, replaced, tokens,
         cost, verdicts=()):
    leaderboard = [{"agent": a, "commit": str(t), "val_loss": None, "mfu": None}
                   for a, t in pop.agents().items()]
    journal.append({"phase": "done", "generation": g,
                    "best": {"agent": best_agent, "commit": str(pop.tip(best_agent)),
                             "val_loss": best, "perplexity": 2.718 ** best, "mfu": mfu,
                             "tokens_per_s": 1000.0},
                    "median": best + 0.1, "leaderboard": leaderboard, "advanced": advanced,
                    "replaced": replaced, "wall_s": 60.0, "sigma": SIGMA, "proposed": proposed,
                    "failed": failed, "tokens": tokens, "cost_usd": cost,
                    "verdicts": list(verdicts), "rule": RULE},
                   f"Generation {g} done")


def build(pop, git) -> dict:
    """Turn the fresh 3-agent ``population`` fixture into the run above; returns its commits."""
    repo, journal = pop.path, Journal(pop.repo)
    seed = pop.tip("agent-00")
    for i, loss in enumerate(NOISE):
        pop.add_result(seed, result(loss, seed=i, mfu=0.020, generation=0))
    journal.append({"phase": "noise", "generation": 0, "sigma": SIGMA,
                    "mean": statistics.fmean(NOISE), "losses": NOISE, "budget_s": BUDGET,
                    "clock": "cpu", "device": "cpu", "repeats": 3}, "Noise floor")

    # generation 1
    c1 = candidate(pop, 1, "agent-00.agent-02", seed,
                   mutation("Raise the learning rate", "lr = 2e-3\n", attempts=2),
                   "agent-00", "agent-02")
    c2 = candidate(pop, 1, "agent-01.agent-00", seed,
                   mutation("Add warmup", "warmup = 10\n"), "agent-01", "agent-00")
    c3 = candidate(pop, 1, "agent-02.agent-01", seed,
                   mutation("Double the width", "n_embd = 512\n", model="m-large", cost=0.01),
                   "agent-02", "agent-01")
    pop.add_result(c1, result(3.20, mfu=0.030, generation=1))
    pop.add_result(c2, result(3.425, mfu=0.021, generation=1))
    pop.add_result(c3, result(status="train_failed", cause="out_of_memory", generation=1,
                              log_tail="killed: out of memory"))
    pop.fast_forward("agent-00", c1)
    done(journal, 1, pop, "agent-00", 3.20, 0.030, proposed=3, failed=0, advanced=1,
         replaced=0, tokens=300, cost=0.012, verdicts=[
             verdict(c1, "agent-00", seed, "promote", "promoted: -0.2100 ± 0.0100 nats over 3 "
                     "seeds, p = 0.004", 3, p=0.004, mean_diff=-0.21),
             verdict(c2, "agent-01", seed, "reject", "rejected after 1 seed: +0.0250 nats worse "
                     "on seed 0", 1, mean_diff=0.025),
             verdict(c3, "agent-02", seed, "reject", "rejected after 1 seed: no ok result on "
                     "seed 0", 1)])

    # a human commits on agents/agent-01 with stock git
    git("switch", "-q", "agents/agent-01", cwd=repo)
    (repo / "model.py").write_text("def build_model(config):\n    return 'bigger'\n")
    git("commit", "-q", "-am", "Make the model bigger", "-m", MARKUP, cwd=repo)
    human = pop.tip("agent-01")
    git("switch", "-q", "seed", cwd=repo)

    # generation 2
    pop.add_result(human, result(3.30, mfu=0.022, generation=2))
    c4 = candidate(pop, 2, "agent-00.agent-02", c1,
                   mutation("Use RMSNorm", "lr = 2e-3\nnorm = 'rms'\n"), "agent-00", "agent-01")
    cross = pop.merge(c1, human, "Crossover of agent-00 and agent-01", "Merge both lines.",
                      {"Darwin-Agent": "agent-00", "Darwin-Generation": 2,
                       "Darwin-Operator": "crossover", "Darwin-Mutator": "merge",
                       "Darwin-Crossover": "agent-00 x agent-01"})
    assert cross.commit is not None, cross.conflicts
    update_refs(pop.repo, [(f"{CAND}g0002/x0.agent-00.agent-01", None, cross.commit)], "test")
    c5 = candidate(pop, 2, "agent-02.agent-00", seed,
                   mutation("Raise the learning rate", "lr = 2e-3\n"), "agent-02", "agent-00")
    pop.add_result(c4, result(3.10, mfu=0.031, generation=2))
    pop.add_result(cross.commit, result(3.15, mfu=0.029, generation=2))
    source = pop.records(c1, "result")[-1]
    pop.add_result(c5, {**{k: v for k, v in source.items() if k != "kind"},
                        "commit": str(c5), "cached_from": str(c1)})
    pop.notes.append(human, {
        "v": 1, "kind": "attempt", "agent": "agent-01", "mutator_agent": "agent-02",
        "generation": 2, "slot": "agent-01.agent-02", "cause": "diff_failed",
        "detail": "hunk 1 does not apply", "operator": "llm", "mutator": "llm:m-small",
        "model": "m-small", "tokens": {"total": 250}, "attempts": 3})
    pop.fast_forward("agent-00", c4)
    pop.fast_forward("agent-02", c5)
    pop.prune("agent-01")
    pop.spawn("agent-03", c4)
    done(journal, 2, pop, "agent-00", 3.10, 0.031, proposed=3, failed=1, advanced=2,
         replaced=1, tokens=550, cost=0.003, verdicts=[
             verdict(c4, "agent-00", c1, "promote", "promoted: -0.1000 ± 0.0050 nats over 3 "
                     "seeds, p = 0.001", 3, p=0.001, mean_diff=-0.1),
             verdict(cross.commit, "agent-00", c1, "reject", "rejected after 3 seeds: -0.0100 "
                     "± 0.0080 nats over 3 seeds, p = 0.210 (needs p < 0.05 and a gain of at "
                     "least 0.02 nats)", 3, p=0.21, mean_diff=-0.01),
             verdict(c5, "agent-02", seed, "promote", "promoted: -0.2100 ± 0.0100 nats over 3 "
                     "seeds, p = 0.004", 3, p=0.004, mean_diff=-0.21)])

    # agent-03 asks for help; a human answers on the request branch and merges it --no-ff
    ask = pop.create_commit([c4], pop.tree_with(c4, {"requests/agent-03/1.md": "More data?\n"}),
                            "Request: a second corpus", "Would more text help?",
                            {"Darwin-Agent": "agent-03", "Darwin-Generation": 2,
                             "Darwin-Operator": "request", "Darwin-Request": "agent-03/1"})
    update_refs(pop.repo, [("refs/heads/requests/agent-03/1", None, ask)], "test: request")
    git("switch", "-q", "requests/agent-03/1", cwd=repo)
    (repo / "notes.txt").write_text("a corpus note\n")
    git("add", "notes.txt", cwd=repo)
    git("commit", "-q", "-m", "Answer: add notes", cwd=repo)
    git("switch", "-q", "agents/agent-03", cwd=repo)
    git("merge", "-q", "--no-ff", "-m", "Merge request 1", "requests/agent-03/1", cwd=repo)
    git("switch", "-q", "seed", cwd=repo)
    return {"seed": str(seed), "ask": str(ask), "c1": str(c1), "c2": str(c2), "c3": str(c3),
            "human": str(human),
            "c4": str(c4), "cross": str(cross.commit), "c5": str(c5),
            "answer": str(pop.repo.references["refs/heads/requests/agent-03/1"].target),
            "merge": str(pop.tip("agent-03"))}
