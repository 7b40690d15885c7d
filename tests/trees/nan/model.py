import torch.nn as nn


class Broken(nn.Module):
    def __init__(self, vocab_size, n_embd):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, n_embd)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx):
        return self.head(self.emb(idx)) * float("nan")


def build_model(config):
    return Broken(config["vocab_size"], config["n_embd"])
