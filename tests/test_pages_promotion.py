"""Promotion in the dashboard through AppTest: the sidebar says which model is the active default and where
it came from, its "Make default" and "Back to the shipped default" switch it (and a new session's selector
starts on it), the Training view's succeeded run can be made the default, and the Overview shows lineage.

Runs are staged in the registry with small untrained checkpoints (no process behind them)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core import promotion
from core import runs as run_api
from core.runs import registry as db
from tests import test_training_page as training
from tests.test_pages import by_label, env, open_page  # noqa: F401 - env is a fixture
from tests.test_training_page import spawned  # noqa: F401 - a fixture

LINEAGE = {"parent": {"path": "/elsewhere/parent.pt", "sha256": "0123456789abcdef" * 4},
           "data": {"mnist_train": 50000, "collection_digits": 7, "label_decisions": 2}}


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A private user folder: the pointer written here, never in the developer's user/."""
    monkeypatch.setenv("DIGITSUM_USER_DIR", str(tmp_path / "user"))
    return tmp_path / "user"


def staged_run(make_checkpoint, **metadata) -> tuple[run_api.Run, str]:
    """A succeeded run with a small checkpoint; returns it and its name in the sidebar."""
    run = run_api.launch({"preset": "smoke", "device": "cpu"}, start=False)
    make_checkpoint(run.run_dir / "model.pt", seed=1, preset="smoke", **metadata)
    with db.tx() as conn:
        db.update(conn, run.id, status="succeeded", progress=1.0, checkpoint=str(run.run_dir / "model.pt"))
    return run, f"{run.run_dir.name}/model.pt"


def active_caption(at: AppTest) -> str:
    [caption] = [c.value for c in at.sidebar.caption if c.value.startswith("Active default: ")]
    return caption


def buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.sidebar.button]


def test_the_sidebar_says_which_model_is_active_and_make_default_switches_it(env, user, no_spawn, make_checkpoint):  # noqa: F811
    run, name = staged_run(make_checkpoint)
    at = open_page("views/generator.py")
    assert active_caption(at) == f"Active default: {env.name}/default.pt — shipped"
    assert by_label(at.sidebar.selectbox, "Checkpoint").value == f"{env.name}/default.pt"
    assert buttons(at) == []  # the selected model is already the active one

    by_label(at.sidebar.selectbox, "Checkpoint").select(name).run()
    assert buttons(at) == ["Make default"]
    at.button(key="make_default").click().run()
    assert not at.exception, [e.value for e in at.exception]
    active = promotion.active_default()
    assert active.path == (run.run_dir / "model.pt").resolve()
    assert active_caption(at) == f"Active default: {name} — {active.origin} (since {active.since})"
    assert buttons(at) == ["Back to the shipped default"]

    fresh = open_page("views/generator.py")  # a new session starts on the active default
    assert by_label(fresh.sidebar.selectbox, "Checkpoint").value == name
    fresh.button(key="back_to_shipped").click().run()
    assert active_caption(fresh) == f"Active default: {env.name}/default.pt — shipped"
    assert promotion.active_default().shipped and not (user / "active_default.json").exists()


def test_a_promoted_checkpoint_outside_every_folder_is_listed(env, user, tmp_path, make_checkpoint):  # noqa: F811
    mine = make_checkpoint(tmp_path / "elsewhere" / "mine.pt")
    promotion.promote(mine)
    at = open_page("views/generator.py")
    selector = by_label(at.sidebar.selectbox, "Checkpoint")
    assert selector.options[:2] == ["elsewhere/mine.pt", f"{env.name}/default.pt"] and selector.value == "elsewhere/mine.pt"
    assert active_caption(at).startswith(f"Active default: elsewhere/mine.pt — promoted from {mine.resolve()}")
    mine.unlink()  # gone: the shipped default again, and the caption says why
    at.run()
    assert active_caption(at) == (f"Active default: {env.name}/default.pt — shipped (the promoted {mine.resolve()} "
                                  "is missing)")


def test_the_training_views_succeeded_run_can_be_made_the_default(spawned, user, make_checkpoint):  # noqa: F811
    run, _ = staged_run(make_checkpoint)
    at = training.open_page()
    make = at.button(key=f"default_{run.id}")
    assert make.label == "Make default" and not make.disabled
    make.click().run()
    assert not at.exception, at.exception
    assert promotion.active_default().origin == f"promoted from run {run.id}"
    assert any("is now the active default" in s.value for s in at.success)
    assert at.button(key=f"default_{run.id}").disabled  # it is the default now


def test_the_overview_shows_lineage_or_says_it_was_not_recorded(env, user, no_spawn, make_checkpoint):  # noqa: F811
    _, name = staged_run(make_checkpoint, lineage=LINEAGE)
    at = open_page("views/overview.py", ckpt=name)
    assert "Lineage" in [h.value for h in at.subheader]
    text = "\n".join(m.value for m in at.markdown)
    assert "**Parent**  \n/elsewhere/parent.pt (sha256 0123456789ab)" in text
    assert "**Data seen**  \nMNIST train 50,000 images · 7 collection digits · 2 label decisions" in text

    shipped = open_page("views/overview.py")  # the shipped model predates lineage
    assert "Lineage not recorded (trained before lineage was recorded)." in [c.value for c in shipped.caption]
