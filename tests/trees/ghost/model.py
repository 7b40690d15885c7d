"""An attack on params and MFU: the saved state holds an extra entry of 10**12 elements that is
one float on disk (an expanded zero); the model drops it when loading, yet names it among its
parameters; and when called like the bench (gradients on, inside the model server) its forward
returns a free tensor instead of computing. Otherwise tiny's model."""
import os

import torch

from tiny_model import Bigram

GHOST = "ghost"


class Ghost(Bigram):
    def __init__(self, vocab_size, n_embd):
        super().__init__(vocab_size, n_embd)
        self.ghost = torch.zeros(1).expand(10**12)

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        state[GHOST] = self.ghost
        return state

    def load_state_dict(self, state, strict=True, **kwargs):
        return super().load_state_dict({k: v for k, v in state.items() if k != GHOST}, strict)

    def named_parameters(self, *args, **kwargs):
        yield from super().named_parameters(*args, **kwargs)
        if not self.training:
            yield GHOST, self.ghost

    def forward(self, idx):
        if os.environ.get("DARWIN_CKPT") and torch.is_grad_enabled():  # the bench
            return torch.zeros(*idx.shape, self.bias.shape[0], requires_grad=True)
        return super().forward(idx)


def build_model(config):
    return Ghost(config["vocab_size"], config["n_embd"])
