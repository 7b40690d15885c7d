"""Scoring the model's code cannot fake: no scored token reaches it before its prediction is in.

The protocol (one evaluation, W = spec.windows, K = spec.cuts, T = the contract's context):

- **What is scored** is fixed by the validation split alone: W disjoint windows of T + 1 tokens,
  evenly spaced over the split (data.val_windows), and in each window K strictly increasing cut
  points c_1 < ... < c_K in [0, T), staggered across windows so that together they cover every
  position about equally (data.cut_points). Every evaluation scores the same W*K tokens, so two
  trees' losses differ token by token on identical text (a paired comparison; see
  :func:`paired_se`).
- **How it is asked**: the windows are split at random (per evaluation) into two halves served
  one after the other. For each half and each cut index j, one request holds every window of
  the half as a row: its real tokens at positions 0..c_j and, after them, filler (uniformly
  random tokens, independent of the text) up to the longest real prefix in the request, which
  sets the rows' length (a causal model's logits at c_j do not depend on what follows, so
  rows need not be longer); rows in random order. The answer is the logits at
  position c_j only; their target, token c_j + 1, has not been in any request yet. The parent
  records the answer before it sends the next request, which reveals more text. So caching
  answers, probing with altered rows or peeking at later positions buys nothing: a model that
  looks ahead sees filler, and whatever it learns from a later request cannot change an answer
  already recorded.
- val_loss = the mean over the W*K scored tokens of -log softmax(logits)[target], in nats,
  computed here in float64 (logits beyond the vocabulary, e.g. a padded head, only take
  probability mass away); bpb divides the summed nats by ln 2 and the UTF-8 bytes of the scored
  targets.

Cost per evaluation: 2K requests (+ spec.probes) of W/2 rows; the request for cut index j has
rows about (j + 1) T / K long, so about W*T*(K+1)/2 tokens are forwarded for W*K scored (a
probe adds one request). Defaults W = 256, K = 8: 2,048 scored tokens in 16 forwards of 128
rows + 2 probe forwards; at the seed's T = 128 about 147,000 tokens (+ ~18,000 for the probes)
through the model in eval mode, the forward compute of about 27 of the seed's training steps (a
step is 2,048 tokens forward and backward, ~3 forwards' worth). On a GPU that is a fraction of
a second; on CPU it is seconds (benchmarks/scoring_cost.py measures it against the old
protocol, which forwarded 17,408 tokens in 17 forwards). The answer to a request is
(rows, 1, V) floats, never (rows, T, V); with a large vocabulary the rows of one cut index go
in several requests, so that the model's own logits stay under MODEL_LOGIT_BYTES (GPT-2's
50,257 tokens at T = 128: 10 rows a forward, 13 forwards a cut index). When the split cannot hold W disjoint windows of T + 1
tokens (GPT-2 tokens at T = 1024 hold ~140), W is the most it can hold.

What the causality probes are still for: nothing of the score. A model that peeks only sees
filler, and scores worse for it. They remain a cheap, precise diagnosis (cause ``noncausal``)
so that a mutation that broke causality is told so instead of just scoring badly: spec.probes
requests repeat a scored request with fresh filler, and the logits at the cut must not move.

Cross-window adaptation: the server sees the revealed text of every window in serving order and
could learn from it at test time (say, an n-gram cache of the text of earlier windows). The
two halves are served in random order, so a model whose losses do not depend on what it has
seen scores both halves alike; a second half better than the first by more than ADAPT_Z
standard errors is cause ``test_time_learning``. The test is blunt: its power is limited by how
much windows differ in difficulty (with 128 windows a half, a gain below roughly 0.2 nats passes).

Residual risks:
- The validation text is public (the complete works of Shakespeare): a model, or an LLM writing
  a mutation, may know it from pre-training and could carry it into the weights or the code;
  the harness only keeps the split unreachable from the sandboxed steps.
- Adaptation below the test's power, as above.
"""
from __future__ import annotations

import math

import numpy as np

from .. import data as data_mod
from .client import Client

VOCAB_SLACK = 1024  # a head may be padded past the vocabulary (50257 -> 50304); never more
MODEL_LOGIT_BYTES = 256 << 20  # the logits a forward of the model holds: GPT-2 tokens at
# T = 128 fit 10 rows a request, characters every row
PROBE_ATOL = PROBE_RTOL = 5e-3
ADAPT_Z = 5.0  # randomised halves: an honest model falls below -5 with probability ~3e-7


def score(client: Client, val_dir, tokenizer: str, context: int, vocab: int, windows: int,
          cuts: int, probes: int, rng: np.random.Generator) -> dict:
    """Run the protocol; the metrics, or {"cause", "detail"} when the model failed it. Also
    returns ``token_losses`` (windows x cuts, nats), for paired comparisons."""
    tokens = data_mod.load_tokens(val_dir, "val")
    windows = windows_for(tokens.size, context, windows)
    text = data_mod.val_windows(tokens, windows, context)
    cut = data_mod.cut_points(windows, cuts, context)
    targets = np.take_along_axis(text, cut + 1, axis=1)  # (W, K): token c + 1 of each window
    order = rng.permutation(windows)
    halves = (np.sort(order[: windows // 2]), np.sort(order[windows // 2 :]))
    probe_slots = set(map(tuple, rng.permutation([(h, j) for h in (0, 1) for j in range(cuts)])
                          [: max(0, probes)].tolist()))
    losses = np.full((windows, cuts), np.nan)
    for h, members in enumerate(halves):
        for j in range(cuts):
            rows = members[rng.permutation(len(members))]
            c = cut[rows, j]
            logits = _ask(client, text[rows, :context], c, vocab, rng)
            if isinstance(logits, dict):
                return logits
            losses[rows, j] = token_nll(logits, targets[rows, j])
            if (h, j) in probe_slots:
                again = _ask(client, text[rows, :context], c, vocab, rng)
                if isinstance(again, dict):
                    return again
                if not np.allclose(again, logits, rtol=PROBE_RTOL, atol=PROBE_ATOL):
                    worst = float(np.abs(again - logits).max())
                    return {"cause": "noncausal",
                            "detail": f"new tokens after the scored positions moved their logits "
                                      f"by up to {worst:.3g} (cut index {j})"}
    z = _order_z(losses.mean(axis=1), halves)
    if z < -ADAPT_Z:
        return {"cause": "test_time_learning",
                "detail": f"windows served second scored {z:.1f} standard errors better than "
                          "those served first: the model learns from the text it is shown"}
    token_bytes = data_mod.get_tokenizer(tokenizer).token_bytes()
    nats = float(losses.sum())
    loss = nats / losses.size
    return {"val_loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "bpb": nats / math.log(2) / max(1, int(token_bytes[targets].sum())),
            "eval_tokens": int(losses.size), "token_losses": losses}


def windows_for(n_tokens: int, context: int, wanted: int) -> int:
    """The windows scored: as many as asked for, or as many disjoint ones as the split holds."""
    return max(2, min(wanted, n_tokens // (context + 1)))


def _ask(client: Client, real: np.ndarray, cut: np.ndarray, vocab: int,
         rng: np.random.Generator) -> np.ndarray | dict:
    """Real tokens up to each row's cut, fresh filler after it up to the longest cut; the
    logits at the cut. Sent in as few requests as keep the model's own full logits (rows x
    length x vocab floats) under MODEL_LOGIT_BYTES: a large vocabulary gets fewer rows a
    forward, never a different protocol (all rows share the cut index)."""
    rows = real[:, : int(cut.max()) + 1].copy()
    after = np.arange(rows.shape[1])[None, :] > cut[:, None]
    rows[after] = rng.integers(0, vocab, size=int(after.sum()))
    per = max(1, MODEL_LOGIT_BYTES // (rows.shape[1] * vocab * 4))
    width, answers = vocab + VOCAB_SLACK, []
    for start in range(0, len(rows), per):
        chunk, at = rows[start : start + per], cut[start : start + per, None].astype(np.int64)
        _, (logits,) = client.request({"op": "logits"}, (chunk, at),
                                      expect=(len(chunk) * width * 8,))
        logits = checked_logits(logits, (len(chunk), 1), vocab)
        if isinstance(logits, dict):
            return logits
        if answers and logits.shape[1] != answers[0].shape[1]:
            return {"cause": "bad_output", "detail": "logits of varying width for one model"}
        answers.append(logits)
    return np.concatenate(answers)


def checked_logits(logits: np.ndarray, lead: tuple[int, ...], vocab: int) -> np.ndarray | dict:
    """The answer as float64 (rows, vocab'), or the scoring cause that rejects it."""
    if logits.ndim != len(lead) + 1 or logits.shape[:-1] != lead \
            or not vocab <= logits.shape[-1] <= vocab + VOCAB_SLACK:
        return {"cause": "bad_output",
                "detail": f"logits of shape {logits.shape} where {(*lead, vocab)} was asked for"}
    if logits.dtype.kind != "f":
        return {"cause": "bad_output", "detail": f"logits of dtype {logits.dtype}"}
    logits = logits.astype(np.float64)
    if not np.isfinite(logits).all():
        return {"cause": "nan_logits", "detail": "the model returned NaN or inf logits"}
    return logits.reshape(-1, logits.shape[-1]) if len(lead) > 1 else logits[:, 0]


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return lse - logits[np.arange(len(targets)), targets]


def _order_z(window_loss: np.ndarray, halves) -> float:
    first, second = window_loss[halves[0]], window_loss[halves[1]]
    se = math.sqrt(first.var(ddof=1) / len(first) + second.var(ddof=1) / len(second))
    return float((second.mean() - first.mean()) / se) if se > 0 else 0.0


def paired_se(losses_a: np.ndarray, losses_b: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the paired difference of two evaluations' token losses
    (arrays windows x cuts). Tokens of one window are not independent, so the se comes from
    per-window mean differences (a cluster-robust estimate)."""
    per_window = (np.asarray(losses_a) - np.asarray(losses_b)).mean(axis=1)
    return float(per_window.mean()), float(per_window.std(ddof=1) / math.sqrt(len(per_window)))
