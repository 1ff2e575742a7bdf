"""The ensemble's part of the benchmark (issue 19): its targets on test, the single CNN beside it on
val_select (which decides the default), the recipes it was chosen from, the doubt signal's val study,
and how many published label errors its suspect ranking finds.

NORTHCUTT_TEST_ERRORS are the 15 MNIST test images whose label a majority of five reviewers rejected in
Northcutt et al. 2021, "Pervasive Label Errors in Test Sets" (cleanlab/label-errors, mturk/mnist_mturk.json:
fewer than 3 of 5 kept the given label). They score the suspect ranking after the fact and nothing else:
no model and no ranking reads them (a test keeps core/ and dashboard/ from importing this module).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core import load_predictor
from core.constants import SUSPECT_K
from core.data import load_mnist, split_arrays
from core.data.sequences import evaluation_sequences
from core.data.splits import SELECTION_SPLIT
from core.evaluate import suspect_labels
from core.evaluate.doubt import doubt_study
from core.evaluate.reliability import exact_at_coverage
from core.model.checkpoint import read_metadata
from scripts.benchmark_probes import fmt as f
from scripts.benchmark_probes import meets

NORTHCUTT_TEST_ERRORS = (947, 1621, 1901, 2130, 2462, 2597, 2654, 3520, 3558, 5937, 6651, 6783, 8527, 9679, 9729)

ENSEMBLE_TARGETS = {"digit_acc": (">=", 0.9978), "exact_at_90_length_10": (">=", 0.996), "sum_ece": ("<=", 0.01),
                    "coverage_10": (">=", 0.95), "coverage_100": (">=", 0.95), "coverage_1000": (">=", 0.95),
                    "label_errors_in_top_30": (">=", 10), "predict_time_vs_single": ("<=", 2.0)}
# What was tried against the ensemble's missed targets (kept with the report; figures from the run of 2026-12-07).
ENSEMBLE_TRIED = [
    "Digit accuracy: three CNNs of the default recipe (24 epochs, about 20 minutes each alone on the 2-core CPU, "
    "about 37 when two train side by side) were what one session's CPU time allowed; no GPU was lent. Five members "
    "or longer schedules did not fit. val_select chose the recipe without label smoothing: two-member ensembles "
    "read 99.76% against 99.56% with smoothing, with lower NLL and digit AURC (Xia et al.'s observation holds here).",
    "Sum ECE: the ensemble's p_exact is under-confident (its mean p_exact 0.574 against exact-match 0.642 pooled), "
    "while every interval coverage target is met. The head's temperature is fitted on per-step digit NLL on "
    "val_calib, as for the single CNN; with averaged members that optimum leaves sums too unsure. Fitting it on "
    "sum-level NLL is the next step, not tried in this session.",
    "Exact-match at 90% coverage and the published label errors follow the digits the members misread together, "
    "with confidence: they agree on most of them, so averaging does not single them out.",
    "p.predict time: the members read each unique image one after another, three CNN passes. Merging them into "
    "grouped convolutions measured only about 10% faster, so the default stays the single CNN although the "
    "ensemble wins on val.",
    "Distillation into one CNN (optional) was not trained: it needs another CNN run beyond the session's CPU time.",
]
VAL_SEQUENCES = 2000  # length-10 val_select sequences for the default's choice


def label_error_hits(path, k: int = SUSPECT_K) -> dict:
    """How many of NORTHCUTT_TEST_ERRORS are among the checkpoint's k most suspect test labels."""
    ranked = suspect_labels(load_predictor(path, device="cpu"))["index"].to_numpy()
    found = sorted(int(i) for i in set(ranked[:k].tolist()) & set(NORTHCUTT_TEST_ERRORS))
    return {"k": k, "hits": len(found), "of": len(NORTHCUTT_TEST_ERRORS), "found": found}


def val_figures(path, seed: int = 0) -> dict:
    """val_select digit accuracy, and exact-match of VAL_SEQUENCES length-10 val_select sequences (all, and
    the 90% with the highest p_exact): what the default's choice reads, never a test image."""
    predictor = load_predictor(path, device="cpu")
    images, labels = split_arrays(load_mnist(), SELECTION_SPLIT)
    logits = predictor.split_logits(SELECTION_SPLIT)
    seqs = evaluation_sequences([10], VAL_SEQUENCES, seed, SELECTION_SPLIT, labels)
    prediction = predictor.run_indexed(images, seqs.indices, seqs.lengths, split=SELECTION_SPLIT)
    exact = np.rint(prediction.sums) == seqs.sums
    return {"digit_acc": float((logits.argmax(1) == labels).mean()), "exact_length_10": float(exact.mean()),
            "exact_at_90_length_10": exact_at_coverage(pd.DataFrame({"p_exact": prediction.p_exact, "exact": exact}))}


def wins_on_val(val: dict) -> bool:
    """The ensemble wins when it reads at least as many val_select digits and length-10 sums right as the
    single CNN, and more of one of them."""
    e, s = val["ensemble"], val["single"]
    keys = ("digit_acc", "exact_length_10")
    return all(e[k] >= s[k] for k in keys) and any(e[k] > s[k] for k in keys)


def doubt_helps(doubt: dict) -> bool:
    """Member disagreement joins the p_exact ranking only if, on val, it ranks no worse at every studied
    length (exact-match at 90% coverage and AURC) and better somewhere."""
    pairs = [(d["p_exact x agreement"][k], d["p_exact"][k], k) for n, d in doubt.items() if n.isdigit()
             for k in ("exact_at_90", "aurc")]
    no_worse = all((new >= old) if k == "exact_at_90" else (new <= old) for new, old, k in pairs)
    return no_worse and any(new != old for new, old, _ in pairs)


def ensemble_report(path, default_path, ensemble_result: dict, default_result: dict) -> dict:
    """Everything the ensemble section of the report shows, beside the default's benchmark result."""
    meta = read_metadata(path)
    val = {"ensemble": val_figures(path), "single": val_figures(default_path)}
    ratio = ensemble_result["original"]["predict_seconds"] / default_result["original"]["predict_seconds"]
    return {"checkpoint": str(path), "size_bytes": Path(path).stat().st_size, "members": meta["model_config"]["members"],
            "selection": meta.get("ensemble"), "val": val, "wins_on_val": wins_on_val(val), "predict_time_vs_single": ratio,
            "becomes_default": wins_on_val(val) and ratio <= ENSEMBLE_TARGETS["predict_time_vs_single"][1],
            "doubt": doubt_study(load_predictor(path, device="cpu")),
            "label_errors": {"single": label_error_hits(default_path), "ensemble": label_error_hits(path)}}


def ensemble_rows(section: dict) -> list[tuple[str, float, str, float, bool]]:
    """The issue's targets for the ensemble, measured on test (and its p.predict time over the single's)."""
    result = section["result"]
    measured = {"digit_acc": result["digit_acc"]}
    if result.get("trust"):  # --trust-per-length 0 skips the calibration figures
        cal = result["trust"]["calibration"]
        measured.update({"exact_at_90_length_10": cal["exact_at_90_length_10"], "sum_ece": cal["sums_after"]["sum_ece"],
                         **{f"coverage_{n}": v for n, v in cal["sums_after"]["coverage_by_length"].items()}})
    measured |= {"label_errors_in_top_30": section["label_errors"]["ensemble"]["hits"],
                "predict_time_vs_single": section["predict_time_vs_single"]}
    return [(key, measured[key], op, bound, meets(op, measured[key], bound))
            for key, (op, bound) in ENSEMBLE_TARGETS.items() if measured.get(key) is not None]


def ensemble_markdown(section: dict | None) -> list[str]:
    if not section:
        return []
    sel, val = section["selection"] or {}, section["val"]
    out = ["", f"## Ensemble: `{section['checkpoint']}` ({section['members']} CNNs, {section['size_bytes'] / 2**20:.1f} MB)", "",
           "Members trained apart with their own seeds, each member's temperature fitted on val_calib, their calibrated "
           "probabilities averaged, one lstm head over them (core/training/ensemble.py). Targets on test:", "",
           "| target | measured | bound | met |", "|---|---:|---:|---|"]
    out += [f"| {k} | {v:.4f} | {op} {b} | {'yes' if ok else 'NO'} |" for k, v, op, b, ok in ensemble_rows(section)]
    out += ["", "Recipes on val_select (the assembled CNNs before any head; AURC ranks the digits by confidence):", "",
            "| recipe | members | label smoothing | digit acc | NLL | digit AURC | members' own acc | members disagree |",
            "|---|---:|---:|---:|---:|---:|---|---:|"]
    for name, block in [("shipped", sel)] + [(f"compared: {a['path']}", a) for a in sel.get("alternatives", [])]:
        if block.get("val"):
            v, smoothing = block["val"], sorted({m["label_smoothing"] for m in block["members"]})
            out.append(f"| {name} | {len(block['members'])} | {', '.join(map(str, smoothing))} | {f(v['digit_acc'])} | "
                       f"{f(v['nll'])} | {f(v['digit_aurc'], 5)} | {', '.join(f(a) for a in v['member_digit_acc'])} | "
                       f"{f(v['disagree'])} |")
    e, s = val["ensemble"], val["single"]
    out += ["", "The default's choice, on val_select (2,000 length-10 sequences; test is never read for it):", "",
            "| model | digit acc | exact-match at 10 | exact at 90% coverage |", "|---|---:|---:|---:|",
            f"| single CNN (default.pt) | {f(s['digit_acc'])} | {f(s['exact_length_10'])} | {f(s['exact_at_90_length_10'])} |",
            f"| ensemble | {f(e['digit_acc'])} | {f(e['exact_length_10'])} | {f(e['exact_at_90_length_10'])} |", "",
            f"Wins on val: {'yes' if section['wins_on_val'] else 'no'}; p.predict time {section['predict_time_vs_single']:.2f}x "
            f"the single CNN's (bound 2x). The default {'becomes the ensemble' if section['becomes_default'] else 'stays the single CNN'}."]
    d = section["doubt"]
    out += ["", f"Doubt signal, member disagreement, on {d['split']} ({d['images_with_disagreement']} of {d['images']} "
            f"images where a member reads another digit; {d['sequences_per_length']} sequences per length):", "",
            "| length | ranking | exact at 90% coverage | AURC |", "|---|---|---:|---:|"]
    for n in (k for k in d if k.isdigit()):
        out += [f"| {n} | {name} | {f(v['exact_at_90'])} | {f(v['aurc'], 5)} |" for name, v in d[n].items()]
    out += ["", "It joins the p_exact ranking only if it ranks no worse at every length and better somewhere: "
            + ("it does, so it is folded in." if doubt_helps(d) else "it does not, so p_exact ranks alone.")]
    hits = section["label_errors"]
    out += ["", "What was tried against the missed targets:", ""] + [f"- {line}" for line in ENSEMBLE_TRIED]
    out += ["", f"Published label errors (Northcutt et al. 2021, {hits['single']['of']} validated test images) among the "
            f"top {hits['single']['k']} suspects: single CNN {hits['single']['hits']}, ensemble {hits['ensemble']['hits']} "
            f"(found: {hits['ensemble']['found']}). Measured here only, never an input."]
    return out
