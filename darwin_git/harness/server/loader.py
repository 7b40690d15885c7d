"""Reading a step's checkpoint where it is bounded: in the model server's own sandboxed step,
before any code of the tree runs there (standalone, like the rest of this folder).

The engine never unpickles or decompresses what a step wrote: a small archive can inflate
1000-fold (deflate) and a pickle can ask for anything. Here the step's memory limit holds,
and :func:`load` refuses, before ``torch.load`` reads a byte of it, anything but what
``torch.save`` writes: a zip archive whose entries are all stored (never compressed), so that
nothing inflates past the file's own size (itself under the step's per-file limit), and whose
entries claim no more bytes than the file holds (no overlapping entries). Then
``torch.load(weights_only=True, mmap=True)``: tensors are read from the file's pages, never
copied twice.

What it returns for the harness (:func:`facts`) is computed here, before the tree's code is
imported, and sent as the server's first message: the file's sha256 (which the harness checks
against the copy it froze when training ended), every state_dict entry's layout (the harness
counts parameters from it: checkpoint.py), the declared training batch shape and the model
config's declared sizes (the harness compares them with what it measures; it never computes
from them).
"""
from __future__ import annotations

import hashlib
import os
import zipfile

DECLARED = ("n_layer", "n_embd", "n_head", "block_size", "vocab_size")
MAX_ENTRIES = 20_000  # state_dict entries the harness is told about (a 124M GPT-2 has 150)


class Refused(Exception):
    """The file is not a checkpoint this loader reads; the message says why (no file content)."""


def check_archive(path: str, max_bytes: int | None = None) -> int:
    """The file's size, once it is known to be a plain torch.save archive within bounds."""
    size = os.path.getsize(path)
    if max_bytes is not None and size > max_bytes:
        raise Refused(f"the checkpoint is {size} bytes, over the {max_bytes} bytes a step may "
                      "write in one file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise Refused("not a zip archive (torch.save's format since torch 1.6, the only one "
                      f"read): {exc.__class__.__name__}") from exc
    with archive:
        claimed = 0
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise Refused(f"entry {info.filename[:80]!r} is compressed (method "
                              f"{info.compress_type}): torch.save stores entries, and a "
                              "compressed one could inflate far past the file's size")
            claimed += info.file_size
            if claimed > size:
                raise Refused("the archive's entries claim more bytes than the file holds "
                              f"({claimed} > {size}): entries overlap")
    return size


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def load(path: str, max_bytes: int | None = None):
    """(model_config, state_dict, facts) of a darwin checkpoint, or Refused."""
    import torch

    size = check_archive(path, max_bytes)
    digest = sha256(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(ckpt, dict) or ckpt.get("darwin_ckpt") != 1:
        raise Refused("not a darwin checkpoint (need darwin_ckpt: 1)")
    config, state, train = ckpt.get("model_config"), ckpt.get("model"), ckpt.get("train", {})
    if not isinstance(config, dict):
        raise Refused("the checkpoint has no model_config dict")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise Refused("the checkpoint's 'model' is not a state_dict of named tensors")
    if len(state) > MAX_ENTRIES:
        raise Refused(f"the state_dict has {len(state)} entries, more than {MAX_ENTRIES}")
    return config, state, facts(digest, size, state, train, config)


def facts(digest: str, size: int, state: dict, train, config: dict) -> dict:
    """What the harness is told: numbers, and the entries' names (written by training)."""
    storages: dict[int, int] = {}
    tensors = []
    for name, t in state.items():
        storage = t.untyped_storage()
        key = storages.setdefault(storage.data_ptr(), len(storages))
        tensors.append([name[:200], list(t.shape), list(t.stride()), int(t.storage_offset()),
                        key, int(storage.nbytes() // max(1, t.element_size())),
                        bool(t.is_floating_point())])
    ints = lambda d, keys: {k: d[k] for k in keys if isinstance(d, dict)  # noqa: E731
                            and isinstance(d.get(k), int) and not isinstance(d.get(k), bool)}
    return {"sha256": digest, "bytes": size, "tensors": tensors,
            "train": ints(train, ("batch_size", "block_size")),
            "declared": ints(config, DECLARED)}
