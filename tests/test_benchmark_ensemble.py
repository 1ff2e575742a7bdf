"""The ensemble's benchmark section: the default's choice and the rendered targets, on made-up figures."""

from scripts.benchmark_ensemble import NORTHCUTT_TEST_ERRORS, doubt_helps, ensemble_markdown, ensemble_rows, wins_on_val


def val(e_acc, e_exact, s_acc=0.996, s_exact=0.95):
    return {"ensemble": {"digit_acc": e_acc, "exact_length_10": e_exact, "exact_at_90_length_10": 0.99},
            "single": {"digit_acc": s_acc, "exact_length_10": s_exact, "exact_at_90_length_10": 0.98}}


def test_the_ensemble_wins_on_val_only_when_it_is_no_worse_anywhere_and_better_somewhere():
    assert wins_on_val(val(0.997, 0.95))
    assert wins_on_val(val(0.996, 0.96))
    assert not wins_on_val(val(0.996, 0.95))  # a tie is no win
    assert not wins_on_val(val(0.999, 0.94))  # better digits, worse sums


def section(ratio: float, hits: int) -> dict:
    trust = {"calibration": {"exact_at_90_length_10": 0.997, "sums_after": {
        "sum_ece": 0.02, "coverage_by_length": {"10": 0.97, "100": 0.96, "1000": 0.9}}}}
    members = [{"label_smoothing": 0.1, "seed": i} for i in range(3)]
    figures = {"digit_acc": 0.998, "nll": 0.01, "digit_aurc": 0.0001, "member_digit_acc": [0.997] * 3, "disagree": 0.004}
    doubt = {"split": "val_select", "images": 2500, "images_with_disagreement": 9, "sequences_per_length": 10,
             "10": {"p_exact": {"exact_at_90": 0.99, "aurc": 0.01}, "p_exact x agreement": {"exact_at_90": 0.995, "aurc": 0.009}}}
    found = list(NORTHCUTT_TEST_ERRORS[:hits])
    return {"checkpoint": "checkpoints/ensemble.pt", "size_bytes": 3 * 2**20, "members": 3,
            "result": {"digit_acc": 0.9981, "trust": trust},
            "selection": {"members": members, "val": figures, "alternatives": [{"path": "b/members.pt", "members": members,
                                                                                  "val": figures}]},
            "val": val(0.998, 0.96), "wins_on_val": True, "predict_time_vs_single": ratio, "becomes_default": ratio <= 2,
            "doubt": doubt, "label_errors": {"single": {"k": 30, "hits": 8, "of": 15, "found": []},
                                             "ensemble": {"k": 30, "hits": hits, "of": 15, "found": found}}}


def test_ensemble_rows_judge_each_target():
    rows = {key: ok for key, _, _, _, ok in ensemble_rows(section(ratio=2.3, hits=11))}
    assert rows == {"digit_acc": True, "exact_at_90_length_10": True, "sum_ece": False, "coverage_10": True,
                    "coverage_100": True, "coverage_1000": False, "label_errors_in_top_30": True,
                    "predict_time_vs_single": False}
    assert not dict((k, ok) for k, _, _, _, ok in ensemble_rows(section(ratio=1.5, hits=9)))["label_errors_in_top_30"]


def test_ensemble_markdown_says_what_the_default_is_and_why():
    text = "\n".join(ensemble_markdown(section(ratio=2.3, hits=11)))
    assert "| predict_time_vs_single | 2.3000 | <= 2.0 | NO |" in text
    assert "The default stays the single CNN." in text and "2.30x" in text
    assert "compared: b/members.pt" in text and "single CNN 8, ensemble 11" in text
    assert "becomes the ensemble" in "\n".join(ensemble_markdown(section(ratio=1.5, hits=11)))
    assert ensemble_markdown(None) == []


def test_the_doubt_joins_the_ranking_only_when_it_is_no_worse_anywhere():
    def study(e90, aurc):
        return {"split": "val_select", "10": {"p_exact": {"exact_at_90": 0.99, "aurc": 0.01},
                                              "p_exact x agreement": {"exact_at_90": e90, "aurc": aurc}}}
    assert doubt_helps(study(0.995, 0.009)) and doubt_helps(study(0.99, 0.009))
    assert not doubt_helps(study(0.99, 0.01))  # the same ranking quality: nothing gained
    assert not doubt_helps(study(0.995, 0.011))  # better at 90%, worse over all coverages


def test_label_error_hits_count_the_published_errors_in_the_top_k(monkeypatch):
    import pandas as pd

    from scripts import benchmark_ensemble

    ranked = [NORTHCUTT_TEST_ERRORS[0], 5, NORTHCUTT_TEST_ERRORS[1], 6, NORTHCUTT_TEST_ERRORS[2]]
    monkeypatch.setattr(benchmark_ensemble, "load_predictor", lambda path, device: None)
    monkeypatch.setattr(benchmark_ensemble, "suspect_labels", lambda predictor: pd.DataFrame({"index": ranked}))
    hits = benchmark_ensemble.label_error_hits("any.pt", k=4)  # the third published error is 5th: outside
    assert hits == {"k": 4, "hits": 2, "of": 15, "found": sorted(NORTHCUTT_TEST_ERRORS[:2])}
