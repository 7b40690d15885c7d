"""The pre-flight (harness/preflight.py) on real trees in the real local sandbox: a tree that
cannot import, build its model, or load its own checkpoint is caught before it is queued, and
the error goes back to the model as a retry turn."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from darwin_git.evolve.generation import Generation
from darwin_git.evolve.proposals import Proposals
from darwin_git.harness.preflight import Preflight
from darwin_git.mutate.config import LLMConfig
from darwin_git.mutate.llm import LLMMutator
from darwin_git.readmodel import ReadModel
from darwin_git.run.local import LocalSandbox
from darwin_git.settings import EvolveSettings
from conftest import Events
from llm_server import llm_server, mutation_reply  # noqa: F401  (fixture)

TREES = Path(__file__).parent / "trees"
pytestmark = pytest.mark.slow  # the pre-flight trains each tree in the real sandbox


def tree(tmp_path: Path, **files: str) -> Path:
    """tests/trees/tiny (a bigram model that trains in about a second) with ``files`` laid
    over it (name -> text; "mismatch" takes that variant's settings)."""
    dest = tmp_path / "tree"
    shutil.copytree(TREES / "tiny", dest)
    for name, text in files.items():
        (dest / f"{name}.py").write_text(text)
    return dest


@pytest.fixture(scope="module")
def preflight():
    return Preflight(LocalSandbox())


def test_a_tree_that_trains_passes(tmp_path, preflight):
    v = preflight.check(tree(tmp_path))
    assert (v.ok, v.stage, v.error) == (True, "passed", None), v
    assert v.seconds > 0


def test_a_syntax_error_is_caught_with_its_traceback(tmp_path, preflight):
    model = (TREES / "tiny" / "model.py").read_text().replace("def forward(self, idx):",
                                                             "def forward(self, idx)")
    v = preflight.check(tree(tmp_path, model=model))
    assert (v.ok, v.stage) == (False, "train")
    assert "exited with status 1" in v.error and "SyntaxError" in v.error
    assert "DARWIN_PREFLIGHT=1" in v.error


def test_a_model_the_server_cannot_build_is_caught(tmp_path, preflight):
    """Training builds its model by hand; the checkpoint's config is not enough to build it
    again, so scoring would fail after a whole training run."""
    model = (TREES / "tiny" / "model.py").read_text() + (
        "\n\ndef build_model(config):\n    return Bigram(config['vocab_size'], config['width'])\n")
    train = (TREES / "tiny" / "train.py").read_text().replace(
        "model = build_model(config)", "from model import Bigram\nmodel = Bigram(vocab, N_EMBD)")
    v = preflight.check(tree(tmp_path, model=model, train=train))
    assert (v.ok, v.stage) == (False, "model")
    assert "could not build the model: build_model(model_config)" in v.error
    assert "KeyError: 'width'" in v.error and 'File "model.py", line' in v.error  # short names


def test_a_checkpoint_that_does_not_match_its_model_is_caught(tmp_path, preflight):
    settings = (TREES / "mismatch" / "settings.py").read_text()  # saved n_embd 48, trained 64
    v = preflight.check(tree(tmp_path, settings=settings))
    assert (v.ok, v.stage) == (False, "model")
    assert "the checkpoint's weights do not fit it" in v.error and "size mismatch" in v.error


def test_training_that_never_ends_is_inconclusive_not_blamed(tmp_path):
    train = "import time\nwhile True:\n    sum(range(10**6))\n"
    v = Preflight(LocalSandbox(), limit_s=2).check(tree(tmp_path, train=train))
    assert v.ok and v.stage == "inconclusive" and "DARWIN_PREFLIGHT" in v.note


def test_the_error_goes_back_to_the_model_and_the_fix_is_the_child(tmp_path, llm_server):
    """Through the loop's hook: the model's first change does not import; it is told why, and
    its corrected change is the only child; the failed try is an event, not a training run."""
    from darwin_git.create import init_population

    pop = init_population(tmp_path / "run" / "population", seed=tree(tmp_path), agents=1)
    # it parses (code that does not is refused before the pre-flight), and fails when run
    broken = ("--- a/settings.py\n+++ b/settings.py\n@@ -1,3 +1,3 @@\n-N_EMBD = 64\n"
              "+N_EMBD = 64 + WIDTH\n BATCH_SIZE, BLOCK_SIZE = 32, 32\n"
              " SAVED_CONFIG_OVERRIDES = {}  # what the checkpoint claims beyond what was trained\n")
    fixed = broken.replace("+N_EMBD = 64 + WIDTH", "+N_EMBD = 32")
    llm_server.push(mutation_reply(broken, summary="Width 64+"),
                    mutation_reply(fixed, summary="Narrow to 32"))
    events = Events()
    made = _self_mutations(pop, llm_server, events, attempts=2)
    assert [pop.message(c)[0] for _, _, c in made] == ["Narrow to 32"]
    told = llm_server.bodies()[1]["messages"][-1]["content"]
    assert "failed the pre-flight check" in told and "NameError" in told
    checks = events.of("preflight")
    assert [(e["ok"], e["stage"]) for e in checks] == [(False, "train"), (True, "passed")]
    assert all(e["mutator"] == "agent-00" and e["generation"] == 1 for e in checks)


def test_the_last_failed_try_is_recorded_as_preflight_failed(tmp_path, llm_server):
    from darwin_git.create import init_population

    pop = init_population(tmp_path / "run" / "population", seed=tree(tmp_path), agents=1)
    broken = ("--- a/settings.py\n+++ b/settings.py\n@@ -1 +1 @@\n-N_EMBD = 64\n"
              "+N_EMBD = 64 + WIDTH\n")
    llm_server.push(mutation_reply(broken, summary="Width 64+"))
    assert _self_mutations(pop, llm_server, Events(), attempts=1) == []
    [note] = pop.records(pop.tip("agent-00"), "attempt")
    assert note["cause"] == "preflight_failed" and note["summary"] == "Width 64+"
    assert "NameError" in note["detail"]
    assert (note["origin"], note["stage"]) == ("code", "check")


def _self_mutations(pop, llm_server, events, attempts: int) -> list:
    """Generation 1's proposals of agent-00 for itself through the LLM mutator (up to
    ``attempts`` turns), every child checked by the pre-flight in a local sandbox."""
    mutator = LLMMutator(LLMConfig(model="m", base_url=llm_server.base_url, api_key="k",
                                   max_retries=0, max_apply_attempts=attempts))
    props = Proposals(pop, EvolveSettings(budget_s=3, pairing="self"), mutator, events,
                      ReadModel(pop).conditions, preflight=Preflight(LocalSandbox()))
    gen = Generation(1)
    gen.read_tips(pop.agents())
    return list(props.mutations(gen, [("agent-00", "agent-00")]))
