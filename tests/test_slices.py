"""core.evaluate.slices: error slices find a planted failure and name it, on a real evaluation table of the shipped
checkpoint; every slice is what it says; comparisons of two models and their digit disagreements.

The table is an evaluation set of lengths 5, 10, 50 and 100, plus 80 long sequences without a single 7
(almost every long random sequence holds one), so "length ≥ 50" alone cannot pass for "length ≥ 50 and
holds a 7". Its seq_ids are not contiguous, as in tables that outside code has built.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from core import load_predictor
from core.data import load_mnist, split_arrays
from core.data.sequences import generate_sequences
from core.data import concat_sequences
from core.evaluate import evaluate_sequences, evaluation_set
from core.model import DigitSumModel, ModelConfig
from core.model.checkpoint import save_checkpoint
from core.predict.temperature import softmax
from core.evaluate import compare_slices, digit_disagreements, find_error_slices

COLUMNS = ["slice", "size", "error_rate", "error_coverage", "seq_ids"]


@pytest.fixture(scope="module")
def predictor(checkpoint_dir):
    return load_predictor(checkpoint_dir / "default.pt", device="cpu")


@pytest.fixture(scope="module")
def table(predictor):
    base = evaluation_set(predictor, (5, 10, 50, 100), 60, seed=1)
    images, labels = split_arrays(load_mnist(), "test")
    no_seven = concat_sequences([generate_sequences("test", 40, n, seed=n, allowed_digits=[0, 1, 2, 3, 4, 5, 6, 8, 9],
                                                    labels=labels) for n in (50, 100)])
    return pd.concat([base, evaluate_sequences(predictor, no_seven, images, id_offset=10_000)], ignore_index=True)


def holds(table, digit: int) -> pd.Series:
    return table["true_digits"].map(lambda digits: digit in digits)


def plant(table, where, off_by: int = 1) -> pd.DataFrame:
    """The table with every sequence in `where` predicted `off_by` too high (wrong for any off_by >= 1)."""
    out = table.copy()
    out.loc[where, "pred_rounded"] = out.loc[where, "true_sum"] + off_by
    out.loc[where, "pred_sum"] = out.loc[where, "pred_rounded"].astype(float)
    out["exact"] = out["pred_rounded"] == out["true_sum"]
    out["error"] = out["pred_sum"] - out["true_sum"]
    out["abs_error"] = out["error"].abs()
    return out


def jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b)


@pytest.mark.parametrize("with_no_seven", [True, False])
def test_the_planted_failure_comes_first(table, with_no_seven):
    table = table if with_no_seven else table[table["seq_id"] < 10_000]
    where = (table["length"] >= 50) & holds(table, 7)
    slices = find_error_slices(plant(table, where))
    first = slices.iloc[0]
    planted = table.loc[where, "seq_id"]
    assert jaccard(first["seq_ids"], planted) >= 0.9, slices.head()
    assert first["error_rate"] == 1.0
    if with_no_seven:  # here only a rule that names both finds the set
        assert "length" in first["slice"] and "7" in first["slice"], first["slice"]
        assert set(first["seq_ids"]) == set(planted)


def test_every_slice_is_what_it_says(table):
    errors = (table["pred_rounded"] - table["true_sum"]).abs() > 0
    slices = find_error_slices(table, min_size=30)
    assert list(slices.columns) == COLUMNS and len(slices) > 3
    assert slices["slice"].is_unique and (slices["size"] >= 30).all()
    by_id = table.set_index("seq_id")
    for row in slices.itertuples():
        assert row.size == len(row.seq_ids) == len(set(row.seq_ids))
        inside = errors.to_numpy()[table["seq_id"].isin(row.seq_ids).to_numpy()]
        assert row.error_rate == pytest.approx(inside.mean())
        assert row.error_coverage == pytest.approx(inside.sum() / errors.sum())
        if row.slice.startswith("length ≥ ") and " and " not in row.slice:  # a rule selects exactly its rows
            assert set(row.seq_ids) == set(by_id.index[by_id["length"] >= int(row.slice.split("≥ ")[1])])
    keys = list(zip(slices["error_rate"], slices["error_coverage"]))
    assert keys == sorted(keys, reverse=True)  # worst first
    assert (find_error_slices(table)["size"] >= 20).all()  # the default minimum
    assert len(find_error_slices(table, top=3)) == 3
    empty = find_error_slices(table, min_size=len(table))
    assert list(empty.columns) == COLUMNS and empty.empty


def test_the_tolerance_decides_what_an_error_is(table):
    long_sevens = (table["length"] >= 50) & holds(table, 7)
    short_threes = (table["length"] <= 10) & holds(table, 3)
    planted = plant(plant(table, long_sevens, off_by=1), short_threes, off_by=3)
    threes = table.loc[short_threes, "seq_id"]
    assert jaccard(find_error_slices(planted).iloc[0]["seq_ids"], threes) < 0.5  # off by one: the bigger failure
    within_two = find_error_slices(planted, tolerance=2)  # off by one is no error now
    assert jaccard(within_two.iloc[0]["seq_ids"], threes) >= 0.9 and "3" in within_two.iloc[0]["slice"]
    errors = ((planted["pred_rounded"] - planted["true_sum"]).abs() > 2).to_numpy()
    for row in within_two.itertuples():
        assert row.error_rate == pytest.approx(errors[planted["seq_id"].isin(row.seq_ids).to_numpy()].mean())


def test_suspect_images_are_a_feature(table):
    suspects = np.random.default_rng(0).choice(10_000, size=40, replace=False)
    where = table["indices"].map(lambda idx: bool(set(idx) & set(suspects.tolist())))
    first = find_error_slices(plant(table, where), suspects=suspects).iloc[0]
    assert "suspect-label image" in first["slice"] and jaccard(first["seq_ids"], table.loc[where, "seq_id"]) >= 0.9
    with pytest.raises(ValueError, match="indices"):
        find_error_slices(table.drop(columns="indices"), suspects=suspects)


def test_a_table_that_outside_code_changed(table):
    where = (table["length"] >= 50) & holds(table, 7)
    edited = plant(table, where).assign(note="mine", seq_id=table["seq_id"] * 7 + 3)
    edited = edited[edited["length"] != 5].sample(frac=1.0, random_state=0)  # filtered and shuffled
    first = find_error_slices(edited).iloc[0]
    assert set(first["seq_ids"]) <= set(edited["seq_id"])
    assert jaccard(first["seq_ids"], edited.loc[where.reindex(edited.index), "seq_id"]) >= 0.9


@pytest.mark.parametrize("bad, kwargs, message", [
    ("no pred_rounded", {}, r"lacks the column\(s\) \['pred_rounded'\]"),
    ("a list", {}, "must be a DataFrame"),
    ("", {"tolerance": -1}, "tolerance must be"),
    ("", {"min_size": 0}, "min_size must be"),
    ("", {"top": 2.5}, "top must be"),
])
def test_bad_input_gets_one_clear_error(table, bad, kwargs, message):
    given = {"no pred_rounded": table.drop(columns="pred_rounded"), "a list": [1, 2]}.get(bad, table)
    with pytest.raises(ValueError, match=message):
        find_error_slices(given, **kwargs)


def test_compare_slices_finds_a_planted_difference(table):
    where = (table["length"] >= 50) & holds(table, 7)
    a = plant(table, where, off_by=0)  # model a reads them all right, model b all wrong
    b = plant(table, where, off_by=2).sample(frac=1.0, random_state=1)  # any row order
    diff = compare_slices(a, b)
    assert list(diff.columns) == ["slice", "size", "error_rate_a", "error_rate_b", "difference", "seq_ids"]
    first = diff.iloc[0]
    assert jaccard(first["seq_ids"], table.loc[where, "seq_id"]) >= 0.9, diff.head()
    assert (first["error_rate_a"], first["error_rate_b"], first["difference"]) == (0.0, 1.0, 1.0)
    assert (diff["difference"].abs().diff().dropna() <= 1e-12).all()  # largest gap first
    assert compare_slices(b, a).iloc[0]["difference"] == -1.0
    with pytest.raises(ValueError, match="the same sequences"):
        compare_slices(a, b.iloc[1:])
    with pytest.raises(ValueError, match="the same sequences"):
        compare_slices(a, b.assign(seq_id=b["seq_id"] + 1))


def test_digit_disagreements_of_two_checkpoints(predictor, tmp_path):
    torch.manual_seed(0)  # an untrained CNN: it reads most digits wrong, and a few the shipped one misreads
    config = ModelConfig(head="lstm", widths=[4, 8, 8])
    save_checkpoint(tmp_path / "random.pt", DigitSumModel(config).state_dict(),
                    {"model_config": config.to_dict(), "head": "lstm", "train_lengths": [1, 10]})
    other = load_predictor(tmp_path / "random.pt", device="cpu")
    found = digit_disagreements(predictor, other)
    assert list(found.columns) == ["index", "label", "pred_a", "pred_b", "conf_a", "conf_b"]
    labels = split_arrays(load_mnist(), "test")[1]
    right_a = predictor.split_logits("test").argmax(axis=1) == labels
    right_b = other.split_logits("test").argmax(axis=1) == labels
    assert found["index"].tolist() == np.flatnonzero(right_a != right_b).tolist()
    assert ((found["pred_a"] == found["label"]) != (found["pred_b"] == found["label"])).all()
    assert (found["pred_b"] == found["label"]).sum() >= 1  # some digits only the untrained one reads right
    probs = softmax(predictor.split_logits("test")[found["index"]], predictor.cnn_temperature)
    np.testing.assert_allclose(found["conf_a"], probs.max(axis=1))  # calibrated
    swapped = digit_disagreements(other, predictor)
    assert swapped["index"].tolist() == found["index"].tolist()
    assert swapped["pred_a"].tolist() == found["pred_b"].tolist()
    assert digit_disagreements(predictor, predictor).empty
