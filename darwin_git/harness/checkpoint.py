"""What the harness knows about a checkpoint, without ever loading it in the engine.

A step's files are read only inside a bounded step: the model server's loader
(server/loader.py) opens the checkpoint under the step's memory limit, refuses archives that
could inflate, and sends :class:`Facts` before any code of the tree runs in its process. The
engine itself only copies the file (its frozen copy, :func:`freeze`) and hashes it; it checks
the server's digest against its own and counts parameters from the facts.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MAX_FACTS_BYTES = 8 << 20  # the loaded message (loader.MAX_ENTRIES entries of <= 200-char names)


class CheckpointError(Exception):
    pass


def freeze(src: Path, dest: Path) -> str:
    """The harness's own copy of a step's checkpoint (a new file no step ever held, read-only),
    taken once every process of the step has been stopped; its sha256."""
    h = hashlib.sha256()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f, open(dest, "wb") as out:
        while block := f.read(1 << 20):
            h.update(block)
            out.write(block)
    os.chmod(dest, 0o444)
    return h.hexdigest()


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    storage: int  # which storage of the checkpoint (entries sharing one are views of it)
    storage_elements: int
    floating: bool


@dataclass(frozen=True)
class Facts:
    """The server loader's account of the checkpoint (validated: it travels through a pipe)."""
    sha256: str
    tensors: dict[str, Tensor]
    train: dict  # {"batch_size", "block_size"}: the declared training batch shape (ints)
    declared: dict  # model_config's n_layer, n_embd, ... (ints): compared, never computed from

    @classmethod
    def from_loaded(cls, header: dict) -> "Facts":
        digest = header.get("sha256")
        if not isinstance(digest, str) or len(digest) != 64:
            raise CheckpointError("the loader sent no digest")
        tensors = {}
        for item in header.get("tensors") if isinstance(header.get("tensors"), list) else []:
            try:
                name, shape, stride, offset, storage, held, floating = item
                t = Tensor(tuple(_ints(shape)), tuple(_ints(stride)), int(offset), int(storage),
                           int(held), bool(floating))
            except (TypeError, ValueError):
                raise CheckpointError("the loader sent a malformed tensor entry") from None
            if not isinstance(name, str) or len(t.shape) != len(t.stride):
                raise CheckpointError("the loader sent a malformed tensor entry")
            tensors[name] = t
        ints = lambda d: {k: v for k, v in (d if isinstance(d, dict) else {}).items()  # noqa
                          if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)}
        return cls(digest, tensors, ints(header.get("train")), ints(header.get("declared")))

    @property
    def elements(self) -> int:
        """Elements of the checkpoint's floating-point storages (each counted once)."""
        held = {t.storage: t.storage_elements for t in self.tensors.values() if t.floating}
        return sum(held.values())

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
        foreign = 0  # bound under a name or shape the checkpoint does not have
        for name, shape in bound.items():
            t = self.tensors.get(name)
            if t is None or list(t.shape) != list(shape):
                foreign += 1  # (never named: the name is the scoring step's, not training's)
                continue
            numel = _prod(t.shape)
            if numel == 0:
                continue
            if not _distinct_elements(t.shape, t.stride):
                notes.append(f"{name}: elements share memory (stride {list(t.stride)})")
                continue
            end = t.offset + sum(st * (n - 1) for st, n in zip(t.stride, t.shape))
            if end >= t.storage_elements:
                notes.append(f"{name}: reaches past its storage")
                continue
            _, views = storages.setdefault(t.storage, (t.storage_elements, set()))
            views.add((t.offset, t.shape, t.stride, numel))
        if foreign:
            notes.append(f"{foreign} bound parameter(s) not in the checkpoint by name and shape")
        total = sum(min(held, sum(v[3] for v in views)) for held, views in storages.values())
        return total, notes


def _ints(values) -> list[int]:
    if not isinstance(values, list) or not all(isinstance(v, int) and v >= 0 for v in values):
        raise ValueError("not a list of non-negative ints")
    return values


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _distinct_elements(shape, stride) -> bool:
    """True when no two indices address the same element: taking dimensions by increasing
    stride, each stride must step past everything the smaller ones reach."""
    reach = 0
    for st, size in sorted((st, n) for st, n in zip(stride, shape) if n > 1):
        if st <= reach:
            return False
        reach += st * (size - 1)
    return True
