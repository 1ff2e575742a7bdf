"""Time the dashboard as a person meets it, in headless Debian chromium (used by scripts.benchmark).

Measures: server start -> first overview render; page switches once cached; a filter change on the
error-analysis page once cached. Needs the `playwright` package and Debian's `chromium`.
"""

from __future__ import annotations

import os
import shutil
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
PAGES = ["Error analysis", "Sequence inspector", "Generator", "Overview"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, log_path: Path) -> subprocess.Popen:
    """`streamlit run` on a free port, output to a file (a pipe could fill up and stall the server)."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "dashboard" / "app.py"),
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
           "--browser.gatherUsageStats", "false"]
    log = open(log_path, "wb")
    return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_health(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the dashboard did not answer on port {port} within {timeout:.0f} s")


WATCH_JS = """() => {
    window.__clicked = performance.now();
    window.__last = window.__clicked;
    window.__observer?.disconnect();
    window.__observer = new MutationObserver(() => { window.__last = performance.now(); });
    window.__observer.observe(document.body, {attributes: true, childList: true, subtree: true, characterData: true});
}"""
SETTLED_JS = """() => document.querySelector("[data-testid='stApp']").getAttribute("data-test-script-state") === "notRunning"
    && performance.now() - window.__last > 400"""


def timed_rerun(page, action) -> float:
    """Seconds from `action()` (a click) until the page stopped changing.

    A MutationObserver stamps every DOM change; once the app is idle and nothing has changed for
    0.4 s, the time of the last change is when the rerun finished rendering. This neither misses a
    fast rerun (React may batch its running/notRunning states into one) nor counts the quiet period.
    """
    page.evaluate(WATCH_JS)
    action()
    page.wait_for_function(SETTLED_JS, timeout=120_000, polling=20)
    return page.evaluate("() => (window.__last - window.__clicked) / 1000")


def time_dashboard() -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("Debian chromium is not installed: apt-get install -y chromium")
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="dashboard-timing-", suffix=".log")[1])
    timings: dict[str, float] = {}
    start = time.perf_counter()
    server = start_server(port, log_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            wait_for_health(port)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("[data-testid='stMetric']", timeout=120_000)
            page.wait_for_selector(IDLE, timeout=120_000)
            timings["server start -> first overview render"] = time.perf_counter() - start
            def visit(name):
                return timed_rerun(page, lambda: page.get_by_role("link", name=name).first.click())

            for name in PAGES:  # the first visit fills the caches
                timings[f"switch to {name} (first visit)"] = visit(name)
            for name in PAGES:
                timings[f"switch to {name} (cached)"] = visit(name)
            visit("Error analysis")
            toggle = page.get_by_text("Errors only").first
            for label in ("filter change: errors only on (first)", "filter change: errors only off (cached)",
                          "filter change: errors only on (cached)"):
                timings[label] = timed_rerun(page, toggle.click)
            errors = page.locator("[data-testid='stException']").count()
            browser.close()
        if errors:
            raise RuntimeError(f"the dashboard showed {errors} exception(s) while being timed; see {log_path}")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=10)
    return {name: round(seconds, 3) for name, seconds in timings.items()}


if __name__ == "__main__":
    for name, seconds in time_dashboard().items():
        print(f"{seconds:8.2f} s  {name}")
