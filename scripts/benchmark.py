"""The project's benchmark: every quality and speed figure we report comes from here.

    python -m scripts.benchmark                      # all head variants, all figures -> reports/benchmark.{md,json}
    python -m scripts.benchmark --train-heads        # (re)train the comparison heads on the default CNN first
    python -m scripts.benchmark --dashboard          # also time the dashboard in headless chromium

Every figure is measured on MNIST test images only. Heads compared (same CNN, see README):
  lstm (the shipped default), lstm-final (the original design), deepsets, argmax-sum.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core import load_predictor
from core.constants import SUSPECT_K
from core.data import generate_sequences, load_mnist, parse_lengths, split_arrays
from core.evaluate import (
    ORIGINAL_PROTOCOL,
    by_length,
    digit_accuracy,
    evaluation_set,
    headline_figures,
    suspect_labels,
    trust,
)
from core.io import write_text_atomic
from core.model import HEADS, has_distribution
from scripts.benchmark_report import render_markdown
from scripts.cli import Parser


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


def trust_figures(predictor, per_length: int, seed: int) -> dict | None:
    """Calibration, point choices, cost and calibrators, for heads with a distribution over the sum."""
    if not has_distribution(predictor.head):
        return None
    return {"calibration": trust.calibration_figures(predictor, per_length, seed),
            "points": trust.point_choices(predictor, per_length, seed),
            "cost": trust.distribution_cost(predictor), "calibrators": trust.compare_calibrators(predictor)}


def benchmark_head(head: str, path: Path, lengths: list[int], per_length: int, seed: int,
                   trust_per_length: int) -> dict:
    predictor = load_predictor(path, device="cpu")
    meta = predictor.metadata
    start = time.perf_counter()
    table = by_length(evaluation_set(predictor, lengths, per_length, seed))
    eval_seconds = time.perf_counter() - start
    return {
        "trust": trust_figures(predictor, trust_per_length, seed) if trust_per_length else None,
        "head": head, "checkpoint": str(path), "preset": meta.get("preset"),
        "train_lengths": meta.get("train_lengths"), "train_seconds": (meta.get("metrics") or {}).get("train_seconds"),
        "digit_acc": digit_accuracy(predictor), "original": original_protocol(predictor),
        "by_length": table.to_dict(orient="records"), "eval_seconds": round(eval_seconds, 2),
        "eval_sequences": int(table["n"].sum()),
    }


def suspects_both_ways(path: Path) -> dict:
    """The headline figures with all test labels, and with the SUSPECT_K most suspect images set aside."""
    predictor = load_predictor(path, device="cpu")
    ranked = suspect_labels(predictor)
    aside = ranked["index"].to_numpy()[:SUSPECT_K]
    return {"k": SUSPECT_K, "checkpoint": str(path), "top": ranked.head(SUSPECT_K).to_dict(orient="records"),
            "all": headline_figures(predictor), "aside": headline_figures(predictor, exclude=aside)}


def main(argv=None) -> int:
    parser = Parser(prog="python -m scripts.benchmark", description="Benchmark every head variant on MNIST test sequences.")
    parser.add_argument("--checkpoint-dir", default="checkpoints", help="where default.pt and the comparison heads live")
    parser.add_argument("--heads", default=",".join(HEADS), help="comma-separated head variants to benchmark")
    parser.add_argument("--lengths", default="1-10,20,50,100,1000", help="sequence lengths to evaluate")
    parser.add_argument("--per-length", type=int, default=1000, help="test sequences per length")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation sequences")
    parser.add_argument("--trust-per-length", type=int, default=2000,
                        help="test sequences per length (10, 100, 1000) for the calibration figures; 0 skips them")
    parser.add_argument("--train-heads", action="store_true", help="train the comparison heads on the default CNN first")
    parser.add_argument("--probe-rows", type=int, default=1000,
                        help="handwriting rows for the robustness probe of the default checkpoint; 0 skips the probes")
    parser.add_argument("--no-personal", action="store_true",
                        help="skip the probe that trains a personal model of a stand-in writer (a few minutes)")
    parser.add_argument("--no-ensemble", action="store_true",
                        help="skip CHECKPOINT_DIR/ensemble.pt, the ensemble benchmarked beside the default (issue 19)")
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
        parser.error(f"--lengths: {exc}")
    for flag, value, least in (("--per-length", args.per_length, 1), ("--trust-per-length", args.trust_per_length, 0),
                               ("--seed", args.seed, 0), ("--probe-rows", args.probe_rows, 0)):
        if value < least:
            parser.error(f"{flag} must be at least {least}, got {value}")
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
        results.append(benchmark_head(head, path, lengths, args.per_length, args.seed, args.trust_per_length))
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
        "per_length": args.per_length, "seed": args.seed, "heads": results, "notes": args.note,
        "trust_per_length": args.trust_per_length,
        "suspects": suspects_both_ways(checkpoint_for("lstm" if "lstm" in heads else heads[0], checkpoint_dir)),
    }
    default_result = next((r for r in results if r["head"] == "lstm"), None)
    ensemble = checkpoint_dir / "ensemble.pt"
    if not args.no_ensemble and default_result is not None and ensemble.is_file():
        from scripts.benchmark_ensemble import ensemble_report

        print(f"benchmarking the ensemble ({ensemble}) ...", flush=True)
        result = benchmark_head("ensemble", ensemble, lengths, args.per_length, args.seed, args.trust_per_length)
        report["ensemble"] = {"result": result, **ensemble_report(ensemble, checkpoint_for("lstm", checkpoint_dir),
                                                                  result, default_result)}
    if args.probe_rows:
        from scripts.benchmark_probes import PERSONAL_SIZE, personal, probe

        print("probing robustness and the digit map ...", flush=True)
        default = checkpoint_for("lstm" if "lstm" in heads else heads[0], checkpoint_dir)
        report["probes"] = probe(default, args.probe_rows)
        if not args.no_personal:
            print("training a personal model of the stand-in writer ...", flush=True)
            report["probes"]["personal"] = personal(default, **PERSONAL_SIZE)
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
