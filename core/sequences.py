"""Kept for outside code: `from core.sequences import generate_sequences, parse_lengths`.
The sampler lives in core/data/sequences.py."""

from core.data.sequences import Sequences, generate_sequences, parse_lengths

__all__ = ["Sequences", "generate_sequences", "parse_lengths"]
