"""The benchmark's probes beyond the head comparison: robustness to other writers (corrupted test
digits, photographed rows read back with core.handwriting), the digit map's cost and quality, and a
personal model of a stand-in writer (core.data.stand_in). scripts/benchmark.py calls `probe` on the
default checkpoint and `probe_markdown` renders the result."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from core import load_predictor
from core.paths import REPO_ROOT

PROBE_TARGETS = {  # key -> (op, bound): issue 12's robustness and issue 11's map targets
    "corruption_mean": (">=", 0.97), "row_count_accuracy": (">=", 0.99), "row_sum_exact_5": (">=", 0.95),
    "map_seconds_cold": ("<=", 60.0), "map_knn_agreement": (">", 0.5),
}
PERSONAL_TARGETS = {  # key -> (op, bound): the personal preset on the stand-in writer, on the 2-core CPU
    "personal_stand_in_after": (">=", 0.99), "personal_mnist_test_after": (">=", 0.996), "personal_seconds": ("<=", 300.0),
}
PERSONAL_SIZE = {"train_saves": 30, "per_save": 30, "others": 900}  # 900 digits to learn from, 900 to measure


@contextmanager
def _environment(name: str, value: str):
    """The environment variable `name` set to `value` for the block, restored after it."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


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

    with tempfile.TemporaryDirectory(prefix="digit-map-") as scratch, _environment("DIGITSUM_CACHE_DIR", scratch):
        predictor = load_predictor(path, device="cpu")
        cache.data_key()  # MNIST loaded and hashed first, as in a running dashboard
        predictor.split_logits("test")
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            points = digit_map(predictor, "test")
            timings.append(time.perf_counter() - start)
    xy, labels = points[["x", "y"]].to_numpy(), points["label"].to_numpy()
    neighbours = NearestNeighbors(n_neighbors=11).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    agreement = (labels[neighbours] == labels[:, None]).mean(axis=1)
    return {"seconds_cold": round(timings[0], 2), "seconds_cached": round(timings[1], 3), "points": len(points),
            "knn_agreement_mean": float(agreement.mean()), "knn_majority_share": float((agreement > 0.5).mean())}


def personal(parent: Path, train_saves: int, per_save: int, others: int, extra_args=()) -> dict:
    """`python -m scripts.train --preset personal` from `parent` on the stand-in writer, timed: a fresh
    collection whose train part holds `train_saves` saves of `per_save` stand-in digits (val_select
    images, core.data.stand_in), then the digit accuracy of the parent and of the personal model on
    `others` MNIST test digits in the same hand and on all 10,000 MNIST test images. Everything is
    written to a temporary folder."""
    from core.data.stand_in import stand_in_digits, write_stand_in_collection
    from core.evaluate import digit_accuracy
    from core.model.checkpoint import read_metadata

    images, labels = stand_in_digits("test", others)
    with tempfile.TemporaryDirectory(prefix="personal-") as scratch:
        collection = str(Path(scratch) / "collection")
        with _environment("DIGITSUM_COLLECTION_DIR", collection):
            write_stand_in_collection(train_saves, per_save)
        out = Path(scratch) / "personal.pt"
        command = [sys.executable, "-m", "scripts.train", "--preset", "personal", "--init-from", str(parent),
                   "--out", str(out), "--device", "cpu", "--no-progress", *extra_args]
        load, cpu, start = os.getloadavg()[0], _children_cpu_seconds(), time.perf_counter()
        done = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, "DIGITSUM_COLLECTION_DIR": collection},
                              capture_output=True, text=True)
        seconds, cpu = time.perf_counter() - start, _children_cpu_seconds() - cpu
        if done.returncode != 0:
            raise RuntimeError(f"the personal run failed ({done.returncode}): {done.stderr[-2000:]}")
        lineage = read_metadata(out)["lineage"]
        figures = {}
        for name, path in (("before", parent), ("after", out)):
            predictor = load_predictor(path, device="cpu")
            figures[f"stand_in_{name}"] = float((predictor.cnn_logits(images).numpy().argmax(1) == labels).mean())
            figures[f"mnist_test_{name}"] = float(digit_accuracy(predictor))
    # The machine's load (1-minute average) at the start and the run's CPU seconds say how far other
    # processes stretched the wall time.
    return {"parent": str(parent), "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "cores": os.cpu_count(),
            "load_at_start": round(load, 2), "stand_in_digits": int(len(labels)),
            "collection_digits": lineage["data"]["collection_digits"], **figures}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def probe(path: Path, rows: int = 1000) -> dict:
    return {"checkpoint": str(path), "robustness": robustness(load_predictor(path, device="cpu"), rows),
            "digit_map": digit_map_cost(path)}


def meets(op: str, value: float, bound: float) -> bool:
    """Whether `value` meets a target `op bound` (op: "<=", ">=" or ">"): the benchmark's one check."""
    return {"<=": value <= bound, ">=": value >= bound, ">": value > bound}[op]


def fmt(value, digits: int = 4) -> str:
    """A figure for the report: fixed digits, or a dash when it was not measured."""
    return "—" if value is None else f"{value:.{digits}f}"


def probe_rows(probes: dict) -> list[tuple[str, float, str, float, bool]]:
    r, m = probes["robustness"], probes["digit_map"]
    measured = {"corruption_mean": r["corruptions"]["mean"], "row_count_accuracy": r["rows"]["count_accuracy"],
                "row_sum_exact_5": r["rows"]["sum_exact"], "map_seconds_cold": m["seconds_cold"],
                "map_knn_agreement": m["knn_majority_share"]}
    targets = dict(PROBE_TARGETS)
    if probes.get("personal"):
        p = probes["personal"]
        measured.update(personal_stand_in_after=p["stand_in_after"], personal_mnist_test_after=p["mnist_test_after"],
                        personal_seconds=p["seconds"])
        targets.update(PERSONAL_TARGETS)
    rows = []
    for key, (op, bound) in targets.items():
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
            "most do."]
    out += personal_markdown(probes.get("personal"))
    out += ["", "## Targets for robustness, the digit map and the personal model", "", "| target | measured | bound | met |",
            "|---|---:|---:|---|"]
    out += [f"| {key} | {value:.4f} | {op} {bound} | {'yes' if ok else 'NO'} |" for key, value, op, bound, ok in
            probe_rows(probes)]
    return out


def personal_markdown(found: dict | None) -> list[str]:
    if not found:
        return []
    return ["", "## A personal model (the stand-in writer)", "",
            f"`python -m scripts.train --preset personal --init-from {Path(found['parent']).name}` on "
            f"{found['collection_digits']} digits of a stand-in writer (core/data/stand_in.py: MNIST val_select "
            "digits sheared far left, thickened and blurred; never in a shipped model), saved as a collection, "
            "measured on MNIST test digits in the same hand:", "",
            "| | before (parent) | after (personal) |", "|---|---:|---:|",
            f"| digit accuracy on {found['stand_in_digits']} test digits by the same writer | "
            f"{found['stand_in_before']:.4f} | {found['stand_in_after']:.4f} |",
            f"| digit accuracy on all 10,000 MNIST test images | {found['mnist_test_before']:.4f} | "
            f"{found['mnist_test_after']:.4f} |", "",
            f"The whole command took {found['seconds']:.0f} s on {found['cores']} cores ({found['cpu_seconds']:.0f} "
            f"CPU seconds; the machine's load average was {found['load_at_start']:.2f} when it started)."]
