"""The benchmark's probes beyond the head comparison: robustness to other writers (corrupted test
digits, photographed rows read back with core.handwriting) and the digit map's cost and quality.
scripts/benchmark.py calls `probe` on the default checkpoint and `probe_markdown` renders the result."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from core import load_predictor

PROBE_TARGETS = {  # key -> (op, bound): issue 12's robustness and issue 11's map targets
    "corruption_mean": (">=", 0.97), "row_count_accuracy": (">=", 0.99), "row_sum_exact_5": (">=", 0.95),
    "map_seconds_cold": ("<=", 60.0), "map_knn_agreement": (">", 0.5),
}


def robustness(predictor, rows: int, limit: int | None = None) -> dict:
    """Per-corruption digit accuracy on all 10,000 test images (the first `limit`), and `rows` length-5
    rows on paper (and half as many with touching pairs)."""
    from core.evaluate.robustness import corruption_accuracy, row_reading

    start = time.perf_counter()
    corruptions = corruption_accuracy(predictor, limit=limit)
    seconds = time.perf_counter() - start
    return {"corruptions": corruptions, "corruption_seconds": round(seconds, 2),
            "rows": row_reading(predictor, n_rows=rows, length=5),
            "rows_touching": row_reading(predictor, n_rows=rows // 2, length=5, touching=True)}


def digit_map_cost(path: Path) -> dict:
    """The test split's digit map for a checkpoint with an empty cache (cold) and again (cached), and
    the share of points whose 10 nearest map neighbours mostly share their label."""
    from sklearn.neighbors import NearestNeighbors

    from core.evaluate import digit_map
    from core.predict import cache

    before = os.environ.get("DIGITSUM_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="digit-map-") as scratch:
        os.environ["DIGITSUM_CACHE_DIR"] = scratch
        try:
            predictor = load_predictor(path, device="cpu")
            cache.data_key()  # MNIST loaded and hashed first, as in a running dashboard
            predictor.split_logits("test")
            timings = []
            for _ in range(2):
                start = time.perf_counter()
                points = digit_map(predictor, "test")
                timings.append(time.perf_counter() - start)
        finally:
            if before is None:
                os.environ.pop("DIGITSUM_CACHE_DIR", None)
            else:
                os.environ["DIGITSUM_CACHE_DIR"] = before
    xy, labels = points[["x", "y"]].to_numpy(), points["label"].to_numpy()
    neighbours = NearestNeighbors(n_neighbors=11).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    agreement = (labels[neighbours] == labels[:, None]).mean(axis=1)
    return {"seconds_cold": round(timings[0], 2), "seconds_cached": round(timings[1], 3), "points": len(points),
            "knn_agreement_mean": float(agreement.mean()), "knn_majority_share": float((agreement > 0.5).mean())}


def probe(path: Path, rows: int = 1000) -> dict:
    return {"checkpoint": str(path), "robustness": robustness(load_predictor(path, device="cpu"), rows),
            "digit_map": digit_map_cost(path)}


def meets(op: str, value: float, bound: float) -> bool:
    """Whether `value` meets a target `op bound` (op: "<=", ">=" or ">"): the benchmark's one check."""
    return {"<=": value <= bound, ">=": value >= bound, ">": value > bound}[op]


def probe_rows(probes: dict) -> list[tuple[str, float, str, float, bool]]:
    r, m = probes["robustness"], probes["digit_map"]
    measured = {"corruption_mean": r["corruptions"]["mean"], "row_count_accuracy": r["rows"]["count_accuracy"],
                "row_sum_exact_5": r["rows"]["sum_exact"], "map_seconds_cold": m["seconds_cold"],
                "map_knn_agreement": m["knn_majority_share"]}
    rows = []
    for key, (op, bound) in PROBE_TARGETS.items():
        value = measured[key]
        rows.append((key, value, op, bound, meets(op, value, bound)))
    return rows


def probe_markdown(probes: dict | None) -> list[str]:
    if not probes:
        return []
    r, m = probes["robustness"], probes["digit_map"]
    corr = r["corruptions"]
    names = [k for k in corr if k not in ("clean", "mean")]
    out = ["", f"## Robustness to other writers (`{Path(probes['checkpoint']).name}`)", "",
           "Digit accuracy of the CNN on all 10,000 test images, each corrupted in code in the manner of MNIST-C "
           "(core/evaluate/robustness.py names each severity):", "",
           "| clean | " + " | ".join(names) + " | mean of corruptions |", "|---:|" + "---:|" * (len(names) + 1),
           f"| {corr['clean']:.4f} | " + " | ".join(f"{corr[n]:.4f}" for n in names) + f" | {corr['mean']:.4f} |", ""]
    for key, label in (("rows", "apart"), ("rows_touching", "touching in pairs")):
        row = r[key]
        out.append(f"- Rows of {row['length']} test digits on paper ({label}; random sizes, gaps, paper gradient, "
                   f"noise), read back with `read_digits`: digit count right on {row['count_accuracy']:.2%} of "
                   f"{row['n_rows']} rows, sum exact on {row['sum_exact']:.2%}, digits read right "
                   f"{row['digit_accuracy']:.2%} ({row['reading_seconds']:.1f} s to read the rows).")
    out += ["", "## Digit map", "",
            f"UMAP of the CNN's penultimate features of {m['points']:,} test digits: {m['seconds_cold']:.1f} s with an "
            f"empty cache, {m['seconds_cached']:.3f} s from the cache. Among each point's 10 nearest map neighbours, "
            f"{m['knn_agreement_mean']:.1%} share its label on average; for {m['knn_majority_share']:.1%} of points "
            "most do.", "", "## Targets for robustness and the digit map", "", "| target | measured | bound | met |",
            "|---|---:|---:|---|"]
    out += [f"| {key} | {value:.4f} | {op} {bound} | {'yes' if ok else 'NO'} |" for key, value, op, bound, ok in
            probe_rows(probes)]
    return out

