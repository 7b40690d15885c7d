"""The replay corpus (benchmarks/replay_corpus/replies.json) through the real mutator and the
loopback server: no reply is ever committed wrongly, every refusal has its expected cause. The
cases that wait for a deadline are left to the benchmark and test_mutate_deadline.py."""
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import mutator_replay  # noqa: E402


def test_the_replay_corpus_is_never_committed_wrongly():
    base, cases = mutator_replay.load()
    assert len(cases) >= 40
    quick = [c for c in cases if c["expect"].get("refuse") != "timeout"]
    rows = mutator_replay.replay(base, quick, deadline_s=60.0)
    verdicts = {r["id"]: r["verdict"] for r in rows}
    assert {v for v in verdicts.values()} <= {"correct", "refused_right"}, {
        i: (v, r.get("detail")) for r, (i, v) in zip(rows, verdicts.items())
        if v not in ("correct", "refused_right")}
