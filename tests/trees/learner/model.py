"""Learns from the text it is shown at evaluation (an extreme stand-in for a test-time cache):
its first 16 eval-mode answers (the first two scoring requests: each goes in 8 forwards, by
length) are uniform, every later one is the trained model's (tiny's)."""
from tiny_model import Bigram


class Learner(Bigram):
    def __init__(self, vocab_size, n_embd):
        super().__init__(vocab_size, n_embd)
        self.answered = 0

    def forward(self, idx):
        logits = super().forward(idx)
        if not self.training:
            self.answered += 1
            if self.answered <= 16:
                return logits * 0.0
        return logits


def build_model(config):
    return Learner(config["vocab_size"], config["n_embd"])
