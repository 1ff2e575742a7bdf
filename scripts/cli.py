"""What every CLI here shares: bad input is one line, `error: ...` naming the flag, exit status 2."""

from __future__ import annotations

import argparse
from pathlib import Path

OUT_DIR = "out"  # default outputs of generate and evaluate: gitignored, so runs never dirty the tree


class Parser(argparse.ArgumentParser):
    """argparse without the usage block on errors (`--help` still shows it)."""

    def error(self, message: str):
        self.exit(2, f"error: {' '.join(str(message).split())}\n")


def int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in lo..hi (argparse prefixes the flag to the message)."""
    expected = f"an integer in {lo}..{hi}" if hi is not None else "a non-negative integer" if lo == 0 else f"an integer >= {lo}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def output_prefix(parser: Parser, prefix: str, flag: str = "--out") -> Path:
    """PREFIX with its folder made now, so a bad path fails in one line before any slow work."""
    out = Path(prefix)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"{flag} {prefix}: cannot create the folder {out.parent} ({exc.strerror or exc})")
    return out


def write_outputs(parser: Parser, files: dict[Path, bytes], flag: str = "--out") -> None:
    """Write each file atomically (core.io); a failure is one line naming the flag."""
    from core.io import write_bytes_atomic

    try:
        for path, data in files.items():
            write_bytes_atomic(path, data)
    except OSError as exc:
        parser.error(f"{flag}: cannot write {path} ({exc.strerror or exc})")
