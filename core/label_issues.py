"""`from core.label_issues import suspect_labels`: the ranking lives in core/evaluate/label_issues.py."""

from core.evaluate.label_issues import suspect_labels

__all__ = ["suspect_labels"]
