"""What every CLI here shares: bad input is one line, `error: ...` naming the flag, exit status 2."""

from __future__ import annotations

import argparse


class Parser(argparse.ArgumentParser):
    """argparse without the usage block on errors (`--help` still shows it)."""

    def error(self, message: str):
        self.exit(2, f"error: {' '.join(str(message).split())}\n")
