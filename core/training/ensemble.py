"""An ensemble checkpoint: M CNNs trained apart with different seeds, one head over their averaged
calibrated probabilities.

    train_ensemble(config, out_path=..., work_dir=...)   # config.members member runs, then the head

1. Each member is a whole CNN run of `config` with members=1, its own seed (config.seed + m) and no head
   phase; its epoch is chosen on val_select, as any run's.
2. assemble() stacks the members into one CNNEnsemble and fits each member's temperature on val_calib,
   so every member's probabilities are honest before they are averaged (core.model.cnn).
3. A head run over the assembled CNN (epochs_cnn=0) learns from the averaged probabilities, its epoch
   chosen on val_select; the usual calibration (temperatures, interval margins) is fitted on val_calib.

member_figures() measures an assembled CNN on val_select (no test image): what chooses M and the recipe.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.data import load_mnist, split_arrays
from core.data.splits import CALIBRATION_SPLIT, SELECTION_SPLIT
from core.evaluate.reliability import aurc, risk_coverage
from core.model import DigitSumModel, ModelConfig
from core.model.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from core.predict.temperature import fit_temperature, nll
from core.training.loop import train
from core.training.phases import to_float

MEMBER_PREFIX = "cnn.members.0."  # a single CNN's weights in its checkpoint
ASSEMBLED_FILE = "members.pt"


def member_config(config, index: int):
    """The run of member `index`: one CNN, seed config.seed + index, no head or joint phase."""
    return replace(config, members=1, seed=config.seed + index, epochs_head=0, epochs_joint=0, widths=list(config.widths))


@torch.no_grad()
def member_logits(model: DigitSumModel, images: np.ndarray, chunk: int = 500) -> torch.Tensor:
    """(M, n, 10) raw logits of every member on uint8 images (n, 28, 28)."""
    model.cnn.eval()
    parts = [model.cnn.member_logits(to_float(images[i : i + chunk], "cpu")).float() for i in range(0, len(images), chunk)]
    return torch.cat(parts, dim=1)


def assemble(member_paths: list, out_path) -> dict:
    """Stack single-CNN checkpoints into one ensemble checkpoint at out_path (its head untrained) with each
    member's temperature fitted on val_calib; returns its "ensemble" metadata block."""
    if len(member_paths) < 2:
        raise ValueError(f"an ensemble needs at least 2 member checkpoints, got {len(member_paths)}")
    loaded = [load_checkpoint(p) for p in member_paths]
    shapes = {(tuple(m["model_config"]["widths"]), m["model_config"]["members"]) for _, m in loaded}
    if len(shapes) != 1 or next(iter(shapes))[1] != 1:
        raise CheckpointError(f"ensemble members must be single CNNs of one shape, got (widths, members) {sorted(shapes)}")
    widths = list(next(iter(shapes))[0])
    model = DigitSumModel(ModelConfig(head="lstm", widths=widths, members=len(loaded)))
    for member, (state, _) in zip(model.cnn.members, loaded):
        member.load_state_dict({k[len(MEMBER_PREFIX):]: v for k, v in state.items() if k.startswith(MEMBER_PREFIX)})
    images, labels = split_arrays(load_mnist(), CALIBRATION_SPLIT)
    logits = member_logits(model, images).numpy()
    model.cnn.member_temperature.copy_(torch.tensor([fit_temperature(z, labels) for z in logits]))
    from core.predict.cache import file_sha256

    block = {"members": [{"path": str(Path(p)), "sha256": file_sha256(p), "seed": meta["train_config"]["seed"],
                          "label_smoothing": meta["train_config"]["label_smoothing"],
                          "val_digit_acc": meta["metrics"]["val_digit_acc"]}
                         for p, (_, meta) in zip(member_paths, loaded)],
             "member_temperature": model.cnn.member_temperature.tolist(), "temperatures_fitted_on": CALIBRATION_SPLIT,
             "val": member_figures(model)}  # fmt: skip
    first = loaded[0][1]
    save_checkpoint(out_path, model.state_dict(), {
        "model_config": model.config.to_dict(), "head": "lstm", "train_lengths": first["train_lengths"],
        "data_checksum": first["data_checksum"], "preset": first["preset"], "ensemble": block})
    return block


def member_figures(model: DigitSumModel) -> dict:
    """val_select figures of an assembled CNN: digit accuracy, NLL and selective risk (the AURC of its
    misreads ranked by confidence, which label smoothing is said to harm) of the averaged calibrated
    probabilities, each member's accuracy, and how often the members disagree about a digit."""
    images, labels = split_arrays(load_mnist(), SELECTION_SPLIT)
    z = member_logits(model, images)
    mean_log_p = model.cnn.combine(z).numpy()  # the log of the averaged calibrated probabilities
    votes = z.argmax(-1).numpy()
    by_confidence = pd.DataFrame({"p_exact": mean_log_p.max(1), "exact": mean_log_p.argmax(1) == labels})
    return {"split": SELECTION_SPLIT, "images": int(len(labels)),
            "digit_acc": float((mean_log_p.argmax(1) == labels).mean()), "nll": nll(mean_log_p, labels),
            "digit_aurc": aurc(risk_coverage(by_confidence)),
            "member_digit_acc": [float((v == labels).mean()) for v in votes],
            "disagree": float((votes != votes[:1]).any(0).mean())}  # fmt: skip


def train_ensemble(config, *, out_path, work_dir, members_from=(), compare=(), show_progress: bool = False) -> dict:
    """Train config.members member CNNs (or take the checkpoints in members_from), assemble them and train
    the head over them; writes the ensemble to out_path and returns its final val metrics. Every member,
    the assembled CNN and the head's run folder go under work_dir. compare: other assembled CNNs (another
    recipe's members.pt) whose val figures the checkpoint keeps beside its own, as the record of its choice."""
    alternatives = [{"path": str(p), **(read_metadata(p).get("ensemble") or {})} for p in compare]
    if any("val" not in a for a in alternatives):
        raise CheckpointError(f"--compare takes assembled ensembles ({ASSEMBLED_FILE} of a work dir), got {list(compare)}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    paths = [str(p) for p in members_from]
    for index in range(0 if paths else config.members):
        path = work_dir / f"member-{index}.pt"
        if not path.is_file():  # a finished member is kept: a stopped ensemble picks up where it was
            train(member_config(config, index), out_path=path, run_dir=work_dir / f"member-{index}",
                  show_progress=show_progress, calibrate=False)
        paths.append(str(path))
    block = assemble(paths, work_dir / ASSEMBLED_FILE)
    widths = read_metadata(work_dir / ASSEMBLED_FILE)["model_config"]["widths"]  # the members' shape
    head = replace(config, members=len(paths), epochs_cnn=0, epochs_joint=0, widths=widths,
                   init_cnn=str(work_dir / ASSEMBLED_FILE))
    metrics = train(head, out_path=out_path, run_dir=work_dir / "head", show_progress=show_progress)
    state, metadata = load_checkpoint(out_path)
    save_checkpoint(out_path, state, {**metadata, "ensemble": {**block, "alternatives": alternatives}})
    return metrics
