"""Time the dashboard as a person meets it, in headless Debian chromium (used by scripts.benchmark).

Measures, with the server started through scripts.serve (a fresh logits cache, no training runs):
  - server start -> /_stcore/health answering (imports and the cache warm-up), then health -> the first
    Overview render;
  - every click between pages through the sidebar navigation (real clicks, never reloads), on the
    first visit of each page and once cached;
  - a filter change on the error-analysis page, first and cached, on the default set and on 20,000
    sequences of lengths 1-100 (LARGE_SET);
  - core.evaluate.headline_figures for a new checkpoint (a copy of the default under a new name, no
    cache): cold, then again with its disk cache filled (what the Overview's measure button runs).
Needs the `playwright` package and Debian's `chromium`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from core.paths import REPO_ROOT

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
PAGES = ["Error analysis", "Slices", "Digit map", "Sequence inspector", "Generator", "Calibration", "Suspect labels",
         "Write your own", "Training", "Overview"]
WEBGL_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # the digit map draws with WebGL
NAV = "[data-testid='stSidebarNav'] a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """scripts.serve (warm-up, then Streamlit) on a free port, output to a file (a pipe could fill up and
    stall the server)."""
    cmd = [sys.executable, "-m", "scripts.serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **env})


def stop_server(server: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it has not exited within `grace` seconds."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def wait_for_health(port: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the dashboard did not answer on port {port} within {timeout:.0f} s")


# __last stamps every change a person can see; __last_any also counts changes inside a <canvas>, whose
# children are fallback content that browsers never draw (the data grid adds its accessibility table
# there about 0.3 s after the grid itself is drawn).
WATCH_JS = """() => {
    window.__clicked = performance.now();
    window.__last = window.__last_any = window.__clicked;
    window.__observer?.disconnect();
    window.__observer = new MutationObserver((records) => {
        const now = performance.now();
        window.__last_any = now;
        if (records.some((r) => !(r.target.closest ? r.target : r.target.parentElement)?.closest("canvas"))) {
            window.__last = now;
        }
    });
    window.__observer.observe(document.body, {attributes: true, childList: true, subtree: true, characterData: true});
}"""
SETTLED_JS = """() => document.querySelector("[data-testid='stApp']").getAttribute("data-test-script-state") === "notRunning"
    && performance.now() - window.__last_any > 400"""


def timed_rerun(page, action, invisible_too: bool = False) -> float:
    """Seconds from `action()` (a click) until the page stopped changing.

    A MutationObserver stamps every DOM change; once the app is idle and nothing has changed for
    0.4 s, the time of the last change is when the rerun finished rendering. This neither misses a
    fast rerun (React may batch its running/notRunning states into one) nor counts the quiet period.
    Changes inside a <canvas> (never drawn) count only with `invisible_too`.
    """
    page.evaluate(WATCH_JS)
    action()
    page.wait_for_function(SETTLED_JS, timeout=120_000, polling=20)
    last = "__last_any" if invisible_too else "__last"
    return page.evaluate(f"() => (window.{last} - window.__clicked) / 1000")


def time_headlines(checkpoint: Path, scratch: Path) -> dict[str, float]:
    """Seconds for core.evaluate.headline_figures on a new checkpoint: a copy of `checkpoint` under a new
    name with an empty logits cache (cold), then a fresh predictor of the same file (disk cache filled).
    Imports and MNIST are loaded first, as they are in the dashboard's server."""
    from core import load_predictor
    from core.evaluate import headline_figures
    from core.predict import cache

    cache.data_key()  # MNIST loaded and hashed, as in a running server
    copy = scratch / "new-checkpoint.pt"
    shutil.copy(checkpoint, copy)
    out, before = {}, os.environ.get("DIGITSUM_CACHE_DIR")
    os.environ["DIGITSUM_CACHE_DIR"] = str(scratch / "headline-cache")
    try:
        for label in ("headline figures, new checkpoint (cold: no cache)",
                      "headline figures, new checkpoint (disk cache)"):
            start = time.perf_counter()
            headline_figures(load_predictor(copy, device="auto"))
            out[label] = time.perf_counter() - start
    finally:
        if before is None:
            os.environ.pop("DIGITSUM_CACHE_DIR", None)
        else:
            os.environ["DIGITSUM_CACHE_DIR"] = before
    return out


LARGE_SET = {"lengths": "1-100", "per_length": 200}  # 20,000 sequences, about a million digits


def time_large_set(browser, port: int) -> dict[str, float]:
    """Error analysis over LARGE_SET (a new session seeded from its link): building it, then the
    "Errors only" filter on and off once the set is cached."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    query = "&".join(f"{k}={v}" for k, v in LARGE_SET.items())
    start = time.perf_counter()
    page.goto(f"http://127.0.0.1:{port}/errors?{query}")
    page.wait_for_selector("[data-testid='stPlotlyChart']", timeout=600_000)
    page.wait_for_selector(IDLE, timeout=600_000)
    out = {"20,000 sequences (lengths 1-100): first Error analysis render": time.perf_counter() - start}
    toggle = page.get_by_text("Errors only").first
    for label in ("on", "off", "on again"):
        out[f"20,000 sequences: filter change, errors only {label}"] = timed_rerun(page, toggle.click)
    if page.locator("[data-testid='stException']").count():
        raise RuntimeError("the dashboard showed an exception on the 20,000-sequence set")
    page.close()
    return out


def time_dashboard() -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    from core.paths import DEFAULT_CHECKPOINT

    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("Debian chromium is not installed: apt-get install -y chromium")
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix="dashboard-timing-"))
    log_path = scratch / "server.log"
    env = {"DIGITSUM_CACHE_DIR": str(scratch / "cache"), "DIGITSUM_RUNS_DIR": str(scratch / "runs")}
    timings: dict[str, float] = {}
    # The digit map is computed once per checkpoint (scripts.digit_map, about 12 s): before the clock starts.
    subprocess.run([sys.executable, "-m", "scripts.digit_map", "--checkpoint", str(DEFAULT_CHECKPOINT)],
                   env={**os.environ, **env}, check=True, capture_output=True, timeout=600)
    start = time.perf_counter()
    server = start_server(port, log_path, env)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=[*CHROMIUM_ARGS, *WEBGL_ARGS])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            wait_for_health(port)
            healthy = time.perf_counter()
            timings["server start -> health (imports, logits cache warm-up)"] = healthy - start
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("[data-testid='stMetric']", timeout=120_000)
            page.wait_for_selector(IDLE, timeout=120_000)
            timings["health -> first overview render"] = time.perf_counter() - healthy

            def visit(name, invisible_too=False):
                return timed_rerun(page, lambda: page.locator(NAV, has_text=name).first.click(), invisible_too)

            for visit_kind in ("first visit", "cached"):  # the first round fills the caches
                here = "Overview"
                for name in PAGES:
                    timings[f"click {here} -> {name} ({visit_kind})"] = visit(name)
                    here = name
            here = "Overview"
            for name in PAGES:  # the same clicks, counting the canvas fallback a person never sees
                timings[f"click {here} -> {name} (cached, counting invisible canvas content)"] = visit(name, True)
                here = name
            visit("Error analysis")
            toggle = page.get_by_text("Errors only").first
            for label in ("filter change: errors only on (first)", "filter change: errors only off (cached)",
                          "filter change: errors only on (cached)"):
                timings[label] = timed_rerun(page, toggle.click)
            errors = page.locator("[data-testid='stException']").count()
            timings.update(time_large_set(browser, port))
            browser.close()
        if errors:
            raise RuntimeError(f"the dashboard showed {errors} exception(s) while being timed; see {log_path}")
    finally:
        stop_server(server)
    timings.update(time_headlines(DEFAULT_CHECKPOINT, scratch))  # with the server gone: the CPU to itself
    shutil.rmtree(scratch, ignore_errors=True)
    return {name: round(seconds, 3) for name, seconds in timings.items()}


if __name__ == "__main__":
    for name, seconds in time_dashboard().items():
        print(f"{seconds:8.2f} s  {name}")
