"""The benchmark's report: targets, what was tried, and the markdown rendering of reports/benchmark.json.
(The measuring is in scripts/benchmark.py and core.evaluate.)"""

from __future__ import annotations

from core.evaluate import ORIGINAL_MAE
from scripts.benchmark_ensemble import ensemble_markdown
from scripts.benchmark_probes import fmt as _f
from scripts.benchmark_probes import meets, probe_markdown

TARGETS = {  # the default checkpoint's targets (issue 10 for accuracy and speed)
    "original_mae": ("<=", 0.05), "original_exact": (">=", 0.985), "exact_at_100": (">=", 0.85),
    "mae_at_1000": ("<=", 4.0), "digit_acc": (">=", 0.998), "predict_seconds": ("<=", 4.0),
    # trust: calibrated digits and sums
    "digit_ece": ("<=", 0.005), "sum_ece": ("<=", 0.01), "coverage_10": (">=", 0.95), "coverage_100": (">=", 0.95),
    "coverage_1000": (">=", 0.95), "exact_at_90_length_10": (">=", 0.999),
    "distribution_seconds_20000x10": ("<=", 1.0), "distribution_seconds_1x5000": ("<=", 1.0),
}


# What was tried against the targets that the default checkpoint misses (kept with the report).
TRIED = [
    "Digit accuracy 99.8% (missed by 0.10 points: 99.70% on test). Judged by val (5,000 images), within the "
    "30-minute CPU budget: 30 CNN epochs with slant, elastic and stroke-thickness augmentation scored 99.64% on "
    "val; 24 epochs adding pixel noise on half the images scored 99.74% and is shipped (the previous default, 15 "
    "epochs of affine augmentation, scored 99.68% on val and 99.72% on test). An ensemble of two CNNs or averaged "
    "test-time views would double the CNN pass, which is 2.3 s of p.predict's 3.5 s against a 4 s bound; "
    "distilling an ensemble into one CNN needs the ensemble trained first, beyond this session's CPU time. "
    "Folding BatchNorm into the convs made the CNN pass about 12% faster.",
    "MAE at length 10, exact-match at 10 and 100, MAE at 1000: all follow digit accuracy (at 99.70% even the plain "
    "argmax sum gives MAE 0.127 at length 10; 0.05 needs about 99.9%). Every test sequence draws from the same "
    "10,000 test images, so these figures hinge on which ~30 images a CNN misreads: the new default reads more "
    "val digits right than the previous one, yet scores MAE 0.119 against 0.102 at length 10 and 7.6 against 6.5 "
    "at length 1000 on test. The model is chosen by val, never by test.",
    "MAE at length 1000 is mostly bias: the CNN's few misreadings lean towards lower digits.",
    "Tried for the head: reading the expected digit value instead of a whole digit per step (soft "
    "contributions add up to fractional errors over long sequences and lowered exact-match).",
    "predict_seconds is measured on a quiet machine; a run with other jobs on the two cores measures several "
    "times that, so compare it only with a quiet run.",
    "Sum ECE, interval coverage at 1000, and exact-match at 90% coverage: the CNN's digit ECE is 0.1% after one "
    "temperature, but the few digits it misreads (13 of 5,000 val images, 30 of 10,000 test images) are misread "
    "with confidence, so p_exact cannot single out the sequences that hold them, and they add up along long "
    "sequences. Tried: one temperature per class (worse cross-validated val NLL), a second temperature for "
    "sum-level NLL on val (the best is the digit-level one), mixing a uniform floor into every digit (coverage "
    "up, but p_exact under-confident at every length), and a split-conformal widening of the intervals fitted "
    "on val: it does not carry over fully to test, because the error pattern of so few misread images differs "
    "between the splits. The table of headline figures with the 30 most suspect images set aside shows how much "
    "of every miss those images carry.",
    "Dashboard (issue 16's 0.6 s per cached click): the evaluation table is columnar and held once per set, "
    "Error analysis draws one chart at a time (each plotly chart costs the browser about 0.1 s), the "
    "predicted-vs-true grid is binned on the server, and a click counts until the last change a person can see. "
    "The slowest click left is Slices -> Digit map, whose 10,000 points are drawn with software WebGL in a "
    "browser without a GPU; it measured 0.47-0.73 s over four runs on the same machine (0.48 s in the latest).",
]

# Issue 16: clicks measured in headless chromium with caches warm (scripts/dashboard_timing.py).
DASHBOARD_TARGETS = {"slowest cached click between views": ("<=", 0.6),
                     "slowest filter change on 20,000 sequences (lengths 1-100)": ("<=", 1.0)}


def dashboard_rows(timings: dict) -> list[tuple[str, float, str, float, bool]]:
    """The dashboard's targets from its timings: the slowest cached click (what a person sees) and the
    slowest filter change on the 20,000-sequence set."""
    worst = {"slowest cached click between views": max(
                 (v for k, v in timings.items() if k.startswith("click") and k.endswith("(cached)")), default=None),
             "slowest filter change on 20,000 sequences (lengths 1-100)": max(
                 (v for k, v in timings.items() if k.startswith("20,000 sequences: filter change")), default=None)}
    rows = []
    for name, value in worst.items():
        if value is not None:
            op, bound = DASHBOARD_TARGETS[name]
            rows.append((name, value, op, bound, meets(op, value, bound)))
    return rows




def at_length(result: dict, length: int, key: str):
    row = next((r for r in result["by_length"] if r["length"] == length), None)
    return None if row is None else row[key]


def target_rows(result: dict) -> list[tuple[str, float, str, float, bool]]:
    measured = {
        "original_mae": result["original"]["mae"], "original_exact": result["original"]["exact_acc"],
        "exact_at_100": at_length(result, 100, "exact_acc"), "mae_at_1000": at_length(result, 1000, "mae"),
        "digit_acc": result["digit_acc"], "predict_seconds": result["original"]["predict_seconds"],
    }
    trust = result.get("trust")
    if trust:
        after = trust["calibration"]["sums_after"]
        measured.update({
            "digit_ece": trust["calibration"]["digits"]["after"]["ece"], "sum_ece": after.get("sum_ece"),
            "exact_at_90_length_10": trust["calibration"]["exact_at_90_length_10"],
            "distribution_seconds_20000x10": trust["cost"]["20000x10"],
            "distribution_seconds_1x5000": trust["cost"]["1x5000"],
            **{f"coverage_{k}": v for k, v in after.get("coverage_by_length", {}).items()},
        })
    rows = []
    for key, (op, bound) in TARGETS.items():
        value = measured.get(key)
        if value is None:
            continue
        rows.append((key, value, op, bound, meets(op, value, bound)))
    return rows


def render_markdown(report: dict) -> str:
    m = report["machine"]
    out = [
        "# Benchmark", "",
        f"Measured {report['created']} by `python -m scripts.benchmark` on {m['cpu']} "
        f"({m['cores']} cores, torch {m['torch']}, {m['torch_threads']} threads, GPU: {m['gpu'] or 'none'}). "
        "Every figure uses MNIST **test** images only.", "",
        "## Original protocol: 20,000 sequences of length 10", "",
        f"The original project reported MAE {ORIGINAL_MAE}. Times are `p.predict` on a (20000, 10, 28, 28) "
        "uint8 array, CNN included.", "",
        "| head | MAE | RMSE | exact-match | CNN digit acc | predict time | sequences/s | training time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["heads"]:
        o, train = r["original"], r["train_seconds"]
        out.append(f"| {r['head']} | {o['mae']:.4f} | {o['rmse']:.4f} | {o['exact_acc']:.4f} | {r['digit_acc']:.4%} | "
                   f"{o['predict_seconds']:.2f} s | {o['sequences_per_second']:,.0f} | "
                   f"{'—' if train is None else f'{train:.0f} s'} |")
    lengths = [row["length"] for row in report["heads"][0]["by_length"]]
    for key, title in (("exact_acc", "Exact-match accuracy"), ("mae", "MAE"), ("rmse", "RMSE")):
        out += ["", f"## {title} by sequence length ({report['per_length']} test sequences per length; trained on lengths "
                f"{report['heads'][0]['train_lengths']})", "",
                "| head | " + " | ".join(str(n) for n in lengths) + " |", "|---|" + "---:|" * len(lengths)]
        for r in report["heads"]:
            out.append(f"| {r['head']} | " + " | ".join(f"{at_length(r, n, key):.3f}" for n in lengths) + " |")
    out += ["", "Evaluation time: " + ", ".join(
        f"{r['head']} {r['eval_seconds']:.0f} s for {r['eval_sequences']:,} sequences" for r in report["heads"]) + "."]
    default = next((r for r in report["heads"] if r["head"] == "lstm"), None)
    if default:
        out += ["", "## Targets for the default checkpoint", "", "| target | measured | bound | met |", "|---|---:|---:|---|"]
        for key, value, op, bound, ok in target_rows(default):
            out.append(f"| {key} | {value:.4f} | {op} {bound} | {'yes' if ok else 'NO'} |")
        if not all(ok for *_, ok in target_rows(default)):
            out += ["", "### What was tried against the missed targets", ""] + [f"- {line}" for line in TRIED]
    out += trust_markdown(report)
    out += ensemble_markdown(report.get("ensemble"))
    out += probe_markdown(report.get("probes"))
    if report.get("notes"):
        out += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    if report.get("dashboard"):
        out += ["", "## Dashboard timings (headless chromium, same machine)", "",
                "A click is timed from the click to the last DOM change a person can see, once the app is idle. "
                "The rows marked 'counting invisible canvas content' also count changes inside a <canvas>: the "
                "data grid adds an accessibility table there about 0.3 s after it has drawn.", "",
                "| target | measured | bound | met |", "|---|---:|---:|:---:|"]
        out += [f"| {name} | {value:.2f} s | {op} {bound} s | {'yes' if ok else 'NO'} |"
                for name, value, op, bound, ok in dashboard_rows(report["dashboard"])]
        out += ["", "| measurement | seconds |", "|---|---:|"]
        out += [f"| {name} | {seconds:.2f} |" for name, seconds in report["dashboard"].items()]
    return "\n".join(out) + "\n"




def trust_markdown(report: dict) -> list[str]:
    """Calibration, the point-prediction choice and the suspect labels, for each head that has them."""
    out = []
    for r in report["heads"]:
        trust = r.get("trust")
        if not trust:
            continue
        cal = trust["calibration"]
        d_before, d_after = cal["digits"]["before"], cal["digits"]["after"]
        out += ["", f"## Trust: `{r['head']}`", "",
                "Temperatures and interval margins are fitted on val_calib (MNIST train[57500:60000]); every figure below is on test images.", "",
                "| digits (10,000 test images) | ECE | NLL | Brier | accuracy |", "|---|---:|---:|---:|---:|",
                f"| before calibration | {_f(d_before['ece'])} | {_f(d_before['nll'])} | {_f(d_before['brier'])} | "
                f"{_f(d_before['accuracy'])} |",
                f"| after | {_f(d_after['ece'])} | {_f(d_after['nll'])} | {_f(d_after['brier'])} | {_f(d_after['accuracy'])} |"]
        before, after = cal["sums_before"], cal["sums_after"]
        if after.get("available"):
            lengths = sorted(after["coverage_by_length"])
            out += ["", f"Sums ({report['trust_per_length']} test sequences per length, lengths {lengths}):", "",
                    "| sums | ECE of p_exact (pooled) | AURC | exact-match at 90% coverage | "
                    + " | ".join(f"95% coverage at {n}" for n in lengths) + " |",
                    "|---|---:|---:|---:|" + "---:|" * len(lengths)]
            for name, figures in (("before calibration", before), ("after", after)):
                out.append(f"| {name} | {_f(figures['sum_ece'])} | {_f(figures['aurc'])} | {_f(figures['exact_at_90'])} | "
                           + " | ".join(_f(figures["coverage_by_length"][n], 3) for n in lengths) + " |")
            out += ["", "Mean interval width by length: " + ", ".join(
                f"{n}: {after['interval_width_by_length'][n]:.1f}" for n in lengths)
                + f". Exact-match on the 90% most confident length-10 sequences: {_f(cal['exact_at_90_length_10'])}."]
        if trust.get("points"):
            lengths = sorted(next(iter(trust["points"].values())))
            out += ["", "Point prediction on val_select sequences (the head's own sum, or the mode or median of its "
                    "distribution; exact-match decides beyond its standard error, else the head's own sum):", "",
                    "| point | " + " | ".join(f"MAE at {n} | exact at {n}" for n in lengths) + " |",
                    "|---|" + "---:|---:|" * len(lengths)]
            for point, by_length in trust["points"].items():
                out.append(f"| {point} | " + " | ".join(f"{_f(by_length[n]['mae'], 3)} | {_f(by_length[n]['exact'], 3)}"
                                                       for n in lengths) + " |")
        if trust.get("calibrators"):
            c = trust["calibrators"]
            out += ["", f"Calibrators, 2-fold cross-validated val_calib NLL of the CNN: uncalibrated {_f(c['uncalibrated'])}, one "
                    f"temperature {_f(c['temperature'])}, one temperature per class {_f(c['per_class_temperature'])}."]
        if trust.get("cost"):
            out += ["", f"Cost of the sum distribution: {trust['cost']['20000x10']:.2f} s for 20,000 length-10 sequences, "
                    f"{trust['cost']['1x5000']:.2f} s for one length-5000 sequence."]
    suspects = report.get("suspects")
    if suspects:
        out += ["", f"## Headline figures with the top {suspects['k']} suspect labels set aside", "",
                "An upper bound, not a performance figure: the ranking is the model's own doubt about each test "
                "label, so the set aside holds every image the model misreads with confidence; a person reading "
                "the top 30 would relabel about a quarter of them (README).", "",
                "| figure | all test labels | suspects set aside |", "|---|---:|---:|"]
        for key, value in suspects["all"].items():
            out.append(f"| {key} | {_f(value)} | {_f(suspects['aside'][key])} |")
    return out
