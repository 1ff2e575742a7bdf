"""Bad CLI input: one `error:` line naming the flag and what it expected, exit status 2, no traceback,
and before any slow work (loading a checkpoint, warming up)."""

import subprocess

import pytest

from core.constants import DEVICES
from core.paths import DEFAULT_CHECKPOINT, REPO_ROOT
from scripts import digit_map, evaluate, fetch_data, generate, serve, train

CHECKPOINT = str(DEFAULT_CHECKPOINT)


def usage_error(main, argv, capsys) -> str:
    """Run main(argv); it must exit 2 with one line on stderr, which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("module, out", [(evaluate, "/proc/forbidden/x"), (generate, "/proc/x/y")])
def test_an_unwritable_out_is_a_usage_error_before_any_work(module, out, capsys, monkeypatch):
    monkeypatch.setattr(module, "load_predictor", lambda *a, **k: pytest.fail("loaded a checkpoint before checking --out"))
    err = usage_error(module.main, ["--checkpoint", CHECKPOINT, "--out", out], capsys)
    assert "--out" in err and out in err


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_serve_checks_the_port_before_warming_up(port, capsys, monkeypatch):
    monkeypatch.setattr(serve, "warm", lambda *a, **k: pytest.fail("warmed up before the port was checked"))
    err = usage_error(serve.main, ["--port", port], capsys)
    assert "--port" in err and "1..65535" in err


@pytest.mark.parametrize("main", [evaluate.main, generate.main])
def test_a_negative_seed_names_the_flag(main, tmp_path, capsys):
    err = usage_error(main, ["--checkpoint", CHECKPOINT, "--seed", "-1", "--out", str(tmp_path / "x")], capsys)
    assert "--seed" in err and "non-negative integer" in err


def test_fetch_data_refuses_a_missing_idx_dir_even_with_a_cache(tmp_path, capsys):
    err = usage_error(fetch_data.main, ["--idx-dir", str(tmp_path / "nonexistent")], capsys)
    assert "--idx-dir" in err and "nonexistent" in err


def test_fetch_data_refuses_an_idx_dir_without_the_idx_files(tmp_path, capsys):
    err = usage_error(fetch_data.main, ["--idx-dir", str(tmp_path)], capsys)
    assert "--idx-dir" in err and "train-images-idx3-ubyte" in err


@pytest.mark.parametrize("main", [evaluate.main, generate.main, digit_map.main, train.main])
def test_every_device_flag_offers_exactly_core_constants_devices(main, capsys):
    err = usage_error(main, ["--device", "tpu"], capsys)
    assert "argument --device: invalid choice: 'tpu'" in err
    assert err.rstrip().endswith("(choose from " + ", ".join(repr(d) for d in DEVICES) + ")")


@pytest.mark.parametrize("module", [evaluate, generate])
def test_default_outputs_go_to_a_gitignored_folder(module):
    for suffix in (".json", ".md", ".png"):
        path = f"{module.DEFAULT_OUT}{suffix}"
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT)
        assert done.returncode == 0, f"{path} is not ignored by git"


def test_a_failed_write_names_the_flag(tmp_path, capsys):
    from scripts.cli import Parser, write_outputs

    (tmp_path / "file").write_text("not a folder")
    err = usage_error(lambda argv: write_outputs(Parser(), {tmp_path / "file" / "x.json": b"{}"}), [], capsys)
    assert err.startswith("error: --out: cannot write") and "x.json" in err
