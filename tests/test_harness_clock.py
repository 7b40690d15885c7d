"""The budget is a hard limit on the run's clock (issue 11): a run that overruns is `timeout`
and unscored whatever it wrote; what counts on each clock (imports, children, waiting).

The cpu-clock cases need the sandbox to measure and enforce CPU time (Outcome.cpu_s,
Step.clock_limit: the `sandbox` branch). On a sandbox without it, the harness refuses to score
a cpu-clock run (train_failed/sandbox_error) and these cases fail; the wall-clock cases pass
on either, because the harness also checks the measured clock after the run.
"""
from __future__ import annotations

import pytest

from harness_fixtures import data_root, fixed_peak, run  # noqa: F401 (fixtures)

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
    assert "ckpt.pt was written after the 8 s budget" in r["log_tail"]
    assert r["val_loss"] is None


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_a_run_that_saved_in_time_may_use_the_window_to_exit(tmp_path, data_root, clock):
    r = clocked(tmp_path, data_root, "lingers", clock)
    assert r["status"] == "ok", r["log_tail"]
    used = r["train_cpu_s"] if clock == "cpu" else r["train_wall_s"]
    assert used > BUDGET_S  # it did run into the window


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
