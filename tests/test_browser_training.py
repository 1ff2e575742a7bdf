"""Browser test: launch a smoke run from the Training page in headless Debian chromium and watch it
succeed (the live panel refreshes itself; nobody reloads the page).

`streamlit run dashboard/app.py` is started on a free port with its output in a file, against a
temp DIGITSUM_RUNS_DIR. Screenshots go to tests/output/browser/. Skipped, with the reason shown,
when chromium or the playwright package is missing.
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

from core import runs
from core.paths import REPO_ROOT as REPO
from scripts.dashboard_timing import CHROMIUM_ARGS, free_port  # shared with the benchmark

SHOTS = REPO / "tests" / "output" / "browser"
CHROMIUM = shutil.which("chromium")
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"

pytestmark = [pytest.mark.browser, pytest.mark.slow]
if CHROMIUM is None:
    pytest.skip("Debian chromium is not installed (`make test` installs it when run as root)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")



@pytest.fixture
def server(tmp_path, monkeypatch):
    """The dashboard on a free port; the registry is shared with this process through the env."""
    monkeypatch.setenv("DIGITSUM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    (tmp_path / "checkpoints").mkdir()
    port, log = free_port(), tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    for run in runs.list_runs():  # a failed test must not leave a trainer running
        if run.status not in runs.TERMINAL:
            runs.cancel(run.id, grace=1)
            runs.wait(run.id, timeout=30)


def test_launch_a_smoke_run_from_the_page_and_watch_it_succeed(server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{server}/training")
            page.wait_for_selector(IDLE, timeout=60_000)
            sync_api.expect(page.get_by_text("Only the CPU is available")).to_be_visible()
            page.get_by_label("Head epochs").fill("1")  # the preset defaults to smoke; shorten it
            page.get_by_label("Head epochs").press("Tab")
            page.get_by_role("button", name="Launch").click()

            run_id = _wait_for(lambda: [r.id for r in runs.list_runs()], 30, "the run to be registered")[0]
            assert (runs.get(run_id).preset, runs.get(run_id).overrides) == ("smoke", {"epochs_head": 1})
            heading = page.get_by_role("heading", name=f"Run {run_id} — running")
            sync_api.expect(heading).to_be_visible(timeout=90_000)  # the live panel took over
            sync_api.expect(page.get_by_text("ETA")).to_be_visible(timeout=30_000)
            page.screenshot(path=str(SHOTS / "training_running.png"), full_page=True)

            done = page.get_by_role("heading", name=f"Run {run_id} — succeeded")
            sync_api.expect(done).to_be_visible(timeout=240_000)  # no reload: the fragment polls
            page.wait_for_selector(IDLE, timeout=60_000)
            sync_api.expect(page.get_by_role("button", name="Compare with the selected checkpoint")).to_be_visible()
            assert page.locator("[data-testid='stException']").count() == 0
            page.screenshot(path=str(SHOTS / "training_succeeded.png"), full_page=True)
        finally:
            browser.close()
    run = runs.get(run_id)
    assert run.status == "succeeded" and Path(run.checkpoint).is_file()
    assert [c["run_id"] for c in runs.list_checkpoints()] == [run_id]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
