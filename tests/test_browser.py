"""The dashboard in a real browser: `streamlit run` + headless Debian chromium through Playwright.

One server per module (output to a file, never a pipe); every page is opened, the app is waited
on until it stops running, no exception box may appear, and a screenshot of each page lands in
tests/output/. With DIGITSUM_UPDATE_SCREENSHOTS=1 (or when missing) the screenshots are also
copied to docs/screenshots/<page>.png for the README. Skipped, with the reason, without chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.paths import REPO_ROOT as REPO
from scripts.dashboard_timing import CHROMIUM_ARGS, free_port, stop_server  # shared with the benchmark

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUTPUT = REPO / "tests" / "output"
DOCS = REPO / "docs" / "screenshots"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
RUNNING = "[data-testid='stApp'][data-test-script-state='running']"
# The README's screenshots: page title in the navigation -> file name.
README_PAGES = {"Overview": "overview", "Error analysis": "errors", "Sequence inspector": "inspector",
                "Generator": "generator", "Calibration": "calibration", "Suspect labels": "suspects"}
EVAL_SET = "lengths=1-10,20,50,100&per_length=40&seed=0"  # a small set keeps the module quick



@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_dir):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium; `make test` does "
                    "this as root): browser tests skipped")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    # The real checkpoints/ folder (so the screenshots show what a user sees, benchmark figures
    # included), unless DIGITSUM_TEST_CHECKPOINT names another model: then conftest's copy of it.
    checkpoints = checkpoint_dir if os.environ.get("DIGITSUM_TEST_CHECKPOINT") else REPO / "checkpoints"
    port = free_port()
    log_path = OUTPUT / "streamlit-server.log"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
           "DIGITSUM_CHECKPOINT_DIR": str(checkpoints),
           "DIGITSUM_RUNS_DIR": str(tmp_path_factory.mktemp("runs"))}
    # -P: no current directory on sys.path, as with `make run`'s .venv/bin/streamlit, so the
    # dashboard must find `core` on its own (the sys.path line at the top of dashboard/app.py).
    python = [sys.executable, "-P"] if sys.version_info >= (3, 11) else [sys.executable]
    command = [*python, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), "--server.port",
               str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start; see {log_path}")
                time.sleep(0.2)
        yield {"url": f"http://127.0.0.1:{port}", "chromium": chromium, "log": log_path}
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=server["chromium"], args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def settle(page, timeout_ms: int = 120_000) -> None:
    """Wait for a rerun to start (it may already be over) and then for the app to go idle."""
    try:
        page.wait_for_selector(RUNNING, timeout=1500)
    except Exception:  # noqa: BLE001 - a fast rerun can finish before we look
        pass
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(500)  # a fresh session can start a second rerun right after its first
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(300)  # let charts paint before a screenshot


def assert_clean(page, server) -> None:
    errors = page.locator("[data-testid='stException']")
    assert errors.count() == 0, f"{errors.first.inner_text()[:2000]}\n(server log: {server['log']})"


def shoot(page, name: str) -> Path:
    """Screenshot the whole page. Streamlit scrolls inside its main container, so full_page alone
    would stop at the viewport: grow the viewport to the content first, then restore it."""
    path = OUTPUT / f"{name}.png"
    size = page.viewport_size
    height = page.evaluate("document.querySelector(\"[data-testid='stMain']\").scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height), size["height"]), 6000)})
    page.wait_for_timeout(400)  # charts re-layout to the new size
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def test_every_page_renders_without_exceptions(server, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{server['url']}/?{EVAL_SET}")
    page.wait_for_selector("[data-testid='stMetric']", timeout=180_000)
    settle(page)
    assert_clean(page, server)
    nav = page.locator("[data-testid='stSidebarNav'] a")
    titles = [t.strip().split("\n")[-1].strip() for t in nav.all_inner_texts()]  # drop the icon
    assert set(README_PAGES) <= set(titles), titles
    shots = {}
    for title in titles:
        page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
        settle(page)
        assert_clean(page, server)
        page.get_by_role("heading", name=title.split()[0], exact=False).first.wait_for(timeout=120_000)
        shots[title] = shoot(page, "page-" + title.lower().replace(" ", "-"))

    # A filter on the error page reruns the page and still shows the table or a plain message.
    page.locator("[data-testid='stSidebarNav'] a", has_text="Error analysis").first.click()
    settle(page)
    page.get_by_text("Errors only").first.click()
    settle(page)
    assert_clean(page, server)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the filtered table (CSV)").click()
    header = Path(download.value.path()).read_text().splitlines()[0]
    assert header.startswith("seq_id,") and "true_digits" in header

    # Dark theme: the same page must render (charts follow the theme; checked by eye in the shot).
    page.emulate_media(color_scheme="dark")
    page.goto(f"{server['url']}/errors?{EVAL_SET}")  # a new session on the same (cached) set
    settle(page)
    assert_clean(page, server)
    shoot(page, "page-error-analysis-dark")
    page.close()

    if os.environ.get("DIGITSUM_UPDATE_SCREENSHOTS") or not all(
            (DOCS / f"{name}.png").exists() for name in README_PAGES.values()):
        DOCS.mkdir(parents=True, exist_ok=True)
        for title, name in README_PAGES.items():
            shutil.copyfile(shots[title], DOCS / f"{name}.png")


def test_generator_and_deep_link_to_inspector(server, browser):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{server['url']}/generator?{EVAL_SET}")
    settle(page)
    assert_clean(page, server)
    length = page.get_by_label("Length", exact=True)
    length.fill("25")
    length.press("Enter")
    # On a busy machine the rerun can start after settle() has looked: wait for its result instead.
    page.wait_for_function("document.querySelectorAll('.digit-row img').length === 25", timeout=120_000)
    settle(page)
    assert_clean(page, server)
    assert page.locator(".digit-row img").count() == 25
    assert page.get_by_text("Predicted sum").count() > 0
    shoot(page, "generator-used")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download PNG").click()
    png = Path(download.value.path()).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")

    # "Open in inspector" carries the sequence in the URL; opening that URL in a fresh session on
    # the inspector page (a deep link) shows the same 25 digits.
    page.get_by_text("Open in inspector").first.click()
    page.wait_for_url("**src=gen**", timeout=120_000)
    settle(page)
    assert "src=gen" in page.url and "length=25" in page.url
    assert_clean(page, server)
    fresh = browser.new_page(viewport={"width": 1440, "height": 1000})
    fresh.goto(page.url)
    # A fresh session can pause between its first reruns: wait for the result, not just for idle.
    fresh.wait_for_function("document.querySelectorAll('.digit-row img').length === 25", timeout=120_000)
    settle(fresh)
    assert_clean(fresh, server)
    assert fresh.get_by_text("Generated sequence (length 25").count() > 0
    assert fresh.locator(".digit-row img").count() == 25
    assert fresh.locator("[data-testid='stSidebar']").get_by_text("Checkpoint").count() > 0
    shoot(fresh, "inspector-deep-link")

    # An evaluation-set link (what the worst-sequences table links to) in a fresh session.
    fresh.goto(f"{server['url']}/inspector?src=eval&{EVAL_SET}&index=7")
    fresh.get_by_text("Sequence 7 of 520").first.wait_for(timeout=120_000)
    settle(fresh)
    assert_clean(fresh, server)
    assert fresh.get_by_text("Sequence 7 of 520").count() > 0
    shown = fresh.locator("[data-testid='stCode']").last.inner_text()  # the copyable link
    assert shown.startswith(f"{server['url']}/inspector?") and "index=7" in shown
    fresh.close()
    page.close()
