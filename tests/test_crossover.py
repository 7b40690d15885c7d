"""Crossover in the loop: a merge commit of two agents' tips with both parents, kept under a
candidate ref; a conflict without an LLM to resolve it is recorded, never raised."""
from __future__ import annotations

import random

from conftest import Events

from darwin_git.create import init_population
from darwin_git.evolve.generation import Generation
from darwin_git.evolve.proposals import Proposals
from darwin_git.fitness import Conditions
from darwin_git.population import CANDIDATE_PREFIX
from darwin_git.settings import EvolveSettings


def _population(tmp_path, seed_dir):
    (seed_dir / "train.py").write_text("lr = 1e-3\nsteps = 100\nwidth = 64\nprint('train')\n")
    pop = init_population(tmp_path / "run" / "population", seed=seed_dir, agents=2)
    return pop


def _proposals(pop):
    settings = EvolveSettings(budget_s=5, crossovers=1)
    return Proposals(pop, settings, mutator=None, sink=Events(),
                     conditions=Conditions.of(settings))


def _generation(g, pop):
    gen = Generation(g)
    gen.read_tips(pop.agents())
    return gen


def test_crossover_merges_two_lineages_into_a_two_parent_candidate(tmp_path, seed_dir, git):
    pop = _population(tmp_path, seed_dir)
    a = pop.commit_changes("agent-00", {"train.py": "lr = 2e-3\nsteps = 100\nwidth = 64\n"
                                                    "print('train')\n"}, "Raise lr",
                           ref="refs/heads/agents/agent-00")
    b = pop.commit_changes("agent-01", {"train.py": "lr = 1e-3\nsteps = 100\nwidth = 96\n"
                                                    "print('train')\n"}, "Widen",
                           ref="refs/heads/agents/agent-01")
    proposals = _proposals(pop)
    gen = _generation(3, pop)
    assert gen.tips == {"agent-00": str(a), "agent-01": str(b)}
    made = proposals.crossover(gen, 0, random.Random(0))
    assert made is not None and gen.stats.proposed == 1
    child, owner = made
    commit = pop.commit(child)
    assert str(commit.parent_ids[0]) == gen.tips[owner]  # it may advance the first parent
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
    proposals = _proposals(pop)
    gen = _generation(2, pop)
    assert proposals.crossover(gen, 0, random.Random(0)) is None
    assert gen.stats.failed == 1
    attempts = [r for t in gen.tips.values() for r in pop.records(t, "attempt")]
    assert len(attempts) == 1 and attempts[0]["cause"] == "merge_conflict"
    assert "train.py" in attempts[0]["detail"]
    assert any(e["event"] == "proposal_failed" for e in proposals.sink.events)
