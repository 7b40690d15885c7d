"""A model whose answers depend on what it was asked before: every other scoring request gets
sharper logits (x 1.5). Both halves of the scoring pass hold as many of each, so their losses
stay alike (the order test sees nothing); a fresh process asking some of the same tokens in
another order answers some of them the other way. (A stand-in for any state a model keeps
across requests: a cache, a counter, weights it trains as it goes.)"""
import torch

from tiny_model import Bigram


class Stateful(Bigram):
    def __init__(self, vocab_size, n_embd):
        super().__init__(vocab_size, n_embd)
        self.asked = 0

    def forward(self, idx):
        logits = super().forward(idx)
        if torch.is_inference_mode_enabled():
            self.asked += 1
            if self.asked % 2:
                return logits * 1.5
        return logits


def build_model(config):
    return Stateful(config["vocab_size"], config["n_embd"])
