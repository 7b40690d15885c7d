"""Sealed scoring, round 3 (issue 24), through the real local sandbox: the score is a fixed
function of the checkpoint as it stood when training ended, and only numbers leave the scoring
steps. Each attack is a tree of tests/trees/ written as a mutation could write it; the docker
runner's variants are in test_docker_harness.py, the checkpoint changed through a mapping in
test_harness_clock.py and test_sandbox_budget.py, kernel-held state in test_kernel_state.py."""
from __future__ import annotations

import json
import os
import threading
import zipfile

import numpy as np
import pytest
import torch

from darwin_git import data
from darwin_git.harness.server import loader
from darwin_git.result import error_line
from harness_fixtures import data_root, fixed_peak, run  # noqa: F401 (fixtures)

MiB = 1 << 20


def test_learning_at_scoring_time_is_stopped_by_the_measured_allowance(tmp_path, data_root):
    """The model trains itself at its first scoring request on tokens its checkpoint carries
    (the same way in every process, so the audit agrees): compute that its forward passes,
    measured in the step, do not account for is eval_budget_exceeded. The old cap (30 s + half
    the budget) let these 5 CPU s through; the same tree that does not learn scores."""
    honest = run(tmp_path, data_root, "scoring_learner", name="learn0",
                 extra={"learn.txt": "0"}, bench=False, seed=2)
    assert honest["status"] == "ok", honest["log_tail"]
    learns = run(tmp_path, data_root, "scoring_learner", name="learn5",
                 extra={"learn.txt": "5"}, bench=False, seed=2)
    assert (learns["status"], learns["cause"]) == ("eval_failed", "eval_budget_exceeded"), \
        learns["log_tail"]
    assert "as measured in the step" in learns["log_tail"]
    assert honest["eval_allowance_s"] < learns["eval_cpu_s"]


def test_the_scoring_learner_would_have_learned(tmp_path, data_root):
    """The attack is real: what the tree's learn() does in 1 CPU s, run here in the test's own
    process on an under-trained model, lowers its loss on text it never trained on."""
    import importlib.util
    import sys

    from harness_fixtures import make_tree

    tree = make_tree(tmp_path / "tree", "scoring_learner")
    sys.path.insert(0, str(tree))
    try:
        spec = importlib.util.spec_from_file_location("scoring_learner_model", tree / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(tree))
    paths = data.prepare("char", data_root)
    train = torch.from_numpy(data.load_tokens(paths.train_dir, "train").astype("int64"))
    held = torch.from_numpy(data.load_tokens(paths.train_dir, "train")[-20_000:].astype("int64"))
    torch.manual_seed(0)
    vocab = data.load_meta(paths.train_dir)["vocab_size"]
    model = module.build_model({"vocab_size": vocab, "n_embd": 64})
    model.carried.copy_(train[: module.CARRIED])

    def loss():
        x, y = held[:-1].view(1, -1)[:, :4096], held[1:].view(1, -1)[:, :4096]
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()))

    before = loss()
    module.LEARN_CPU_S = 1.0  # (no learn.txt here: the tree's default, set lower)
    model.learn()
    assert loss() < before - 0.3


def test_a_model_whose_answers_depend_on_earlier_requests_fails_the_audit(tmp_path, data_root):
    """Caught twice over: the same request asked twice in the audit step gets another answer,
    and (without that probe) a fresh process's answers to a sample, asked in another order,
    disagree with the scoring pass's."""
    r = run(tmp_path, data_root, "stateful", bench=False)
    assert (r["status"], r["cause"]) == ("eval_failed", "audit_mismatch"), r["log_tail"]
    assert "the same request asked twice" in r["log_tail"]
    r = run(tmp_path, data_root, "stateful", name="unprobed", bench=False, probes=0)
    assert (r["status"], r["cause"]) == ("eval_failed", "audit_mismatch"), r["log_tail"]
    assert "in another order" in r["log_tail"]


def test_compute_claims_come_from_the_model_that_ran(tmp_path, data_root):
    """The checkpoint's config declares 24 layers; FLOPs per token and MFU come from the
    harness's count of the model that ran, and the claim is flagged."""
    r = run(tmp_path, data_root, "declares", seed=1)
    assert r["status"] == "ok", r["log_tail"]
    vocab = r["vocab_size"]
    assert r["flops_per_token"] == 3 * 2 * 64 * vocab and r["flops_source"] == "counted"
    mismatch = r["declared_mismatch"]
    assert mismatch["declared"] == {"n_layer": 24, "n_embd": 64} and mismatch["ratio"] > 10
    assert r["mfu"] == pytest.approx(r["flops_per_token"] * r["tokens_per_s"] / r["peak_flops"])


def test_nothing_but_numbers_leaves_the_scoring_steps(tmp_path, data_root):
    """The model prints the validation text it is shown, writes it to its output folder and
    raises with it in the message: the result holds the cause and fixed words, and neither the
    text, the traceback nor the log; nor does any view made from the result."""
    alphabet = data.get_tokenizer("char").chars
    r = run(tmp_path, data_root, "leaky", extra={"alphabet.txt": alphabet}, bench=False)
    assert (r["status"], r["cause"]) == ("eval_failed", "forward_failed"), r["log_tail"]
    note = json.dumps(r)
    for leaked in ("LEAK", "ValueError", "Traceback", "leak.txt"):
        assert leaked not in note, r["log_tail"]
    assert "forward(idx) raised in the scoring step" in r["log_tail"]
    assert "LEAK" not in (error_line(r["log_tail"]) or "")


def test_a_checkpoint_bomb_is_refused_in_the_bounded_step(tmp_path, data_root):
    """A few hundred KB that inflate to 256 MiB: the engine copies and hashes the file but never
    opens the archive; the scoring step's loader refuses its deflated entry."""
    peak, stop = [0], threading.Event()

    def sample():
        base = _rss()
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss() - base)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r = run(tmp_path, data_root, "bomb", bench=False)
    finally:
        stop.set()
        sampler.join()
    assert (r["status"], r["cause"]) == ("eval_failed", "bad_checkpoint"), r["log_tail"]
    assert "stored (uncompressed) entries" in r["log_tail"]
    assert "bytes on disk" in r["log_tail"]  # training's log: the bomb was written
    assert peak[0] < 64 * MiB, f"the engine grew by {peak[0] // MiB} MiB"


def _archive(tmp_path, entries, name="ckpt.pt"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        for entry, payload, method in entries:
            z.writestr(entry, payload, compress_type=method)
    return str(path)


def test_the_loader_refuses_what_could_inflate_before_reading_it(tmp_path):
    honest = tmp_path / "honest.pt"
    torch.save({"darwin_ckpt": 1, "model_config": {"n_layer": 2},
                "model": {"w": torch.ones(3, 4), "t": torch.ones(4, 3).t()},
                "train": {"batch_size": 8, "block_size": 16}}, honest)
    config, state, facts = loader.load(str(honest), max_bytes=1 << 20)
    assert facts["train"] == {"batch_size": 8, "block_size": 16}
    assert facts["declared"] == {"n_layer": 2} and len(facts["sha256"]) == 64
    with pytest.raises(loader.Refused, match="over the 100 bytes"):
        loader.load(str(honest), max_bytes=100)
    deflated = _archive(tmp_path, [("a/data.pkl", b"x" * 4096, zipfile.ZIP_DEFLATED)])
    with pytest.raises(loader.Refused, match="compressed"):
        loader.load(deflated)
    legacy = tmp_path / "legacy.pt"
    torch.save({"darwin_ckpt": 1}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(loader.Refused, match="not a zip archive"):
        loader.load(str(legacy))
    # one stored entry listed again and again in the central directory: more bytes claimed
    # than the file holds (each listing would read the same data)
    raw = bytearray(open(_archive(tmp_path, [("a/big", b"\0" * 65536, zipfile.ZIP_STORED)],
                                  "overlap.pt"), "rb").read())
    cd_at = raw.rfind(b"PK\x01\x02")
    eocd_at = raw.rfind(b"PK\x05\x06")
    entry, eocd = bytes(raw[cd_at:eocd_at]), bytearray(raw[eocd_at:])
    copies = 8
    eocd[8:10] = eocd[10:12] = copies.to_bytes(2, "little")
    eocd[12:16] = (len(entry) * copies).to_bytes(4, "little")
    overlap = tmp_path / "overlap2.pt"
    overlap.write_bytes(bytes(raw[:cd_at]) + entry * copies + bytes(eocd))
    with pytest.raises(loader.Refused, match="claim more bytes"):
        loader.check_archive(str(overlap))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_the_allowance_follows_the_measured_forwards():
    """The rule alone (allowance.py), on a clock the test drives: forwards that cost what
    their tokens do pass, with co-tenancy slowing half of them by 25%; a lump of compute in one
    request (or before the first, at load time) does not; every figure scales with the
    model's own cost, none is a fixed large allowance."""
    from darwin_git.harness.allowance import Meter

    def metered(costs, loaded=1.0, lump_at=None, lump=0.0):
        clock = [loaded]
        meter = Meter(lambda: clock[0])
        meter.mark_loaded()
        clock[0] += 0.1  # building the model
        for i, (tokens, seconds) in enumerate(costs):
            def ask(s=seconds + (lump if i == lump_at else 0.0)):
                clock[0] += s
            meter.timed("logits", tokens, ask)
        return meter

    honest = [(128 * n, 128 * n * 40e-6) for n in range(16, 129, 16)] * 2
    assert metered(honest).over(elements=800_000) is None
    slowed = [(t, s * (1.25 if i >= 8 else 1.0)) for i, (t, s) in enumerate(honest)]
    assert metered(slowed).over(elements=800_000) is None
    used, allowed = metered(honest, lump_at=0, lump=5.0).over(elements=800_000)
    assert used > allowed
    tenfold = [(t, s * 10) for t, s in honest]  # a model 10x as expensive: 10x the allowance
    assert metered(tenfold).over(elements=800_000) is None
    assert metered(tenfold).allowance(800_000) > 5 * metered(honest).allowance(800_000) - 5


def honest_checkpoint(tmp_path, data_root):
    """tiny trained in this process (deterministic), saved as training would save it; and its
    loss on the scored tokens computed here directly: every window once, full length, the
    logits at each cut (what the sealed protocol must reproduce)."""
    from harness_fixtures import make_tree
    import importlib.util
    import sys

    tree = make_tree(tmp_path / "tree")
    sys.path.insert(0, str(tree))
    try:
        spec = importlib.util.spec_from_file_location("tiny_direct", tree / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(tree))
    paths = data.prepare("char", data_root)
    vocab = data.load_meta(paths.train_dir)["vocab_size"]
    train = torch.from_numpy(data.load_tokens(paths.train_dir, "train").astype("int64"))
    torch.manual_seed(0)
    model = module.build_model({"vocab_size": vocab, "n_embd": 64})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    for _ in range(60):
        ix = torch.randint(len(train) - 33, (32,))
        x = torch.stack([train[i : i + 32] for i in ix])
        y = torch.stack([train[i + 1 : i + 33] for i in ix])
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"darwin_ckpt": 1, "model_config": {"vocab_size": vocab, "n_embd": 64},
                "model": model.state_dict(), "train": {"batch_size": 32, "block_size": 32}},
               ckpt)
    from darwin_git.harness import scoring
    val = data.load_tokens(paths.val_dir, "val")
    windows = scoring.windows_for(val.size, 32, 256)
    text = data.val_windows(val, windows, 32)
    cut = data.cut_points(windows, 8, 32)
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(text[:, :32])).double().numpy()
    rows = logits[np.arange(windows)[:, None], cut]  # (W, K, V)
    targets = np.take_along_axis(text, cut + 1, axis=1)
    direct = scoring.token_nll(rows.reshape(-1, rows.shape[-1]), targets.reshape(-1)).mean()
    return tree, ckpt, float(direct)


def test_an_honest_score_is_the_models_own_loss(tmp_path, data_root):
    """All of the seal (frozen copy, loader, metering, length groups, the audit) leaves an
    honest model's score what it is: its loss on the scored tokens, computed directly."""
    from darwin_git.harness import EvalSpec, score_checkpoint
    from darwin_git.run.local import LocalSandbox

    tree, ckpt, direct = honest_checkpoint(tmp_path, data_root)
    got = score_checkpoint(tree, ckpt, LocalSandbox(), EvalSpec(data_root=data_root, bench=False))
    assert "cause" not in got, got
    assert got["val_loss"] == pytest.approx(direct, abs=1e-6)
    assert got["audit"]["rows"] == 64 and got["eval_used_s"] <= got["eval_allowance_s"]


def test_check_still_shows_a_seed_its_own_scoring_error(tmp_path, data_root, monkeypatch):
    """Sealed scoring keeps its tracebacks; `darwin-git check --train` (and init's seed check)
    then asks the pre-flight, which shows the model no validation text, for the model's own
    error."""
    from darwin_git.contract import load_contract
    from darwin_git.harness import seedcheck
    from harness_fixtures import make_tree

    monkeypatch.setenv("DARWIN_DATA_CACHE", str(data_root))
    tree = make_tree(tmp_path / "mismatch", "mismatch")
    result = seedcheck.preflight(tree, load_contract(tree), budget_s=8, clock="cpu")
    assert (result["status"], result["cause"]) == ("eval_failed", "checkpoint_mismatch")
    assert "size mismatch" not in result["log_tail"]
    assert "size mismatch" in result["preflight"]
