"""The harness, unchanged, on the docker runner: a tiny tree trains and is scored end to end, and
the harness-side attacks of test_harness_attacks.py / test_harness_clock.py hold there too."""
from __future__ import annotations

import json
import math

import pytest

from darwin_git import data
from harness_fixtures import data_root, run  # noqa: F401 (fixture)

# Same daemon/skip policy, image fixture and leftover-container check as the sandbox tests.
from test_docker_sandbox import docker_client, no_container_left, sandbox  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SMALL = dict(windows=32, cuts=4, probes=1, bench=False)  # a quicker protocol, same rules


def test_a_tiny_tree_trains_and_scores_in_containers(sandbox, tmp_path, data_root):
    r = run(tmp_path, data_root, sandbox=sandbox, seed=5, **SMALL)
    assert r["status"] == "ok", r["log_tail"]
    assert r["runner"] == "docker" and r["params"] > 0 and r["eval_tokens"] == 32 * 4
    assert r["harness"].endswith(":32x4")  # another scored set: never compared with defaults
    # Trained below a uniform guess over the 84 characters (ln 84 = 4.43), measured by the
    # harness: the tree's own printed claim is kept apart and ignored.
    assert math.isfinite(r["val_loss"]) and 0.5 < r["val_loss"] < 4.43
    assert float(r["reported"]["val_loss"]) == 0.01


def test_peeking_and_caching_only_score_worse_in_containers(sandbox, tmp_path, data_root):
    r = run(tmp_path, data_root, "peek_cache", sandbox=sandbox, seed=5, **SMALL)
    # worse than uniform, or caught by the audit (a filler token that was a target)
    assert (r["status"] == "ok" and r["val_loss"] > 4.43) or r["cause"] in (
        "audit_mismatch", "noncausal"), r["log_tail"]


def test_frames_nobody_asked_for_end_scoring_in_containers(sandbox, tmp_path, data_root):
    r = run(tmp_path, data_root, "spam", sandbox=sandbox, extra={"spam.txt": "unsolicited"},
            **SMALL)
    assert (r["status"], r["cause"]) == ("eval_failed", "unsolicited_output"), r["log_tail"]


def test_training_past_the_budget_is_a_timeout_in_containers(sandbox, tmp_path, data_root):
    r = run(tmp_path, data_root, "overrun", sandbox=sandbox, clock="wall", budget_s=8.0,
            **SMALL)
    assert (r["status"], r["cause"]) == ("timeout", "budget_exceeded"), r["log_tail"]


def test_a_checkpoint_saved_in_the_save_window_is_a_timeout_in_containers(sandbox, tmp_path,
                                                                           data_root):
    r = run(tmp_path, data_root, "window", sandbox=sandbox, clock="cpu", budget_s=8.0, **SMALL)
    assert (r["status"], r["cause"]) == ("timeout", "budget_exceeded"), r["log_tail"]
    assert "written after the 8 s budget" in r["log_tail"]


def test_a_checkpoint_changed_through_a_mapping_is_a_timeout_in_containers(sandbox, tmp_path,
                                                                          data_root):
    r = run(tmp_path, data_root, "mapped", sandbox=sandbox, clock="cpu", budget_s=8.0, **SMALL)
    assert (r["status"], r["cause"]) == ("timeout", "budget_exceeded"), r["log_tail"]
    assert "more in the save window" in r["log_tail"]
    assert "written after the 8 s budget" in r["log_tail"]


def test_the_validation_text_is_out_of_reach_in_containers(sandbox, tmp_path, data_root):
    """The container view: no step gets the package (an installed copy is masked), nor the
    corpus or the cached validation split (the scoring step says so by its cause: reader/)."""
    val = data.prepare("char", data_root).val_dir / "val.bin"
    r = run(tmp_path, data_root, "reader", sandbox=sandbox,
            extra={"targets.txt": f"{data.CORPUS_PATH} {val}"}, **SMALL)
    assert (r["status"], r["cause"]) == ("eval_failed", "forward_failed"), r["log_tail"]
    assert "train package: denied" in r["log_tail"]
    assert "READ" not in r["log_tail"], r["log_tail"]


# Issue 24's classes in containers (the local runner's: test_harness_seal.py)

def test_learning_at_scoring_time_is_stopped_in_containers(sandbox, tmp_path, data_root):
    r = run(tmp_path, data_root, "scoring_learner", sandbox=sandbox,
            extra={"learn.txt": "5"}, seed=2, **SMALL)
    assert (r["status"], r["cause"]) == ("eval_failed", "eval_budget_exceeded"), r["log_tail"]
    assert "as measured in the step" in r["log_tail"]


def test_answers_that_depend_on_earlier_requests_fail_the_audit_in_containers(sandbox, tmp_path,
                                                                              data_root):
    r = run(tmp_path, data_root, "stateful", sandbox=sandbox, **{**SMALL, "probes": 0})
    assert (r["status"], r["cause"]) == ("eval_failed", "audit_mismatch"), r["log_tail"]
    assert "in another order" in r["log_tail"]


def test_compute_is_counted_not_declared_in_containers(sandbox, tmp_path, data_root):
    r = run(tmp_path, data_root, "declares", sandbox=sandbox, seed=1,
            **{**SMALL, "bench": True})
    assert r["status"] == "ok", r["log_tail"]
    assert r["flops_per_token"] == 3 * 2 * 64 * r["vocab_size"]
    assert r["declared_mismatch"]["declared"]["n_layer"] == 24 and 0 < r["mfu"] < 1


def test_nothing_but_numbers_leaves_the_scoring_steps_in_containers(sandbox, tmp_path, data_root):
    r = run(tmp_path, data_root, "leaky", sandbox=sandbox,
            extra={"alphabet.txt": data.get_tokenizer("char").chars}, **SMALL)
    assert (r["status"], r["cause"]) == ("eval_failed", "forward_failed"), r["log_tail"]
    note = json.dumps(r)
    assert "LEAK" not in note and "Traceback" not in note and "ValueError" not in note


def test_a_checkpoint_bomb_is_refused_in_containers(sandbox, tmp_path, data_root):
    r = run(tmp_path, data_root, "bomb", sandbox=sandbox, **SMALL)
    assert (r["status"], r["cause"]) == ("eval_failed", "bad_checkpoint"), r["log_tail"]
    assert "stored (uncompressed) entries" in r["log_tail"]


def test_an_honest_score_is_the_models_own_loss_in_containers(sandbox, tmp_path, data_root):
    from darwin_git.harness import EvalSpec, score_checkpoint
    from test_harness_seal import honest_checkpoint

    tree, ckpt, direct = honest_checkpoint(tmp_path, data_root)
    got = score_checkpoint(tree, ckpt, sandbox, EvalSpec(data_root=data_root, bench=False))
    assert "cause" not in got, got
    assert got["val_loss"] == pytest.approx(direct, abs=1e-6)
    assert got["audit"]["rows"] == 64 and got["eval_used_s"] <= got["eval_allowance_s"]
