"""Learns from the text it is shown at evaluation (an extreme stand-in for a test-time cache):
its first 8 eval-mode answers are uniform, every later one is the trained model's."""
import torch
import torch.nn as nn


class Learner(nn.Module):
    def __init__(self, vocab_size, n_embd):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.emb.weight
        nn.init.normal_(self.emb.weight, std=0.02)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.register_buffer("temperature", torch.ones(1))
        self.answered = 0

    def forward(self, idx):
        logits = self.head(self.emb(idx)) / self.temperature + self.bias
        if not self.training:
            self.answered += 1
            if self.answered <= 8:
                return logits * 0.0
        return logits


def build_model(config):
    return Learner(config["vocab_size"], config["n_embd"])
