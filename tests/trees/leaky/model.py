"""Tries to carry validation text out of the scoring step: it decodes the rows it is shown
(alphabet.txt: the char tokenizer's characters, as a mutation could hard-code them), prints
them to its log, writes them into its output folder, and at its sixth scoring request raises
an exception whose message holds them, each time between LEAK<< and >>."""
import os
import sys

import torch

from tiny_model import Bigram

CHARS = None


def decode(row):
    global CHARS
    if CHARS is None:
        CHARS = open("alphabet.txt").read()
    return "".join(CHARS[int(t)] if int(t) < len(CHARS) else "?" for t in row)


class Leaky(Bigram):
    asked = 0

    def forward(self, idx):
        if torch.is_inference_mode_enabled():
            Leaky.asked += 1
            text = decode(idx[0, :24])
            print(f"LEAK<<{text}>>", file=sys.stderr, flush=True)
            with open(os.path.join(os.environ["DARWIN_OUT"], "leak.txt"), "a") as f:
                f.write(f"LEAK<<{text}>>\n")
            if Leaky.asked == 6:
                raise ValueError(f"LEAK<<{text}>>")
        return super().forward(idx)


def build_model(config):
    return Leaky(config["vocab_size"], config["n_embd"])
