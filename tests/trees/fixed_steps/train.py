"""tiny's training for a fixed 30 steps on one thread: the same weights every run."""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from model import build_model
from settings import BATCH_SIZE, BLOCK_SIZE, N_EMBD

torch.set_num_threads(1)
torch.manual_seed(int(os.environ["DARWIN_SEED"]))
data_dir = os.environ["DARWIN_DATA"]
data = torch.from_numpy(np.fromfile(os.path.join(data_dir, "train.bin"), dtype=np.uint16)
                        .astype(np.int64))
config = {"vocab_size": json.load(open(os.path.join(data_dir, "meta.json")))["vocab_size"],
          "n_embd": N_EMBD}
model = build_model(config)
opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
for step in range(1, 31):
    ix = torch.randint(len(data) - BLOCK_SIZE - 1, (BATCH_SIZE,))
    x = torch.stack([data[i : i + BLOCK_SIZE] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + BLOCK_SIZE] for i in ix])
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
torch.save({"darwin_ckpt": 1, "model_config": config, "model": model.state_dict(),
            "train": {"batch_size": BATCH_SIZE, "block_size": BLOCK_SIZE}},
           os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt"))
print(f"steps: {step}")
