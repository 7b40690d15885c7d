"""An LLM endpoint that refuses or never answers: `darwin-git evolve` (the real CLI on the fake
executor, tests/fake_evolve.py) moves no branch, prunes nobody, and stops after
max_empty_generations generations without evidence with exit 7 and a message that names the
endpoint and what it said, within a bound set by the call's deadline (with the default 240 s
deadline and 2 empty generations, about 8 minutes: the noise floor trains beside the first
generation's calls)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import run_git, write_fake_seed

FAKE_EVOLVE = [sys.executable, str(Path(__file__).with_name("fake_evolve.py"))]
DARWIN = [sys.executable, "-m", "darwin_git.cli"]


class BlackHole:
    """Accepts connections on 127.0.0.1 and never answers (a hung endpoint)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)  # read nothing, say nothing

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now: connections are refused
    return port


def population(tmp_path) -> Path:
    seed = write_fake_seed(tmp_path)
    repo = tmp_path / "run" / "population"
    subprocess.run([*DARWIN, "init", "--repo", str(repo), "--seed", str(seed), "--agents", "4",
                    "--no-check"], check=True, capture_output=True)
    subprocess.run([*DARWIN, "config", "set", "mutator.deadline_s", "3", "--repo", str(repo)],
                   check=True, capture_output=True)
    subprocess.run([*DARWIN, "config", "set", "mutator.timeout_s", "2", "--repo", str(repo)],
                   check=True, capture_output=True)
    return repo


@pytest.mark.parametrize("endpoint", ["never answers", "refuses"])
def test_an_endpoint_that_gives_nothing_stops_the_run_and_moves_nothing(tmp_path, endpoint):
    repo = population(tmp_path)
    before = run_git("-C", repo, "for-each-ref", "--format=%(refname) %(objectname)",
                     "refs/heads/agents/")
    hole = BlackHole() if endpoint == "never answers" else None
    port = hole.port if hole else closed_port()
    env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
           "OPENAI_API_KEY": "sk-test"}
    t0 = time.monotonic()
    try:
        proc = subprocess.run([*FAKE_EVOLVE, "evolve", "--repo", str(repo), "--json",
                               "--generations", "5", "--mutator", "llm", "--model", "m",
                               "--no-report"], capture_output=True, text=True, env=env,
                              timeout=600)
    finally:
        if hole:
            hole.close()
    elapsed = time.monotonic() - t0
    assert proc.returncode == 7, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 generations in a row gave no evidence about the code" in proc.stderr
    assert "the LLM's" in proc.stderr and f"127.0.0.1:{port}" in proc.stderr
    after = run_git("-C", repo, "for-each-ref", "--format=%(refname) %(objectname)",
                    "refs/heads/agents/")
    assert after == before  # no branch moved, nobody pruned
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert not [e for e in events if e["event"] in ("accepted", "pruned", "request")]
    assert [e["generation"] for e in events if e["event"] == "no_evidence"] == [1, 2]
    # bounded by the deadline: two generations of calls in parallel, each cut at 3 s (with
    # the SDK's own retries inside it), not the generations asked for
    assert elapsed < 120, elapsed
