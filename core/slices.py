"""`from core.slices import find_error_slices`: the slices live in core/evaluate/slices.py."""

from core.evaluate.slices import compare_slices, digit_disagreements, find_error_slices

__all__ = ["compare_slices", "digit_disagreements", "find_error_slices"]
