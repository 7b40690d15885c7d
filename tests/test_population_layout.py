"""Each population has its own run folder: memory, state (the evolve lock) and reports, keyed to
the repo, so populations side by side never share them."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from darwin_git import memory
from darwin_git.create import init_population
from darwin_git.lock import LockBusy, population_lock

DARWIN = [sys.executable, "-m", "darwin_git.cli"]


def test_populations_side_by_side_have_their_own_memory_and_state(tmp_path, seed_dir):
    good = init_population(tmp_path / "p-good", seed=seed_dir, agents=2)
    tok = init_population(tmp_path / "p-tok", seed=seed_dir, agents=2)
    assert good.memory_dir == tmp_path / "p-good.darwin" / "memory"
    assert tok.state_dir == tmp_path / "p-tok.darwin" / "state"
    assert tok.reports_dir == tmp_path / "p-tok.darwin" / "reports"
    assert (good.memory_dir / "agent-00.json").is_file()
    assert (tok.memory_dir / "agent-00.json").is_file()
    assert not (tmp_path / "memory").exists() and not (tmp_path / "state").exists()
    # The quick start's layout: a repo named population keeps darwin-run/memory etc.
    quick = init_population(tmp_path / "darwin-run" / "population", seed=seed_dir, agents=1)
    assert quick.memory_dir == tmp_path / "darwin-run" / "memory"
    assert quick.reports_dir == tmp_path / "darwin-run" / "reports"
    bare = init_population(tmp_path / "pop.git", seed=seed_dir, agents=1, bare=True)
    assert bare.memory_dir == tmp_path / "pop.git.darwin" / "memory"
    assert (bare.memory_dir / "agent-00.json").is_file()
    # Two paths to one repo are one run folder: one memory, one lock.
    (tmp_path / "link").symlink_to(tmp_path / "p-good")
    from darwin_git.population import Population
    assert Population(tmp_path / "link").state_dir == good.state_dir


def test_memory_of_an_older_layout_is_rebuilt_where_it_now_lives(tmp_path, seed_dir):
    pop = init_population(tmp_path / "p-good", seed=seed_dir, agents=1)
    for f in pop.memory_dir.glob("*.json"):  # as if the run predates this layout
        f.unlink()
    doc = memory.load(pop, "agent-00")
    assert doc["agent"] == "agent-00" and (pop.memory_dir / "agent-00.json").is_file()


def test_one_evolve_per_population_and_none_across_populations(tmp_path, seed_dir):
    init_population(tmp_path / "p-good", seed=seed_dir, agents=1)
    init_population(tmp_path / "p-tok", seed=seed_dir, agents=1)
    with population_lock(tmp_path / "p-good").acquire():
        with pytest.raises(LockBusy) as err:
            population_lock(tmp_path / "p-good").acquire()
        assert f"population {tmp_path / 'p-good'}" in str(err.value)
        assert f"pid {os.getpid()}" in str(err.value)
        population_lock(tmp_path / "p-tok").acquire().release()  # its neighbour is free

        def evolve(repo):
            return subprocess.run([*DARWIN, "evolve", "--repo", str(repo), "--runner", "local",
                                   "--generations", "0", "--noise-repeats", "1", "--budget", "5",
                                   "--no-report", "--json"],
                                  capture_output=True, text=True, timeout=600)

        busy = evolve(tmp_path / "p-good")
        assert busy.returncode == 4, busy.stderr
        assert f"pid {os.getpid()}" in busy.stderr and "p-good" in busy.stderr
        free = evolve(tmp_path / "p-tok")  # the fake seed fails to train: quickly, not blocked
        assert free.returncode == 0, free.stderr
