"""dashboard.settings (URL seeding, the Settings object) and dashboard.cache's file version key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.paths import REPO_ROOT
from dashboard import data, state
from dashboard.data import checkpoints

CKPTS = {"checkpoints/default.pt": Path("/m/default.pt"), "checkpoints/other.pt": Path("/m/other.pt")}


def test_a_link_seeds_the_settings_once():
    session = {}
    state.seed_from_url(session, {"ckpt": "checkpoints/other.pt", "lengths": "3,4", "per_length": "99999",
                                   "seed": "-5"}, CKPTS)
    assert session[state.CKPT] == "checkpoints/other.pt" and session[state.LENGTHS] == "3,4"
    assert session[state.PER_LENGTH] == state.MAX_PER_LENGTH and session[state.SEED] == 0  # clamped
    session[state.LENGTHS] = "7"  # the user's later change is kept on the next rerun
    state.seed_from_url(session, {"lengths": "3,4"}, CKPTS)
    assert session[state.LENGTHS] == "7"


def test_seeding_ignores_unknown_checkpoints_bad_numbers_and_generator_links():
    session = {}
    state.seed_from_url(session, {"ckpt": "nope.pt", "per_length": "x"}, CKPTS)
    assert session[state.CKPT] == "checkpoints/default.pt"  # the first known checkpoint
    assert session[state.PER_LENGTH] == state.DEFAULTS[state.PER_LENGTH]
    session = {}
    state.seed_from_url(session, {"src": "gen", "seed": "42"}, CKPTS)  # the generator's seed, not the set's
    assert session[state.SEED] == state.DEFAULTS[state.SEED]
    session = {}
    state.seed_from_url(session, {}, {})
    assert session[state.CKPT] is None


def test_read_settings_explains_what_is_wrong():
    ok = state.read_settings({state.CKPT: "checkpoints/default.pt", state.LENGTHS: "1-3",
                                 state.PER_LENGTH: 4, state.SEED: 2}, CKPTS)
    assert (ok.checkpoint, ok.lengths, ok.per_length, ok.seed, ok.problem) == (CKPTS["checkpoints/default.pt"],
                                                                               [1, 2, 3], 4, 2, None)
    bad = state.read_settings({state.CKPT: "checkpoints/default.pt", state.LENGTHS: "3-x"}, CKPTS)
    assert "bad length" in bad.problem and bad.lengths  # the defaults keep the view drawable
    huge = state.read_settings({state.CKPT: "checkpoints/default.pt", state.LENGTHS: "1-5000",
                                   state.PER_LENGTH: 100}, CKPTS)
    assert "too large" in huge.problem
    none = state.read_settings({state.CKPT: "gone.pt"}, CKPTS, folder="ckpts")
    assert none.checkpoint is None and none.checkpoint_name is None and "No checkpoint found in ckpts/" in none.problem


def test_file_key_changes_when_a_file_is_replaced_within_the_same_mtime(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"A" * 100)
    before = data.file_key(path)
    staged = tmp_path / "model.tmp"
    staged.write_bytes(b"B" * 100)  # same size, other content
    old = os.stat(path)
    os.utime(staged, ns=(old.st_atime_ns, old.st_mtime_ns))  # same mtime, to the nanosecond
    os.replace(staged, path)
    after = data.file_key(path)
    assert after[0] == before[0] == str(path.resolve()) and after[1] == before[1] and after[3] == before[3]
    assert after != before  # the inode tells them apart
    assert data.file_key(path) == after  # and an unchanged file keeps its key
    path.write_bytes(b"C" * 101)  # rewritten in place: another size and mtime
    assert data.file_key(path) != after
    with pytest.raises(FileNotFoundError):
        data.file_key(tmp_path / "missing.pt")


def test_display_names_are_repo_relative_or_folder_and_file(tmp_path):
    assert data.display_name(REPO_ROOT / "checkpoints" / "default.pt") == "checkpoints/default.pt"
    assert data.display_name(tmp_path / "run1" / "model.pt") == "run1/model.pt"


def test_checkpoints_list_the_folder_default_first_then_finished_runs(tmp_path, registry, monkeypatch):
    for name in ("zeta.pt", "default.pt", "alpha.pt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    found, problem = checkpoints._list_checkpoints.__wrapped__(str(tmp_path), str(registry))
    assert problem is None
    assert list(found) == [f"{tmp_path.name}/default.pt", f"{tmp_path.name}/alpha.pt", f"{tmp_path.name}/zeta.pt"]
    monkeypatch.setattr(checkpoints.runs, "list_checkpoints", lambda: [{"path": str(tmp_path / "alpha.pt"), "run_id": "r"}])
    found, _ = checkpoints._list_checkpoints.__wrapped__(str(tmp_path), str(registry))
    assert len(found) == 3  # a run's checkpoint already in the folder is listed once

    def broken():
        raise RuntimeError("database disk image is malformed")

    monkeypatch.setattr(checkpoints.runs, "list_checkpoints", broken)
    found, problem = checkpoints._list_checkpoints.__wrapped__(str(tmp_path), str(registry))
    assert len(found) == 3 and "malformed" in problem
