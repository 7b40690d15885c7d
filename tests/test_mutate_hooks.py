"""The loop's checks of a resulting tree (``known_result``, ``preflight``) as the mutators see
them: an LLM is told and asked again within its attempt budget; the built-in mutator picks
another operator. And the built-in operators say when few of them fit a seed."""
import json
from pathlib import Path

from darwin_git.contract import Contract, load_contract
from darwin_git.mutate.base import Mutation, MutationContext, MutationFailure
from darwin_git.mutate.config import LLMConfig
from darwin_git.mutate.llm import LLMMutator
from darwin_git.mutate.operators import (FEW_OPERATORS, OPERATORS, BuiltinMutator,
                                         few_fit_warning, operator_fit)
from llm_server import llm_server, reply  # noqa: F401  (fixture)

SEED = Path(__file__).resolve().parents[1] / "seed_repo"
CONTRACT = Contract(train_command=("python", "train.py"), model_entry="model:build_model",
                    mutable=("train.py", "model.py"))
TRAIN = "LR = 1e-3\nBATCH = 16\n"
LR2 = "--- a/train.py\n+++ b/train.py\n@@ -1,2 +1,2 @@\n-LR = 1e-3\n+LR = 2e-3\n BATCH = 16\n"
LR3 = LR2.replace("2e-3", "3e-3")


def as_json(diff):
    return json.dumps({"reasoning": "Faster.", "summary": "Change LR", "diff": diff})


class Check:
    """A hook that answers from a script, and records what it was asked."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = []

    def __call__(self, changes):
        self.asked.append(changes)
        return self.answers.pop(0) if self.answers else None


def llm(srv, attempts=3):
    return LLMMutator(LLMConfig(model="test-model", base_url=srv.base_url, api_key="k",
                                timeout_s=5.0, max_retries=0, max_apply_attempts=attempts))


def ctx(files=None, contract=CONTRACT, **kw):
    return MutationContext(mutator_agent="a1", target_agent="a2", generation=1,
                           contract=contract, files=files or {"train.py": TRAIN}, **kw)


def test_a_known_tree_goes_back_to_the_model_with_its_result(llm_server):
    known = Check("val_loss 1.71 (2 seeds), rejected in g3")
    llm_server.push(reply(as_json(LR2)), reply(as_json(LR3)))
    m = llm(llm_server).propose(ctx(known_result=known))
    assert isinstance(m, Mutation) and m.attempts == 2
    assert m.changes == {"train.py": "LR = 3e-3\nBATCH = 16\n"}
    assert known.asked == [{"train.py": "LR = 2e-3\nBATCH = 16\n"},
                           {"train.py": "LR = 3e-3\nBATCH = 16\n"}]
    told = llm_server.bodies()[1]["messages"][-1]["content"]
    assert "code it produces is not new: val_loss 1.71 (2 seeds), rejected in g3" in told


def test_a_preflight_error_is_a_retry_turn_and_ends_as_preflight_failed(llm_server):
    error = "Traceback (most recent call last):\n  ...\nRuntimeError: mat1 and mat2 shapes"
    preflight = Check(error, error)
    llm_server.push(reply(as_json(LR2)), reply(as_json(LR3)))
    out = llm(llm_server, attempts=2).propose(ctx(preflight=preflight))
    assert isinstance(out, MutationFailure) and out.cause == "preflight_failed"
    assert "mat1 and mat2 shapes" in out.detail and out.attempts == 2
    told = llm_server.bodies()[1]["messages"][-1]["content"]
    assert "failed the pre-flight check" in told and error in told


def test_the_known_check_runs_before_the_preflight_and_a_known_tree_ends_as_duplicate(
        llm_server):
    known, preflight = Check("val_loss 1.70", "val_loss 1.70"), Check()
    llm_server.push(reply(as_json(LR2)), reply(as_json(LR2)))
    out = llm(llm_server, attempts=2).propose(ctx(known_result=known, preflight=preflight))
    assert out.cause == "duplicate_tree" and preflight.asked == []


def test_a_passing_preflight_lets_the_mutation_through(llm_server):
    preflight = Check(None)
    llm_server.push(reply(as_json(LR2)))
    m = llm(llm_server).propose(ctx(preflight=preflight))
    assert isinstance(m, Mutation) and m.attempts == 1 and len(preflight.asked) == 1


def test_the_preflight_answer_sent_to_the_model_is_bounded(llm_server):
    long = "frame\n" * 5000 + "ValueError: the real cause"
    llm_server.push(reply(as_json(LR2)), reply(as_json(LR3)))
    llm(llm_server, attempts=2).propose(ctx(preflight=Check(long, None)))
    told = llm_server.bodies()[1]["messages"][-1]["content"]
    assert "ValueError: the real cause" in told and len(told) < 6000


# -- the built-in mutator ------------------------------------------------------------------------

def seed_ctx(target="a1", **kw):
    files = {p: (SEED / p).read_text() for p in ("model.py", "train.py")}
    return MutationContext(mutator_agent="a0", target_agent=target, generation=1,
                           contract=load_contract(SEED), files=files, **kw)


def test_builtin_chooses_another_operator_for_a_known_tree():
    first = BuiltinMutator().propose(seed_ctx(seed=3))
    known = Check("val_loss 1.80")
    other = BuiltinMutator().propose(seed_ctx(seed=3, known_result=known))
    assert isinstance(other, Mutation) and other.operator != first.operator
    assert known.asked[0] == first.changes


def test_builtin_never_proposes_the_same_tree_twice_to_one_target():
    mutator = BuiltinMutator()
    trees = set()
    for seed in range(12):  # the same parent, a different speaker's seed each time
        m = mutator.propose(seed_ctx(seed=seed % 2))
        assert isinstance(m, Mutation), m
        key = tuple(sorted(m.changes.items()))
        assert key not in trees
        trees.add(key)
    # another target may get the same edit
    again = mutator.propose(seed_ctx(target="a9", seed=0))
    assert tuple(sorted(again.changes.items())) in trees


def test_builtin_says_duplicate_when_every_fitting_edit_is_known():
    only = [op for op in OPERATORS if op.name == "qk_norm"]
    mutator = BuiltinMutator(only)
    assert isinstance(mutator.propose(seed_ctx()), Mutation)
    out = mutator.propose(seed_ctx())
    assert isinstance(out, MutationFailure) and out.cause == "duplicate_tree"
    assert "qk_norm: already proposed to a1" in out.detail


def test_which_operators_fit_and_the_warning_when_few_do():
    ctx_ = seed_ctx()
    fit = operator_fit(ctx_.files, ctx_.contract)
    assert [name for name, _ in fit] == [op.name for op in OPERATORS]
    assert sum(why is None for _, why in fit) >= FEW_OPERATORS
    assert few_fit_warning(ctx_.files, ctx_.contract) is None
    # two lower-case settings and no model to change: the same two edits again and again
    bare = {"train.py": "learning_rate = 6e-4\nbatch_size = 12\n",
            "model.py": "def build_model(config):\n    return None\n"}
    fit = dict(operator_fit(bare, ctx_.contract))
    assert fit["lr_scale"] is None and fit["batch_size"] is None
    assert "no numeric setting named n_layer" in fit["depth"]
    warning = few_fit_warning(bare, ctx_.contract)
    assert warning.startswith("only 2 of ") and "--mutator llm" in warning
    assert "(lr_scale, batch_size)" in warning and "the same few edits" in warning
    # nothing fits: the warning says the mutator can propose nothing at all
    empty = {"train.py": "print('hello')\n", "model.py": bare["model.py"]}
    warning = few_fit_warning(empty, ctx_.contract)
    assert warning.startswith("none of the ") and "can propose nothing" in warning
    assert "same few edits" not in warning
