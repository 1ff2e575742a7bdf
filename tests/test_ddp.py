"""Scale-out: the smoke preset under torchrun with 2 CPU processes (DDP over gloo); only rank 0 writes."""

import subprocess
import sys

import pytest

from core.model.checkpoint import load_checkpoint
from core.paths import REPO_ROOT
from core.training.records import read_metrics


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    out_dir = tmp_path / "ckpt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "scripts.train", "--preset", "smoke", "--device", "cpu", "--no-progress",
           "--out", str(out_dir / "ddp.pt"), "--run-dir", str(tmp_path / "run")]  # fmt: skip
    log = tmp_path / "torchrun.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=400)
    assert proc.returncode == 0, log.read_text()[-4000:]
    assert sorted(p.name for p in out_dir.iterdir()) == ["ddp.json", "ddp.pt"]  # one checkpoint, from rank 0
    _, meta = load_checkpoint(out_dir / "ddp.pt")
    assert meta["metrics"]["world_size"] == 2
    records = read_metrics(tmp_path / "run")
    assert sum(r["phase"] == "done" for r in records) == 1  # rank 1 wrote nothing
    assert len({r["step"] for r in records if r["phase"] == "cnn"}) == len([r for r in records if r["phase"] == "cnn"])
    assert log.read_text().count("training smoke: checkpoint") == 1  # only rank 0 prints
