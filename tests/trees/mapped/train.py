"""Trains into the save window and hides it: the checkpoint is written before the budget
through a shared writable mapping of the file (the page faults, and the file's change time, all
fall before the budget), training goes on until the clock is 0.5 s past the budget (inside the
2 s window), and the later weights are copied into the same mapping before it exits at once
(no interpreter teardown to overrun the window). Pages that are already dirty take the copy
without a fault, so no change time need record it."""
import io
import json
import mmap
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from model import build_model
from settings import BATCH_SIZE, BLOCK_SIZE, N_EMBD

torch.set_num_threads(1)
budget = float(os.environ["DARWIN_BUDGET_S"])
start = float(os.environ["DARWIN_BUDGET_START"])
torch.manual_seed(int(os.environ["DARWIN_SEED"]))
tokens = np.fromfile(os.path.join(os.environ["DARWIN_DATA"], "train.bin"), dtype=np.uint16)
data = torch.from_numpy(tokens.astype(np.int64))
vocab = json.load(open(os.path.join(os.environ["DARWIN_DATA"], "meta.json")))["vocab_size"]
config = {"vocab_size": vocab, "n_embd": N_EMBD}
model = build_model(config)
opt = torch.optim.AdamW(model.parameters(), lr=3e-2)


def used():
    cpu = os.environ["DARWIN_BUDGET_CLOCK"] == "cpu"
    return time.process_time() if cpu else time.time() - start


def train_until(t):
    steps = 0
    while used() < t:
        ix = torch.randint(len(data) - BLOCK_SIZE - 1, (BATCH_SIZE,))
        x = torch.stack([data[i : i + BLOCK_SIZE] for i in ix])
        y = torch.stack([data[i + 1 : i + 1 + BLOCK_SIZE] for i in ix])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    return steps


def saved() -> bytes:
    buf = io.BytesIO()
    torch.save({"darwin_ckpt": 1, "model_config": config, "model": model.state_dict(),
                "train": {"batch_size": BATCH_SIZE, "block_size": BLOCK_SIZE}}, buf)
    return buf.getvalue()


before = train_until(budget - 0.5)
first = saved()
fd = os.open(os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt"), os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, len(first))
mapped = mmap.mmap(fd, len(first))  # MAP_SHARED, writable
mapped[:] = first  # every page faults here, before the budget
after = train_until(budget + 0.5)
second = saved()
assert len(second) == len(first)
mapped[:] = second  # the pages are dirty already: no fault, no change time
print(f"steps: {before} before the budget, {after} more in the save window", flush=True)
os._exit(0)
