"""JSON memory: a mirror of commits + notes, rebuilt byte-identically from git alone."""
from __future__ import annotations

import json

from darwin_git import memory
from darwin_git.mutate.base import MemoryEntry, Mutation, MutationFailure
from darwin_git.result import make_result as harness_result


def make_result(status, **fields):
    """A result as the harness writes it: measured on the CPU clock (the run's default)."""
    return harness_result(status, clock="cpu", **fields)


def evolve_a_little(pop):
    """agent-00 gains three evaluated changes (one better, one worse, one failed) + a failure."""
    tip = pop.tip("agent-00")
    pop.add_result(tip, make_result("ok", val_loss=2.0))
    made = []
    for gen, (text, res) in enumerate([
            ("lr = 2e-3\n", make_result("ok", val_loss=1.8)),
            ("lr = 9e-1\n", make_result("ok", val_loss=2.4)),
            ("lr = nan\n", make_result("train_failed", cause="nan_loss"))], start=1):
        m = Mutation(summary=f"Change {gen}", reasoning=f"Reason {gen}.",
                     changes={"train.py": text}, operator="llm", mutator="llm:m", model="m")
        oid = pop.commit_mutation(pop.tip("agent-00"), m, "agent-00", gen,
                                  ref="refs/heads/agents/agent-00")
        pop.add_result(oid, res)
        made.append(oid)
    pop.add_attempt(made[-1], MutationFailure(cause="bad_reply", detail="no diff in reply",
                                              operator="llm", mutator="llm:m"), "agent-00", 4)
    return made


def test_memory_mirrors_commits_and_notes(population):
    made = evolve_a_little(population)
    memory.update(population, ["agent-00"])
    doc = json.loads((population.memory_dir / "agent-00.json").read_text())
    assert [e["summary"] for e in doc["entries"]] == ["Change 1", "Change 2", "Change 3"]
    first = doc["entries"][0]
    assert first["commit"] == str(made[0]) and first["reasoning"] == "Reason 1."
    assert first["fitness_before"] == 2.0 and first["fitness_after"] == 1.8
    assert abs(first["delta"] + 0.2) < 1e-9
    assert first["files"] == [{"path": "train.py", "status": "M", "added": 1, "deleted": 3}]
    assert first["operator"] == "llm" and first["model"] == "m" and first["human"] is False
    assert doc["entries"][2]["status"] == "train_failed" and doc["entries"][2]["delta"] is None
    assert doc["failures"] == [{"commit": str(made[-1]), "cause": "bad_reply",
                                "detail": "no diff in reply", "operator": "llm",
                                "mutator": "llm:m", "model": None, "generation": 4,
                                "attempts": 1, "tokens": {}}]
    assert doc["best"] == {"commit": str(made[0]), "fitness": 1.8}
    other = json.loads((population.memory_dir / "agent-01.json").read_text())
    assert other["entries"] == []  # agent-00's changes are not agent-01's


def test_rebuild_is_byte_identical(population):
    evolve_a_little(population)
    population.prune("agent-02")
    memory.update(population)
    before = {p.name: p.read_bytes() for p in population.memory_dir.glob("*.json")}
    for p in population.memory_dir.glob("*.json"):
        p.unlink()
    memory.rebuild(population)
    after = {p.name: p.read_bytes() for p in population.memory_dir.glob("*.json")}
    assert after == before and "agent-02.json" in after  # pruned agents keep their memory
    assert json.loads(after["agent-02.json"])["live"] is False


def test_corrupt_or_missing_file_is_rebuilt(population):
    evolve_a_little(population)
    memory.rebuild(population)
    path = population.memory_dir / "agent-00.json"
    good = path.read_bytes()
    path.write_text('{"entries": [ truncated')
    assert len(memory.load(population, "agent-00")["entries"]) == 3
    assert path.read_bytes() == good
    path.unlink()
    assert memory.entries(population, "agent-00")
    assert path.read_bytes() == good


def test_agent_names_never_escape_the_memory_folder(population):
    import pytest

    from darwin_git.population import PopulationError

    for bad in ("../evil", "a/b", ""):
        with pytest.raises(PopulationError, match="invalid agent name"):
            memory.load(population, bad)


def test_entries_for_mutators_best_and_worst_first(population):
    evolve_a_little(population)
    got = memory.entries(population, "agent-00", limit=2)
    assert all(isinstance(e, MemoryEntry) for e in got)
    assert [e.summary for e in got] == ["Change 1", "Change 3"]  # best, then worst (failed)
    got = memory.entries(population, "agent-00", limit=3)
    assert [e.summary for e in got] == ["Change 1", "Change 3", "Change 2"]
    assert got[0].delta < 0 and got[1].status == "train_failed"


def test_top_diffs_of_best_agents(population):
    evolve_a_little(population)  # agent-00's tip failed: it has no fitness, no diffs to show
    pop = population
    pop.add_result(pop.tip("agent-01"), make_result("ok", val_loss=2.0))
    m = Mutation(summary="Warmup", reasoning="Smoother start.", changes={"train.py": "warm=1\n"},
                 operator="builtin:warmup", mutator="builtin")
    oid = pop.commit_mutation(pop.tip("agent-01"), m, "agent-01", 1,
                              ref="refs/heads/agents/agent-01")
    pop.add_result(oid, make_result("ok", val_loss=1.9))
    diffs = memory.top_diffs(pop, n_agents=3)
    assert len(diffs) == 1
    assert diffs[0].startswith("# agent-01: Warmup (delta -0.1000)")
    assert "+warm=1" in diffs[0]


def test_rejected_candidates_count_for_their_agent(population):
    from darwin_git.population.refs import update_refs

    pop = population
    pop.add_result(pop.tip("agent-01"), make_result("ok", val_loss=2.0))
    m = Mutation(summary="Bigger model", reasoning="More capacity.",
                 changes={"model.py": "# big\n"}, operator="llm", mutator="llm:m")
    oid = pop.commit_mutation(pop.tip("agent-01"), m, "agent-01", 1)  # no branch moves
    update_refs(pop.repo, [("refs/darwin/candidates/g1/0", None, oid)], "candidate")
    pop.add_result(oid, make_result("ok", val_loss=2.3))
    memory.rebuild(pop)
    doc = json.loads((pop.memory_dir / "agent-01.json").read_text())
    assert [(e["summary"], round(e["delta"], 6)) for e in doc["entries"]] == \
        [("Bigger model", 0.3)]
    assert sorted(p.name for p in pop.memory_dir.glob("*.json")) == \
        ["agent-00.json", "agent-01.json", "agent-02.json"]


def test_memory_files_follow_the_schema(population):
    """memory/schema.json documents the files: every file a run writes validates against it."""
    import jsonschema

    from conftest import ROOT

    schema = json.loads((ROOT / "memory" / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    evolve_a_little(population)
    population.prune("agent-02")
    validator = jsonschema.Draft202012Validator(schema)
    docs = [json.loads(p.read_text()) for p in memory.rebuild(population)]
    assert len(docs) == 3 and any(d["entries"] and d["failures"] for d in docs)
    for doc in docs:
        validator.validate(doc)
    broken = {**docs[0], "entries": [{"commit": 1}]}
    assert not validator.is_valid(broken)  # the schema does check what it documents
