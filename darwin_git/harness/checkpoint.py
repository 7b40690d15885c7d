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

    def params(self, exclude: set[str] = frozenset()) -> int:
        """Elements of the state_dict, each shared (tied) tensor counted once."""
        seen, total = set(), 0
        for name, t in self.tensors.items():
            if name in exclude:
                continue
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
            if key not in seen:
                seen.add(key)
                total += t.numel()
        return total


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
