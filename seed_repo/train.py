"""Train the GPT in model.py on $DARWIN_DATA/train.bin for a fixed compute budget.

darwin-git runs this with the tree read-only and gives it (environment):
  DARWIN_DATA          folder with train.bin (uint16 token ids) and meta.json (vocab_size, ...)
  DARWIN_OUT           the only writable folder; the checkpoint goes to $DARWIN_OUT/ckpt.pt
  DARWIN_BUDGET_S      seconds for the whole run, saving and exit included, on the clock below
  DARWIN_BUDGET_CLOCK  cpu: CPU seconds of the whole run (every thread; time.process_time())
                       wall: seconds since DARWIN_BUDGET_START (epoch seconds, set by the harness)
  DARWIN_DEVICE        cpu | cuda
  DARWIN_SEED          random seed
  DARWIN_PREFLIGHT     1: darwin-git's pre-flight: take one optimizer step on a tiny batch,
                       save the checkpoint, exit (proves in seconds that the code trains)
The harness stops the run shortly after the budget and then scores nothing; it measures
validation loss itself, on held-out text this run never sees.
"""
import os
import time

# the budget counts from the start of the run (the harness's start): imports are part of it
T0 = float(os.environ.get("DARWIN_BUDGET_START") or time.time())

import json
import math

import numpy as np
import torch

from model import build_model

# ---- settings: every one on one screen, with the reason beside it -----------------------
BUDGET_S = float(os.environ.get("DARWIN_BUDGET_S", "60"))  # given by the harness
CLOCK = os.environ.get("DARWIN_BUDGET_CLOCK", "wall")  # what the harness counts the budget in
DEVICE = os.environ.get("DARWIN_DEVICE", "cpu")  # cpu | cuda, same code on both
SEED = int(os.environ.get("DARWIN_SEED", "0"))  # the harness varies it to measure noise
PREFLIGHT = os.environ.get("DARWIN_PREFLIGHT") == "1"  # one step on a tiny batch, then save
DATA_DIR = os.environ.get("DARWIN_DATA", "data")
OUT_DIR = os.environ.get("DARWIN_OUT", "out")

N_LAYER = 4  # depth: 4 blocks fit a CPU minute and still model local syntax
N_HEAD = 4  # head_dim 32 keeps attention matmuls reasonably shaped
N_EMBD = 128  # width: ~0.8M params, the size a CPU minute can train
BLOCK_SIZE = 128  # context; must be >= the harness's eval context (darwin.toml [eval])
DROPOUT = 0.0  # a one-minute run never overfits 4.5M characters
BIAS = False  # biases add params and nothing measurable at this size
BATCH_SIZE = 16  # sequences per step: 2k tokens, a good step rate on 2 CPU cores

LEARNING_RATE = 2e-3  # small models tolerate, and need, a high peak rate
MIN_LR_RATIO = 0.1  # cosine decays to 10% of the peak, not zero: the last steps still learn
WARMUP_FRAC = 0.05  # warm up over the first 5% of the budget: Adam's moments start empty
WEIGHT_DECAY = 0.1  # on matrices only (see param groups); regularises the embeddings' scale
BETA1, BETA2 = 0.9, 0.99  # beta2 < 0.999 lets Adam adapt quickly in short runs
GRAD_CLIP = 1.0  # a bad batch must not throw the run off
SAVE_MARGIN_S = min(1.0, 0.1 * BUDGET_S)  # saving + exit fit in it; never count on more
LOG_EVERY = 1 if DEVICE == "cpu" else 10  # .item() syncs a GPU; on CPU a line per step is free
COMPILE = DEVICE == "cuda"  # torch.compile pays off on GPU; on CPU its compile time does not
# -------------------------------------------------------------------------------------------
if PREFLIGHT:  # the pre-flight checks that the code runs, not how well it learns
    BATCH_SIZE, COMPILE = 2, False

torch.manual_seed(SEED)
np.random.seed(SEED)
if DEVICE == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = True  # free speed on Ampere+ for fp32 leftovers
    torch.backends.cudnn.allow_tf32 = True
# bf16 autocast on GPU: half the memory traffic, same exponent range as fp32 (no loss scaling)
autocast = torch.autocast("cuda", dtype=torch.bfloat16) if DEVICE == "cuda" else torch.autocast(
    "cpu", enabled=False
)

meta = json.load(open(os.path.join(DATA_DIR, "meta.json")))
data = np.memmap(os.path.join(DATA_DIR, "train.bin"), dtype=np.uint16, mode="r")


def get_batch():
    ix = np.random.randint(0, len(data) - BLOCK_SIZE - 1, size=BATCH_SIZE)
    x = torch.from_numpy(np.stack([data[i : i + BLOCK_SIZE] for i in ix]).astype(np.int64))
    y = torch.from_numpy(np.stack([data[i + 1 : i + 1 + BLOCK_SIZE] for i in ix]).astype(np.int64))
    if DEVICE == "cuda":  # pinned + non_blocking overlaps the copy with compute
        return x.pin_memory().to(DEVICE, non_blocking=True), y.pin_memory().to(DEVICE, non_blocking=True)
    return x, y


model_config = dict(
    vocab_size=meta["vocab_size"], block_size=BLOCK_SIZE, n_layer=N_LAYER, n_head=N_HEAD,
    n_embd=N_EMBD, dropout=DROPOUT, bias=BIAS,
)
model = build_model(model_config).to(DEVICE)
n_params = sum(p.numel() for p in model.parameters())

# decay matrices only: decaying norms' gains and biases hurts and buys nothing
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
optimizer = torch.optim.AdamW(
    [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
    lr=LEARNING_RATE, betas=(BETA1, BETA2), fused=DEVICE == "cuda",
)
train_model = torch.compile(model) if COMPILE else model


def clock():
    """Seconds of budget used so far, on the harness's clock."""
    return time.process_time() if CLOCK == "cpu" else time.time() - T0


def lr_at(progress):
    """Warmup then cosine, both over the fraction of the budget used."""
    if progress < WARMUP_FRAC:
        return LEARNING_RATE * progress / WARMUP_FRAC
    t = min(1.0, (progress - WARMUP_FRAC) / (1.0 - WARMUP_FRAC))
    return LEARNING_RATE * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * t)))


deadline = BUDGET_S - SAVE_MARGIN_S
train_start, train_wall = clock(), time.time()
step, tokens, last_loss, step_s = 0, 0, float("nan"), 0.0
while True:
    now = clock()
    if PREFLIGHT and step == 1:
        break
    if not PREFLIGHT and now + step_s >= deadline:  # a step ending past the deadline: not begun
        break
    x, y = get_batch()
    t_step = time.time()
    with autocast:
        _, loss = train_model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    # the rate is set from the budget used once this step's gradients exist, so the first
    # step already moves (never a step at LR 0)
    progress = (clock() - train_start) / max(1e-9, deadline - train_start)
    lr = lr_at(progress)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    step += 1
    tokens += x.numel()
    step_s = clock() - now
    if step % LOG_EVERY == 0 or step == 1:
        last_loss = loss.item()  # .item() syncs the GPU: only on logging steps
        dt = time.time() - t_step
        print(f"step {step} | loss {last_loss:.4f} | lr {lr:.2e} | {dt * 1000:.1f} ms | "
              f"{x.numel() / dt:.0f} tok/s | progress {progress:.3f}", flush=True)

train_wall = time.time() - train_wall
os.makedirs(OUT_DIR, exist_ok=True)
ckpt = {
    "darwin_ckpt": 1,
    "model_config": model_config,
    "model": model.state_dict(),  # the uncompiled module: no "_orig_mod." prefixes
    "train": {"batch_size": BATCH_SIZE, "block_size": BLOCK_SIZE},
}
torch.save(ckpt, os.path.join(OUT_DIR, "ckpt.pt"))

print(f"steps: {step}")
print(f"tokens: {tokens}")
print(f"train_loss: {last_loss:.4f}")
print(f"params: {n_params}")
print(f"wall_s: {time.time() - T0:.2f}")
print(f"cpu_s: {time.process_time():.2f}")
print(f"tokens_per_s: {tokens / max(1e-9, train_wall):.0f}")
