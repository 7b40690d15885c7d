"""How the harness measures throughput and MFU (the README quotes this docstring).

- tokens_per_s: before scoring, the parent sends the model server a "bench" request: k
  forward+backward steps (cross-entropy, gradients discarded, weights reloaded afterwards) on
  fixed batches of the training split at the training batch shape that the checkpoint's
  "train" dict declares (batch_size x block_size), under bf16 autocast on CUDA and fp32 on CPU
  with eval_threads() intra-op threads (half the cores, at most 8: scoring leaves room for
  other slots, and oversubscribed OpenMP threads slow a shared box tenfold). One untimed
  warm-up step goes first; k is chosen so the timed request lasts about ``bench_s`` seconds.
  tokens_per_s = k * batch_size * block_size / the wall time the *parent* sees for the request
  (pipe round trip included, so it is a slight underestimate). The server returns each step's
  loss, and throughput.py checks them against the harness's own cross-entropy on one of those
  batches, asked for afterwards as ordinary logits: a forward that does less work when timed
  is caught there, and tokens/s and MFU are then marked untrusted.
- params: the parameters the server says it bound after loading, counted from the checkpoint's
  own storage (checkpoint.py): an expanded or overlapping entry counts nothing.
- flops_per_token = 6 * params + 12 * n_layer * n_embd * block_size, the second (attention)
  term only when model_config has n_layer and n_embd (the PaLM/nanoGPT estimate).
- mfu = flops_per_token * tokens_per_s / peak_flops. Above 1 it is impossible: the result keeps
  val_loss, and tokens_per_s and mfu move under throughput_untrusted with the reason.
- peak_flops: on CUDA, the dense bf16 tensor-core peak of the device, looked up by its name in
  GPU_PEAK_BF16 (first matching pattern wins); an unknown GPU gives mfu None. On CPU, a measured
  fp32 matmul probe (512x512 matmuls in torch, best of many, the same eval_threads()); every
  evaluation probes briefly again and ~/.cache/darwin-git/peak_flops.json keeps the highest
  value seen on the machine, so a probe taken under load cannot inflate MFU for good;
  DARWIN_PEAK_FLOPS overrides both.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

# Dense bf16 peaks (FLOP/s, no sparsity), from vendor data sheets; order matters (specific first).
GPU_PEAK_BF16 = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM / HBM3
    ("GH200", 989e12),
    ("A100", 312e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),  # fp16 tensor cores: V100 has no bf16
    ("T4", 65e12),  # fp16 likewise
)


def eval_threads() -> int:
    return max(1, min((os.cpu_count() or 1) // 2, 8))


def gpu_peak(name: str) -> float | None:
    for pattern, peak in GPU_PEAK_BF16:
        if pattern.lower() in name.lower():
            return peak
    return None


def flops_per_token(params: int, model_config: dict, block_size: int | None) -> float:
    flops = 6.0 * params
    n_layer, n_embd = model_config.get("n_layer"), model_config.get("n_embd")
    if isinstance(n_layer, int) and isinstance(n_embd, int) and block_size:
        flops += 12.0 * n_layer * n_embd * block_size
    return flops


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cache_path() -> Path:
    from ..data import cache_root

    return cache_root() / "peak_flops.json"


def measure_cpu_peak(size: int = 512, seconds: float = 0.5) -> float:
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(eval_threads())
    try:
        return _probe(torch, size, seconds)
    finally:
        torch.set_num_threads(saved)


def _probe(torch, size: int, seconds: float) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    best, end = 0.0, time.perf_counter() + seconds
    torch.mm(a, b)
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - t))
    return best


def cpu_peak() -> float:
    """The CPU fp32 matmul peak: the highest probe ever measured on this machine (hostname +
    CPU + cores + threads). Every call probes again briefly and keeps the maximum, so a first
    probe taken while other work loaded the cores cannot inflate MFU for good."""
    key = f"{platform.node()}|{cpu_name()}|{os.cpu_count()}|{eval_threads()} threads"
    path = _cache_path()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    known = cache.get(key) if isinstance(cache.get(key), (int, float)) else 0.0
    peak = max(float(known), measure_cpu_peak(seconds=0.3 if known else 1.0))
    if peak > known:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**cache, key: peak}))
        except OSError:
            pass  # an unwritable cache only costs a longer probe next time
    return peak


def peak_flops(device: str, device_name: str) -> float | None:
    override = os.environ.get("DARWIN_PEAK_FLOPS")
    if override:
        try:
            return float(override)
        except ValueError:
            pass
    return gpu_peak(device_name) if device == "cuda" else cpu_peak()
