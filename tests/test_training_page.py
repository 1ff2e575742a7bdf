"""The Training view (dashboard/views/training.py) through Streamlit's AppTest.

The registry lives in a temp DIGITSUM_RUNS_DIR and supervisors are not spawned (launches stay
queued), so these tests are fast; runs in other states are staged directly in the registry.
The comparison uses two tiny random checkpoints, so it checks the wiring, not model quality.
`polling` and `tick` rerun only a page's polling fragments, as the browser does every run_every seconds.
"""
from __future__ import annotations

import functools
import json
import os
import re

import pytest
import streamlit as st
from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
from streamlit.testing.v1 import AppTest, local_script_runner

from core import runs
from core.constants import DEVICES, STATUSES
from core.paths import REPO_ROOT
from core.runs import process as proc
from core.runs import registry as db
from dashboard import links
from dashboard.ui import run_format

APP = str(REPO_ROOT / "dashboard" / "app.py")


@pytest.fixture
def spawned(tmp_path, monkeypatch):
    """A private registry whose supervisors are recorded instead of spawned (runs stay queued, and a
    staged "running" run has no process to stop), and an empty checkpoint folder. Not conftest's
    `registry`: its teardown would try to cancel the staged runs."""
    monkeypatch.setenv("DIGITSUM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("DIGITSUM_RUNS_KICK_AFTER_S", "3600")  # nothing restarts a staged queue
    monkeypatch.setattr(runs, "detect_gpus", lambda: [])
    (tmp_path / "checkpoints").mkdir()
    spawned: list[str] = []
    monkeypatch.setattr(proc, "spawn_supervisor", lambda device, *a: spawned.append(device))
    st.cache_data.clear()  # the view caches the GPU list
    return spawned


def open_page(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    for key, value in session.items():
        at.session_state[key] = value
    at.switch_page("views/training.py")
    at.run()
    assert not at.exception, at.exception
    return at


def click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    button.click().run()
    assert not at.exception, at.exception
    return at


def polling(at: AppTest) -> list[str]:
    """at.run(), returning the ids of the fragments it set polling (st.fragment run_every): those the browser
    reruns on its own. Read from the messages the run sends: AppTest keeps no record of them."""
    polled, send = [], ForwardMsgQueue.enqueue

    def note(queue, msg):
        if msg.HasField("auto_rerun"):
            polled.append(msg.auto_rerun.fragment_id)
        send(queue, msg)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ForwardMsgQueue, "enqueue", note)
        at.run()
    assert not at.exception, at.exception
    return polled


def tick(at: AppTest, polled: list[str]) -> AppTest:
    """One tick of their polling, as the browser asks for it: a rerun of only the `polled` fragments (AppTest
    has no call for it, so their ids go into the runner's rerun requests). The tree then holds only what they
    drew, or the whole page after an st.rerun() in one."""
    assert polled, "no fragment polls"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_script_runner, "RerunData",
                      functools.partial(local_script_runner.RerunData, fragment_id_queue=polled, is_auto_rerun=True))
        at.run()
    assert not at.exception, at.exception
    return at


def widget(elements, label: str):
    [found] = [w for w in elements if w.label == label]
    return found


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def stage(status: str, **fields) -> runs.Run:
    """A smoke run recorded in `status` without any process behind it (or this test process)."""
    run = runs.launch({"preset": "smoke", "device": "cpu"}, start=False)
    with db.tx() as conn:
        db.update(conn, run.id, status=status, **fields)
    return run


def test_empty_registry_shows_the_form_and_a_cpu_only_note(spawned):
    at = open_page()
    assert "Training" in texts(at.title)
    assert "Only the CPU is available" in texts(at.info) and "No runs yet" in texts(at.info)
    assert {"Preset", "Head", "Device"} <= {s.label for s in at.selectbox}
    assert {"CNN epochs", "Head epochs", "Learning rate", "Batch size"} <= {n.label for n in at.number_input}
    assert widget(at.slider, "Training lengths").value == (1, 10)


def test_launch_from_the_form_then_cancel_and_resume(spawned):
    at = open_page()
    widget(at.selectbox, "Device").set_value("cpu")
    widget(at.number_input, "Head epochs").set_value(1)
    widget(at.slider, "Training lengths").set_value((2, 8))
    click(at, "Launch")
    [run] = runs.list_runs()
    assert spawned == ["cpu"] and run.status == "queued" and run.device == "cpu"
    assert run.overrides == {"epochs_head": 1, "min_len": 2, "max_len": 8}
    assert run.id in texts(at.subheader) and "queued" in texts(at.subheader)
    click(at, "Cancel run")
    assert runs.get(run.id).status == "cancelled" and "cancelled" in texts(at.subheader)
    click(at, "Resume run")
    assert runs.get(run.id).status == "queued" and spawned == ["cpu", "cpu"]


def test_bad_input_is_a_message_not_a_traceback(spawned):
    at = open_page()
    widget(at.selectbox, "Device").set_value("cuda")
    click(at, "Launch")
    assert "Not launched: device 'cuda' was requested but no CUDA GPU" in texts(at.error)
    assert runs.list_runs() == []


def test_running_run_shows_progress_curves_and_log(spawned):
    me = os.getpid()
    run = stage("running", pid=me, pid_token=proc.proc_token(me), progress=0.4, eta=75.0)
    lines = [{"step": i, "phase": "cnn" if i < 5 else "head", "loss": 2.0 / i, "progress": i / 10,
              "val_mae": (3.0 / i if i >= 5 else None), "eta": 75.0} for i in range(1, 8)]
    (run.run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run.run_dir / "train.log").write_text("starting\nphase head epoch 1\n")
    at = open_page()
    assert "running" in texts(at.subheader)
    [bar] = at.get("progress")
    assert "1 min 15 s" in bar.proto.text and bar.proto.value == 40
    assert len(at.get("vega_lite_chart")) == 2  # loss and val MAE curves
    assert "phase head epoch 1" in texts(at.code)
    assert [b.label for b in at.button if b.label.endswith("run")] == ["Cancel run"]
    listed = at.dataframe[0].value  # the run list
    assert list(listed["id"]) == [run.id] and list(listed["status"]) == ["running"]
    assert list(listed["progress"]) == [0.4]


def test_a_run_being_cancelled_reads_cancelling_without_a_cancel_button(spawned):
    me = os.getpid()
    run = stage("running", pid=me, pid_token=proc.proc_token(me), progress=0.5, cancel_deadline=4102444800.0)
    assert runs.get(run.id).cancelling
    at = open_page()
    assert f"Run {run.id} — cancelling" in texts(at.subheader)
    assert "cancelling" in at.get("progress")[0].proto.text
    assert list(at.dataframe[0].value["status"]) == ["cancelling"]
    assert not [b for b in at.button if b.label == "Cancel run"]


def test_failed_run_shows_its_error_and_can_resume(spawned):
    run = stage("failed", error="the trainer stopped with signal SIGKILL\n--- last log lines ---\nboom")
    at = open_page()
    assert "signal SIGKILL" in texts(at.error)
    click(at, "Resume run")
    assert runs.get(run.id).status == "queued"


def test_succeeded_run_compares_with_the_selected_checkpoint(spawned, tmp_path, make_checkpoint):
    make_checkpoint(tmp_path / "checkpoints" / "base.pt", seed=0, preset="smoke")
    run = stage("succeeded", progress=1.0, metrics={"val_mae": 0.5})
    make_checkpoint(run.run_dir / "model.pt", seed=1, preset="smoke")
    with db.tx() as conn:
        db.update(conn, run.id, checkpoint=str(run.run_dir / "model.pt"))
    at = open_page(eval_lengths="1-3", eval_per_length=20, eval_seed=0)
    names = widget(at.selectbox, "Checkpoint").options
    # In every page's selector, under its display name (folder/file for paths outside the repo).
    assert f"{run.run_dir.name}/model.pt" in names
    click(at, "Compare with the selected checkpoint")
    assert "Comparison with the selected checkpoint" in texts(at.subheader)
    by_length, diff = (d.value for d in at.dataframe[-2:])
    assert list(by_length["length"]) == [1, 2, 3] and list(by_length["n"]) == [20, 20, 20]
    # Short labels, so that the table fits and Δ MAE shows; the caption says which model is A and which B.
    assert list(by_length.columns) == ["length", "n", "MAE · A", "MAE · B", "exact · A", "exact · B", "Δ MAE"]
    assert any(re.search(rf"of A, selected \(\S*base\.pt\), and B, run {run.id};", c.value) for c in at.caption)
    assert any(f"lengths {links.format_lengths([1, 2, 3])}, 20 per length" in c.value for c in at.caption)
    base_label = next(c for c in diff.columns if c.startswith("sum · selected")).removeprefix("sum · ")
    assert base_label.endswith("base.pt)") and f"sum · run {run.id}" in diff  # side by side
    assert len(diff) > 0 and set(diff["right"]) <= {"neither", f"run {run.id}", base_label}
    assert (diff[f"sum · {base_label}"] != diff[f"sum · run {run.id}"]).all()
    click(at, "Select in sidebar")
    assert at.session_state["ckpt"] == f"{run.run_dir.name}/model.pt"


def test_the_device_choices_are_cores_including_mps(spawned):
    at = open_page()
    assert widget(at.selectbox, "Device").options == list(DEVICES) and "mps" in DEVICES


def test_run_statuses_show_material_icons_not_emoji(spawned):
    assert set(run_format.ICONS) == {*STATUSES, "cancelling"}
    assert all(re.fullmatch(r":material/[a-z_]+:", icon) for icon in run_format.ICONS.values())
    run = stage("failed", error="boom")
    at = open_page()
    assert texts(at.subheader) == f"{run_format.ICONS['failed']} Run {run.id} — failed"


def test_the_runs_table_polls_with_the_panel_and_shows_no_none(spawned):
    me = os.getpid()
    run = stage("queued")
    at = open_page()
    listed = at.dataframe[0].value
    assert list(listed["status"]) == ["queued"] and list(listed["val MAE"]) == ["—"]  # no MAE yet: not "None"
    polled = polling(at)
    with db.tx() as conn:  # the supervisor starts it
        db.update(conn, run.id, status="running", pid=me, pid_token=proc.proc_token(me), progress=0.3,
                  metrics={"val_mae": 0.25})
    tick(at, polled)  # only the polling fragment reruns: the table must be in it to change
    assert not at.title and f"Run {run.id} — running" in texts(at.subheader)
    [listed] = [d.value for d in at.dataframe]
    assert list(listed["status"]) == ["running"] and list(listed["progress"]) == [0.3]
    assert list(listed["val MAE"]) == ["0.250"]
