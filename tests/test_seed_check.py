"""A seed that cannot train is refused before anything is created: darwin.toml's fields, the
tree read statically, then one real run through the harness (`init`; `evolve --seed`)."""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from conftest import TRAINING_SEED as SEED

from darwin_git.cli import cli
from darwin_git.contract import ContractError, parse_contract
from darwin_git.create import init_population
from darwin_git.harness.seedcheck import SeedError, tree_problems


@pytest.fixture
def good_seed(tmp_path):
    """conftest's bigram seed: trains for 0.4 s and scores."""
    seed = tmp_path / "seed"
    seed.mkdir()
    for name, text in SEED.items():
        (seed / name).write_text(text)
    return seed


def init(repo, seed, *args):
    return CliRunner().invoke(cli, ["init", "--seed", str(seed), "--repo", str(repo), *args])


@pytest.mark.parametrize("old, new, message", [
    ('entry = "model:build_model"', 'entry = "model:build-model"', "Python names"),
    ('tokenizer = "char"', 'tokenizer = "bpe"', "tokenizer 'bpe' is unknown"),
    ("context = 16", "context = -5", "context must be a whole number"),
    ("context = 16", "context = 16.5", "context must be a whole number"),
    ("budget_s = 5", "budget_s = 0", "budget_s must be a positive"),
    ('mutable = ["train.py", "model.py"]', 'mutable = "train.py"', "list of path globs"),
    ('entry = "model:build_model"', 'entry = "model:build_model"\ncheckpoint = "../x.pt"',
     "relative path inside DARWIN_OUT"),
])
def test_contract_fields_are_validated(old, new, message):
    text = SEED["darwin.toml"]
    assert old in text
    with pytest.raises(ContractError, match=message):
        parse_contract(text.replace(old, new))


@pytest.mark.parametrize("edit, message", [
    (lambda s: (s / "darwin.toml").write_text(SEED["darwin.toml"].replace(
        "model:build_model", "model:nope")), "model.py defines no nope"),
    (lambda s: (s / "model.py").unlink(), "no module file model.py"),
    (lambda s: (s / "darwin.toml").write_text(SEED["darwin.toml"].replace(
        '"model.py"]', '"model.py", "configs/*.yaml"]')), "'configs/*.yaml' matches no file"),
    (lambda s: (s / "darwin.toml").write_text(SEED["darwin.toml"].replace(
        '"train.py"]', '"run.py"]')), "runs run.py, which is not a file of the seed"),
    (lambda s: (s / "train.py").write_text("import torch\nfor x in range(3)\n    pass\n"),
     "train.py line 2: expected ':'"),
])
def test_init_refuses_a_seed_whose_files_do_not_fit_its_contract(tmp_path, good_seed, edit,
                                                                  message):
    edit(good_seed)
    repo = tmp_path / "run" / "population"
    out = init(repo, good_seed)
    assert out.exit_code == 2 and message in out.output, out.output
    assert len(out.output.strip().splitlines()) == 2  # the progress line, then the error
    assert not repo.exists() and not (tmp_path / "run").exists()  # nothing created
    with pytest.raises(SeedError, match=re.escape(message)):  # the library checks it too
        init_population(repo, seed=good_seed)


def test_static_checks_accept_the_shapes_seeds_use(tmp_path):
    seed = tmp_path / "s"
    (seed / "pkg").mkdir(parents=True)
    (seed / "pkg" / "__init__.py").write_text("from .net import make as build\n")
    (seed / "run.sh").write_text("python -m pkg.train\n")
    (seed / "pkg" / "train.py").write_text("print('go')\n")
    toml = SEED["darwin.toml"].replace('["python", "train.py"]', '["bash", "run.sh"]') \
        .replace("model:build_model", "pkg:build").replace('["train.py", "model.py"]',
                                                            '["pkg/*.py"]')
    assert tree_problems(seed, parse_contract(toml)) == []
    toml = toml.replace('["bash", "run.sh"]', '["python", "-u", "-m", "pkg.train"]')
    assert tree_problems(seed, parse_contract(toml)) == []
    toml = toml.replace('"pkg.train"', '"torch.utils.collect_env"')  # installed, not ours
    assert tree_problems(seed, parse_contract(toml)) == []


@pytest.mark.slow
def test_init_runs_the_seed_once_and_refuses_one_that_cannot_train(tmp_path, good_seed):
    (good_seed / "train.py").write_text(SEED["train.py"].replace(
        "model = build_model(", "raise RuntimeError('no GPU here')\nmodel = build_model("))
    repo = tmp_path / "run" / "population"
    out = init(repo, good_seed)
    assert out.exit_code == 2, out.output
    assert "cannot train: train_failed (exception): RuntimeError: no GPU here" in out.output
    assert not repo.exists()
    out = init(repo, good_seed, "--no-check")  # the escape hatch
    assert out.exit_code == 0 and repo.is_dir(), out.output


@pytest.mark.slow
def test_init_accepts_a_seed_that_trains(tmp_path, good_seed):
    repo = tmp_path / "run" / "population"
    out = init(repo, good_seed, "--agents", "2")
    assert out.exit_code == 0, out.output
    assert "Created population" in out.output


def test_evolve_refuses_a_seed_with_a_syntax_error_before_any_run(tmp_path, good_seed):
    (good_seed / "train.py").write_text(SEED["train.py"] + "def broken(:\n")
    line = len(SEED["train.py"].splitlines()) + 1
    repo = tmp_path / "run" / "population"
    out = CliRunner().invoke(cli, ["evolve", "--seed", str(good_seed), "--repo", str(repo),
                                   "--runner", "local", "--generations", "1"])
    assert out.exit_code == 2, out.output
    assert out.output.strip().splitlines() == [
        f"Error: seed {good_seed}: train.py line {line}: invalid syntax; fix the seed, or skip this "
        "check with --no-check"]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_evolve_refuses_a_seed_that_cannot_train_before_any_run(tmp_path, good_seed):
    (good_seed / "train.py").write_text(SEED["train.py"].replace(
        "model = build_model(", "raise RuntimeError('no GPU here')\nmodel = build_model("))
    repo = tmp_path / "run" / "population"
    out = CliRunner().invoke(cli, ["evolve", "--seed", str(good_seed), "--repo", str(repo),
                                   "--runner", "local", "--generations", "1"])
    assert out.exit_code == 2 and "cannot train" in out.output, out.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_seed_that_cannot_save_within_its_budget_is_told_why(tmp_path, good_seed):
    """Interpreter start and importing torch are part of the budget: one second cannot hold
    them, and the refusal says the harness's finding, not the training's last line."""
    toml = good_seed / "darwin.toml"
    toml.write_text(toml.read_text().replace("budget_s = 5", "budget_s = 1"))
    out = init(tmp_path / "run" / "population", good_seed)
    assert out.exit_code == 2, out.output
    assert "cannot train: timeout (budget_exceeded): " in out.output
    # saved after the budget, or (a slower machine) stopped at its limit while saving
    assert ("ckpt.pt was written after the 1 s budget" in out.output
            or "over the 3 s limit (budget + 2 s save window)" in out.output), out.output
