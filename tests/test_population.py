"""The population API against real repos, checked with stock git."""
from __future__ import annotations

import json
import multiprocessing

import pytest

from darwin_git import runconfig
from darwin_git.create import init_population
from darwin_git.mutate.base import Mutation, MutationFailure
from darwin_git.population import NotFastForward, Population, PopulationError, RefMoved
from darwin_git.population.lineage import (ancestors, children, generation, unevaluated)
from darwin_git.result import make_result


def mutate(pop, agent, text, gen=1, summary="Raise learning rate", ref=True):
    m = Mutation(summary=summary, reasoning="Loss plateaued early; a larger step should help.",
                 changes={"train.py": text}, operator="llm", mutator="llm:test-model",
                 model="test-model", tokens={"total": 321}, cost_usd=0.0012)
    parent = pop.tip(agent)
    return pop.commit_mutation(parent, m, agent, gen, mutator_agent="agent-02",
                               ref=f"refs/heads/agents/{agent}" if ref else None)


def result(loss, **kw):
    return make_result("ok", val_loss=loss, perplexity=2.718 ** loss, tokens_per_s=1000.0,
                       mfu=0.01, params=1234, **kw)


def test_init_layout_and_fsck(population, git):
    repo = population.path
    assert list(population.agents()) == ["agent-00", "agent-01", "agent-02"]
    assert git("symbolic-ref", "HEAD", cwd=repo).strip() == "refs/heads/seed"
    assert (repo / "train.py").is_file()  # the seed is checked out for humans
    git("fsck", "--strict", cwd=repo)
    cfg = runconfig.read_config(population.repo)
    assert cfg["population_size"] == 3 and cfg["budget_s"] == 5.0
    assert cfg["mutator"]["max_apply_attempts"] == 3  # defaults fill what is not stored
    assert "run.toml" in git("ls-tree", "--name-only", "refs/darwin/config", cwd=repo)
    assert (population.memory_dir / "agent-00.json").is_file()


def test_init_refuses_bad_seed_and_existing_repo(tmp_path, seed_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PopulationError, match="darwin.toml"):
        init_population(tmp_path / "p1", seed=empty)
    init_population(tmp_path / "p2", seed=seed_dir, agents=1)
    with pytest.raises(PopulationError, match="not empty"):
        init_population(tmp_path / "p2", seed=seed_dir, agents=1)


def test_bare_population(tmp_path, seed_dir, git):
    pop = init_population(tmp_path / "pop.git", seed=seed_dir, agents=2, bare=True)
    assert pop.repo.is_bare
    oid = mutate(pop, "agent-00", "lr = 2e-3\n")
    assert git("rev-parse", "agents/agent-00", cwd=pop.path).strip() == str(oid)
    git("fsck", "--strict", cwd=pop.path)


def test_mutation_commit_has_trailers_and_no_worktree_change(population, git):
    oid = mutate(population, "agent-00", "lr = 2e-3\n")
    repo = population.path
    trailers = git("log", "-1", "--format=%(trailers)", "agents/agent-00", cwd=repo)
    for line in ("Darwin-Agent: agent-00", "Darwin-Mutator: llm:test-model",
                 "Darwin-Generation: 1", "Darwin-Operator: llm", "Darwin-Model: test-model",
                 "Darwin-Tokens: 321", "Darwin-Cost: 0.001200"):
        assert line in trailers
    assert git("log", "-1", "--format=%an <%ae>", str(oid), cwd=repo).strip() == \
        "darwin-git <darwin-git@localhost>"
    assert git("show", f"{oid}:train.py", cwd=repo) == "lr = 2e-3\n"
    assert git("status", "--porcelain", cwd=repo) == ""  # HEAD (seed) untouched
    git("fsck", "--strict", cwd=repo)
    summary, reasoning, trailers = population.message(oid)
    assert summary == "Raise learning rate" and reasoning.startswith("Loss plateaued")


def test_bad_paths_are_rejected(population):
    for path in ("../evil.py", "/abs.py", ".git/config", "a/../b.py"):
        with pytest.raises(PopulationError, match="relative path"):
            population.commit_changes("agent-00", {path: "x"}, "Bad")


def test_concurrent_ref_writer_is_detected(population):
    other = Population(population.path)
    stale_tip = population.tip("agent-00")
    mutate(other, "agent-00", "lr = 5e-3\n")  # another writer moves the branch first
    m_tree = population.tree_with(population.commit(stale_tip), {"train.py": "lr = 9\n"})
    with pytest.raises(RefMoved, match="moved"):
        population.create_commit([stale_tip], m_tree, "Late writer",
                                 ref="refs/heads/agents/agent-00")
    assert population.commit("agent-00").tree["train.py"].data == b"lr = 5e-3\n"
    with pytest.raises(PopulationError, match="not"):
        population.fast_forward("agent-00", population.tip("agent-00"), expected_old=stale_tip)


def test_fast_forward_only_to_descendants(population):
    child = mutate(population, "agent-00", "lr = 2e-3\n", ref=False)
    population.fast_forward("agent-00", child)
    assert population.tip("agent-00") == child
    sibling = mutate(population, "agent-01", "lr = 3e-3\n")
    with pytest.raises(NotFastForward, match="does not descend"):
        population.fast_forward("agent-00", sibling)
    with pytest.raises(NotFastForward):
        population.fast_forward("agent-00", population.commit("seed").id)  # backwards
    assert population.tip("agent-00") == child


def test_prune_keeps_history_reachable(population, git):
    oid = mutate(population, "agent-01", "lr = 3e-3\n")
    ref = population.prune("agent-01")
    assert ref.startswith("refs/darwin/pruned/agent-01/")
    assert "agent-01" not in population.agents()
    git("gc", "--prune=now", "--quiet", cwd=population.path)
    assert git("rev-parse", ref, cwd=population.path).strip() == str(oid)
    assert git("cat-file", "-t", str(oid), cwd=population.path).strip() == "commit"
    # the name can live again and be pruned again without clobbering the first pruned ref
    population.spawn("agent-01", oid)
    assert population.prune("agent-01") != ref


def test_spawn_and_lineage(population):
    a = mutate(population, "agent-00", "lr = 2e-3\n", gen=1)
    population.spawn("agent-03", "agent-00")
    with pytest.raises(RefMoved):
        population.spawn("agent-03", "seed")
    b = mutate(population, "agent-03", "lr = 4e-3\n", gen=2)
    seed = population.commit("seed").id
    assert ancestors(population, b) == [b, a, seed]
    assert set(children(population, a)) == {b}
    assert generation(population, b) == 2 and generation(population, seed) == 0
    assert unevaluated(population, "agent-03") == [b, a, seed]
    population.add_result(a, result(2.0))
    assert unevaluated(population, "agent-03") == [b]


def test_merge_clean_and_conflicting(population, git):
    a = population.commit_changes("agent-00", {"model.py": "# model A\n"}, "Edit model",
                                  ref="refs/heads/agents/agent-00")
    b = population.commit_changes("agent-01", {"train.py": "lr = 7\n"}, "Edit train",
                                  ref="refs/heads/agents/agent-01")
    out = population.merge(a, b, "Crossover agent-00 x agent-01", "Combine both.",
                           {"Darwin-Operator": "crossover", "Darwin-Agent": "agent-00"})
    assert out.conflicts == {}
    merged = population.commit(out.commit)
    assert list(merged.parent_ids) == [a, b]
    assert merged.tree["train.py"].data == b"lr = 7\n"
    assert merged.tree["model.py"].data == b"# model A\n"

    c = population.commit_changes("agent-02", {"train.py": "lr = 8\n"}, "Other train",
                                  ref="refs/heads/agents/agent-02")
    clash = population.merge(b, c, "Crossover b x c")
    assert clash.commit is None
    text = clash.conflicts["train.py"]
    assert "<<<<<<<" in text and "lr = 7" in text and "lr = 8" in text
    solved = population.merge(b, c, "Crossover b x c", resolutions={"train.py": "lr = 7.5\n"})
    assert population.commit(solved.commit).tree["train.py"].data == b"lr = 7.5\n"
    git("fsck", "--strict", cwd=population.path)


def test_result_notes_readable_by_git(population, git):
    oid = mutate(population, "agent-00", "lr = 2e-3\n")
    population.add_result(oid, result(1.5, seed=1))
    population.add_result(oid, result(1.4, seed=2))
    failure = MutationFailure(cause="diff_failed", detail="hunk 2 did not apply",
                              operator="llm", mutator="llm:test-model", model="test-model")
    population.add_attempt(oid, failure, agent="agent-00", generation=2)
    shown = git("notes", "--ref=darwin", "show", str(oid), cwd=population.path)
    lines = [json.loads(l) for l in shown.splitlines()]
    assert [l["kind"] for l in lines] == ["result", "result", "attempt"]
    assert all(l["v"] == 1 for l in lines)
    assert lines[0]["val_loss"] == 1.5 and lines[0]["tree"] == str(population.commit(oid).tree_id)
    assert population.latest_result(oid)["val_loss"] == 1.4
    assert population.records(oid, "attempt")[0]["cause"] == "diff_failed"
    git("fsck", "--strict", cwd=population.path)


def test_notes_written_by_stock_git_and_garbage_lines_are_tolerated(population, git):
    oid = str(population.tip("agent-00"))
    git("notes", "--ref=darwin", "add", "-m", "not json at all", oid, cwd=population.path)
    population.add_result(oid, result(2.5))
    recs = population.records(oid)
    assert recs[0]["kind"] == "raw" and recs[1]["val_loss"] == 2.5
    assert population.latest_result(oid)["val_loss"] == 2.5
    assert population.records(str(population.commit("agent-01").id), "future-kind") == []


def _append_many(path, commit, worker, n):
    pop = Population(path)
    for i in range(n):
        pop.notes.append(commit, {"kind": "result", "v": 1, "worker": worker, "i": i})


def test_concurrent_note_appends_are_never_lost(population):
    commit = str(population.tip("agent-00"))
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(population.path, commit, w, 15))
             for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    recs = Population(population.path).records(commit)
    assert sorted((r["worker"], r["i"]) for r in recs) == \
        [(w, i) for w in range(3) for i in range(15)]


def test_tree_cache_finds_identical_trees(population):
    a = mutate(population, "agent-00", "lr = 2e-3\n")
    population.add_result(a, result(1.7, budget_s=5.0, tokenizer="char"))
    b = mutate(population, "agent-01", "lr = 2e-3\n")  # same tree, another commit
    assert population.commit(a).tree_id == population.commit(b).tree_id
    fresh = Population(population.path)
    hit = fresh.cached_result(fresh.commit(b).tree_id, budget_s=5.0, tokenizer="char")
    assert hit is not None and hit["val_loss"] == 1.7
    assert fresh.cached_result(fresh.commit(b).tree_id, budget_s=10.0) is None
    assert fresh.cached_result(fresh.commit("seed").tree_id) is None


def test_not_a_population(tmp_path, git):
    from darwin_git.population import NotAPopulationRepo

    with pytest.raises(NotAPopulationRepo, match="not a git repository"):
        Population(tmp_path / "nothing")
    git("init", "-q", tmp_path / "plain")
    with pytest.raises(NotAPopulationRepo, match="refs/darwin/config"):
        Population(tmp_path / "plain")
