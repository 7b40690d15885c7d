import torch.nn as nn


class Peeker(nn.Module):
    """Adds the mean embedding of the whole window to every position: it sees the future."""

    def __init__(self, vocab_size, n_embd):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, n_embd)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx):
        h = self.emb(idx)
        return self.head(h + h.mean(dim=1, keepdim=True))


def build_model(config):
    return Peeker(config["vocab_size"], config["n_embd"])
