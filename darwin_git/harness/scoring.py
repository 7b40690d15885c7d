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
  random tokens, independent of the text) up to the longest real prefix among the rows of its
  forward (a request's rows go, by cut, in LENGTH_GROUPS forwards of their own length: a
  causal model's logits at c_j do not depend on what follows, so rows need not be longer). The
  answer is the logits at position c_j only; their target, token c_j + 1, has not been in any
  request yet. The parent records the answer before it sends the next request, which reveals
  more text. So caching answers, probing with altered rows or peeking at later positions buys
  nothing: a model that looks ahead sees filler, and whatever it learns from a later request
  cannot change an answer already recorded.
- val_loss = the mean over the W*K scored tokens of -log softmax(logits)[target], in nats,
  computed here in float64 (logits beyond the vocabulary, e.g. a padded head, only take
  probability mass away); bpb divides the summed nats by ln 2 and the UTF-8 bytes of the scored
  targets.

**A fixed function of the checkpoint** (issue 24): the server loads the harness's frozen copy of
the checkpoint (its digest checked outside the model's process, evaluate.py); once the first
logits request arrives no parameter requires a gradient and every forward runs under
``torch.inference_mode()``, and the scoring step is given no training data. Code in the model's
process can still leave those guard rails, so what decides is measured from outside: the
step's compute (allowance.py: learning at load time or in a few requests costs more than the
model's forward passes) and :func:`audit`: after the scoring pass has ended, a *fresh* server
(a new sandboxed step, which never saw the first one's requests and shares nothing writable
with it) re-scores spec.audit_per_request tokens of every request of the pass (64 of 2,048 by
default), at most one per window, AUDIT_ROWS to a request, windows and cut indices in a random
order, with fresh filler. Their losses must agree with the recorded ones (each within AUDIT_ATOL
+ AUDIT_RTOL x the loss; their mean within AUDIT_MEAN_TOL + AUDIT_Z standard errors), else
``audit_mismatch``: a token's loss depended on what the model was asked before (a cache, a
counter, weights trained as it goes) or was not deterministic. A model whose answers changed
after any one request of the pass meets the audit there (4 of its 128 rows are re-asked).

Cost per evaluation: 2K requests of W/2 rows; the request for cut index j has rows about
(j + 1) T / K long (a little less with the length groups), so about W*T*(K+1)/2 tokens are
forwarded for W*K scored. Defaults W = 256, K = 8: 2,048 scored tokens in 16 requests of 128
rows; at the seed's T = 128 about 134,000 tokens through the model in eval mode, the forward
compute of about 22 of the seed's training steps (a step is 2,048 tokens forward and backward,
~3 forwards' worth). The audit forwards about 4,500 more (64 rows and the causality probe's
16), and its step also holds the throughput bench (flops.py). On a GPU that is a fraction of a
second; on CPU it is seconds (benchmarks/scoring_cost.py measures the whole of it). The answer
to a request is (rows, 1, V) floats, never (rows, T, V); with a large vocabulary the rows of
one forward go in several, so that the model's own logits stay under MODEL_LOGIT_BYTES
(GPT-2's 50,257 tokens at T = 128: 10 rows a forward). When the split cannot hold W disjoint
windows of T + 1 tokens (GPT-2 tokens at T = 1024 hold ~140), W is the most it can hold.

What the causality probe is still for: nothing of the score. A model that peeks only sees
filler, and scores worse for it (and a fresh process, with other filler, disagrees with it).
It remains a precise diagnosis (cause ``noncausal``) so that a mutation that broke causality is
told so instead of just scoring badly: the audit's first request is asked again with the same
filler (which must give the same answers, whatever the model keeps between requests) and then
with fresh filler spec.probes times, and the logits at the cuts must not move.

Cross-window adaptation: the server sees the revealed text of every window in serving order and
could learn from it at test time (say, an n-gram cache of the text of earlier windows). The
two halves are served in random order, so a model whose losses do not depend on what it has
seen scores both halves alike; a second half better than the first by more than ADAPT_Z
standard errors is cause ``test_time_learning``. The test is blunt (with 128 windows a half, a
gain below roughly 0.2 nats passes it); the audit is the finer check.

Residual risks:
- The validation text is public (the complete works of Shakespeare): a model, or an LLM writing
  a mutation, may know it from pre-training and could carry it into the weights or the code;
  the harness only keeps the split unreachable from the sandboxed steps.
- State that changes the answers of fewer rows than the audit samples: a model that adapts only
  a small share of its answers is met with probability 1 - (1 - share)^64 (a 5% share: 96%).
"""
from __future__ import annotations

import copy
import math

import numpy as np

from .. import data as data_mod
from .client import Client

VOCAB_SLACK = 1024  # a head may be padded past the vocabulary (50257 -> 50304); never more
MODEL_LOGIT_BYTES = 256 << 20  # the logits a forward of the model holds: GPT-2 tokens at
# T = 128 fit 10 rows a request, characters every row
PROBE_ATOL = PROBE_RTOL = 5e-3
ADAPT_Z = 5.0  # randomised halves: an honest model falls below -5 with probability ~3e-7
LENGTH_GROUPS = 8  # a request's rows, by cut, in forwards of their own length (~9% less filler)
AUDIT_ROWS = 16  # rows per audit request
# A re-scored token agrees when its loss moved by at most AUDIT_ATOL + AUDIT_RTOL x the loss
# (a forward at another batch size or on another kernel: ~1e-6 in fp32, ~1e-2 in bf16), and
# the sample's mean moved by at most AUDIT_MEAN_TOL + AUDIT_Z standard errors of it.
AUDIT_ATOL, AUDIT_RTOL = 0.05, 0.02
AUDIT_MEAN_TOL, AUDIT_Z = 0.002, 4.0


def score(client: Client, val_dir, tokenizer: str, context: int, vocab: int, windows: int,
          cuts: int, rng: np.random.Generator) -> dict:
    """Run the protocol; the metrics, or {"cause", "detail"} when the model failed it. Also
    returns ``token_losses`` (windows x cuts, nats), for paired comparisons and the audit, and
    ``halves`` (the windows of each half, in serving order)."""
    tokens = data_mod.load_tokens(val_dir, "val")
    windows = windows_for(tokens.size, context, windows)
    text = data_mod.val_windows(tokens, windows, context)
    cut = data_mod.cut_points(windows, cuts, context)
    targets = np.take_along_axis(text, cut + 1, axis=1)  # (W, K): token c + 1 of each window
    order = rng.permutation(windows)
    halves = (np.sort(order[: windows // 2]), np.sort(order[windows // 2 :]))
    losses = np.full((windows, cuts), np.nan)
    for members in halves:
        for j in range(cuts):
            rows = members[rng.permutation(len(members))]
            c = cut[rows, j]
            logits = _ask(client, text[rows, :context], c, vocab, rng, groups=LENGTH_GROUPS)
            if isinstance(logits, dict):
                return logits
            losses[rows, j] = token_nll(logits, targets[rows, j])
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
            "eval_tokens": int(losses.size), "token_losses": losses, "halves": halves}


def audit(client: Client, val_dir, context: int, vocab: int, losses: np.ndarray, halves,
          per_request: int, probes: int, rng: np.random.Generator) -> dict:
    """Re-score a sample of the scored tokens in a fresh process (``client``: a new server,
    which never saw the first one's requests), in another order, with fresh filler: {"rows",
    "mean_diff", "max_diff"} when its losses agree with the recorded ones, else {"cause",
    "detail"}. ``per_request`` windows are drawn from each request of the scoring pass (so a
    model whose answers changed after any one of its requests is met there), no window twice
    (so no request reveals a target of another), and served AUDIT_ROWS to a request in a random
    order of windows and cut indices. With ``probes``, the first request is asked again with
    the same filler (answers that move: ``audit_mismatch``) and then ``probes`` times with new
    filler (logits at the cuts that move: the ``noncausal`` diagnosis)."""
    tokens = data_mod.load_tokens(val_dir, "val")
    windows, cuts = losses.shape
    text = data_mod.val_windows(tokens, windows, context)
    cut = data_mod.cut_points(windows, cuts, context)
    targets = np.take_along_axis(text, cut + 1, axis=1)
    chosen_w, chosen_j = [], []
    for members in halves:
        free = list(rng.permutation(members))
        for j in range(cuts):
            for _ in range(min(per_request, len(free))):
                chosen_w.append(free.pop())
                chosen_j.append(j)
    if not chosen_w:
        return {"rows": 0, "mean_diff": 0.0, "max_diff": 0.0}
    order = rng.permutation(len(chosen_w))
    w_all, j_all = np.array(chosen_w)[order], np.array(chosen_j)[order]
    again = []
    for start in range(0, len(w_all), AUDIT_ROWS):
        w, j = w_all[start : start + AUDIT_ROWS], j_all[start : start + AUDIT_ROWS]
        filler = copy.deepcopy(rng)
        logits = _ask(client, text[w, :context], cut[w, j], vocab, rng)
        if isinstance(logits, dict):
            return logits
        if start == 0 and probes > 0:
            # The same rows, filler and all, must get the same answer (else the answers depend
            # on what came before); then with new filler (else on what follows the cut).
            problem = _probe(client, text[w, :context], cut[w, j], vocab, filler, logits,
                             "audit_mismatch", "the same request asked twice got different "
                             "answers: the model's answers depend on what it was asked before")
            for _ in range(probes):
                problem = problem or _probe(client, text[w, :context], cut[w, j], vocab, rng,
                                            logits, "noncausal", "new tokens after the scored "
                                            "positions moved their logits")
            if problem:
                return problem
        again.append(token_nll(logits, targets[w, j]))
    diff = np.concatenate(again) - losses[w_all, j_all]
    moved = np.abs(diff) > AUDIT_ATOL + AUDIT_RTOL * np.abs(losses[w_all, j_all])
    mean = float(diff.mean())
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else 0.0
    if moved.any() or abs(mean) > AUDIT_MEAN_TOL + AUDIT_Z * se:
        return {"cause": "audit_mismatch",
                "detail": f"a fresh process asked {diff.size} of the scored tokens again in "
                          f"another order: {int(moved.sum())} of their losses moved, by "
                          f"{mean:+.4f} nats on average (largest {float(np.abs(diff).max()):.4f}): "
                          "a token's loss must not depend on what the model was asked before"}
    return {"rows": int(diff.size), "mean_diff": mean, "max_diff": float(np.abs(diff).max())}


def _probe(client: Client, real, cut, vocab: int, rng, first: np.ndarray, cause: str,
           words: str) -> dict | None:
    """Ask the rows again (filler from ``rng``); the cause when the logits at the cuts move."""
    repeat = _ask(client, real, cut, vocab, rng)
    if isinstance(repeat, dict):
        return repeat
    if np.allclose(repeat, first, rtol=PROBE_RTOL, atol=PROBE_ATOL):
        return None
    moved = float(np.abs(repeat - first).max())
    return {"cause": cause, "detail": f"{words} (by up to {moved:.3g})"}


def windows_for(n_tokens: int, context: int, wanted: int) -> int:
    """The windows scored: as many as asked for, or as many disjoint ones as the split holds."""
    return max(2, min(wanted, n_tokens // (context + 1)))


def _ask(client: Client, real: np.ndarray, cut: np.ndarray, vocab: int,
         rng: np.random.Generator, groups: int = 1) -> np.ndarray | dict:
    """Real tokens up to each row's cut, fresh filler after it up to the longest cut of its
    group; the logits at the cut, in the rows' order. ``groups``: the rows, by cut, in that
    many forwards of their own length (less filler to forward). Each forward also keeps the
    model's own full logits (rows x length x vocab floats) under MODEL_LOGIT_BYTES: a large
    vocabulary gets fewer rows a forward, never a different protocol."""
    by_cut = np.argsort(cut, kind="stable")
    out = np.empty(len(cut), dtype=object)
    answers = []
    for part in np.array_split(by_cut, max(1, min(groups, len(cut)))):
        rows = real[part, : int(cut[part].max()) + 1].copy()
        after = np.arange(rows.shape[1])[None, :] > cut[part, None]
        rows[after] = rng.integers(0, vocab, size=int(after.sum()))
        per = max(1, MODEL_LOGIT_BYTES // (rows.shape[1] * vocab * 4))
        width = vocab + VOCAB_SLACK
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            at = cut[part][start : start + per, None].astype(np.int64)
            _, (logits,) = client.request({"op": "logits"}, (chunk, at),
                                          expect=(len(chunk) * width * 8,), tokens=chunk.size)
            logits = checked_logits(logits, (len(chunk), 1), vocab)
            if isinstance(logits, dict):
                return logits
            if answers and logits.shape[1] != answers[0].shape[1]:
                return {"cause": "bad_output", "detail": "logits of varying width for one model"}
            answers.append(logits)
            for i, row in enumerate(part[start : start + per]):
                out[row] = logits[i]
    return np.stack(list(out))


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
