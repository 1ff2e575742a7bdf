"""First lines of every page: make `core`/`dashboard` importable and make sure the router ran.

Why: Streamlit runs the entry script's folder (dashboard/) on sys.path, and — because a `pages/`
folder sits beside app.py — until the first st.navigation call in a server process it treats
pages/ the old (v1) way: a deep link such as /inspector?... opened right after the server starts
runs pages/inspector.py *without* app.py (no sidebar, no repo root on sys.path). AppTest resets
that flag on every run, so it always hits this path. The guard hands such a run back to the router.

Pages import this module by its bare name (dashboard/ is on sys.path in every mode):
    from _bootstrap import router_guard
    router_guard()
"""

import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Set by app.py around page.run(). Thread-local, not session state: each session's script runs in
# its own thread, and the flag must be cleared even while st.stop() unwinds the page (a session
# state write at that point is itself interrupted).
_local = threading.local()


@contextmanager
def routing():
    """app.py runs the selected page inside this block."""
    _local.active = True
    try:
        yield
    finally:
        _local.active = False


def router_guard() -> None:
    """Rerun through dashboard/app.py when this page was started without it."""
    if getattr(_local, "active", False):
        return
    try:  # a private switch: tell Streamlit the app uses st.navigation, not the pages/ folder
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
    except (ImportError, AttributeError):  # a future Streamlit: the rerun below still helps
        pass
    st.rerun()
