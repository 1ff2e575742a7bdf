"""core.evaluate.slices: error slices find a planted failure and name it, on a real evaluation table of the shipped
checkpoint; every listed slice is what it says (its text selects its rows, its figures are held-out figures, it is
significant, each condition raises its held-out error rate, no two overlap much); errors that gather nowhere give no
slices; comparisons of two models and their digit disagreements.

The table is an evaluation set of lengths 5, 10, 50 and 100, plus 80 long sequences without a single 7
(almost every long random sequence holds one), so "length ≥ 50" alone cannot pass for "length ≥ 50 and
holds a 7". Its seq_ids are not contiguous, as in tables that outside code has built.
"""

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from core import load_predictor
from core.data import concat_sequences, load_mnist, split_arrays
from core.data.sequences import generate_sequences
from core.evaluate import (
    as_table,
    compare_slices,
    digit_disagreements,
    evaluate_sequences,
    evaluation_set,
    find_error_slices,
)
from core.evaluate.slices import holm, search_half
from core.predict.temperature import softmax

COLUMNS = ["slice", "size", "held_out_size", "error_rate", "ci_low", "ci_high", "error_coverage", "p_value", "seq_ids"]


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


def counts(table, digit: int) -> np.ndarray:
    return table["true_digits"].map(lambda digits: list(digits).count(digit)).to_numpy()


# A reader's own reading of a rule's text (core.evaluate.rules writes it), on the public table's list columns.
TIMES = {"once": 1, "twice": 2}


def times(words: str) -> int:
    return TIMES.get(words) or int(words.split()[0])


def condition_rows(condition: str, table, suspects) -> np.ndarray:
    """bool per row: the rows one condition of a rule's text selects."""
    scalar = {"length": table["length"].to_numpy(), "true sum": table["true_sum"].to_numpy(),
              "lowest digit confidence": table["digit_conf"].map(min).to_numpy(float),
              "p_exact": table["p_exact"].to_numpy(float)}
    has_suspect = table["indices"].map(lambda idx: bool(set(idx) & set(np.asarray(suspects).tolist()))).to_numpy() \
        if suspects is not None else None
    readings = {
        r"holds a suspect-label image": lambda: has_suspect,
        r"no suspect-label image": lambda: ~has_suspect,
        r"holds (\d) and (\d)": lambda a, b: (counts(table, int(a)) > 0) & (counts(table, int(b)) > 0),
        r"not both (\d) and (\d)": lambda a, b: (counts(table, int(a)) == 0) | (counts(table, int(b)) == 0),
        r"no (\d)": lambda d: counts(table, int(d)) == 0,
        r"holds an? (\d)": lambda d: counts(table, int(d)) >= 1,
        r"holds (\d) at least (.+)": lambda d, k: counts(table, int(d)) >= times(k),
        r"holds (\d) at most (.+)": lambda d, k: counts(table, int(d)) <= times(k),
        r"holds (\d) exactly (.+)": lambda d, k: counts(table, int(d)) == times(k),
        r"holds (\d) (\d+)–(\d+) times": lambda d, lo, hi: (counts(table, int(d)) >= int(lo)) & (counts(table, int(d)) <= int(hi)),
        r"(length|true sum) = (\d+)": lambda f, v: scalar[f] == int(v),
        r"(length|true sum) (\d+)–(\d+)": lambda f, lo, hi: (scalar[f] >= int(lo)) & (scalar[f] <= int(hi)),
        r"(length|true sum) ≥ (\d+)": lambda f, v: scalar[f] >= int(v),
        r"(length|true sum) ≤ (\d+)": lambda f, v: scalar[f] <= int(v),
        r"(lowest digit confidence|p_exact) ≥ ([\d.e-]+)": lambda f, v: scalar[f] >= float(v),
        r"(lowest digit confidence|p_exact) < ([\d.e-]+)": lambda f, v: scalar[f] < float(v),
        r"([\d.e-]+) ≤ (lowest digit confidence|p_exact) < ([\d.e-]+)":
            lambda lo, f, hi: (scalar[f] >= float(lo)) & (scalar[f] < float(hi)),
    }
    for pattern, rows in readings.items():
        found = re.fullmatch(pattern, condition)
        if found:
            return np.asarray(rows(*found.groups()), bool)
    raise AssertionError(f"no reading of the condition {condition!r}")


def conditions(rule: str) -> list[str]:
    return re.split(r" and (?=\D)", rule)  # "holds 4 and 9" is one condition


def check_slices(table, slices, *, tolerance=0, suspects=None, min_size=10, alpha=0.05) -> None:
    """Every listed slice is what it says: its text selects exactly its seq_ids (any kind of condition); size,
    held_out_size, error_rate, ci_*, error_coverage and p_value are the held-out half's; it is significant; each
    condition raises its held-out error rate; worst first; no two overlap by a Jaccard index above 0.5."""
    assert list(slices.columns) == COLUMNS
    errors = ((table["pred_rounded"] - table["true_sum"]).abs() > tolerance).to_numpy()
    ids = table["seq_id"].to_numpy()
    held = ~search_half(ids)
    base = errors[held].mean()
    for row in slices.itertuples():
        each = [condition_rows(c, table, suspects) for c in conditions(row.slice)]
        rows = np.logical_and.reduce(each)
        assert set(ids[rows]) == set(row.seq_ids) and row.size == len(row.seq_ids) == rows.sum(), row.slice
        inside = errors[rows & held]
        assert row.held_out_size == len(inside) >= min_size
        assert row.error_rate == pytest.approx(inside.mean())
        assert row.error_coverage == pytest.approx(inside.sum() / errors[held].sum())
        ci = binomtest(int(inside.sum()), len(inside)).proportion_ci(0.95, method="wilson")
        assert (row.ci_low, row.ci_high) == pytest.approx((ci.low, ci.high))
        raw = binomtest(int(inside.sum()), len(inside), base, alternative="greater").pvalue
        assert raw <= row.p_value <= alpha and row.error_rate > base
        for i in range(len(each)):  # without any one condition, the held-out error rate is lower
            others = np.logical_and.reduce([m for j, m in enumerate(each) if j != i] + [np.ones(len(ids), bool)])
            assert errors[others & held].mean() < row.error_rate, (row.slice, conditions(row.slice)[i])
    keys = list(zip(slices["error_rate"], slices["error_coverage"]))
    assert keys == sorted(keys, reverse=True)  # worst first
    for i, a in enumerate(slices["seq_ids"]):
        assert all(jaccard(a, b) <= 0.5 for b in slices["seq_ids"][i + 1:])


@pytest.mark.parametrize("with_no_seven", [True, False])
def test_the_planted_failure_comes_first(table, with_no_seven):
    table = table if with_no_seven else table[table["seq_id"] < 10_000]
    where = (table["length"] >= 50) & holds(table, 7)
    planted_table = plant(table, where)
    slices = find_error_slices(planted_table)
    check_slices(planted_table, slices)
    first = slices.iloc[0]
    planted = table.loc[where, "seq_id"]
    assert jaccard(first["seq_ids"], planted) >= 0.9, slices.head()
    assert first["error_rate"] == 1.0 and first["held_out_size"] < first["size"]
    if with_no_seven:  # here only a rule that names both finds the set
        assert first["slice"] == "length ≥ 50 and holds a 7", first["slice"]
        assert set(first["seq_ids"]) == set(planted)


def test_every_slice_is_what_it_says(table):
    planted = plant(table, (table["length"] >= 50) & holds(table, 7))
    slices = find_error_slices(planted, min_size=12)
    assert len(slices) >= 3, slices
    check_slices(planted, slices, min_size=12)
    assert find_error_slices(planted, min_size=12).equals(slices)  # the halves are seeded: the same every time
    check_slices(planted, find_error_slices(planted))  # the default minimum: 10 held-out sequences
    assert find_error_slices(planted, top=2).equals(find_error_slices(planted).head(2))
    empty = find_error_slices(planted, min_size=len(table))
    assert list(empty.columns) == COLUMNS and empty.empty


@pytest.mark.parametrize("kind, words", [("digit counts", "holds 3 at least"), ("no digit", "no 3"),
                                         ("confidence", "lowest digit confidence <"), ("pair", "holds 4 and 9"),
                                         ("suspects", "holds a suspect-label image")])
def test_every_kind_of_rule_selects_its_rows(table, kind, words):
    suspects = np.random.default_rng(0).choice(10_000, size=40, replace=False) if kind == "suspects" else None
    where = {"digit counts": lambda: counts(table, 3) >= 12, "no digit": lambda: counts(table, 3) == 0,
             "confidence": lambda: table["digit_conf"].map(min) < table["digit_conf"].map(min).quantile(0.3),
             "pair": lambda: (table["length"] <= 10) & (counts(table, 4) > 0) & (counts(table, 9) > 0),
             "suspects": lambda: table["indices"].map(lambda idx: bool(set(idx) & set(suspects.tolist())))}[kind]()
    planted = plant(table, np.asarray(where, bool))
    slices = find_error_slices(planted, suspects=suspects)
    assert words in slices.iloc[0]["slice"], slices.head()
    assert jaccard(slices.iloc[0]["seq_ids"], table.loc[np.asarray(where, bool), "seq_id"]) >= 0.9
    check_slices(planted, slices, suspects=suspects)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_errors_that_gather_nowhere_give_no_slice(table, rate):
    for seed in range(4):  # errors independent of every feature: any slice the trees find is noise
        wrong = np.random.default_rng(seed).random(len(table)) < rate
        noisy = table.assign(pred_rounded=table["true_sum"] + wrong)
        slices = find_error_slices(noisy)
        assert len(slices) <= 1, slices
        assert (slices["error_rate"] <= 2 * wrong.mean()).all(), slices
        check_slices(noisy, slices)


def test_the_halves_follow_the_seq_ids(table):
    ids = table["seq_id"].to_numpy()
    search = search_half(ids)
    assert 0.4 < search.mean() < 0.6 and np.array_equal(search, search_half(ids))
    order = np.random.default_rng(0).permutation(len(ids))
    assert np.array_equal(search_half(ids[order]), search[order])  # row order and filtering leave a sequence's half
    assert np.array_equal(search_half(ids[::3]), search[::3])
    assert not np.array_equal(search_half(ids, seed=1), search)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # the step-down correction


def test_an_eval_table_gives_the_same_slices(table):
    planted = plant(table, (table["length"] >= 50) & holds(table, 7))
    assert find_error_slices(as_table(planted)).equals(find_error_slices(planted))


def test_the_tolerance_decides_what_an_error_is(table):
    long_sevens = (table["length"] >= 50) & holds(table, 7)
    short_threes = (table["length"] <= 10) & holds(table, 3)
    planted = plant(plant(table, long_sevens, off_by=1), short_threes, off_by=3)
    threes = table.loc[short_threes, "seq_id"]
    assert jaccard(find_error_slices(planted).iloc[0]["seq_ids"], threes) < 0.5  # off by one: the bigger failure
    within_two = find_error_slices(planted, tolerance=2)  # off by one is no error now
    assert jaccard(within_two.iloc[0]["seq_ids"], threes) >= 0.9 and "3" in within_two.iloc[0]["slice"]
    check_slices(planted, within_two, tolerance=2)


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
    ("", {"alpha": 1.5}, "alpha must be"),
    ("", {"seed": -1}, "seed must be"),
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
    assert compare_slices(as_table(a), as_table(b)).equals(diff)  # EvalTables: the same slices
    for row in diff.itertuples():  # each rule's text selects its rows
        rows = np.logical_and.reduce([condition_rows(c, a, None) for c in conditions(row.slice)])
        assert set(a.loc[rows, "seq_id"]) == set(row.seq_ids) and row.size == rows.sum(), row.slice
    with pytest.raises(ValueError, match="the same sequences"):
        compare_slices(a, b.iloc[1:])
    with pytest.raises(ValueError, match="the same sequences"):
        compare_slices(a, b.assign(seq_id=b["seq_id"] + 1))


def test_digit_disagreements_of_two_checkpoints(predictor, tmp_path, make_checkpoint):
    # an untrained CNN: it reads most digits wrong, and a few the shipped one misreads
    other = load_predictor(make_checkpoint(tmp_path / "random.pt"), device="cpu")
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
