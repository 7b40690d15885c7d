"""Crossover in the loop: a merge commit of two agents' tips with both parents, kept under a
candidate ref; a conflict without an LLM to resolve it is recorded, never raised."""
from __future__ import annotations

import random

from darwin_git.evolve.loop import CANDIDATE_PREFIX, Evolution
from darwin_git.evolve.settings import EvolveSettings
from darwin_git.population import init_population
from darwin_git.progress import Sink


class Events(Sink):
    def __init__(self):
        self.events = []

    def emit(self, event):
        self.events.append(event)


def _population(tmp_path, seed_dir):
    (seed_dir / "train.py").write_text("lr = 1e-3\nsteps = 100\nwidth = 64\nprint('train')\n")
    pop = init_population(tmp_path / "run" / "population", seed=seed_dir, agents=2)
    return pop


def _evolution(pop):
    return Evolution(pop, EvolveSettings(budget_s=5, crossovers=1), executor=None,
                     mutator=None, sink=Events())


def test_crossover_merges_two_lineages_into_a_two_parent_candidate(tmp_path, seed_dir, git):
    pop = _population(tmp_path, seed_dir)
    a = pop.commit_changes("agent-00", {"train.py": "lr = 2e-3\nsteps = 100\nwidth = 64\n"
                                                    "print('train')\n"}, "Raise lr",
                           ref="refs/heads/agents/agent-00")
    b = pop.commit_changes("agent-01", {"train.py": "lr = 1e-3\nsteps = 100\nwidth = 96\n"
                                                    "print('train')\n"}, "Widen",
                           ref="refs/heads/agents/agent-01")
    evo = _evolution(pop)
    tips = {"agent-00": str(a), "agent-01": str(b)}
    stats = {"proposed": 0, "failed": 0, "tokens": 0, "cost_usd": 0.0}
    child = evo._crossover(3, 0, tips, random.Random(0), stats)
    assert child is not None and stats["proposed"] == 1
    commit = pop.commit(child)
    assert {str(p) for p in commit.parent_ids} == {str(a), str(b)}
    text = pop.repo[commit.tree["train.py"].id].data.decode()
    assert "lr = 2e-3" in text and "width = 96" in text  # both changes survive
    refs = git("for-each-ref", "--format=%(refname) %(objectname)", CANDIDATE_PREFIX,
               cwd=pop.path)
    assert f"refs/darwin/candidates/g0003/" in refs and child in refs
    trailers = git("log", "-1", "--format=%(trailers)", child, cwd=pop.path)
    assert "Darwin-Operator: crossover" in trailers
    git("fsck", "--strict", cwd=pop.path)


def test_conflicting_crossover_without_a_resolver_is_recorded(tmp_path, seed_dir):
    pop = _population(tmp_path, seed_dir)
    a = pop.commit_changes("agent-00", {"train.py": "lr = 2e-3\nsteps = 100\nwidth = 64\n"
                                                    "print('train')\n"}, "Raise lr",
                           ref="refs/heads/agents/agent-00")
    b = pop.commit_changes("agent-01", {"train.py": "lr = 5e-4\nsteps = 100\nwidth = 64\n"
                                                    "print('train')\n"}, "Lower lr",
                           ref="refs/heads/agents/agent-01")
    evo = _evolution(pop)
    stats = {"proposed": 0, "failed": 0, "tokens": 0, "cost_usd": 0.0}
    tips = {"agent-00": str(a), "agent-01": str(b)}
    assert evo._crossover(2, 0, tips, random.Random(0), stats) is None
    assert stats["failed"] == 1
    attempts = [r for t in tips.values() for r in pop.records(t, "attempt")]
    assert len(attempts) == 1 and attempts[0]["cause"] == "merge_conflict"
    assert "train.py" in attempts[0]["detail"]
    assert any(e["event"] == "proposal_failed" for e in evo.sink.events)
