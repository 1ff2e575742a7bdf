"""Serve the dashboard: warm up first, then run Streamlit's server in this same process.

    python -m scripts.serve [--host 127.0.0.1] [--port 8501] [--checkpoint PATH] [--no-warm]

Before the server starts, this process imports torch, core and the dashboard's libraries, loads MNIST
and fills the active default checkpoint's (core.promotion) disk cache of CNN logits for test and val
(core.predict.cache), so the dashboard's first render pays neither for the imports nor for a CNN pass.
It also fills the dashboard's own in-memory caches (dashboard.cache) for the default view: Streamlit
keeps st.cache_* entries per process, so the server started next finds them. Then it starts Streamlit
exactly as `streamlit run dashboard/app.py` does (streamlit.web.cli), headless, on HOST:PORT.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path

from core import promotion
from core.paths import REPO_ROOT
from scripts.cli import Parser, int_in

APP = REPO_ROOT / "dashboard" / "app.py"
# What the dashboard's pages import: loaded here once, before the first page asks for them.
PRELOAD = ("torch", "numpy", "pandas", "scipy.optimize", "altair", "plotly.graph_objects", "plotly.subplots",
           "cleanlab.filter", "cleanlab.rank", "core.data", "core.evaluate", "core.evaluate.reliability",
           "core.evaluate.label_issues", "core.predict", "core.runs")
WARM_SPLITS = ("test", "val")


def warm(checkpoint: Path | None, log=print) -> None:
    """Import the heavy modules, load MNIST and fill `checkpoint`'s logits cache (a missing checkpoint
    or missing data is reported and skipped: the dashboard explains those itself)."""
    start = time.perf_counter()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log(f"serve: could not preload {name}: {exc}")
    from core import load_predictor
    from core.data import DataError
    from core.model.checkpoint import CheckpointError
    from core.predict import cache

    try:
        cache.data_key()  # loads MNIST and hashes it once for this process
        if checkpoint is not None and checkpoint.is_file():
            predictor = load_predictor(checkpoint, device="auto")
            for split in WARM_SPLITS:
                predictor.split_logits(split)
            try:
                warm_dashboard(checkpoint)
            except Exception as exc:  # noqa: BLE001 - optional: the server must start whatever happens here
                log(f"serve: dashboard warm-up skipped: {exc}")
    except (DataError, CheckpointError, OSError) as exc:
        log(f"serve: warm-up skipped: {exc}")
    log(f"serve: warmed up in {time.perf_counter() - start:.1f} s")


def warm_dashboard(checkpoint: Path) -> None:
    """What the Overview computes on a first visit with the sidebar's defaults: the evaluation set
    (calibrated and not), the digit calibration and the suspect ranking, into dashboard.cache."""
    import streamlit  # noqa: F401 - creates its loggers (at its own level) before they are quieted below

    from core.data.sequences import parse_lengths

    # Outside a running server Streamlit warns, at every cache's definition (the import below) and on
    # every cached call, that it has no runtime yet: a newcomer would read that as breakage.
    quiet = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith("streamlit")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        from dashboard import data, state

        d = state.DEFAULTS
        spec = (parse_lengths(d[state.LENGTHS]), d[state.PER_LENGTH], d[state.SEED])
        data.evaluation_table(checkpoint, *spec)
        data.uncalibrated_table(checkpoint, *spec)
        data.digit_calibration(checkpoint, 0)
        data.suspects(checkpoint)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m scripts.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int_in(1, 65535), default=8501, help="port to serve on (default 8501)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint whose logits cache to warm (default: the active default, "
                             "see `python -m scripts.runs promote`)")
    parser.add_argument("--no-warm", action="store_true", help="start the server at once, without warming up")
    args = parser.parse_args(argv)
    if not args.no_warm:
        checkpoint, source = promotion.cli_checkpoint(args.checkpoint)
        print(f"serve: checkpoint {checkpoint} ({source})")
        warm(Path(checkpoint))

    from streamlit.web import cli

    flags = ["--server.address", args.host, "--server.port", str(args.port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false"]
    # `streamlit run` itself (the click command), in this process: the warmed modules and caches stay.
    sys.exit(cli.main.main(args=["run", str(APP), *flags], prog_name="streamlit"))


if __name__ == "__main__":
    main()
