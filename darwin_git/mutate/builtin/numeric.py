"""Numeric operators: move one hyperparameter a multiplicative step up or down.

Each finds the setting where the run decides it (core.Code.knob: under any of its usual names,
in the script, a config file, a config class or dict) and rewrites that value in place, with a
new reason where the line holds only it. It keeps the child trainable: values stay in ranges a
small GPT tolerates, n_embd stays divisible by n_head with an even head size (rotary needs it),
the context never drops below the harness's eval context, a warmup stays shorter than the
decay it precedes.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Callable

from .choose import EXPLORE
from .core import Code, Edit, Operator
from .settings import Site, format_number, is_int_literal


# The usual spellings of each setting (matched without regard to case; the first one a code
# sets is the one edited). ``name[i]`` is element i of a tuple (``betas = (0.9, 0.95)``).
LEARNING_RATE = ("learning_rate", "lr", "max_lr", "peak_lr", "base_lr", "lr_max")
MIN_LR_RATIO = ("min_lr_ratio", "final_lr_frac", "min_lr_frac", "lr_min_ratio",
                "final_lr_ratio")
MIN_LR = ("min_lr", "lr_min", "final_lr", "end_lr", "min_learning_rate")
WARMUP_FRAC = ("warmup_frac", "warmup_ratio", "warmup_fraction")
WARMUP_STEPS = ("warmup_iters", "warmup_steps", "warmup_iterations", "num_warmup_steps",
                "lr_warmup_iters", "lr_warmup_steps")
DECAY_FRAC = ("decay_frac", "cooldown_frac", "warmdown_frac", "decay_fraction")
DECAY_STEPS = ("lr_decay_iters", "lr_decay_steps", "decay_iters", "decay_steps",
               "warmdown_iters", "warmdown_steps", "cooldown_iters", "cooldown_steps")
WEIGHT_DECAY = ("weight_decay", "wd", "adam_weight_decay")
BETA1 = ("beta1", "adam_beta1", "b1", "betas[0]", "adam_betas[0]")
BETA2 = ("beta2", "adam_beta2", "b2", "betas[1]", "adam_betas[1]")
BATCH_SIZE = ("batch_size", "micro_batch_size", "train_batch_size", "device_batch_size",
              "per_device_batch_size", "bs")
N_EMBD = ("n_embd", "n_embed", "d_model", "hidden_size", "embed_dim", "emb_dim", "model_dim",
          "dim")
N_HEAD = ("n_head", "n_heads", "num_heads", "num_attention_heads", "n_attn_heads")
N_LAYER = ("n_layer", "n_layers", "num_layers", "num_hidden_layers", "depth", "n_blocks")
DROPOUT = ("dropout", "dropout_rate", "p_dropout", "dropout_p", "resid_pdrop")
GRAD_CLIP = ("grad_clip", "clip_grad", "clip_grad_norm", "max_grad_norm", "grad_norm_clip",
             "gradient_clip", "clip_norm")
BLOCK_SIZE = ("block_size", "seq_len", "sequence_length", "context_length", "ctx_len",
              "max_seq_len", "n_ctx", "seq_length")
KNOB_NAMES = {"learning rate": LEARNING_RATE, "final learning rate": MIN_LR_RATIO + MIN_LR,
              "warmup": WARMUP_FRAC + WARMUP_STEPS, "decay": DECAY_FRAC + DECAY_STEPS,
              "weight decay": WEIGHT_DECAY, "betas": BETA1 + BETA2, "batch": BATCH_SIZE,
              "width": N_EMBD, "heads": N_HEAD, "depth": N_LAYER, "dropout": DROPOUT,
              "clipping": GRAD_CLIP, "context": BLOCK_SIZE}


@dataclass(frozen=True)
class Knob:
    noun: str  # for the summary: "Raise <noun> to <value>"
    why_up: str
    why_down: str


@dataclass(frozen=True)
class Form:
    """One way a setting is written (its names) and the moves allowed in it."""
    aliases: tuple[str, ...]
    lo: float | Callable[[Code], float]
    hi: float | Callable[[Code], float]
    integer: bool = False
    from_zero: float | Callable[[Code], float] | None = None  # where 0 steps up to
    snap_zero_below: float | Callable[[Code], float] | None = None  # a step below it is 0
    noun: str | None = None  # the knob's noun when this form needs its own

    def get(self, what, code: Code):
        value = getattr(self, what)
        return value(code) if callable(value) else value


def _find(code: Code, forms: tuple[Form, ...]) -> tuple[Site, Form] | str:
    """The editable site of the first form this code sets, or why there is none."""
    why = None
    for form in forms:
        found = code.knob(form.aliases)
        if isinstance(found, Site):
            return found, form
        why = why or found
    if why:
        return why
    return no_setting([a for f in forms for a in f.aliases])


def no_setting(names: list[str] | tuple[str, ...]) -> str:
    """Why a knob does not fit: none of its names is set to a number."""
    first = f"{names[0]} (or {names[0].upper()})"
    return (f"no numeric setting named {', '.join([first, *names[1:4]])}, ... "
            "(README 'Mutators' lists the names)")


def _scaled(cur: float, factor: float, lo: float, hi: float, integer: bool) -> float:
    """``cur`` x ``factor`` clamped into [lo, hi]: a value an earlier edit pushed out of the
    range steps back into it."""
    new = min(hi, max(lo, cur * factor))
    return int(round(new)) if integer else new


def _edit(code: Code, knob: Knob, found: Site, moves: list[float | None],
          rng: random.Random) -> Edit | str:
    """Set the setting at ``found`` to one of the candidate values (None: no move), as a
    reasoned edit."""
    old_lit = found.literal
    fresh = []
    for value in moves:
        lit = format_number(value, old_lit) if value is not None else old_lit
        if float(lit) != float(old_lit) and lit not in [f for f, _ in fresh]:
            fresh.append((lit, "up" if float(lit) > float(old_lit) else "down"))
    if not fresh:
        return f"{found.label} = {old_lit} has no allowed step left in its range"
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
    text = found.rewrite(code.files[found.path], new_lit, comment)
    return Edit(
        summary=f"{verb} {knob.noun} to {new_lit}",
        why=why,
        changes={found.path: text},
        details=[f"{found.path}: {found.label} {old_lit} -> {new_lit}"],
    )


def _note(why: str) -> str:
    """The reason's first sentence without asides, for the settings line's comment."""
    clause = re.split(r"[.;:](?:\s|$)", re.sub(r"\s*\([^)]*\)", "", why), maxsplit=1)[0].strip()
    if len(clause) > 80 and ", " in clause[:80]:  # keep the line on one screen
        clause = clause[: clause[:80].rindex(", ")]
    return clause[:1].lower() + clause[1:]


def _factor_op(forms: tuple[Form, ...] | Form, noun, up, down, why_up, why_down):
    """A knob moved by x``up`` / x``down`` inside its form's range."""
    knob = Knob(noun, why_up, why_down)
    forms = forms if isinstance(forms, tuple) else (forms,)

    def apply(code: Code, rng: random.Random) -> Edit | str:
        found = _find(code, forms)
        if isinstance(found, str):
            return found
        site, form = found
        named = Knob(form.noun, why_up, why_down) if form.noun else knob
        cur = site.value()
        lo, hi = form.get("lo", code), form.get("hi", code)
        if cur == 0:
            moves = [form.get("from_zero", code)]
        else:
            moves = [_scaled(cur, up, lo, hi, form.integer)]
            low, snap = cur * down, form.get("snap_zero_below", code)
            if snap is not None and low < snap:
                moves.append(0)
            else:
                moves.append(_scaled(cur, down, lo, hi, form.integer))
        return _edit(code, named, site, moves, rng)

    return apply


def _ladder_move(cur: float, ladder: list[float]) -> list[float]:
    """Neighbours of ``cur`` on a ladder of sensible values."""
    up = [v for v in ladder if v > cur + 1e-12]
    down = [v for v in ladder if v < cur - 1e-12]
    return up[:1] + down[-1:]


def _peak_lr(code: Code) -> float:
    return code.number(LEARNING_RATE) or 1e-3


def _decay_steps_floor(code: Code) -> float:
    """A decay length stays past the warmup (nanoGPT's schedule divides by their difference)."""
    warm = code.number(WARMUP_STEPS)
    return max(10, (warm or 0) + 1)


def _warmup_steps_ceiling(code: Code) -> float:
    decay = code.number(DECAY_STEPS)
    return max(0, min(5000, decay - 1)) if decay else 5000


BETA1_KNOB = Knob("Adam beta1",
                  "More momentum averages out the noise of small batches, giving steadier "
                  "updates.",
                  "Less momentum lets the update direction follow the loss landscape faster, "
                  "which suits a run of only a few hundred steps.")
BETA2_KNOB = Knob("Adam beta2",
                  "A higher beta2 smooths Adam's variance estimate, so noisy small-batch "
                  "gradients give steadier step sizes.",
                  "A lower beta2 lets Adam's variance estimate adapt within a few dozen steps, "
                  "which suits short runs where gradient scales change quickly.")


def betas(code: Code, rng: random.Random) -> Edit | str:
    options, why = [], None
    ladders = ((BETA1_KNOB, BETA1, [0.8, 0.85, 0.9, 0.95]),
               (BETA2_KNOB, BETA2, [0.95, 0.98, 0.99, 0.995, 0.999]))
    for knob, aliases, ladder in ladders:
        found = code.knob(aliases)
        if isinstance(found, Site) and 0 < found.value() < 1:
            options.append((knob, found, _ladder_move(found.value(), ladder)))
        why = why or (found if isinstance(found, str) else None)
    if not options:
        return why or no_setting(BETA1 + BETA2)
    knob, found, moves = rng.choice(options)
    return _edit(code, knob, found, moves, rng)


WIDTH = Knob("model width (n_embd)",
             "A wider residual stream gives each token more capacity; small character-level GPTs "
             "are often capacity-limited while the step rate is still acceptable.",
             "A narrower model runs more steps per second; within a short time budget more "
             "steps of a smaller model can beat fewer steps of a larger one.")


def _width_and_heads(code: Code) -> tuple[Site, Site] | str:
    width, heads = code.knob(N_EMBD), code.knob(N_HEAD)
    for found, names in ((width, N_EMBD), (heads, N_HEAD)):
        if found is None:
            return no_setting(names)
        if isinstance(found, str):
            return found
    if heads.value() < 1:
        return f"{heads.label} = {heads.literal} is not a head count"
    return width, heads


def width(code: Code, rng: random.Random) -> Edit | str:
    found = _width_and_heads(code)
    if isinstance(found, str):
        return found
    site, heads = found[0], found[1].value()
    cur = site.value()
    # every allowed width keeps n_embd % n_head == 0 with an even head size of at least 16
    step = math.lcm(2 * int(heads), 16)
    allowed = [w for w in range(step, 385, step) if w >= 64 and w // heads >= 16]
    moves = []
    for target, bigger in ((cur * 1.5, True), (cur * 0.75, False)):
        side = [w for w in allowed if (w > cur if bigger else w < cur)]
        if side:
            moves.append(min(side, key=lambda w: abs(w - target)))
    return _edit(code, WIDTH, site, moves, rng)


HEADS = Knob("attention heads",
             "More, smaller heads let attention track more patterns at once (e.g. several "
             "previous characters) for the same compute.",
             "Fewer, larger heads give each head a richer query/key space and better-shaped "
             "matmuls on CPU.")


def heads(code: Code, rng: random.Random) -> Edit | str:
    found = _width_and_heads(code)
    if isinstance(found, str):
        return found
    emb, site = found[0].value(), found[1]
    ladder = [h for h in (1, 2, 3, 4, 6, 8, 12, 16)
              if emb % h == 0 and (emb // h) % 2 == 0 and emb // h >= 16]
    return _edit(code, HEADS, site, _ladder_move(site.value(), ladder), rng)


DEPTH = Knob("depth (n_layer)",
             "One more block adds a step of composition (multi-character patterns, word shapes) "
             "at a modest cost in step time.",
             "One block fewer makes each step faster, so more steps fit in the budget.")


def depth(code: Code, rng: random.Random) -> Edit | str:
    found = _find(code, (Form(N_LAYER, 2, 8, integer=True),))
    if isinstance(found, str):
        return found
    cur = found[0].value()
    return _edit(code, DEPTH, found[0], [min(8, max(2, cur + step)) for step in (1, -1)], rng)


CONTEXT = Knob("training context (block_size)",
               "Longer windows give every step more tokens. The model also learns longer-range "
               "structure than the evaluation strictly needs.",
               "Shorter training windows make attention cheaper and steps faster; the context "
               "stays at least the harness's evaluation context.")


def context(code: Code, rng: random.Random) -> Edit | str:
    found = _find(code, (Form(BLOCK_SIZE, 1, 512, integer=True),))
    if isinstance(found, str):
        return found
    cur = found[0].value()
    floor = code.contract.eval_context
    moves = [min(max(floor, 512), max(floor, v)) for v in (cur * 2, cur // 2)]
    return _edit(code, CONTEXT, found[0], moves, rng)


OPERATORS = [
    Operator("lr_scale", "numeric", "peak learning rate x1.4 or x0.7 (1e-4..1e-2)", _factor_op(
        Form(LEARNING_RATE, 1e-4, 1e-2), "peak learning rate", 1.4, 0.7,
        "A higher peak learning rate makes more progress per step; a run of a few hundred CPU "
        "steps is usually step-limited rather than unstable, and warmup plus clipping guard "
        "against divergence.",
        "A lower peak rate trades speed for stability; if the loss spikes or plateaus high, the "
        "peak was past the edge of stability for this width and batch.")),
    Operator("warmup", "numeric", "warmup x2 or x0.5: a fraction of the budget (0.01..0.3) or "
             "a number of steps (0..the decay's length)", _factor_op(
        (Form(WARMUP_FRAC, 0.01, 0.3, from_zero=0.02),
         Form(WARMUP_STEPS, 0, _warmup_steps_ceiling, integer=True, from_zero=10,
              snap_zero_below=2, noun="warmup steps")),
        "warmup fraction", 2.0, 0.5,
        "A longer warmup lets Adam's moment estimates settle before the full rate hits, which "
        "protects the first steps when the peak rate is high.",
        "A shorter warmup spends more of a short budget at the peak rate; Adam with a small "
        "beta2 settles within a few dozen steps.")),
    Operator("lr_floor", "numeric", "final learning rate of the schedule x2 or x0.5 (a ratio "
             "0..0.5 of the peak, or min_lr up to half the peak)", _factor_op(
        (Form(MIN_LR_RATIO, 0.0, 0.5, from_zero=0.05, snap_zero_below=0.01),
         Form(MIN_LR, 0.0, lambda c: 0.5 * _peak_lr(c), from_zero=lambda c: 0.1 * _peak_lr(c),
              snap_zero_below=lambda c: 0.01 * _peak_lr(c), noun="final learning rate")),
        "final learning-rate ratio", 2.0, 0.5,
        "A higher floor keeps the last steps learning. Ending at a tiny rate idles the final "
        "part of a short budget.",
        "Annealing closer to zero lowers the final loss: the last small steps average out "
        "gradient noise.")),
    Operator("decay_frac", "numeric", "length of the final decay phase of a WSD schedule "
             "x1.5 or x0.67 (0.1..0.6)", _factor_op(
        Form(DECAY_FRAC, 0.1, 0.6), "decay phase of the schedule", 1.5, 0.67,
        "A longer final decay anneals more gently, which often lowers the final loss of a "
        "warmup-stable-decay schedule.",
        "A shorter final decay keeps the peak rate longer, more fast progress before the "
        "anneal.")),
    Operator("decay_steps", "numeric", "steps over which the learning rate decays "
             "(lr_decay_iters) x2 or x0.5, longer than the warmup", _factor_op(
        Form(DECAY_STEPS, _decay_steps_floor, 10_000_000, integer=True),
        "learning-rate decay length", 2.0, 0.5,
        "A longer decay keeps the rate high for more of the run, more progress per step "
        "while the loss is still falling fast.",
        "A shorter decay reaches the low final rate within the steps a short budget allows: "
        "a schedule sized for more steps than the run makes never anneals.")),
    Operator("weight_decay", "numeric", "AdamW weight decay x2 or x0.5 (0..0.3)", _factor_op(
        Form(WEIGHT_DECAY, 0.0, 0.3, from_zero=0.05, snap_zero_below=0.01),
        "weight decay", 2.0, 0.5,
        "More decoupled weight decay keeps the matrices' scale in check, a regulariser that "
        "helps held-out loss and lets a high learning rate stay stable.",
        "Less weight decay: a short run underfits, so shrinking the weights mostly costs "
        "capacity.")),
    Operator("betas", "numeric", "Adam beta1 or beta2 one notch on a ladder of usual values",
             betas),
    Operator("batch_size", "numeric", "batch size x2 or x0.5 (4..64)", _factor_op(
        Form(BATCH_SIZE, 4, 64, integer=True), "batch size", 2, 0.5,
        "Larger batches give less noisy gradients and keep the matmuls busy, at the price of "
        "fewer steps in the budget.",
        "Smaller batches give more optimizer steps in the same time budget; at this scale the "
        "number of steps often matters more than gradient precision.")),
    Operator("width", "numeric", "n_embd x1.5 or x0.75, a multiple of 2*n_head (64..384)", width),
    Operator("depth", "numeric", "n_layer +1 or -1 (2..8)", depth),
    Operator("heads", "numeric", "n_head one notch up or down; head size even and >= 16", heads),
    Operator("dropout", "numeric", "dropout x2 or x0.5, from 0 to 0.05 (0..0.3)", _factor_op(
        Form(DROPOUT, 0.0, 0.3, from_zero=0.05, snap_zero_below=0.02), "dropout", 2.0, 0.5,
        "A little dropout regularises against the training split. It helps once the model "
        "fits training text better than held-out text.",
        "Dropout slows learning and a short run hardly overfits, so less of it should lower "
        "the validation loss.")),
    Operator("grad_clip", "numeric", "gradient-norm clip x2 or x0.5 (0.25..4); off (0) -> 1",
             _factor_op(
        Form(GRAD_CLIP, 0.25, 4.0, from_zero=1.0), "gradient clip", 2.0, 0.5,
        "A looser clip lets large, useful updates through early in training.",
        "A tighter clip tames loss spikes from unlucky batches at a high learning rate.")),
    Operator("context", "numeric", "block_size x2 or x0.5, never below the eval context "
             "(..512)", context),
]
