"""Read a training checkpoint in the trusted parent: ``weights_only=True``, never code."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..contract import CHECKPOINT_FORMAT


class CheckpointError(Exception):
    pass


@dataclass
class Checkpoint:
    model_config: dict
    train: dict
    tensors: dict  # name -> torch.Tensor (the state_dict)

    def params(self, bound: dict[str, list[int]]) -> tuple[int, list[str]]:
        """Parameters the model really holds, and a note for every entry left out.

        Only entries the model server says it bound as parameters after loading (same name,
        same shape) are counted, and each from the checkpoint's own storage: an entry whose
        elements overlap (stride 0 as from ``expand``, or an ``as_strided`` view) counts
        nothing, and views of one storage together never count more than the storage holds
        (tied weights once). So neither a huge expanded entry that the model's own
        ``load_state_dict`` drops, nor a server that claims it, inflates params or MFU.
        """
        notes: list[str] = []
        storages: dict[int, tuple[int, set]] = {}
        for name, shape in bound.items():
            t = self.tensors.get(name)
            if t is None or list(t.shape) != list(shape):
                notes.append(f"{name}: not in the checkpoint with shape {list(shape)}")
                continue
            if t.numel() == 0:
                continue
            if not _distinct_elements(t):
                notes.append(f"{name}: elements share memory (stride {list(t.stride())})")
                continue
            storage = t.untyped_storage()
            held = storage.nbytes() // t.element_size()
            end = t.storage_offset() + sum(st * (n - 1) for st, n in zip(t.stride(), t.shape))
            if end >= held:
                notes.append(f"{name}: reaches past its storage")
                continue
            _, views = storages.setdefault(storage.data_ptr(), (held, set()))
            views.add((t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.numel()))
        total = sum(min(held, sum(v[3] for v in views)) for held, views in storages.values())
        return total, notes


def _distinct_elements(t) -> bool:
    """True when no two indices of ``t`` address the same element: taking dimensions by
    increasing stride, each stride must step past everything the smaller ones reach."""
    reach = 0
    for stride, size in sorted((st, n) for st, n in zip(t.stride(), t.shape) if n > 1):
        if stride <= reach:
            return False
        reach += stride * (size - 1)
    return True


def load_checkpoint(path: Path) -> Checkpoint:
    import torch

    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be mmapped
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a verdict, not a crash
        raise CheckpointError(f"cannot load {path.name} with weights_only=True: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("darwin_ckpt") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path.name} is not a darwin checkpoint (need darwin_ckpt: 1)")
    config, state, train = ckpt.get("model_config"), ckpt.get("model"), ckpt.get("train", {})
    if not isinstance(config, dict):
        raise CheckpointError("checkpoint has no model_config dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("checkpoint 'model' is not a state_dict of tensors")
    return Checkpoint(config, train if isinstance(train, dict) else {}, state)
