"""Evaluation: per-sequence tables and their aggregates (tables), calibration figures (reliability),
suspect labels (label_issues), error slices (slices), the digit map (embeddings) and an ensemble's
member readings (doubt). The benchmark, the
CLIs and the dashboard all measure through these functions.

The public API: `from core.evaluate import evaluation_set, find_error_slices, digit_map, suspect_labels`.
"""

from core.evaluate.tables import (
    HEADLINE_EXTRAPOLATION,
    ORIGINAL_MAE,
    ORIGINAL_PROTOCOL,
    EvalTable,
    as_table,
    by_length,
    by_length_and_sum,
    by_sum_range,
    digit_accuracy,
    digit_confusion,
    evaluate_sequences,
    evaluation_set,
    evaluation_table,
    filter_results,
    headline_figures,
    mark_suspects,
    rows_of,
    sequence_table,
    sequences_with_confusion,
    sum_bucket,
    summary,
    suspect_only_mask,
    worst_sequences,
)

# Loaded on first use (PEP 562): they bring scikit-learn, cleanlab, umap or torch, which the tables don't need.
_LAZY = {"find_error_slices": "slices", "compare_slices": "slices", "digit_disagreements": "slices",
         "digit_map": "embeddings", "suspect_labels": "label_issues", "member_readings": "doubt", "doubt_study": "doubt"}

__all__ = ["HEADLINE_EXTRAPOLATION", "ORIGINAL_MAE", "ORIGINAL_PROTOCOL", "EvalTable", "as_table", "by_length",
           "by_length_and_sum", "by_sum_range", "digit_accuracy", "digit_confusion", "evaluate_sequences",
           "evaluation_set", "evaluation_table", "filter_results", "headline_figures", "mark_suspects", "rows_of",
           "sequence_table", "sequences_with_confusion", "sum_bucket", "summary", "suspect_only_mask", "worst_sequences",
           *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"core.evaluate.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'core.evaluate' has no attribute {name!r}")
