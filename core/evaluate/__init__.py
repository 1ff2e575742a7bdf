"""Evaluation: per-sequence tables and their aggregates (tables). The benchmark, the CLIs and the
dashboard all measure through these functions."""

from core.evaluate.tables import (
    HEADLINE_EXTRAPOLATION,
    ORIGINAL_MAE,
    ORIGINAL_PROTOCOL,
    by_length,
    by_length_and_sum,
    by_sum_range,
    concat_sequences,
    digit_accuracy,
    digit_confusion,
    evaluate_sequences,
    evaluation_sequences,
    evaluation_set,
    filter_results,
    headline_figures,
    mark_suspects,
    sequences_with_confusion,
    sum_bucket,
    summary,
    worst_sequences,
)

__all__ = ["HEADLINE_EXTRAPOLATION", "ORIGINAL_MAE", "ORIGINAL_PROTOCOL", "by_length", "by_length_and_sum",
           "by_sum_range", "concat_sequences", "digit_accuracy", "digit_confusion", "evaluate_sequences", "evaluation_sequences",
           "evaluation_set", "filter_results", "headline_figures", "mark_suspects", "sequences_with_confusion", "sum_bucket",
           "summary", "worst_sequences"]
