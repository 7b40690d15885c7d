"""Tries the validation text from the scoring step (snoop.py). Nothing the step prints leaves
it, so the answer travels as the cause: a model that read anything fails to build
(``model_error``); one that was denied everything builds, and its forward fails on token ids
(``forward_failed``: an nn.Linear(1, 1), as training saved)."""
import torch.nn as nn

from snoop import snoop


def build_model(config):
    said = snoop("eval")
    if "READ" in said:
        raise RuntimeError(said)
    return nn.Linear(1, 1)
