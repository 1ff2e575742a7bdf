"""The paths the smoke preset does not take, each on a tiny config through the python API (seconds):
the joint phase, a CNN ensemble, and a stop + resume inside the head phase."""

import dataclasses
import threading

import pytest
import torch

from core import load_predictor
from core.model.checkpoint import load_checkpoint
from core.training import TrainingInterrupted, make_config, train
from core.training.records import read_metrics


def tiny(**changes):
    """The smoke preset shrunk to a few seconds: 512 train images, 10 head steps, short sequences."""
    small = dict(train_subset=512, val_subset=200, val_sequences=64, batch_size=64, epochs_head=1, head_steps=10,
                 head_batch=16, head_views=0, max_len=5)  # fmt: skip
    return dataclasses.replace(make_config("smoke", device="cpu"), **{**small, **changes})


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The tiny config trained without interruption: the reference for the resume test."""
    root = tmp_path_factory.mktemp("tiny")
    train(tiny(), out_path=root / "model.pt", run_dir=root / "run")
    return root


def cnn_state(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith("cnn.")}


def test_joint_phase_fine_tunes_the_cnn_and_records_it(tmp_path):
    out, run_dir = tmp_path / "joint.pt", tmp_path / "run"
    train(tiny(epochs_joint=1, joint_steps=6, joint_batch=8), out_path=out, run_dir=run_dir)
    records = read_metrics(run_dir)
    joint = [r for r in records if r["phase"] == "joint"]
    assert joint and joint[-1]["val_mae"] is not None and joint[-1]["epochs"] == 1
    assert [r["phase"] for r in records].index("joint") > [r["phase"] for r in records].index("head")
    # resume.pt holds the model after the joint epoch, and the CNN that entered the phase.
    resume = torch.load(run_dir / "resume.pt", weights_only=True)
    before = {f"cnn.{k}": v for k, v in resume["best"]["cnn"]["state"].items()}
    after = cnn_state(resume["model"])
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in after if after[k].is_floating_point())
    # The checkpoint is the joint phase's selection (the better of before and after on val MAE).
    saved, meta = load_checkpoint(out)
    chosen = resume["best"]["joint"]["state"]
    assert all(torch.equal(saved[k], chosen[k]) for k in saved)
    assert meta["train_config"]["epochs_joint"] == 1


def test_cnn_ensemble_trains_and_loads_as_two_members(tmp_path):
    out = tmp_path / "ensemble.pt"
    metrics = train(tiny(members=2), out_path=out)
    _, meta = load_checkpoint(out)
    assert meta["model_config"]["members"] == 2 and meta["metrics"]["val_mae"] == metrics["val_mae"]
    predictor = load_predictor(out, device="cpu")
    members = predictor._model.cnn.members
    assert len(members) == 2
    first, second = (dict(m.named_parameters()) for m in members)
    assert any(not torch.equal(first[k], second[k]) for k in first)  # trained from different inits
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():  # the ensemble's output uses both members, not just the first
        assert not torch.allclose(predictor._model.cnn(x), members[0](x).log_softmax(-1), atol=1e-4)
    sums = predictor.predict(torch.randint(0, 256, (3, 4, 28, 28), dtype=torch.uint8).numpy())
    assert sums.shape == (3,) and torch.isfinite(torch.as_tensor(sums)).all()


def test_stop_inside_the_head_phase_then_resume_matches_an_uninterrupted_run(straight, tmp_path):
    out, run_dir, stop = tmp_path / "model.pt", tmp_path / "run", threading.Event()
    config = tiny()

    def progress(record):  # as SIGTERM would: request a stop once the head phase is under way
        if record["phase"] == "head":
            stop.set()

    with pytest.raises(TrainingInterrupted, match="phase head"):
        train(config, out_path=out, run_dir=run_dir, progress=progress, stop=stop)
    assert not out.exists()
    state = torch.load(run_dir / "resume.pt", weights_only=True)
    assert state["pos"]["phase"] == 1 and 0 < state["pos"]["step"] < config.head_steps  # mid-epoch, in phase 2
    interrupted_at = read_metrics(run_dir)[-1]["step"]

    metrics = train(config, out_path=out, run_dir=run_dir, resume=True)
    records = read_metrics(run_dir)
    assert records[-1]["phase"] == "done" and records[-1]["step"] > interrupted_at
    assert sum(r["phase"] == "done" for r in records) == 1
    assert [r["step"] for r in records] == sorted(r["step"] for r in records)
    resumed, _ = load_checkpoint(out)
    reference, reference_meta = load_checkpoint(straight / "model.pt")
    for name, tensor in reference.items():
        assert torch.allclose(resumed[name].float(), tensor.float(), atol=1e-5), name
    assert metrics["val_mae"] == pytest.approx(reference_meta["metrics"]["val_mae"], abs=1e-5)


def test_resume_refuses_a_different_config(straight, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(straight / "run", run_dir)
    with pytest.raises(ValueError, match="different config"):
        train(tiny(head_steps=11), out_path=tmp_path / "x.pt", run_dir=run_dir, resume=True)
