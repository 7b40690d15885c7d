"""The bundled corpus, its tokenizers, the train/validation split and the validation windows.

Everything here is deterministic: the same corpus and tokenizer always give the same split, the
same token files and the same windows, so results from different runs and machines compare.

On-disk layout written by :func:`prepare` (uint16 little-endian token ids):

    <root>/<tokenizer>/train/train.bin  + meta.json   <- the only data a training run sees
    <root>/<tokenizer>/train/nanogpt/   train.bin, val.bin, meta.pkl: the same training split
                                        in nanoGPT's layout, its last tenth held out as val.bin
    <root>/<tokenizer>/val/val.bin      + meta.json   <- read by the harness alone

The nanoGPT folder lets a training script that reads ``data/<dataset>/{train,val}.bin`` and
``meta.pkl`` (karpathy/nanoGPT) run unchanged with ``dataset`` pointed at it. Its val.bin is
cut from the training split, never from the harness's validation text: the script's own
evaluation monitors held-out training text, and the fitness stays the harness's measurement.
"""
from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).parent / "assets"
CORPUS_PATH = ASSETS / "shakespeare.txt.gz"
CORPUS_SHA256 = "1cb3c4bee669e3cc307f1bc2f6e75a9c7cd46c12c6303670e99e36f02ccad656"
GPT2_RANKS_PATH = ASSETS / "gpt2.tiktoken"
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# r50k_base's pre-tokenizer pattern (GPT-2); the ranks file alone does not carry it.
R50K_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Every VAL_EVERY-th block of BLOCK_CHARS characters is validation: it samples every work
# rather than holding out the last few plays, and blocks never overlap.
BLOCK_CHARS = 4096
VAL_EVERY = 10
TOKENIZERS = ("char", "gpt2")
DATA_FORMAT = 1
NANOGPT_DIR = "nanogpt"  # nanoGPT's layout, inside the training folder
NANOGPT_HOLDOUT = 0.1  # the share of the training split its val.bin holds (nanoGPT's 90/10)


class DataError(Exception):
    """The bundled data is missing or does not match its pinned checksum."""


@lru_cache(maxsize=1)
def corpus_text() -> str:
    raw = gzip.decompress(CORPUS_PATH.read_bytes())
    if hashlib.sha256(raw).hexdigest() != CORPUS_SHA256:
        raise DataError(f"{CORPUS_PATH} does not match its pinned sha256; reinstall darwin-git")
    return raw.decode("ascii")


def split_text(text: str) -> tuple[str, str]:
    """Deterministic split: block i goes to validation when i % VAL_EVERY == VAL_EVERY - 1."""
    train, val = [], []
    for i in range(0, len(text), BLOCK_CHARS):
        block = text[i : i + BLOCK_CHARS]
        (val if (i // BLOCK_CHARS) % VAL_EVERY == VAL_EVERY - 1 else train).append(block)
    return "".join(train), "".join(val)


class CharTokenizer:
    name = "char"

    def __init__(self, chars: str):
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.vocab_size = len(chars)

    @classmethod
    def for_corpus(cls) -> "CharTokenizer":
        return cls("".join(sorted(set(corpus_text()))))

    def encode(self, text: str) -> list[int]:
        return [self.stoi[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def token_bytes(self) -> np.ndarray:
        return np.array([len(c.encode()) for c in self.chars], dtype=np.int64)


class Gpt2Tokenizer:
    """GPT-2 BPE through tiktoken, from the bundled ranks file: never a download."""

    name = "gpt2"

    def __init__(self):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        ranks = load_tiktoken_bpe(str(GPT2_RANKS_PATH), expected_hash=GPT2_RANKS_SHA256)
        self.enc = tiktoken.Encoding(
            name="gpt2-local",
            pat_str=R50K_PATTERN,
            mergeable_ranks=ranks,
            special_tokens={"<|endoftext|>": 50256},
        )
        self.vocab_size = self.enc.n_vocab

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def decode(self, ids) -> str:
        return self.enc.decode(list(ids))

    def token_bytes(self) -> np.ndarray:
        return np.array(
            [len(self.enc.decode_single_token_bytes(i)) for i in range(self.vocab_size)],
            dtype=np.int64,
        )


def get_tokenizer(name: str):
    if name == "char":
        return CharTokenizer.for_corpus()
    if name == "gpt2":
        return Gpt2Tokenizer()
    raise DataError(f"unknown tokenizer {name!r}; choose one of {', '.join(TOKENIZERS)}")


@dataclass(frozen=True)
class DataPaths:
    train_dir: Path  # train.bin + meta.json: mounted into training
    val_dir: Path  # val.bin + meta.json: the harness's alone


def cache_root() -> Path:
    """darwin-git's own cache folder, ~/.cache/darwin-git: the tokenized corpus (data/, unless
    DARWIN_DATA_CACHE says elsewhere) and the measured CPU peak (harness/flops.py)."""
    return Path.home() / ".cache" / "darwin-git"


def default_data_root() -> Path:
    return Path(os.environ.get("DARWIN_DATA_CACHE", cache_root() / "data"))


def _write_split(directory: Path, name: str, ids: list[int], meta: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(ids, dtype=np.uint16)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.bin.")
    with os.fdopen(fd, "wb") as f:
        arr.tofile(f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, directory / f"{name}.bin")
    _atomic_json(directory / "meta.json", {**meta, "n_tokens": int(arr.size)})


def _atomic_json(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; sandboxed steps run as another user
    os.replace(tmp, path)


def prepare(tokenizer: str = "char", root: Path | None = None) -> DataPaths:
    """Tokenize the bundled corpus once into ``root``; later calls reuse the files."""
    root = Path(root) if root is not None else default_data_root()
    base = root / f"{tokenizer}-v{DATA_FORMAT}"
    paths = DataPaths(base / "train", base / "val")
    nanogpt = paths.train_dir / NANOGPT_DIR / "meta.pkl"
    if (paths.train_dir / "meta.json").exists() and (paths.val_dir / "meta.json").exists() \
            and nanogpt.exists():
        return paths
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{tokenizer}.lock", "w") as lock:  # parallel runs tokenize once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ((paths.train_dir / "meta.json").exists() and
                (paths.val_dir / "meta.json").exists()):
            _tokenize(tokenizer, paths)
        if not nanogpt.exists():  # a cache from before the layout existed gets it too
            _write_nanogpt(paths.train_dir)
    return paths


def _tokenize(tokenizer: str, paths: DataPaths) -> None:
    tok = get_tokenizer(tokenizer)
    train_text, val_text = split_text(corpus_text())
    meta = {"format": DATA_FORMAT, "tokenizer": tokenizer, "vocab_size": tok.vocab_size,
            "corpus_sha256": CORPUS_SHA256}
    if tokenizer == "char":
        meta["chars"] = tok.chars
    _write_split(paths.train_dir, "train", tok.encode(train_text),
                 {**meta, "n_bytes": len(train_text.encode())})
    _write_split(paths.val_dir, "val", tok.encode(val_text),
                 {**meta, "n_bytes": len(val_text.encode())})


def _write_nanogpt(train_dir: Path) -> None:
    """nanoGPT's layout of the training split: train.bin (the first 90%), val.bin (the last
    10%, held out of this train.bin) and meta.pkl (vocab_size; itos and stoi for characters)."""
    import pickle

    meta = load_meta(train_dir)
    ids = load_tokens(train_dir, "train")
    cut = int(ids.size * (1 - NANOGPT_HOLDOUT))
    folder = train_dir / NANOGPT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    for name, part in (("train", ids[:cut]), ("val", ids[cut:])):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.bin.")
        with os.fdopen(fd, "wb") as f:
            part.tofile(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / f"{name}.bin")
    info = {"vocab_size": int(meta["vocab_size"])}
    if "chars" in meta:
        info["itos"] = dict(enumerate(meta["chars"]))
        info["stoi"] = {c: i for i, c in enumerate(meta["chars"])}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".meta.pkl.")
    with os.fdopen(fd, "wb") as f:
        pickle.dump(info, f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / "meta.pkl")  # last: its presence says the folder is complete


def load_tokens(directory: Path, name: str) -> np.ndarray:
    return np.fromfile(Path(directory) / f"{name}.bin", dtype=np.uint16)


def load_meta(directory: Path) -> dict:
    return json.loads((Path(directory) / "meta.json").read_text())


def val_windows(val_tokens: np.ndarray, n_windows: int, context: int) -> np.ndarray:
    """A fixed set of evenly spaced, disjoint windows of ``context + 1`` tokens (inputs + next
    token), shape (n_windows, context + 1).

    Evenly spaced rather than random so that the set depends on nothing but the split; disjoint
    so that revealing one window's text (scoring.py) never reveals another's.
    """
    span = context + 1
    if val_tokens.size < span * n_windows:
        raise DataError(f"validation split has {val_tokens.size} tokens, fewer than {n_windows} "
                        f"disjoint windows of {span}")
    last = val_tokens.size - span
    starts = np.linspace(0, last, num=n_windows).astype(np.int64)
    return np.stack([val_tokens[s : s + span] for s in starts]).astype(np.int64)


def cut_points(n_windows: int, n_cuts: int, context: int) -> np.ndarray:
    """The scored positions of each window, shape (n_windows, n_cuts): strictly increasing in
    [0, context), one per stretch of context / n_cuts positions, shifted from window to window
    by golden-ratio steps so that together they cover every position about equally (the mean
    over them estimates the mean over all positions, as scoring every token would)."""
    if not 1 <= n_cuts <= context:
        raise DataError(f"need 1 to {context} cut points per window, not {n_cuts}")
    stretch = context / n_cuts
    phase = (np.arange(n_windows) * 0.6180339887498949) % 1.0
    cuts = np.floor((np.arange(n_cuts)[None, :] + phase[:, None]) * stretch).astype(np.int64)
    return np.minimum(cuts, context - 1)
