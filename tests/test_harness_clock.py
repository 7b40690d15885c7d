"""The budget is a hard limit on the run's clock (issue 11): a run that overruns is `timeout`
and unscored whatever it wrote; what counts on each clock (imports, children, waiting).

The cpu-clock cases need the sandbox to measure and enforce CPU time (Outcome.cpu_s,
Step.clock_limit: the `sandbox` branch). On a sandbox without it, the harness refuses to score
a cpu-clock run (train_failed/sandbox_error) and these cases fail; the wall-clock cases pass
on either, because the harness also checks the measured clock after the run.
"""
from __future__ import annotations

import pytest

from darwin_git.harness.flops import eval_threads
from darwin_git.harness.spec import scoring_limit

from harness_fixtures import data_root, fixed_peak, run  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow  # every case trains a tree through the harness

BUDGET_S = 8.0  # room for importing torch and tiny's one second of training, even under load


def clocked(tmp_path, data_root, variant, clock, **kw):
    return run(tmp_path, data_root, variant, clock=clock, budget_s=BUDGET_S, bench=False, **kw)


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_training_past_the_budget_is_a_timeout_whatever_it_wrote(tmp_path, data_root, clock):
    r = clocked(tmp_path, data_root, "overrun", clock)
    assert (r["status"], r["cause"]) == ("timeout", "budget_exceeded"), r["log_tail"]
    assert r["val_loss"] is None and r["clock"] == clock  # its checkpoints are not scored
    used = r["train_cpu_s"] if clock == "cpu" else r["train_wall_s"]
    assert used > BUDGET_S + 2 - 0.5  # it ran until the limit (or past it, then was refused)


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_a_checkpoint_saved_in_the_save_window_is_a_timeout(tmp_path, data_root, clock):
    """The window after the budget is for exiting: training into it and saving there buys
    nothing (and setting the file's modification time back does not hide it)."""
    r = clocked(tmp_path, data_root, "window", clock)
    assert (r["status"], r["cause"]) == ("timeout", "budget_exceeded"), r["log_tail"]
    if clock == "cpu" or "over the 10 s limit" not in r["log_tail"]:
        # (on a loaded machine a wall-clock exit can itself pass the limit: refused for that)
        assert "ckpt.pt was written after the 8 s budget" in r["log_tail"], r["log_tail"]
    assert r["val_loss"] is None


def test_a_checkpoint_changed_through_a_mapping_after_the_budget_is_a_timeout(tmp_path,
                                                                             data_root):
    """Written before the budget through a shared writable mapping, then overwritten there with
    weights trained in the save window: no write call and no change time after the budget, but
    its content at the budget is not its content at the end (issue 24)."""
    r = clocked(tmp_path, data_root, "mapped", "cpu")
    assert (r["status"], r["cause"]) == ("timeout", "budget_exceeded"), r["log_tail"]
    assert "more in the save window" in r["log_tail"]  # the attack did what it says
    assert "ckpt.pt was written after the 8 s budget" in r["log_tail"], r["log_tail"]
    assert r["val_loss"] is None


def test_a_run_that_saved_in_time_may_use_the_window_to_exit(tmp_path, data_root):
    """On the cpu clock, which load does not stretch (on the wall clock a loaded machine can
    delay the save itself past the budget; honest wall-clock runs that save in time are every
    scoring test's)."""
    r = clocked(tmp_path, data_root, "window", "cpu", extra={"train.py": "import lingers\n"})
    assert r["status"] == "ok", r["log_tail"]
    assert r["train_cpu_s"] > BUDGET_S  # it did run into the window


def test_compute_at_scoring_time_is_limited(tmp_path, data_root):
    """A model that computes when the server builds it (8 CPU s, as one training itself at load
    time on tokens carried in its checkpoint would) is stopped: by the step's cap where that is
    below what it computes, and otherwise by the allowance that its own forward passes, as the
    harness measured them in the step, give it (issue 24: under the cap alone it scored ok).
    An honest model scores within its allowance, and the result says both figures."""
    capped = clocked(tmp_path, data_root, "trains_at_load", "cpu", name="capped", scoring_s=4.0)
    assert (capped["status"], capped["cause"]) == ("eval_failed", "eval_budget_exceeded"), \
        capped["log_tail"]
    assert "more than 4 s on the cpu clock" in capped["log_tail"]  # CPU seconds on a CPU
    measured = clocked(tmp_path, data_root, "trains_at_load", "cpu", name="measured")
    assert (measured["status"], measured["cause"]) == ("eval_failed", "eval_budget_exceeded"), \
        measured["log_tail"]
    assert "as measured in the step" in measured["log_tail"]
    assert 8 <= measured["eval_cpu_s"] <= scoring_limit("cpu", BUDGET_S, eval_threads()).seconds
    honest = clocked(tmp_path, data_root, None, "cpu", name="honest")
    assert honest["status"] == "ok", honest["log_tail"]
    assert 0 < honest["eval_allowance_s"] < measured["eval_cpu_s"]


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_work_at_import_time_counts(tmp_path, data_root, clock):
    r = clocked(tmp_path, data_root, "slow_import", clock)
    assert (r["status"], r["cause"]) == ("timeout", "budget_exceeded"), r["log_tail"]


def test_a_child_process_spends_the_cpu_budget(tmp_path, data_root):
    """The parent only waits (no CPU of its own); its child computes past the budget."""
    r = clocked(tmp_path, data_root, "cpu_child", "cpu")
    assert (r["status"], r["cause"]) == ("timeout", "budget_exceeded"), r["log_tail"]


def test_waiting_is_free_on_the_cpu_clock_and_spent_on_the_wall_clock(tmp_path, data_root):
    cpu = clocked(tmp_path, data_root, "sleeper", "cpu", name="cpu")
    wall = clocked(tmp_path, data_root, "sleeper", "wall", name="wall")
    assert cpu["status"] == "ok", cpu["log_tail"]
    assert cpu["train_cpu_s"] <= BUDGET_S + 2 < cpu["train_wall_s"]
    assert (wall["status"], wall["cause"]) == ("timeout", "budget_exceeded"), wall["log_tail"]


def test_nothing_written_after_the_main_process_exits_is_collected(tmp_path, data_root):
    r = clocked(tmp_path, data_root, "late_child", "wall")
    assert (r["status"], r["cause"]) == ("train_failed", "no_checkpoint"), r["log_tail"]


def test_the_run_is_told_its_budget_and_clock(tmp_path, data_root):
    script = ("import os\nfor k in ('DARWIN_BUDGET_S', 'DARWIN_BUDGET_CLOCK', "
              "'OMP_WAIT_POLICY'):\n    print(k + '=' + os.environ.get(k, '-'))\n")
    r = run(tmp_path, data_root, extra={"train.py": script}, clock="wall", budget_s=7)
    assert r["cause"] == "no_checkpoint"
    assert "DARWIN_BUDGET_S=7\nDARWIN_BUDGET_CLOCK=wall\nOMP_WAIT_POLICY=PASSIVE" \
        in r["log_tail"]
