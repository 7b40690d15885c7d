"""How the harness measures throughput and MFU (the README quotes this docstring).

- tokens_per_s: in the audit step (evaluate.py), before any validation text is shown there,
  the parent sends the model server a "bench" request: k forward+backward steps
  (cross-entropy, gradients discarded, weights reloaded afterwards) on fixed batches of the
  training split at the training batch shape that the checkpoint's "train" dict declares
  (batch_size x block_size), under bf16 autocast on CUDA and fp32 on CPU with eval_threads()
  intra-op threads (half the cores, at most 8: scoring leaves room for other slots, and
  oversubscribed OpenMP threads slow a shared box tenfold). One untimed warm-up step goes
  first; k is chosen so the timed request lasts about ``bench_s`` seconds. The request is
  timed on the run's clock: CPU seconds of the whole step from the sandbox's count on the cpu
  clock (so that other tenants' load does not move it), the wall time the parent sees on the
  wall clock and on CUDA. tokens_per_s = k * batch_size * block_size / those seconds. The
  server returns each step's loss, and throughput.py checks them against the harness's own
  cross-entropy on one of those batches, asked for afterwards as ordinary logits: a forward that
  does less work when timed is caught there, and tokens/s and MFU are then marked untrusted.
- params: the parameters the server says it bound after loading, counted from the checkpoint's
  own storage as the server's loader read it before any code of the tree ran (checkpoint.py):
  an expanded or overlapping entry counts nothing.
- flops_per_token: counted, never declared. The server runs one row of the bench's batch, at
  the training context, under the harness's FLOP counter (server/flopcount.py: every matrix
  product and attention the model's forward actually calls, whatever its config says); a
  training step is 3 x the forward, per token (``flops_source`` "counted"). Where the counter
  cannot run the model, 6 * params (``flops_source`` "6N"). The model_config's
  declared n_layer and n_embd give the PaLM/nanoGPT estimate 6 * params + 12 * n_layer * n_embd
  * block_size (:func:`flops_per_token`), only to be compared: more than DECLARED_TOLERANCE
  away from the count is ``declared_mismatch`` in the result.
- mfu = flops_per_token * tokens_per_s / peak, on the same clock as tokens_per_s
  (``mfu_clock``). Above 1 it is impossible: the result keeps val_loss, and tokens_per_s and
  mfu move under throughput_untrusted with the reason.
- peak (``peak_flops``, and ``peak_basis`` says which): on CUDA, the dense bf16 tensor-core
  peak of the device, looked up by its name in GPU_PEAK_BF16 (first matching pattern wins; an
  unknown GPU gives mfu None), per wall second. On CPU, a measured fp32 matmul probe (512x512
  matmuls in torch on one thread, best of many) in FLOPs per CPU second of that thread: the peak
  of one core, which on the cpu clock is the peak of every CPU second the bench spends (on the
  wall clock, times eval_threads()). Every evaluation probes briefly again and
  ~/.cache/darwin-git/peak_flops.json keeps the highest value seen on the machine, so a probe
  taken under load cannot inflate MFU for good; DARWIN_PEAK_FLOPS overrides both (per second of
  the MFU's clock).
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


DECLARED_TOLERANCE = 0.25  # a declared estimate this far from the count is flagged


def flops_per_token(params: int, model_config: dict, block_size: int | None) -> float:
    """The estimate a config declares (6N + attention from n_layer, n_embd): compared with the
    harness's count, never used for MFU."""
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
    """fp32 matmul FLOPs per CPU second of one thread (thread_time: what this thread computed,
    whatever else the process or the machine runs)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _probe(torch, size, seconds)
    finally:
        torch.set_num_threads(saved)


def _probe(torch, size: int, seconds: float) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    best, end = 0.0, time.perf_counter() + seconds
    torch.mm(a, b)
    while time.perf_counter() < end:
        t = time.thread_time()
        for _ in range(4):
            torch.mm(a, b)
        spent = time.thread_time() - t
        if spent > 0:
            best = max(best, 4 * 2 * size**3 / spent)
    return best


def cpu_peak() -> float:
    """The CPU fp32 matmul peak per CPU second of one core: the highest probe ever measured on
    this machine (hostname + CPU + cores). Every call probes again briefly and keeps the
    maximum, so a first probe taken while other work loaded the cores cannot inflate MFU for
    good."""
    key = f"{platform.node()}|{cpu_name()}|{os.cpu_count()}|per CPU second of one thread"
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


def peak_flops(device: str, device_name: str, clock: str = "wall") -> tuple[float | None, str]:
    """(the peak FLOPs per second of ``clock``, what it is): the clock MFU is computed on."""
    override = os.environ.get("DARWIN_PEAK_FLOPS")
    if override:
        try:
            return float(override), f"DARWIN_PEAK_FLOPS, per {clock} second"
        except ValueError:
            pass
    if device == "cuda":
        peak = gpu_peak(device_name)
        return peak, f"dense bf16 of {device_name} (GPU table), per wall second"
    core = cpu_peak()
    if clock == "cpu":
        return core, "fp32 matmul probe of one core, per CPU second"
    threads = eval_threads()
    return core * threads, f"fp32 matmul probe of one core x {threads} threads, per wall second"
