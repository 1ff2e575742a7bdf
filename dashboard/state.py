"""What the URL and the sidebar hold: session-state keys and defaults, seeding them from a link, the
Settings object every view reads (checkpoint + evaluation set, optionally without the k most suspect
test images: "Set suspect images aside"), and the slice chosen in Slices. Links themselves are built
and parsed by dashboard.links.

app.py draws the sidebar's widgets on these keys; views call `settings()` and `require()`.
seed_from_url and read_settings are plain functions of a mapping (tests/test_components.py).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.constants import SUSPECT_K as DEFAULT_SUSPECT_K
from core.data import parse_lengths
from core.evaluate import EvalTable
from dashboard import data, links

# Session-state keys of the sidebar's shared controls, and their defaults.
CKPT, LENGTHS, PER_LENGTH, SEED = "ckpt", "eval_lengths", "eval_per_length", "eval_seed"
ASIDE, SUSPECT_K = "eval_aside", "eval_suspect_k"  # the switch, and how many suspects it sets aside
DECIDED = "eval_decided"  # "Apply my label decisions": the set is built with a person's decided labels
DEFAULTS = {LENGTHS: "1-10,20,50,100", PER_LENGTH: 100, SEED: 0, ASIDE: False, SUSPECT_K: DEFAULT_SUSPECT_K, DECIDED: False}
SEEDED = "_seeded_from_url"
P_EXACT_REQUEST = "_p_exact_below_request"  # Calibration -> Error analysis: filter p_exact below this
MAX_PER_LENGTH, MAX_SEED, MAX_SUSPECT_K = 5000, 2**31 - 1, 1000
# Bounds that keep one evaluation within tens of seconds on a 2-core CPU.
MAX_SEQUENCES, MAX_DIGITS = 100_000, 2_000_000


# The views' controls that survive a round trip through other views: Streamlit drops the state of a widget
# that is not drawn on a run, unless its key is written back (then it is a plain session value). Their
# widgets keep their `value=` defaults, so .streamlit/config.toml turns off the warning about a widget
# with a default whose state was also written (global.disableWidgetStateDuplicationWarning).
KEPT_CONTROLS = ("f_", "ea_chart", "cm_true", "cm_pred", "heat_metric", "n_worst", "bucket_width_", "cal_threshold", "gen_",
                 "slice_min_size", "slice_tolerance", "sus_k", "train_", "hw_source")


def keep_controls(session: MutableMapping) -> None:
    """Write back every kept control's value (app.py calls this before the view runs)."""
    for key in [k for k in session.keys() if isinstance(k, str) and k.startswith(KEPT_CONTROLS)]:
        session[key] = session[key]


LINK_NOTICES = "_link_notices"  # what was wrong with the link a session opened, shown once by app.py


def seed_from_url(session: MutableMapping, params: Mapping, checkpoints: Mapping[str, Path]) -> None:
    """First load of a session: take the checkpoint and evaluation set from the URL, so a copied link
    reproduces the same view; then fill in the defaults and a checkpoint that exists. Whatever the link
    got wrong is kept as one-line notices under LINK_NOTICES (what was wrong, what is shown instead)."""
    if SEEDED not in session:
        session[SEEDED] = True
        session[LINK_NOTICES] = _seed(session, params, checkpoints)
    for key, value in DEFAULTS.items():
        session.setdefault(key, value)
    if session.get(CKPT) not in checkpoints:
        session[CKPT] = next(iter(checkpoints), None)


def _whole_number(params: Mapping, name: str, lo: int, hi: int, default: int, notices: list[str]) -> int | None:
    """The link's `name` as an int within lo..hi (clamped, with a notice), or None when absent or unreadable."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = int(str(raw))
    except ValueError:
        notices.append(f"The link's {name}={raw!r} is not a whole number: showing {default} instead.")
        return None
    if not lo <= value <= hi:
        notices.append(f"The link's {name}={value} lies outside {lo}–{hi:,}: showing {min(max(value, lo), hi):,} instead.")
    return min(max(value, lo), hi)


def _seed(session: MutableMapping, params: Mapping, checkpoints: Mapping[str, Path]) -> list[str]:
    notices: list[str] = []
    name = params.get("ckpt")
    if name is not None and name in checkpoints:
        session[CKPT] = name
    elif name is not None:  # never a path to open: only names from the checkpoint list are used
        notices.append(f"The link's checkpoint {name!r} is not one of the listed checkpoints: showing "
                       f"{next(iter(checkpoints), 'none')} instead.")
    source = params.get("src", "eval")
    if source not in ("eval", "gen"):
        notices.append(f"The link's src={source!r} is neither 'eval' nor 'gen': showing the evaluation set.")
    if source == "gen":
        return notices  # a generator link's seed is the generator's, not the evaluation set's
    lengths = params.get("lengths")
    if lengths is not None:
        try:
            parse_lengths(lengths)
            session[LENGTHS] = str(lengths)
        except ValueError as exc:
            notices.append(f"The link's lengths={lengths!r} cannot be used ({exc}): showing {DEFAULTS[LENGTHS]} instead.")
    for key, param, hi in ((PER_LENGTH, "per_length", MAX_PER_LENGTH), (SEED, "seed", MAX_SEED)):
        value = _whole_number(params, param, 1 if key == PER_LENGTH else 0, hi, DEFAULTS[key], notices)
        if value is not None:
            session[key] = value
    aside = _whole_number(params, "aside", 0, MAX_SUSPECT_K, 0, notices)
    if aside:
        session[ASIDE], session[SUSPECT_K] = True, aside
    too_big = _too_big(parse_lengths(session.get(LENGTHS, DEFAULTS[LENGTHS])), session.get(PER_LENGTH, DEFAULTS[PER_LENGTH]))
    if too_big:
        session[LENGTHS], session[PER_LENGTH] = DEFAULTS[LENGTHS], DEFAULTS[PER_LENGTH]
        notices.append(f"The link asks for {too_big}: showing the default set instead.")
    return notices


def _too_big(lengths: list[int], per_length: int) -> str | None:
    """A description of an evaluation set too large to compute here, or None."""
    sequences, digits = per_length * len(lengths), per_length * sum(lengths)
    if sequences > MAX_SEQUENCES or digits > MAX_DIGITS:
        return (f"{sequences:,} sequences of {digits:,} digits (the dashboard allows {MAX_SEQUENCES:,} and "
                f"{MAX_DIGITS:,})")
    return None


@dataclass(frozen=True)
class Settings:
    checkpoint: Path | None
    checkpoint_name: str | None
    lengths: list[int]
    per_length: int
    seed: int
    problem: str | None  # a message for the view when the settings cannot be used
    suspect_k: int = DEFAULTS[SUSPECT_K]  # how many of the most suspect images count as suspects
    aside: int = 0  # the evaluation set is built without the `aside` most suspect images (0: all used)
    decided: bool = False  # the evaluation set uses the person's label decisions (relabelled, excluded)


def read_settings(session: Mapping, checkpoints: Mapping[str, Path], folder: str = "checkpoints") -> Settings:
    """The sidebar's choices in `session`; `problem` explains why a view cannot render yet."""
    name = session.get(CKPT)
    path = checkpoints.get(name) if name else None
    problem = None
    try:
        lengths = parse_lengths(session.get(LENGTHS, DEFAULTS[LENGTHS]))
    except ValueError as exc:
        lengths, problem = parse_lengths(DEFAULTS[LENGTHS]), str(exc)
    per_length = int(session.get(PER_LENGTH, DEFAULTS[PER_LENGTH]))
    if problem is None and (too_big := _too_big(lengths, per_length)):
        problem = f"The evaluation set is too large ({too_big}): use fewer lengths or fewer sequences per length."
    if path is None:
        problem = f"No checkpoint found in {folder}/. Train one with `python -m scripts.train --preset default --out checkpoints/default.pt`."
    suspect_k = min(max(int(session.get(SUSPECT_K, DEFAULTS[SUSPECT_K])), 1), MAX_SUSPECT_K)
    return Settings(path, name if path else None, lengths, per_length, int(session.get(SEED, DEFAULTS[SEED])), problem,
                    suspect_k, suspect_k if session.get(ASIDE) else 0, bool(session.get(DECIDED)))


def settings() -> Settings:
    """The sidebar's current choices."""
    return read_settings(st.session_state, data.list_checkpoints(), data.display_name(data.checkpoint_dir()))


def require(s: Settings):
    """Stop the view with a clear message when there is no usable checkpoint or set; else return the
    loaded predictor."""
    if s.problem:
        st.error(s.problem)
        st.stop()
    try:
        return data.predictor(s.checkpoint)
    except Exception as exc:  # CheckpointError and friends: the message names the file and problem
        st.error(f"Cannot load {s.checkpoint_name}: {exc}")
        st.stop()


def sidebar_evaluation(s: Settings) -> EvalTable:
    """The sidebar's evaluation table, or the view stops with the reason (never a traceback)."""
    try:
        return data.evaluation_table(s.checkpoint, s.lengths, s.per_length, s.seed, s.aside, s.decided)
    except Exception as exc:  # noqa: BLE001 - e.g. a checkpoint replaced by a broken file
        st.error(f"Cannot evaluate {s.checkpoint_name}: {exc}")
        st.stop()


def eval_spec(s: Settings, index: int, size: int):
    """Row `index` of the sidebar's evaluation set (of `size` sequences) as a link spec."""
    return links.eval_spec(index, s.lengths, s.per_length, s.seed, size, s.aside)


def no_distribution_note(predictor) -> str:
    """The plain note every view shows for a regression head (lstm-final, deepsets)."""
    return (f"The {predictor.head} head regresses a number: this head has no distribution over the sum, "
            "so there is no P(exact), no 95% interval and no risk–coverage curve for it.")


# ----------------------------------------------------------------------------- the chosen slice
# The Slices view stores the slice picked there under SLICE; Error analysis and the inspector's navigation
# follow it until Clear. A slice belongs to the evaluation set (and checkpoint) it was found on: its seq_ids
# mean nothing on another set, so a change in the sidebar drops it.
SLICE, SLICE_WIDGETS = "eval_slice", "_slice_widgets"  # the slice; a counter that resets selection widgets


def set_key(s: Settings) -> tuple:
    """The evaluation set's identity, which a slice's seq_ids and cached figures refer to: the checkpoint's
    file version (a rewrite at the same path changes the suspect ranking, so the set), the set's spec and,
    when decisions apply, the decision log's version (a new decision changes the truth)."""
    decided = data.decisions_version("test") if s.decided else False
    return data.file_key(s.checkpoint), tuple(s.lengths), s.per_length, s.seed, s.aside, decided


def choose_slice(session: MutableMapping, s: Settings, rule: str, seq_ids) -> None:
    """Filter the other views to the sequences `seq_ids` of the current set (the slice `rule`)."""
    session[SLICE] = {"rule": str(rule), "seq_ids": sorted(int(i) for i in seq_ids), "set": set_key(s)}


def clear_slice(session: MutableMapping) -> None:
    """Back to the whole set; selection widgets that chose the slice start afresh (a new key)."""
    session.pop(SLICE, None)
    session[SLICE_WIDGETS] = session.get(SLICE_WIDGETS, 0) + 1


def active_slice(session: MutableMapping, s: Settings) -> dict | None:
    """The chosen slice ({rule, seq_ids, set}) when it belongs to the current set, else None (and dropped)."""
    chosen = session.get(SLICE)
    if chosen is not None and tuple(chosen.get("set", ())) != set_key(s):
        session.pop(SLICE, None)
        return None
    return chosen


def apply_slice(table: EvalTable, chosen: dict | None) -> EvalTable:
    """The rows of an evaluation table that lie in the chosen slice (all of them without one)."""
    return table if chosen is None else table.take(table.rows["seq_id"].isin(chosen["seq_ids"]).to_numpy())


def slice_step(seq_ids, current: int, delta: int) -> int:
    """The slice's previous (delta < 0) or next sequence after `current` (which need not lie in it);
    `current` itself when there is none that way."""
    ids = sorted(int(i) for i in seq_ids)
    before, after = [i for i in ids if i < current], [i for i in ids if i > current]
    if delta < 0:
        return before[-1] if before else current
    return after[0] if after else current


def slice_notice(s: Settings) -> dict | None:
    """The "Filtered to slice: … · Clear" line a filtered view shows; returns the active slice."""
    chosen = active_slice(st.session_state, s)
    if chosen is not None:
        text, button = st.columns([8, 1], vertical_alignment="center")
        text.info(f"Filtered to slice: `{chosen['rule']}` ({len(chosen['seq_ids']):,} sequences, chosen in "
                  "Slices)", icon=":material/filter_alt:")
        button.button("Clear", key="clear_slice", on_click=clear_slice, args=(st.session_state,),
                      help="Show the whole evaluation set again")
    return chosen
