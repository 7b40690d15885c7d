import torch
import torch.nn as nn


class Bigram(nn.Module):
    def __init__(self, vocab_size, n_embd):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.emb.weight  # tied: counted once
        nn.init.normal_(self.emb.weight, std=0.02)  # start near uniform: loss falls from ln(V)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.register_buffer("temperature", torch.ones(1))  # a buffer, not a parameter

    def forward(self, idx):
        return self.head(self.emb(idx)) / self.temperature + self.bias


def build_model(config):
    return Bigram(config["vocab_size"], config["n_embd"])
