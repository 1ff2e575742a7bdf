"""The evaluate and generate CLIs, and evaluation_set's single pass, against the shipped checkpoint."""

import json

import numpy as np
import pytest

from core import evaluate, load_predictor
from core.data import generate_sequences, load_mnist, split_arrays
from core.paths import DEFAULT_CHECKPOINT
from core.seeds import derive_seed
from scripts import evaluate as evaluate_cli
from scripts import generate as generate_cli

CHECKPOINT = str(DEFAULT_CHECKPOINT)


def test_evaluate_cli_writes_json_and_markdown(tmp_path):
    out = tmp_path / "eval"
    assert evaluate_cli.main(["--checkpoint", CHECKPOINT, "--lengths", "2,5", "--count", "30", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert [row["length"] for row in report["by_length"]] == [2, 5]
    assert all(row["n"] == 30 for row in report["by_length"]) and report["split"] == "test"
    assert "| 5 | 30 |" in out.with_suffix(".md").read_text()


def test_generate_cli_honours_the_spec_and_writes_png(tmp_path):
    out = tmp_path / "seq"
    assert generate_cli.main(["--checkpoint", CHECKPOINT, "--length", "12", "--target-sum", "60",
                              "--digits", "357", "--seed", "4", "--out", str(out)]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["true_sum"] == 60 and set(record["true_digits"]) <= {3, 5, 7} and len(record["indices"]) == 12
    assert abs(record["pred_sum"] - record["error"] - 60) < 1e-9
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("argv, message", [
    (["--length", "5", "--target-sum", "100"], "no sequence of length 5"),
    (["--length", "0"], "1..5000"),
    (["--digits", "3x"], "--digits"),
    (["--sum-range", "9"], "LO-HI"),
])
def test_generate_cli_bad_input_is_a_clear_usage_error(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        generate_cli.main(["--checkpoint", CHECKPOINT, "--out", str(tmp_path / "x"), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_evaluate_cli_rejects_bad_lengths_and_missing_checkpoints(tmp_path, capsys):
    for argv, message in ((["--lengths", "5-2"], "bad length"), (["--checkpoint", str(tmp_path / "none.pt")], "none.pt")):
        with pytest.raises(SystemExit) as exit_info:
            evaluate_cli.main([*argv, "--out", str(tmp_path / "x")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_evaluation_set_in_one_pass_matches_per_length_evaluation():
    predictor = load_predictor(CHECKPOINT, device="cpu")
    images, labels = split_arrays(load_mnist(), "test")
    together = evaluate.evaluation_set(predictor, [3, 1, 7], 20, seed=5)
    assert list(together["length"]) == [1] * 20 + [3] * 20 + [7] * 20 and together["seq_id"].is_unique
    for length in (1, 3, 7):
        alone = evaluate.evaluate_sequences(predictor, generate_sequences("test", 20, length, seed=derive_seed(5, length),
                                                                          labels=labels), images)
        rows = together[together["length"] == length]
        np.testing.assert_allclose(rows["pred_sum"], alone["pred_sum"], atol=1e-6)
        assert list(rows["true_digits"]) == list(alone["true_digits"])
