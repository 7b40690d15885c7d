"""The harness end to end on tiny fixture trees (tests/trees/): a tree is tests/trees/tiny with
the files of one variant folder laid over it (harness_fixtures.py). Attacks on scoring are in
test_harness_attacks.py, the budget's clock in test_harness_clock.py."""
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pygit2
import pytest

from darwin_git import data
from darwin_git.harness import EvalSpec, evaluate, export_tree, parse_summary, parse_training
from darwin_git.harness.export import ExportError
from darwin_git.harness.flops import flops_per_token, gpu_peak, measure_cpu_peak
from darwin_git.harness.scoring import paired_se
from darwin_git.result import HARNESS_VERSION, dumps
from darwin_git.run.local import LocalSandbox
from harness_fixtures import data_root, fixed_peak  # noqa: F401 (fixtures)
from harness_fixtures import SEED, TREES, make_tree, run


@pytest.mark.slow
def test_ok_tree_is_scored_by_the_harness(tmp_path, data_root):
    r = run(tmp_path, data_root, commit="c" * 40, tree="t" * 40, seed=3)
    assert r["status"] == "ok", r["log_tail"]
    vocab = data.load_meta(data.prepare("char", data_root).val_dir)["vocab_size"]
    assert r["vocab_size"] == vocab
    assert 1.0 < r["val_loss"] < math.log(vocab)  # learned something, and honestly measured
    assert r["perplexity"] == pytest.approx(math.exp(r["val_loss"]))
    assert r["bpb"] == pytest.approx(r["val_loss"] / math.log(2))  # char: one byte per token
    assert r["params"] == vocab * 64 + vocab  # tied weights once, the buffer not at all
    assert r["eval_tokens"] == 256 * 8  # windows x cuts
    assert r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 and r["throughput_untrusted"] is None
    # FLOPs counted on the model that ran: its one matmul (the tied head, 64 x vocab), 2 per
    # multiply-add, 3 x for a training step; the peak and clock MFU is taken on, stated
    assert r["flops_per_token"] == 3 * 2 * 64 * vocab and r["flops_source"] == "counted"
    assert r["peak_flops"] == 1e11 and r["mfu_clock"] == "wall" and r["declared_mismatch"] is None
    assert "DARWIN_PEAK_FLOPS" in r["peak_basis"]
    assert r["audit"]["rows"] == 64 and r["audit"]["max_diff"] < 1e-3  # a fresh process agreed
    assert r["eval_allowance_s"] > 0
    assert r["reported"]["val_loss"] == 0.01 and r["val_loss"] != 0.01  # untrusted claims
    assert (r["commit"], r["seed"], r["device"], r["runner"]) == ("c" * 40, 3, "cpu", "local")
    assert (r["clock"], r["budget_s"]) == ("wall", 60.0)
    assert r["harness"] == HARNESS_VERSION  # the default scored set: the version alone
    assert r["train"]["steps"] == r["reported"]["steps"] >= 30
    assert "train_loss:" in r["log_tail"] and r["train_wall_s"] > 0 and r["eval_wall_s"] > 0
    assert r["eval_cpu_s"] > 0  # the scoring step's compute, measured like training's
    dumps(r)  # a valid note line


@pytest.mark.slow
def test_every_evaluation_scores_the_same_tokens(tmp_path, data_root):
    """Filler, halves and probes are drawn afresh each time, yet the same weights get the same
    loss: what is scored depends on the split alone, so two trees compare token by token."""
    tree = make_tree(tmp_path / "t", "fixed_steps")
    spec = EvalSpec(data_root=data_root, clock="wall", budget_s=60, bench=False, seed=1)
    first, second = (evaluate(tree, LocalSandbox(), spec) for _ in range(2))
    assert first["status"] == second["status"] == "ok", first["log_tail"]
    assert first["val_loss"] == pytest.approx(second["val_loss"], rel=1e-6)
    assert first["eval_tokens"] == second["eval_tokens"] == 2048


def test_paired_standard_error_comes_from_window_means():
    rng = np.random.default_rng(0)
    a = rng.normal(2.0, 0.5, size=(64, 8))
    b = a - 0.1 + rng.normal(0, 0.01, size=(64, 8))
    mean, se = paired_se(a, b)
    assert mean == pytest.approx(0.1, abs=0.01) and 0 < se < 0.01


@pytest.mark.slow
def test_model_problems_are_caught_at_evaluation(tmp_path, data_root):
    variants = {"nan": ("eval_failed", "nan_logits"),
                "mismatch": ("eval_failed", "checkpoint_mismatch"),
                "noncausal": ("eval_failed", "noncausal")}
    with ThreadPoolExecutor(len(variants)) as pool:  # three torch runs side by side: faster
        results = dict(zip(variants, pool.map(
            lambda v: run(tmp_path, data_root, v, bench=False), variants)))
    for variant, expected in variants.items():
        r = results[variant]
        assert (r["status"], r["cause"]) == expected, (variant, r["log_tail"])
        assert r["log_tail"] and r["val_loss"] is None
    # Scoring is sealed: the server's traceback stays in its step, fixed words come out (the
    # pre-flight, which shows it no validation text, passes the traceback on)
    assert "do not load strictly into build_model" in results["mismatch"]["log_tail"]
    assert "size mismatch" not in results["mismatch"]["log_tail"]
    assert "Traceback" not in results["mismatch"]["log_tail"]
    assert "moved their logits" in results["noncausal"]["log_tail"]


@pytest.mark.slow
@pytest.mark.parametrize("variant,status,cause,in_log", [
    ("raises", "train_failed", "exception", "boom: the learning-rate schedule is empty"),
    ("silent", "train_failed", "no_checkpoint", "wrote no ckpt.pt"),
    ("no_checkpoint", "train_failed", "no_checkpoint", "train_loss: 1.23"),
])
def test_training_failures(tmp_path, data_root, variant, status, cause, in_log):
    r = run(tmp_path, data_root, variant)
    assert (r["status"], r["cause"]) == (status, cause)
    assert in_log in r["log_tail"]
    assert r["val_loss"] is None and r["train_wall_s"] is not None


@pytest.mark.slow
def test_no_checkpoint_keeps_the_reported_summary_apart(tmp_path, data_root):
    r = run(tmp_path, data_root, "no_checkpoint")
    assert r["reported"] == {"steps": 100.0, "train_loss": 1.23}
    assert r["train"] == {"steps": 100}


@pytest.mark.slow
def test_a_hang_is_ended_by_the_wall_net(tmp_path, data_root):
    r = run(tmp_path, data_root, "hang", clock="cpu", budget_s=0.5, wall_timeout_s=1.0)
    assert (r["status"], r["cause"]) == ("timeout", "wall_timeout")
    # ended by the net, not by the hang (never): room for a loaded machine
    assert r["train_wall_s"] < 30 and "safety net" in r["log_tail"]


def test_contract_problems_are_rejected(tmp_path, data_root):
    tree = make_tree(tmp_path / "t")
    (tree / "darwin.toml").unlink()
    r = evaluate(tree, LocalSandbox(), EvalSpec(data_root=data_root))
    assert (r["status"], r["cause"]) == ("rejected", "no_contract")
    (tree / "darwin.toml").write_text("[train\ncommand = 1")
    r = evaluate(tree, LocalSandbox(), EvalSpec(data_root=data_root))
    assert (r["status"], r["cause"]) == ("rejected", "bad_contract")
    assert "not valid TOML" in r["log_tail"]
    text = (TREES / "tiny" / "darwin.toml").read_text()
    (tree / "darwin.toml").write_text(text.replace('"char"', '"klingon"'))
    r = evaluate(tree, LocalSandbox(), EvalSpec(data_root=data_root))
    assert (r["status"], r["cause"]) == ("rejected", "bad_contract")
    (tree / "darwin.toml").write_text(text.replace("context = 32", "context = 2000000"))
    r = evaluate(tree, LocalSandbox(), EvalSpec(data_root=data_root))
    assert (r["status"], r["cause"]) == ("rejected", "bad_contract")
    (tree / "darwin.toml").write_text(text.replace("budget_s = 3", 'budget_s = 3\nclock = "gpu"'))
    r = evaluate(tree, LocalSandbox(), EvalSpec(data_root=data_root))
    assert (r["status"], r["cause"]) == ("rejected", "bad_contract")
    assert "clock must be one of cpu, wall" in r["log_tail"]
    (tree / "darwin.toml").unlink()
    (tree / "darwin.toml").symlink_to(TREES / "tiny" / "darwin.toml")
    r = evaluate(tree, LocalSandbox(), EvalSpec(data_root=data_root))
    assert (r["status"], r["cause"]) == ("rejected", "bad_contract")
    assert "symlink" in r["log_tail"]


def test_export_tree_writes_a_revision_without_a_worktree(tmp_path):
    repo = pygit2.init_repository(str(tmp_path / "repo"), bare=True)
    sub = repo.TreeBuilder()
    sub.insert("inner.txt", repo.create_blob(b"inner\n"), pygit2.GIT_FILEMODE_BLOB)
    top = repo.TreeBuilder()
    top.insert("train.py", repo.create_blob(b"print('hi')\n"), pygit2.GIT_FILEMODE_BLOB)
    top.insert("run.sh", repo.create_blob(b"#!/bin/sh\n"), pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)
    top.insert("link", repo.create_blob(b"train.py"), pygit2.GIT_FILEMODE_LINK)
    top.insert("pkg", sub.write(), pygit2.GIT_FILEMODE_TREE)
    tree_id = top.write()
    sig = pygit2.Signature("t", "t@example.com")
    repo.create_commit("refs/heads/agents/a", sig, sig, "seed", tree_id, [])
    got = export_tree(repo, "agents/a", tmp_path / "out")
    out = tmp_path / "out"
    assert got == str(tree_id)
    assert (out / "train.py").read_text() == "print('hi')\n"
    assert (out / "pkg" / "inner.txt").read_text() == "inner\n"
    assert os.access(out / "run.sh", os.X_OK) and not os.access(out / "train.py", os.X_OK)
    assert os.readlink(out / "link") == "train.py"
    with pytest.raises(ExportError, match="not a revision"):
        export_tree(repo, "agents/missing", tmp_path / "x")


def test_parse_summary_takes_the_final_key_value_block():
    log = ("step 1 | loss 4.1\nnote: early\nstep 2 | loss 3.9\n"
           "steps: 2\nval_loss: 3.90\nmodel: gpt-tiny\n\n[darwin sandbox] killed\n")
    assert parse_summary(log) == {"steps": 2.0, "val_loss": 3.9, "model": "gpt-tiny"}
    assert parse_summary("") == {}


def test_parse_training_reads_metric_lines_and_the_summary():
    lines = [f"step {i} | loss {4.4 - i / 100:.4f} | lr 1.00e-03 | {100 + i % 3}.0 ms | "
             f"{20000 + i} tok/s | progress {i / 100:.3f}" for i in range(1, 101)]
    log = "\n".join(["loading", *lines, "step 7 | nonsense", "steps: 100",
                     "tokens_per_s: 19000", "train_loss: 3.4"])
    t = parse_training(log)
    assert t["steps"] == 100 and t["ms_per_step"] == 101.0 and t["tokens_per_s"] == 19000.0
    assert len(t["loss_curve"]) == 16
    assert t["loss_curve"][0] == [1, 4.39] and t["loss_curve"][-1] == [100, 3.4]
    assert t["final_loss"] == 3.4
    # name-value or value-unit fields, a killed run without a summary, nothing at all
    t = parse_training("step 3 | loss nan | 5 ms\nstep 4 | loss 2.5 | ms 7\n[darwin] killed")
    assert t == {"steps": 4, "ms_per_step": 6.0, "final_loss": 2.5, "loss_curve": [[4, 2.5]]}
    assert parse_training("hello\n") == {}


def test_flops_model_and_peaks():
    assert flops_per_token(1000, {}, 64) == 6000
    assert flops_per_token(1000, {"n_layer": 2, "n_embd": 8}, 64) == 6000 + 12 * 2 * 8 * 64
    assert gpu_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu_peak("NVIDIA H100 PCIe") == 756e12
    assert gpu_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu_peak("NVIDIA L40S") == 362e12 and gpu_peak("NVIDIA L4") == 121e12
    assert gpu_peak("Mystery Accelerator") is None
    assert measure_cpu_peak(size=64, seconds=0.05) > 1e6


@pytest.mark.slow
def test_seed_repo_end_to_end(data_root):
    """The seed on the default clock (cpu on CPU): needs the sandbox to measure CPU time."""
    r = evaluate(SEED, LocalSandbox(), EvalSpec(data_root=data_root, budget_s=10, bench_s=0.3))
    assert r["status"] == "ok", r["log_tail"]
    assert r["clock"] == "cpu" and 0 < r["train_cpu_s"] <= 10 + 2
    assert math.isfinite(r["val_loss"]) and r["params"] > 0 and r["tokens_per_s"] > 0
    assert r["train"]["steps"] >= 1 and r["train"]["loss_curve"]
