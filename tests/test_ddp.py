"""Scale-out: the smoke preset under torchrun with 2 CPU processes (DDP over gloo); only rank 0 writes,
and both ranks end with the same parameters."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.model.checkpoint import load_checkpoint
from core.paths import REPO_ROOT
from core.training.records import read_metrics

PARAMS_DIR = "DIGITSUM_TEST_PARAMS_DIR"  # where each rank leaves its final parameters (this test only)


def train_saving_each_ranks_parameters(argv: list[str]) -> int:
    """scripts.train, with every rank saving its final parameters to $PARAMS_DIR/rank<N>.pt (run under torchrun)."""
    import torch

    from core.training import loop
    from scripts import train

    run = loop.Trainer.run

    def run_and_save(self):
        metrics = run(self)
        params = {name: p.detach().cpu() for name, p in self.model.named_parameters()}
        torch.save(params, Path(os.environ[PARAMS_DIR]) / f"rank{self.rank}.pt")
        return metrics

    loop.Trainer.run = run_and_save
    return train.main(argv)


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    import torch

    out_dir = tmp_path / "ckpt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tests.test_ddp", "--preset", "smoke", "--device", "cpu", "--no-progress",
           "--out", str(out_dir / "ddp.pt"), "--run-dir", str(tmp_path / "run")]  # fmt: skip
    log = tmp_path / "torchrun.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=400,
                              env={**os.environ, PARAMS_DIR: str(tmp_path)})
    assert proc.returncode == 0, log.read_text()[-4000:]
    assert sorted(p.name for p in out_dir.iterdir()) == ["ddp.json", "ddp.pt"]  # one checkpoint, from rank 0
    _, meta = load_checkpoint(out_dir / "ddp.pt")
    assert meta["metrics"]["world_size"] == 2
    records = read_metrics(tmp_path / "run")
    assert sum(r["phase"] == "done" for r in records) == 1  # rank 1 wrote nothing
    assert len({r["step"] for r in records if r["phase"] == "cnn"}) == len([r for r in records if r["phase"] == "cnn"])
    assert log.read_text().count("training smoke: checkpoint") == 1  # only rank 0 prints
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0 and rank0.keys() == rank1.keys()
    differ = [name for name in rank0 if not torch.equal(rank0[name], rank1[name])]
    assert not differ, f"the ranks ended with different parameters: {differ}"


if __name__ == "__main__":  # one rank of the test above, started by torchrun
    sys.exit(train_saving_each_ranks_parameters(sys.argv[1:]))
