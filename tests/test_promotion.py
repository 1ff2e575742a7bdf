"""core.promotion: making a run's (or any) checkpoint the active default and going back, through the API
and `python -m scripts.runs promote`; the scripts' default --checkpoint follows it; a shipped file is never
rewritten; a promoted file that vanished or changed falls back to the shipped default, saying why."""

from __future__ import annotations

import hashlib
import json

import pytest

from core import promotion
from core import runs as run_api
from core.model.checkpoint import CheckpointError
from core.paths import CHECKPOINTS_DIR, DEFAULT_CHECKPOINT
from core.runs import registry as db
from scripts import evaluate, generate, serve
from scripts import runs as runs_cli


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A private user folder (the pointer lives there); the shipped checkpoints/ is the checkpoint folder."""
    monkeypatch.setenv("DIGITSUM_USER_DIR", str(tmp_path / "user"))
    monkeypatch.delenv("DIGITSUM_CHECKPOINT_DIR", raising=False)
    return tmp_path / "user"


def shipped_hashes() -> dict[str, str]:
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(CHECKPOINTS_DIR.glob("*.pt"))}
    assert "default.pt" in found
    return found


def succeeded_run(make_checkpoint, status: str = "succeeded") -> tuple[run_api.Run, object]:
    """A run staged in the registry as `status`, with a small checkpoint (no process behind it)."""
    run = run_api.launch({"preset": "smoke", "device": "cpu"}, start=False)
    path = make_checkpoint(run.run_dir / "model.pt", seed=1)
    with db.tx() as conn:
        db.update(conn, run.id, status=status, progress=1.0, checkpoint=str(path))
    return run, path


def cli(argv, capsys) -> tuple[int, str, str]:
    code = runs_cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_promote_a_path_and_go_back_leaves_every_shipped_checkpoint_byte_identical(user, tmp_path, make_checkpoint):
    before = shipped_hashes()
    assert promotion.active_default() == promotion.ActiveDefault(DEFAULT_CHECKPOINT, "shipped", None)

    mine = make_checkpoint(tmp_path / "mine.pt")
    active = promotion.promote(str(mine))
    assert promotion.active_default() == active
    assert active.path == mine.resolve() and active.origin == f"promoted from {mine.resolve()}" and active.since
    stored = json.loads((user / "active_default.json").read_text())
    assert stored == {"path": str(mine.resolve()), "sha256": hashlib.sha256(mine.read_bytes()).hexdigest(),
                      "origin": active.origin, "since": active.since}

    other = CHECKPOINTS_DIR / "deepsets.pt"  # a shipped file can be the default too: by pointer, not by copy
    assert promotion.promote(other).origin == "promoted from checkpoints/deepsets.pt"
    assert promotion.active_default().path == other

    back = promotion.reset_to_shipped()
    assert back == promotion.ActiveDefault(DEFAULT_CHECKPOINT, "shipped", None) and back.shipped
    assert not (user / "active_default.json").exists()
    assert shipped_hashes() == before
    assert not [p for p in CHECKPOINTS_DIR.iterdir() if p.suffix == ".tmp" or p.name.startswith(".")]


def test_promoting_the_shipped_default_is_going_back(user, tmp_path, make_checkpoint):
    promotion.promote(make_checkpoint(tmp_path / "mine.pt"))
    assert promotion.promote(DEFAULT_CHECKPOINT).shipped
    assert not (user / "active_default.json").exists()


def test_promote_a_succeeded_run_by_id_and_back_through_the_cli(user, no_spawn, make_checkpoint, capsys):
    before = shipped_hashes()
    run, path = succeeded_run(make_checkpoint)
    code, out, err = cli(["promote", run.id], capsys)
    assert (code, err) == (0, "")
    active = promotion.active_default()
    assert active.path == path.resolve() and active.origin == f"promoted from run {run.id}"
    assert out == f"active default: {path.resolve()} (promoted from run {run.id})\n"

    code, out, err = cli(["promote", "--shipped"], capsys)
    assert (code, out, err) == (0, "active default: checkpoints/default.pt (shipped)\n", "")
    assert promotion.active_default().path == DEFAULT_CHECKPOINT
    assert shipped_hashes() == before


def test_what_cannot_be_promoted_is_one_line_and_changes_nothing(user, no_spawn, tmp_path, make_checkpoint, capsys):
    failed, _ = succeeded_run(make_checkpoint, status="failed")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    cases = {"nope-123": "neither a checkpoint file nor a known run id", failed.id: "only a succeeded run's",
             str(garbage): "not a readable checkpoint"}
    for target, expected in cases.items():
        with pytest.raises(ValueError, match=expected):
            promotion.promote(target)
        code, out, err = cli(["promote", target], capsys)
        assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1 and expected in err
    for argv in (["promote"], ["promote", str(garbage), "--shipped"]):
        code, _, err = cli(argv, capsys)
        assert code == 2 and err == "error: promote expects either RUN_ID|PATH or --shipped\n"
    assert not user.exists()  # nothing was written
    assert promotion.active_default().shipped


def test_a_deleted_or_changed_promoted_file_falls_back_with_the_reason(user, tmp_path, make_checkpoint):
    mine = make_checkpoint(tmp_path / "mine.pt", seed=0)
    promotion.promote(mine)
    make_checkpoint(mine, seed=1)  # rewritten in place: no longer the model that was promoted
    changed = promotion.active_default()
    assert changed.path == DEFAULT_CHECKPOINT and not changed.shipped
    assert changed.origin == f"shipped (the promoted {mine.resolve()} changed since it was promoted)"

    promotion.promote(mine)
    mine.unlink()
    gone = promotion.active_default()
    assert gone.path == DEFAULT_CHECKPOINT and gone.origin == f"shipped (the promoted {mine.resolve()} is missing)"

    (user / "active_default.json").write_text("{half a pointer")
    broken = promotion.active_default()
    assert broken.path == DEFAULT_CHECKPOINT and broken.origin.startswith("shipped (") and "unreadable" in broken.origin
    assert promotion.reset_to_shipped().shipped  # going back clears a stale pointer


@pytest.mark.parametrize("module", [evaluate, generate])
def test_evaluate_and_generate_default_to_the_active_default(module, user, tmp_path, make_checkpoint, monkeypatch,
                                                            capsys):
    loaded = []

    def stop(path, **_):  # record which checkpoint the script chose, then stop before any real work
        loaded.append(path)
        raise CheckpointError("stopped by the test")

    monkeypatch.setattr(module, "load_predictor", stop)
    argv = ["--out", str(tmp_path / "out"), "--seed", "1"]
    mine = make_checkpoint(tmp_path / "mine.pt")
    for expected in (mine.resolve(), DEFAULT_CHECKPOINT):
        if expected == DEFAULT_CHECKPOINT:
            promotion.reset_to_shipped()
        else:
            promotion.promote(mine)
        with pytest.raises(SystemExit):
            module.main(argv)
        assert loaded.pop() == str(expected)
    assert "error: stopped by the test" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main([*argv, "--checkpoint", str(mine)])  # a flag given still wins
    assert loaded == [str(mine)]


def test_serve_warms_the_active_default_and_says_so(user, tmp_path, make_checkpoint, monkeypatch, capsys):
    from streamlit.web import cli as streamlit_cli

    warmed = []
    monkeypatch.setattr(serve, "warm", warmed.append)
    monkeypatch.setattr(streamlit_cli.main, "main", lambda **_: 0)  # no server
    mine = make_checkpoint(tmp_path / "mine.pt")
    promotion.promote(mine)
    with pytest.raises(SystemExit):
        serve.main(["--port", "8599"])
    assert warmed == [mine.resolve()]
    assert f"serve: checkpoint {mine.resolve()} (active default, promoted from {mine.resolve()})" in capsys.readouterr().out


def test_lineage_in_words():
    lineage = {"parent": {"path": str(DEFAULT_CHECKPOINT), "sha256": "abcdef0123456789" * 4},
               "data": {"mnist_train": 50000, "collection_digits": 12, "label_decisions": 3}}
    assert promotion.lineage_facts({"lineage": lineage}) == {
        "Parent": "checkpoints/default.pt (sha256 abcdef012345)",
        "Data seen": "MNIST train 50,000 images · 12 collection digits · 3 label decisions"}
    assert promotion.lineage_facts({"lineage": {**lineage, "parent": None}})["Parent"] == "none: trained from scratch"
    assert promotion.lineage_facts({"head": "lstm"}) is None
