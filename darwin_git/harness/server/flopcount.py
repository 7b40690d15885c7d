"""Counting the matmul FLOPs of the model that is run (standalone, like the rest of this folder).

A torch-function mode sees every call of the functions that do a model's arithmetic, whatever
module, config or code path leads to them; each adds its FLOPs from the shapes it was called
with: 2 x the output's elements x the contracted size for linear layers and matrix products
(``F.linear``, ``@``, ``matmul``, ``mm``, ``bmm``, ``addmm``, ``baddbmm``, ``einsum``,
``conv1d``), 4 x L x S x E per (batch, head) for attention (``scaled_dot_product_attention``,
no causal discount) and the projections and attention of ``multi_head_attention_forward``.
Elementwise work is not counted, as in the PaLM/nanoGPT estimate. A training step is counted
as 3 x its forward (the backward computes the gradients of both operands of every product).
(torch.utils.flop_counter's dispatch mode does the same one level lower, but starts by
loading a second of machinery in every server, and does not count CPU attention.)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_PRODUCTS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__,
             torch.Tensor.__rmatmul__, torch.mm, torch.Tensor.mm, torch.bmm, torch.Tensor.bmm,
             torch.addmm, torch.Tensor.addmm, torch.baddbmm, torch.Tensor.baddbmm}


class Counter(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self.flops += _flops(func, args, kwargs, out)
        except Exception:  # noqa: BLE001 - an odd call counts nothing; the model still runs
            pass
        return out


def _flops(func, args, kwargs, out) -> int:
    if func is F.linear:
        weight = args[1] if len(args) > 1 else kwargs["weight"]
        return 2 * out.numel() * weight.shape[-1]
    if func in _PRODUCTS:
        a, b = (args[1], args[2]) if func in (torch.addmm, torch.Tensor.addmm, torch.baddbmm,
                                              torch.Tensor.baddbmm) else (args[0], args[1])
        if func is torch.Tensor.__rmatmul__:
            a, b = b, a
        k = a.shape[-1] if a.dim() > 0 else 1
        return 2 * out.numel() * k
    if func is F.scaled_dot_product_attention:
        q, k, v = args[:3]
        batch = math.prod(q.shape[:-2])
        return 2 * batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    if func is torch.einsum:
        operands = args[1:] if len(args) > 2 or not isinstance(args[1], (list, tuple)) \
            else args[1]
        letters = args[0].split("->")[0].replace(" ", "").split(",")
        sizes = {}
        for term, t in zip(letters, operands):
            for letter, n in zip(term, t.shape):
                sizes[letter] = n
        return 2 * math.prod(sizes.values()) if len(operands) > 1 else 0
    if func is F.conv1d:
        weight = args[1] if len(args) > 1 else kwargs["weight"]
        return 2 * out.numel() * math.prod(weight.shape[1:])
    if func is F.multi_head_attention_forward:
        query, key = args[0], args[1]
        embed, heads = args[3], args[4]
        length, source = query.shape[0], key.shape[0]
        batch = query.numel() // (length * embed)
        projections = 2 * batch * embed * embed * (length + 2 * source + length)
        return projections + 4 * batch * length * source * embed
    return 0


def count(forward, x) -> int:
    """The matmul FLOPs of ``forward(x)``."""
    with torch.no_grad(), Counter() as counter:
        forward(x)
    return counter.flops
