"""Trust: calibrated digits, exact sum distributions, p_exact and intervals, calibration metrics, and
suspect labels. The maths is checked against brute force; the plumbing on the shared smoke model."""

import itertools

import numpy as np
import pandas as pd
import pytest

from core import load_predictor
from core.data import evaluation_sequences, load_mnist, split_arrays
from core.evaluate import evaluation_set, mark_suspects, suspect_labels
from core.evaluate.reliability import aurc, digit_metrics, ece, exact_at_coverage, risk_coverage, sum_calibration
from core.model.checkpoint import read_metadata
from core.predict import sum_distribution as sd
from core.predict.temperature import fit_margin, fit_temperature, margin_for, nll


def random_steps(rng, length: int) -> np.ndarray:
    return rng.dirichlet(np.full(10, 0.3), size=length)


# --- the sum distribution -------------------------------------------------------------------------

@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_convolution_matches_brute_force_enumeration(length):
    rng = np.random.default_rng(length)
    steps = random_steps(rng, length)
    brute = np.zeros(9 * length + 1)
    for digits in itertools.product(range(10), repeat=length):
        brute[sum(digits)] += np.prod([steps[t, d] for t, d in enumerate(digits)])
    np.testing.assert_allclose(sd.convolve(steps[None])[0], brute, atol=1e-14)


def test_long_sequences_use_the_fft_tree_and_stay_exact():
    rng = np.random.default_rng(1)
    steps = random_steps(rng, 300)  # widths beyond FFT_FROM: the FFT path
    slow = np.array([1.0])
    for q in steps:  # the plain sequential convolution
        slow = np.convolve(slow, q)
    np.testing.assert_allclose(sd.convolve(steps[None])[0], slow, atol=1e-12)
    dist = sd.distributions([random_steps(rng, 5000)])[0]
    assert abs(dist.probs.sum() - 1) < 1e-9 and dist.probs.min() >= sd.TAIL


def test_summary_point_p_exact_and_interval():
    certain = np.eye(10)[[3, 4, 5]]  # digits 3, 4, 5 for sure: the sum is 12
    unsure = np.full((2, 10), 0.1)  # two uniform digits: sum 9 has probability 10/100
    out = sd.summarize([certain, unsure], np.array([12.2, 9.0]))
    np.testing.assert_allclose(out["p_exact"], [1.0, 0.1])
    np.testing.assert_array_equal(out["interval"][0], [12, 12])
    lo, hi = out["interval"][1]
    dense = sd.convolve(unsure[None])[0]
    assert dense[lo:hi + 1].sum() >= 0.95 and dense[:lo].sum() <= 0.025 and dense[hi + 1:].sum() <= 0.025
    assert sd.summarize([unsure], np.array([0.0]), point="mode")["point"][0] == 9


# --- calibration ----------------------------------------------------------------------------------

def test_temperature_fit_recovers_an_overconfident_softmax():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 4000)
    true_logits = rng.normal(size=(4000, 10)) + 2.0 * np.eye(10)[labels]
    sampled = np.array([rng.choice(10, p=np.exp(z) / np.exp(z).sum()) for z in true_logits])
    overconfident = 3.0 * true_logits  # the same ranking, three times too sharp
    t = fit_temperature(overconfident, sampled)
    assert 2.5 < t < 3.5
    assert nll(overconfident, sampled, t) < nll(overconfident, sampled)
    metrics = digit_metrics(overconfident, sampled, t)
    assert metrics["ece"] < digit_metrics(overconfident, sampled)["ece"]


def test_training_stores_a_calibration_that_lowers_val_nll(smoke_checkpoint):
    block = read_metadata(smoke_checkpoint)["calibration"]
    assert block["fitted_on"] == "val_calib" and block["images"] == 2500  # val's calibration part, whole
    assert block["cnn_val_nll_after"] < block["cnn_val_nll_before"]
    assert block["head_val_nll_after"] < block["head_val_nll_before"]
    assert set(block["interval_margin"]) == {"10", "100", "1000"}
    predictor = load_predictor(smoke_checkpoint, device="cpu")
    assert predictor.cnn_temperature == block["cnn_temperature"]
    assert predictor.uncalibrated().cnn_temperature == 1.0 and predictor.cnn_temperature != 1.0


def test_conformal_margin_and_its_interpolation():
    intervals = np.array([[10, 12]] * 20)
    truth = np.array([11] * 17 + [14, 15, 16])  # three sums fall 2, 3 and 4 above the interval
    assert fit_margin(intervals, truth, coverage=0.9) == 3
    margins = {"10": 0, "100": 2, "1000": 6}
    np.testing.assert_array_equal(margin_for(margins, np.array([1, 10, 100, 1000, 4000])), [0, 0, 2, 6, 12])
    np.testing.assert_array_equal(margin_for({}, np.array([5])), [0])


# --- the Prediction API ---------------------------------------------------------------------------

def test_p_exact_and_interval_for_ragged_input(smoke_checkpoint):
    predictor = load_predictor(smoke_checkpoint, device="cpu")
    images, labels = split_arrays(load_mnist(), "test")
    ragged = [images[:1], images[1:13], images[13:300]]
    out = predictor.run(ragged)
    assert out.has_distribution
    assert out.sums.shape == (3,) and out.sums.dtype == np.float64
    assert out.p_exact.shape == (3,) and out.p_exact.dtype == np.float64 and np.all((0 <= out.p_exact) & (out.p_exact <= 1))
    assert out.interval.shape == (3, 2) and out.interval.dtype == np.int64
    rounded = np.rint(out.sums)
    assert np.all((out.interval[:, 0] <= rounded) & (rounded <= out.interval[:, 1]))  # the point is inside
    dists = predictor.sum_distribution(ragged)
    assert [d.probs.sum() for d in dists] == pytest.approx([1, 1, 1], abs=1e-9)
    assert [d.prob(r) for d, r in zip(dists, rounded)] == pytest.approx(out.p_exact, abs=1e-9)
    again = predictor.sum_distribution(prediction=out)  # from a Prediction already made: no second pass
    assert [d.start for d in again] == [d.start for d in dists]
    for probs in out.digit_probs:  # calibrated digit probabilities, as predict_digits returns them
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(predictor.predict_digits(ragged)[1], out.digit_probs[1], atol=1e-6)


def test_regression_heads_mark_the_distribution_unavailable(smoke_checkpoint, tmp_path, make_checkpoint):

    predictor = load_predictor(make_checkpoint(tmp_path / "deepsets.pt", head="deepsets"), device="cpu")
    out = predictor.run(np.zeros((2, 3, 28, 28), np.uint8))
    assert not out.has_distribution and np.isnan(out.p_exact).all() and (out.interval == -1).all()
    with pytest.raises(ValueError, match="no distribution over the sum"):
        predictor.sum_distribution(np.zeros((1, 3, 28, 28), np.uint8))


# --- evaluation -----------------------------------------------------------------------------------

def test_ece_and_risk_coverage_on_known_values():
    assert ece(np.array([0.9] * 10), np.array([1] * 9 + [0])) == pytest.approx(0.0)
    assert ece(np.array([0.9] * 10), np.array([1] * 5 + [0] * 5)) == pytest.approx(0.4)
    df = pd.DataFrame({"p_exact": [0.9, 0.8, 0.7, 0.6], "exact": [True, True, False, True]})
    curve = risk_coverage(df)
    np.testing.assert_allclose(curve["risk"], [0, 0, 1 / 3, 1 / 4])
    assert aurc(curve) == pytest.approx((0 + 0 + 1 / 3 + 1 / 4) / 4)
    assert exact_at_coverage(df, 0.5) == 1.0 and exact_at_coverage(df, 0.75) == pytest.approx(2 / 3)


def test_evaluation_table_has_the_trust_columns(smoke_checkpoint):
    predictor = load_predictor(smoke_checkpoint, device="cpu")
    df = evaluation_set(predictor, [2, 30], 40, seed=1)
    for column in ("p_exact", "interval_lo", "interval_hi", "second_digits", "second_conf"):
        assert column in df
    row = df.iloc[0]
    assert len(row["second_digits"]) == row["length"] and row["second_conf"][0] <= row["digit_conf"][0]
    assert all(s != p for s, p in zip(row["second_digits"], row["pred_digits"]))
    figures = sum_calibration(df)
    assert figures["available"] and set(figures["coverage_by_length"]) == {2, 30}
    assert 0 <= figures["sum_ece"] <= 1 and 0 <= figures["aurc"] <= 1


def test_suspect_images_can_be_set_aside_and_marked(smoke_checkpoint):
    _, labels = split_arrays(load_mnist(), "test")
    aside = np.flatnonzero(labels == 3)[:200]
    seqs = evaluation_sequences([5, 20], 100, seed=2, labels=labels, exclude=aside)
    assert not np.isin(seqs.indices, aside).any()
    df = pd.DataFrame({"exact": [False, False, True], "indices": [[1, 2], [3, 4], [5, 6]],
                       "true_digits": [[1, 2], [3, 4], [5, 6]], "pred_digits": [[1, 9], [0, 0], [5, 6]]})
    assert list(mark_suspects(df, [2, 3])["suspect_only"]) == [True, False, False]  # row 2 also misreads image 4


def test_suspect_labels_ranks_a_flipped_label_first(smoke_checkpoint):
    predictor = load_predictor(smoke_checkpoint, device="cpu")
    images, labels = split_arrays(load_mnist(), "test")
    images, labels = images[:2000], labels[:2000].copy()
    probs = predictor.predict_digits([images])[0]
    clear = int(np.argmax(probs[np.arange(len(labels)), labels]))  # the image the model is surest of
    labels[clear] = (labels[clear] + 5) % 10  # a label error, planted
    ranked = suspect_labels(predictor, images=images, labels=labels)
    assert list(ranked.columns[:4]) == ["index", "given", "suggested", "score"]
    assert ranked.iloc[0]["index"] == clear and ranked.iloc[0]["given"] == labels[clear]
    assert ranked["score"].is_monotonic_decreasing and len(ranked) == 2000
