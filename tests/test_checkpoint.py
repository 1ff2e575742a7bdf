"""core.checkpoint: round trip, the sidecar, and every way a file can be unusable."""

import json
import os

import pytest
import torch

from core.model import DigitSumModel, ModelConfig
from core.model.checkpoint import (
    FORMAT,
    CheckpointError,
    load_checkpoint,
    load_model,
    read_metadata,
    save_checkpoint,
    sidecar_path,
)

CONFIG = ModelConfig(head="lstm", widths=[4, 8, 8])


def metadata(config=CONFIG):
    return {"model_config": config.to_dict(), "head": config.head, "train_lengths": [1, 10], "data_checksum": "abc",
            "metrics": {"val_mae": 0.5}, "preset": "test", "train_config": {}, "code_version": "test"}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = DigitSumModel(CONFIG)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model.state_dict(), metadata())
    return path, model


def test_round_trip_keeps_weights_and_metadata(saved):
    path, model = saved
    state, meta = load_checkpoint(path)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert meta["format_version"] == 1 and meta["created"] and meta["metrics"] == {"val_mae": 0.5}
    loaded, _ = load_model(path)
    assert not loaded.training
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.cnn(x), model.eval().cnn(x))


def test_sidecar_is_readable_json_and_nothing_temporary_is_left(saved):
    path, _ = saved
    side = json.loads(sidecar_path(path).read_text())
    assert side["head"] == "lstm" and side["file"] == "model.pt" and side["size_bytes"] == path.stat().st_size
    assert sorted(os.listdir(path.parent)) == ["model.json", "model.pt"]


def test_read_metadata_is_the_saved_metadata(saved):
    path, _ = saved
    meta = read_metadata(path)
    assert meta["train_lengths"] == [1, 10] and meta["preset"] == "test"


def test_metadata_must_be_json_serialisable(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "x.pt", {}, {**metadata(), "metrics": {"bad": object()}})
    assert not (tmp_path / "x.pt").exists()


def expect_error(path, match):
    for reader in (load_checkpoint, read_metadata, load_model):
        with pytest.raises(CheckpointError, match=match) as info:
            reader(path)
        message = str(info.value)
        assert str(path) in message  # the message names the file ...
        assert "\n" not in message  # ... in one line ...
        assert "weights_only" not in message and "Weights" not in message  # ... of ours, never torch's advice


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.pt", "not found")


def test_empty_file(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    expect_error(tmp_path / "empty.pt", "empty")


def test_truncated_file(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated, corrupt")


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(os.urandom(4096))
    expect_error(path, "truncated, corrupt")


def test_foreign_torch_files(tmp_path):
    for i, obj in enumerate([torch.zeros(3), {"weights": torch.zeros(3)}, {"format": "other", "format_version": 1}]):
        path = tmp_path / f"foreign{i}.pt"
        torch.save(obj, path)
        expect_error(path, "foreign")


def test_unknown_format_version(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "format_version": 99, "metadata_json": json.dumps(metadata()), "state_dict": {}}, path)
    expect_error(path, "format_version 99")


def test_unknown_head(tmp_path):
    path = tmp_path / "head.pt"
    save_checkpoint(path, {}, {**metadata(), "head": "transformer"})
    expect_error(path, "unknown head")


def test_state_dict_that_does_not_match_the_model(tmp_path):
    path = tmp_path / "mismatch.pt"
    other = DigitSumModel(ModelConfig(head="lstm", widths=[4, 8, 16]))  # different widths than the metadata says
    save_checkpoint(path, other.state_dict(), metadata())
    load_checkpoint(path)  # the file itself is fine ...
    with pytest.raises(CheckpointError, match="does not match") as info:
        load_model(path)  # ... but it does not fit the model it describes
    assert str(path) in str(info.value) and "wrong shapes" in str(info.value) and "\n" not in str(info.value)
    assert "size mismatch" not in str(info.value)  # torch's own text is not passed on


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_loading_never_runs_code_from_the_file(tmp_path):
    target = str(tmp_path / "pwned")
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "format_version": 1, "payload": _Evil(target)}, path)
    expect_error(path, "refused, it holds Python objects")
    assert not os.path.exists(target)


@pytest.mark.parametrize("block, problem", [
    ({"cnn_temperature": -1.0}, "cnn_temperature must be a positive number"),
    ({"head_temperature": "hot"}, "head_temperature must be a positive number"),
    ({"interval_margin": {"10": 1.5}}, "interval_margin must map lengths"),
    ("warm", "calibration must be a JSON object"),
])  # fmt: skip
def test_a_bad_calibration_block_is_a_checkpoint_error(tmp_path, block, problem):
    path = tmp_path / "calibrated.pt"
    save_checkpoint(path, {}, {**metadata(), "calibration": block})
    expect_error(path, problem)
