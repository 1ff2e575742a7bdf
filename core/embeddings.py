"""`from core.embeddings import digit_map`: the map lives in core/evaluate/embeddings.py."""

from core.evaluate.embeddings import digit_map

__all__ = ["digit_map"]
