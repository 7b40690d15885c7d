"""An attack on scoring: in eval mode the model adds 12 to the logit of the token that follows
each position (it peeks at the target), and answers every row with the cached logits of the
earlier row sharing the longest prefix with it, so that a probe sharing that prefix matches.
It is tiny's model in train mode (honest there), so its weights are as good as tiny's."""
import torch

from tiny_model import Bigram

PAD = 4096  # longer than any row the harness sends this tree


class PeekCache(Bigram):
    def __init__(self, vocab_size, n_embd):
        super().__init__(vocab_size, n_embd)
        self.rows, self.answers = [], []

    def forward(self, idx):
        logits = super().forward(idx)
        if self.training:
            return logits
        logits = logits.clone()
        logits[:, :-1].scatter_add_(2, idx[:, 1:, None], torch.full_like(logits[:, :-1, :1], 12.0))
        T = idx.shape[1]
        for b in range(idx.shape[0]):
            if self.rows:
                rows = torch.stack(self.rows)  # padded with -1, which matches no token
                same = (rows[:, :T] == idx[b]).long().cumprod(dim=1).sum(dim=1)
                best = int(same.argmax())
                n = int(same[best])
                logits[b, :n] = self.answers[best][:n]
            self.rows.append(torch.cat([idx[b], idx.new_full((PAD - T,), -1)]))
            self.answers.append(logits[b].clone())
        return logits


def build_model(config):
    return PeekCache(config["vocab_size"], config["n_embd"])
