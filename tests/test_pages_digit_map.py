"""The Digit map view through AppTest, its chart builders (dashboard/ui/map_charts.py) and the CLI that computes
the map.

The map is computed by a subprocess: here a fake Popen that runs nothing and exits when the test says, while
the test writes the map's coordinates into core's disk cache itself (the real UMAP takes up to a minute; core's
own tests and the browser test cover it), removed afterwards, so the view's wiring is checked in seconds.
A plotly selection cannot be made in AppTest: the "Also select" pills take the same path
(tests/test_browser_slices.py drags a box in a real browser).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import load_predictor
from core.constants import SUSPECT_K
from core.data import evaluation_sequences
from core.evaluate import digit_map
from core.evaluate.embeddings import MAP_NAME
from core.predict import cache as disk_cache
from dashboard import data
from dashboard.data import map_job
from dashboard.ui import map_charts
from tests.test_pages import by_label, open_page, plotly
from tests.test_pages_trust import values
from tests.test_training_page import polling, tick

BIGGER = {"eval_lengths": "20,50,100", "eval_per_length": 12, "eval_seed": 3}  # 36 sequences, 2,040 digits


@pytest.fixture
def env(checkpoint_dir, registry, monkeypatch):
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(checkpoint_dir))
    return checkpoint_dir


@pytest.fixture
def map_files():
    """Paths of digit-map files a test writes into the session's cache; removed afterwards (with the maps
    the dashboard loaded), so no other test sees a synthetic map."""
    written: list = []
    yield written
    for path in written:
        path.unlink(missing_ok=True)
    map_job._digit_map.clear()


@pytest.fixture
def jobs(monkeypatch, tmp_path) -> list:
    """The map jobs the view starts, as fakes of subprocess.Popen that run nothing and exit (status 0) when a
    test sets their returncode; an empty cache folder, so no map is there yet whatever ran before."""
    monkeypatch.setenv("DIGITSUM_CACHE_DIR", str(tmp_path / "cache"))
    started: list = []

    class FakeJob:
        returncode = None

        def __init__(self, args, **kwargs):
            self.args = args
            started.append(self)

        def poll(self):
            return self.returncode

    monkeypatch.setattr(map_job.subprocess, "Popen", FakeJob)
    monkeypatch.setattr(map_job._Jobs, "running", {})
    return started


def write_map(path: str, map_files: list) -> pd.DataFrame:
    """What a job leaves in core's cache: coordinates with one cluster per label. Returns the map."""
    predictor = load_predictor(path)
    labels = data.test_split()[1]
    xy = np.stack([labels + 0.01 * np.arange(len(labels)) % 1, labels % 3], -1).astype(np.float32)
    map_files.append(disk_cache.store_array(predictor.checkpoint_hash, MAP_NAME, "test", xy))
    return digit_map(predictor)


def captions_of(points: pd.DataFrame, indices) -> list[str]:
    rows = points.set_index("index").loc[list(indices)]
    return [f"#{i}: {t}→{p}" if t != p else f"#{i}: {t}" for i, t, p in zip(rows.index, rows["label"], rows["pred"])]


def selected(at) -> str:
    [heading] = [h.value for h in at.subheader if "selected test digits" in h.value]
    return heading


# ----------------------------------------------------------------------------- the builders

def test_kinds_overlap_for_selection_and_the_telling_digits_come_first():
    points = pd.DataFrame({"index": [10, 11, 12, 13, 14], "label": [1, 2, 3, 4, 5], "pred": [1, 2, 0, 4, 0],
                           "x": 0.0, "y": 0.0})
    kinds = map_charts.digit_kinds(points, suspects=[12, 13])
    assert list(kinds) == ["correct", "correct", "misread, suspect label", "suspect label", "misread"]
    assert list(points["index"][map_charts.of_kinds(kinds, ["misread"])]) == [12, 14]  # a suspect one too
    assert list(points["index"][map_charts.of_kinds(kinds, ["suspect label"])]) == [12, 13]
    assert not map_charts.of_kinds(kinds, []).any()
    assert map_charts.telling_first([10, 11, 12, 13, 14], points, kinds) == [12, 14, 13, 10, 11]
    assert map_charts.telling_first([14, 11, 13], points, kinds) == [14, 13, 11]


# ----------------------------------------------------------------------------- the view

def test_digit_map_starts_its_job_once_shows_the_map_and_reaps_the_job(env, map_files, jobs, tmp_path):
    at = open_page("views/digit_atlas.py", **BIGGER)
    assert [t.value for t in at.title] == ["Digit map"]
    path = str((env / "default.pt").resolve())
    [job] = jobs
    assert job.args == [sys.executable, "-m", "scripts.digit_map", "--checkpoint", path]
    assert "Computing the digit map" in at.info[0].value and not at.get("plotly_chart")
    at.run()
    assert len(jobs) == 1  # one subprocess per checkpoint, however often the page reruns
    key = data.file_key(Path(path))
    log = map_job.log_path(key)
    assert log.parent == tmp_path / "cache" / "jobs" and log.exists()

    write_map(path, map_files)  # the job has written the map but not exited yet: the map shows
    polled = polling(at)
    assert plotly(at, "digit_map") and map_job._Jobs.running == {key: (job, log)}
    job.returncode = 0  # now it exits
    tick(at, polled)  # the page's next poll, with no click: it reaps the job, then draws the whole page again
    assert map_job._Jobs.running == {} and not log.exists()  # no <defunct> process, no log left
    assert plotly(at, "digit_map") and [t.value for t in at.title] == ["Digit map"]


def test_digit_map_counts_every_misread_digit_labels_clusters_and_shows_telling_digits_first(env, map_files,
                                                                                             jobs):
    at = open_page("views/digit_atlas.py", **BIGGER)
    path = str((env / "default.pt").resolve())
    points = write_map(path, map_files)
    at.run()
    assert not at.exception
    misread = set(points.loc[points["pred"] != points["label"], "index"])
    suspects = set(data.suspects(path)["index"].head(SUSPECT_K))
    both = misread & suspects
    assert both and misread - suspects and suspects - misread  # the model's suspects include misread digits

    chart = plotly(at, "digit_map")
    sizes = {"correct": len(points) - len(misread | suspects), "misread": len(misread - suspects),
             "suspect label": len(suspects - misread), "misread, suspect label": len(both)}
    assert [t["name"] for t in chart["data"]] == [f"{kind} ({n:,})" for kind, n in sizes.items()]
    assert chart["layout"]["dragmode"] == "select" and all(t["type"] == "scattergl" for t in chart["data"])
    assert sorted(values(chart["data"][3]["customdata"])) == sorted(both)  # customdata: the test image index
    # Each cluster carries its digit, at the median of its labels' points.
    centres = points.groupby("label")[["x", "y"]].median()
    notes = chart["layout"]["annotations"]
    assert [n["text"] for n in notes] == [str(d) for d in range(10)]
    np.testing.assert_allclose([[n["x"], n["y"]] for n in notes], centres.to_numpy())
    assert f"Red: the {len(misread):,} digits the CNN misreads" in at.caption[0].value
    assert "Select digits on the map" in at.info[0].value

    pills = by_label(at.pills, "Also select")
    assert pills.options == [f"misread ({len(misread):,})", f"suspect label ({len(suspects):,})"]  # as shown
    pills.set_value(["misread"]).run()  # every misread digit, suspect or not
    assert not at.exception and selected(at).startswith(f"{len(misread):,} selected test digits")

    by_label(at.pills, "Also select").set_value(["suspect label"]).run()
    assert selected(at).startswith(f"{len(suspects):,} selected test digits")
    telling = [*sorted(both), *sorted(suspects - misread)]  # misread first, then the other suspects
    assert telling != sorted(suspects)  # not the order of their indices
    [grid] = at.get("image")
    assert grid.captions == captions_of(points, telling[:60])
    assert any(c.value.startswith("Misread digits first, then suspect labels") for c in at.caption)

    by_label(at.pills, "Also select").set_value(["misread", "suspect label"]).run()
    picked = misread | suspects
    assert selected(at).startswith(f"{len(picked):,} selected test digits")
    [grid] = at.get("image")
    assert grid.captions == captions_of(points, [*sorted(misread), *sorted(suspects - misread)][:60])
    seqs = evaluation_sequences([20, 50, 100], 12, 3)  # the same set, without a model
    holding = [i for i in range(len(seqs)) if set(seqs.indices[i, : seqs.lengths[i]]) & picked]
    assert holding  # the set holds some picked digits
    [listed] = [d.value for d in at.dataframe]
    assert sorted(listed["seq_id"]) == holding and listed["inspect"].str.startswith("inspector?src=eval").all()


# ----------------------------------------------------------------------------- the CLI

def test_digit_map_cli_fills_the_cache_and_names_a_bad_checkpoint(tmp_path, monkeypatch, capsys, make_checkpoint):
    from core.evaluate import embeddings as core_embeddings
    from scripts import digit_map as cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--checkpoint", str(tmp_path / "missing.pt")])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and error.startswith("error: ") and "missing.pt" in error and error.count("\n") == 1
    path = tmp_path / "tiny.pt"
    make_checkpoint(path, seed=5)
    monkeypatch.setattr(core_embeddings, "project", lambda features: np.asarray(features[:, :2], np.float32))
    assert cli.main(["--checkpoint", str(path)]) == 0
    assert "10,000 test images" in capsys.readouterr().out
    predictor = load_predictor(path)
    assert disk_cache.load_array(predictor.checkpoint_hash, MAP_NAME, "test", (10_000, 2)) is not None
