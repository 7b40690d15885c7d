"""Attacks on the fitness by the model's own code (issue 16), through the real local sandbox:
none of them may give a better `ok` loss, more parameters, an MFU above 1 or a parent that
queues what it did not ask for. Docker variants: test_docker_harness.py."""
from __future__ import annotations

import math
import os
import threading

import pytest
import torch  # noqa: F401 - the parent imports it to read checkpoints: not what is measured

from darwin_git import data
from harness_fixtures import data_root, fixed_peak, run  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow  # every attack trains tiny and scores it


@pytest.fixture(scope="module")
def honest(data_root, tmp_path_factory):
    """tiny, trained and scored once: the yardstick of this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DARWIN_PEAK_FLOPS", "1e11")
        r = run(tmp_path_factory.mktemp("honest"), data_root, seed=5)
    assert r["status"] == "ok", r["log_tail"]
    return r


def test_peeking_at_the_target_and_caching_by_prefix_only_scores_worse(tmp_path, data_root,
                                                                       honest):
    r = run(tmp_path, data_root, "peek_cache", seed=5)
    # The peek lands on filler, never on a scored target, and the cache cannot answer a
    # position it has not been asked about: the model scores like an honest one or worse.
    assert r["status"] != "ok" or r["val_loss"] > honest["val_loss"] + 1.0, r["log_tail"]
    # How it ends is chance and the machine's speed: ok and worse (the cache hides the peek
    # from the probe), a fresh process's audit that met a filler token equal to a target
    # (its losses moved), past scoring's compute (the cache grows with every row), or windows
    # served later scoring better than those served first (answers from what earlier
    # requests showed it: the seal's order check, seen under load).
    assert r["status"] == "ok" or r["cause"] in ("audit_mismatch", "noncausal",
                                                 "eval_budget_exceeded",
                                                 "test_time_learning"), r["log_tail"]


def test_an_expanded_unbound_entry_and_a_cheap_bench_inflate_nothing(tmp_path, data_root,
                                                                     honest):
    r = run(tmp_path, data_root, "ghost", seed=5)
    assert r["status"] == "ok", r["log_tail"]
    assert r["params"] == honest["params"]  # the 10**12-element entry counts nothing
    assert "ghost: elements share memory" in r["log_tail"]
    assert r["val_loss"] == pytest.approx(honest["val_loss"], abs=0.5)  # scoring unaffected
    # The bench got a free tensor; the harness's own loss on the same batch disagrees.
    assert r["tokens_per_s"] is None and r["mfu"] is None
    untrusted = r["throughput_untrusted"]
    assert "bench claimed a loss of 4.431" in untrusted["reason"]  # ln(84): all-zero logits
    assert untrusted["tokens_per_s"] > 0


def test_mfu_above_one_is_not_trusted(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("DARWIN_PEAK_FLOPS", "1e6")  # a peak far below what tiny's bench does
    r = run(tmp_path, data_root)
    assert r["status"] == "ok" and math.isfinite(r["val_loss"])
    assert r["mfu"] is None and r["tokens_per_s"] is None
    assert "above 1" in r["throughput_untrusted"]["reason"]
    assert r["throughput_untrusted"]["mfu"] > 1


@pytest.mark.parametrize("mode,cause", [("unsolicited", "unsolicited_output"),
                                        ("oversized", "oversized_output")])
def test_frames_nobody_asked_for_cost_the_parent_nothing(tmp_path, data_root, mode, cause):
    """The server floods 24 frames of 128 MiB; the parent reads none of them."""
    peak, stop = [0], threading.Event()

    def sample():
        base = _rss()
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss() - base)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r = run(tmp_path, data_root, "spam", extra={"spam.txt": mode}, bench=False)
    finally:
        stop.set()
        sampler.join()
    assert (r["status"], r["cause"]) == ("eval_failed", cause), r["log_tail"]
    assert peak[0] < 64 << 20, f"the parent grew by {peak[0] >> 20} MiB"


def test_nan_logits_at_scoring_are_a_scoring_failure(tmp_path, data_root):
    r = run(tmp_path, data_root, "nan", bench=False)
    assert (r["status"], r["cause"]) == ("eval_failed", "nan_logits")


def test_a_model_that_learns_from_the_served_text_is_caught(tmp_path, data_root):
    r = run(tmp_path, data_root, "learner", bench=False, probes=0)
    assert (r["status"], r["cause"]) == ("eval_failed", "test_time_learning"), r["log_tail"]


def test_the_validation_text_is_out_of_reach_of_both_steps(tmp_path, data_root):
    """Neither step imports darwin_git (its package holds the corpus) nor opens the corpus or the
    cached validation split. Training says so in its log; the scoring step, whose output stays
    in it, by its cause (reader/model.py: model_error had it read anything)."""
    val = data.prepare("char", data_root).val_dir / "val.bin"
    targets = f"{data.CORPUS_PATH} {val}"
    r = run(tmp_path, data_root, "reader", extra={"targets.txt": targets}, bench=False)
    assert (r["status"], r["cause"]) == ("eval_failed", "forward_failed"), r["log_tail"]
    log = r["log_tail"]
    for what in ("package", data.CORPUS_PATH, val):
        assert f"train {what}: denied" in log, log
    assert "READ" not in log and "eval " not in log, log


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
