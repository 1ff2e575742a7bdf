"""scripts.serve: warms the default checkpoint's logits cache, then serves the dashboard (Streamlit in
the same process) on the address and port it is given."""

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from core.paths import REPO_ROOT
from scripts.dashboard_timing import free_port, stop_server


def test_help_names_the_options():
    done = subprocess.run([sys.executable, "-m", "scripts.serve", "--help"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for option in ("--host", "--port", "--checkpoint", "--no-warm"):
        assert option in done.stdout


def wait_for_health(port: int, server: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited with {server.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                if reply.status == 200 and reply.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no answer on /_stcore/health within {timeout:.0f} s")


@pytest.mark.slow
def test_serves_the_dashboard_after_warming_the_cache(tmp_path, checkpoint_dir):
    port = free_port()
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "DIGITSUM_CACHE_DIR": str(cache_dir), "DIGITSUM_CHECKPOINT_DIR": str(checkpoint_dir),
           "DIGITSUM_RUNS_DIR": str(tmp_path / "runs")}
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "scripts.serve", "--port", str(port)], cwd=REPO_ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_health(port, server)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            page = reply.read().decode("utf-8", "replace")
        assert reply.status == 200
        assert "Streamlit" in page and '<div id="root">' in page  # Streamlit's single-page app
        warmed = sorted(p.name.rsplit("-", 1)[-1] for p in cache_dir.glob("logits-*.npz"))
        assert warmed == ["test.npz", "val.npz"]  # filled before the server answered
    finally:
        stop_server(server, grace=20)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert output.count("warmed up") == 1, output
    assert "No runtime found" not in output and "WARNING" not in output, output  # nothing a newcomer reads as broken


def test_warm_up_fills_the_dashboards_caches(checkpoint_dir, monkeypatch):
    """After warm_dashboard, the Overview's default evaluation is served from Streamlit's cache: the
    evaluation itself is never called again in this process."""
    from core import evaluate
    from core.data.sequences import parse_lengths
    from dashboard import data, state
    from scripts.serve import warm_dashboard

    checkpoint = checkpoint_dir / "default.pt"
    warm_dashboard(checkpoint)
    calls = []
    monkeypatch.setattr(evaluate, "evaluation_table", lambda *a, **k: calls.append(a))
    d = state.DEFAULTS
    table = data.evaluation_table(checkpoint, parse_lengths(d[state.LENGTHS]), d[state.PER_LENGTH], d[state.SEED])
    assert calls == [] and len(table) == 13 * d[state.PER_LENGTH]
    data.evaluation_table(checkpoint, [3], 5, 1)  # a set that was not warmed is computed
    assert len(calls) == 1


def test_warm_up_without_a_checkpoint_loads_the_data(monkeypatch):
    from scripts import serve

    monkeypatch.setattr(serve, "PRELOAD", ())  # the imports are not what this test is about
    logs = []
    serve.warm(None, log=logs.append)
    assert len(logs) == 1 and logs[0].startswith("serve: warmed up in"), logs
