"""Numeric operators: move one declared hyperparameter a multiplicative step up or down.

Each rewrites a settings line in place, new value and new reason together, and keeps the child
trainable: values stay in ranges a small GPT tolerates, n_embd stays divisible by n_head with an
even head size (rotary needs it), and the context never drops below the harness's eval context.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from .choose import EXPLORE
from .core import Code, Edit, Operator
from .settings import format_number, is_int_literal



@dataclass(frozen=True)
class Knob:
    setting: str
    noun: str  # for the summary: "Raise <noun> to <value>"
    why_up: str
    why_down: str


def _scaled(cur: float, factor: float, lo: float, hi: float, integer: bool) -> float:
    """``cur`` x ``factor`` clamped into [lo, hi]: a value an earlier edit pushed out of the
    range steps back into it."""
    new = min(hi, max(lo, cur * factor))
    return int(round(new)) if integer else new


def _edit(code: Code, knob: Knob, moves: list[float | None], rng: random.Random) -> Edit | str:
    """Set ``knob`` to one of the candidate values (None: no move), as a reasoned edit."""
    found = code.setting(knob.setting)
    if found is None:
        return f"no numeric settings line for {knob.setting}"
    old_lit = found.literal(knob.setting)
    fresh = []
    for value in moves:
        lit = format_number(value, old_lit) if value is not None else old_lit
        if float(lit) != float(old_lit) and lit not in [f for f, _ in fresh]:
            fresh.append((lit, "up" if float(lit) > float(old_lit) else "down"))
    if not fresh:
        return f"{knob.setting} = {old_lit} has no allowed step left in its range"
    # the way this knob moved with success before is preferred, the other still explored
    tracks = [code.directions.get((knob.noun, d)) for _, d in fresh]
    weights = [t.weight() if t else EXPLORE for t in tracks]
    i = rng.choices(range(len(fresh)), weights=weights, k=1)[0]
    new_lit, direction = fresh[i]
    why = knob.why_up if direction == "up" else knob.why_down
    if tracks[i] is not None and tracks[i].tried:
        why += (f" Memory: {'raising' if direction == 'up' else 'lowering'} the {knob.noun} "
                f"before: {tracks[i].describe()}.")
    verb = "Raise" if direction == "up" else "Lower"
    old_v, new_v = float(old_lit), float(new_lit)
    exact = is_int_literal(old_lit) or not old_v
    step = f"from {old_lit}" if exact else f"x{new_v / old_v:.2g} from {old_lit}"
    comment = f"{step} (builtin): {_note(why)}"
    text = found.rewrite(code.files[found.path], knob.setting, new_lit, comment)
    return Edit(
        summary=f"{verb} {knob.noun} to {new_lit}",
        why=why,
        changes={found.path: text},
        details=[f"{found.path}: {knob.setting} {old_lit} -> {new_lit}"],
    )


def _note(why: str) -> str:
    """The reason's first sentence without asides, for the settings line's comment."""
    clause = re.split(r"[.;:](?:\s|$)", re.sub(r"\s*\([^)]*\)", "", why), maxsplit=1)[0].strip()
    if len(clause) > 80 and ", " in clause[:80]:  # keep the line on one screen
        clause = clause[: clause[:80].rindex(", ")]
    return clause[:1].lower() + clause[1:]


def _factor_op(setting, noun, up, down, lo, hi, why_up, why_down, integer=False, from_zero=None,
               snap_zero_below=None):
    """A knob moved by ×up / ×down inside [lo, hi]; ``from_zero`` is where 0 steps up to."""
    knob = Knob(setting, noun, why_up, why_down)

    def apply(code: Code, rng: random.Random) -> Edit | str:
        cur = code.number(setting)
        if cur is None:
            return f"no numeric settings line for {setting}"
        if cur == 0:
            moves = [from_zero]
        else:
            moves = [_scaled(cur, up, lo, hi, integer)]
            low = cur * down
            if snap_zero_below is not None and low < snap_zero_below:
                moves.append(0.0)
            else:
                moves.append(_scaled(cur, down, lo, hi, integer))
        return _edit(code, knob, moves, rng)

    return apply


def _ladder_move(cur: float, ladder: list[float]) -> list[float]:
    """Neighbours of ``cur`` on a ladder of sensible values."""
    up = [v for v in ladder if v > cur + 1e-12]
    down = [v for v in ladder if v < cur - 1e-12]
    return up[:1] + down[-1:]


BETA1 = Knob("BETA1", "Adam beta1",
             "More momentum averages out the noise of small batches, giving steadier updates.",
             "Less momentum lets the update direction follow the loss landscape faster, which "
             "suits a run of only a few hundred steps.")
BETA2 = Knob("BETA2", "Adam beta2",
             "A higher beta2 smooths Adam's variance estimate, so noisy small-batch gradients "
             "give steadier step sizes.",
             "A lower beta2 lets Adam's variance estimate adapt within a few dozen steps, which "
             "suits short runs where gradient scales change quickly.")


def betas(code: Code, rng: random.Random) -> Edit | str:
    options = []
    ladders = ((BETA1, [0.8, 0.85, 0.9, 0.95]), (BETA2, [0.95, 0.98, 0.99, 0.995, 0.999]))
    for knob, ladder in ladders:
        cur = code.number(knob.setting)
        if cur is not None and 0 < cur < 1:
            options.append((knob, _ladder_move(cur, ladder)))
    if not options:
        return "no numeric settings line for BETA1 or BETA2"
    knob, moves = rng.choice(options)
    return _edit(code, knob, moves, rng)


WIDTH = Knob("N_EMBD", "model width (n_embd)",
             "A wider residual stream gives each token more capacity; small character-level GPTs "
             "are often capacity-limited while the step rate is still acceptable.",
             "A narrower model runs more steps per second; within a short time budget more "
             "steps of a smaller model can beat fewer steps of a larger one.")


def width(code: Code, rng: random.Random) -> Edit | str:
    cur, heads = code.number("N_EMBD"), code.number("N_HEAD")
    if cur is None or heads is None or heads < 1:
        return "needs numeric N_EMBD and N_HEAD settings lines"
    # every allowed width keeps n_embd % n_head == 0 with an even head size of at least 16
    step = math.lcm(2 * int(heads), 16)
    allowed = [w for w in range(step, 385, step) if w >= 64 and w // heads >= 16]
    moves = []
    for target, bigger in ((cur * 1.5, True), (cur * 0.75, False)):
        side = [w for w in allowed if (w > cur if bigger else w < cur)]
        if side:
            moves.append(min(side, key=lambda w: abs(w - target)))
    return _edit(code, WIDTH, moves, rng)


HEADS = Knob("N_HEAD", "attention heads",
             "More, smaller heads let attention track more patterns at once (e.g. several "
             "previous characters) for the same compute.",
             "Fewer, larger heads give each head a richer query/key space and better-shaped "
             "matmuls on CPU.")


def heads(code: Code, rng: random.Random) -> Edit | str:
    cur, emb = code.number("N_HEAD"), code.number("N_EMBD")
    if cur is None or emb is None:
        return "needs numeric N_HEAD and N_EMBD settings lines"
    ladder = [h for h in (1, 2, 3, 4, 6, 8, 12, 16)
              if emb % h == 0 and (emb // h) % 2 == 0 and emb // h >= 16]
    return _edit(code, HEADS, _ladder_move(cur, ladder), rng)


DEPTH = Knob("N_LAYER", "depth (n_layer)",
             "One more block adds a step of composition (multi-character patterns, word shapes) "
             "at a modest cost in step time.",
             "One block fewer makes each step faster, so more steps fit in the budget.")


def depth(code: Code, rng: random.Random) -> Edit | str:
    cur = code.number("N_LAYER")
    if cur is None:
        return "no numeric settings line for N_LAYER"
    return _edit(code, DEPTH, [min(8, max(2, cur + step)) for step in (1, -1)], rng)


CONTEXT = Knob("BLOCK_SIZE", "training context (block_size)",
               "Longer windows give every step more tokens. The model also learns longer-range "
               "structure than the evaluation strictly needs.",
               "Shorter training windows make attention cheaper and steps faster; the context "
               "stays at least the harness's evaluation context.")


def context(code: Code, rng: random.Random) -> Edit | str:
    cur = code.number("BLOCK_SIZE")
    if cur is None:
        return "no numeric settings line for BLOCK_SIZE"
    floor = code.contract.eval_context
    moves = [min(max(floor, 512), max(floor, v)) for v in (cur * 2, cur // 2)]
    return _edit(code, CONTEXT, moves, rng)


OPERATORS = [
    Operator("lr_scale", "numeric", "peak learning rate x1.4 or x0.7 (1e-4..1e-2)", _factor_op(
        "LEARNING_RATE", "peak learning rate", 1.4, 0.7, 1e-4, 1e-2,
        "A higher peak learning rate makes more progress per step; a run of a few hundred CPU "
        "steps is usually step-limited rather than unstable, and warmup plus clipping guard "
        "against divergence.",
        "A lower peak rate trades speed for stability; if the loss spikes or plateaus high, the "
        "peak was past the edge of stability for this width and batch.")),
    Operator("warmup", "numeric", "warmup fraction x2 or x0.5 (0.01..0.3)", _factor_op(
        "WARMUP_FRAC", "warmup fraction", 2.0, 0.5, 0.01, 0.3,
        "A longer warmup lets Adam's moment estimates settle before the full rate hits, which "
        "protects the first steps when the peak rate is high.",
        "A shorter warmup spends more of a short budget at the peak rate; Adam with a small "
        "beta2 settles within a few dozen steps.", from_zero=0.02)),
    Operator("lr_floor", "numeric", "final learning-rate ratio of the schedule x2 or x0.5 "
             "(0..0.5)", _factor_op(
        "MIN_LR_RATIO", "final learning-rate ratio", 2.0, 0.5, 0.0, 0.5,
        "A higher floor keeps the last steps learning. Ending at a tiny rate idles the final "
        "part of a short budget.",
        "Annealing closer to zero lowers the final loss: the last small steps average out "
        "gradient noise.", from_zero=0.05, snap_zero_below=0.01)),
    Operator("decay_frac", "numeric", "length of the final decay phase of a WSD schedule "
             "x1.5 or x0.67 (0.1..0.6)", _factor_op(
        "DECAY_FRAC", "decay phase of the schedule", 1.5, 0.67, 0.1, 0.6,
        "A longer final decay anneals more gently, which often lowers the final loss of a "
        "warmup-stable-decay schedule.",
        "A shorter final decay keeps the peak rate longer, more fast progress before the "
        "anneal.")),
    Operator("weight_decay", "numeric", "AdamW weight decay x2 or x0.5 (0..0.3)", _factor_op(
        "WEIGHT_DECAY", "weight decay", 2.0, 0.5, 0.0, 0.3,
        "More decoupled weight decay keeps the matrices' scale in check, a regulariser that "
        "helps held-out loss and lets a high learning rate stay stable.",
        "Less weight decay: a short run underfits, so shrinking the weights mostly costs "
        "capacity.", from_zero=0.05, snap_zero_below=0.01)),
    Operator("betas", "numeric", "Adam beta1 or beta2 one notch on a ladder of usual values",
             betas),
    Operator("batch_size", "numeric", "batch size x2 or x0.5 (4..64)", _factor_op(
        "BATCH_SIZE", "batch size", 2, 0.5, 4, 64,
        "Larger batches give less noisy gradients and keep the matmuls busy, at the price of "
        "fewer steps in the budget.",
        "Smaller batches give more optimizer steps in the same time budget; at this scale the "
        "number of steps often matters more than gradient precision.", integer=True)),
    Operator("width", "numeric", "n_embd x1.5 or x0.75, a multiple of 2*n_head (64..384)", width),
    Operator("depth", "numeric", "n_layer +1 or -1 (2..8)", depth),
    Operator("heads", "numeric", "n_head one notch up or down; head size even and >= 16", heads),
    Operator("dropout", "numeric", "dropout x2 or x0.5, from 0 to 0.05 (0..0.3)", _factor_op(
        "DROPOUT", "dropout", 2.0, 0.5, 0.0, 0.3,
        "A little dropout regularises against the training split. It helps once the model "
        "fits training text better than held-out text.",
        "Dropout slows learning and a short run hardly overfits, so less of it should lower "
        "the validation loss.", from_zero=0.05, snap_zero_below=0.02)),
    Operator("grad_clip", "numeric", "gradient-norm clip x2 or x0.5 (0.25..4)", _factor_op(
        "GRAD_CLIP", "gradient clip", 2.0, 0.5, 0.25, 4.0,
        "A looser clip lets large, useful updates through early in training.",
        "A tighter clip tames loss spikes from unlucky batches at a high learning rate.")),
    Operator("context", "numeric", "block_size x2 or x0.5, never below the eval context "
             "(..512)", context),
]
