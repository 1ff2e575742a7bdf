"""scripts.benchmark on a tiny configuration: the report is written, complete and consistent."""

import json
import shutil

import numpy as np
import pytest

from core import load_predictor
from core.data import generate_sequences, load_mnist, split_arrays
from core.evaluate import ORIGINAL_PROTOCOL, evaluate_sequences
from scripts import benchmark


def test_benchmark_writes_a_consistent_report(smoke_checkpoint, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    shutil.copy2(smoke_checkpoint, checkpoints / "default.pt")
    out = tmp_path / "report" / "bench"
    assert benchmark.main(["--checkpoint-dir", str(checkpoints), "--heads", "lstm", "--lengths", "1,3",
                           "--per-length", "20", "--seed", "4", "--trust-per-length", "30", "--probe-rows", "0", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    (result,) = report["heads"]
    assert result["head"] == "lstm" and result["preset"] == "smoke"
    assert [row["length"] for row in result["by_length"]] == [1, 3] and result["eval_sequences"] == 40
    assert result["original"]["n"] == 20_000
    # The figures again, by another road from the same checkpoint: the CNN run afresh on every test image,
    # and the protocol's sequences through the evaluation table (cached logits) instead of predict().
    predictor = load_predictor(smoke_checkpoint, device="cpu")
    images, labels = split_arrays(load_mnist(), "test")
    assert result["digit_acc"] == pytest.approx((predictor.cnn_logits(images).numpy().argmax(axis=1) == labels).mean(),
                                                abs=1e-4)  # one image in 10,000
    p = ORIGINAL_PROTOCOL
    table = evaluate_sequences(predictor, generate_sequences("test", p["count"], p["length"], seed=p["seed"],
                                                             labels=labels), images)
    assert result["original"]["exact_acc"] == pytest.approx(np.mean(table.pred_rounded == table.true_sum), abs=1e-4)
    assert result["original"]["mae"] == pytest.approx(table.abs_error.mean(), rel=1e-4)
    markdown = out.with_suffix(".md").read_text()
    assert "## Targets for the default checkpoint" in markdown and f"{result['original']['mae']:.4f}" in markdown
    assert not list(out.parent.glob("*.tmp"))  # atomic writes leave nothing behind
    trust = result["trust"]  # calibration, point choices, cost, calibrators
    digits = trust["calibration"]["digits"]
    assert digits["after"]["nll"] < digits["before"]["nll"] and digits["after"]["accuracy"] == digits["before"]["accuracy"]
    assert set(trust["calibration"]["sums_after"]["coverage_by_length"]) == {"10", "100", "1000"}  # JSON keys
    assert set(trust["points"]) == {"head", "mode", "median"} and "Point prediction" in markdown
    suspects = report["suspects"]
    assert suspects["k"] == len(suspects["top"]) == 30 and set(suspects["all"]) == set(suspects["aside"])
    assert "suspect labels set aside" in markdown


def test_benchmark_refuses_unknown_heads_with_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--heads", "transformer", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "unknown head" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--per-length", "0"), ("--trust-per-length", "-1"), ("--seed", "-2")])
def test_benchmark_bad_numbers_name_the_flag(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main([flag, value, "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and f"{flag} must be at least" in capsys.readouterr().err


def test_robustness_probe_renders_every_corruption_and_flags_missed_targets(smoke_checkpoint):
    from core import load_predictor
    from core.evaluate.robustness import CORRUPTIONS
    from scripts.benchmark_probes import probe_markdown, probe_rows, robustness

    found = robustness(load_predictor(smoke_checkpoint, device="cpu"), rows=6, limit=300)
    assert set(found["corruptions"]) == {"clean", "mean", *CORRUPTIONS} and found["rows"]["n_rows"] == 6
    probes = {"checkpoint": str(smoke_checkpoint), "robustness": found,
              "digit_map": {"seconds_cold": 75.0, "seconds_cached": 0.01, "points": 300, "knn_agreement_mean": 0.9,
                            "knn_majority_share": 0.95}}
    markdown = "\n".join(probe_markdown(probes))
    assert all(name in markdown for name in CORRUPTIONS) and f"{found['corruptions']['mean']:.4f}" in markdown
    verdicts = {key: ok for key, _, _, _, ok in probe_rows(probes)}
    assert verdicts["map_seconds_cold"] is False and verdicts["map_knn_agreement"] is True  # 75 s > 60 s
    assert "| map_seconds_cold | 75.0000 | <= 60.0 | NO |" in markdown


def test_dashboard_targets_are_read_from_the_timings():
    from scripts.benchmark_report import dashboard_rows

    timings = {"click Overview -> Slices (cached)": 0.5, "click Slices -> Overview (cached)": 0.7,
               "click Overview -> Slices (first visit)": 3.0, "20,000 sequences: filter change, errors only on": 0.9}
    rows = {name: (value, ok) for name, value, _, _, ok in dashboard_rows(timings)}
    assert rows == {"slowest cached click between views": (0.7, False),
                    "slowest filter change on 20,000 sequences (lengths 1-100)": (0.9, True)}
