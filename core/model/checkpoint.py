"""Checkpoints: one file holding the state dict and JSON-serialisable metadata, plus a JSON sidecar.

File layout (a torch.save'd dict, read back with torch.load(weights_only=True), which refuses to run
code from the file):
    {"format": "digitsum-checkpoint", "format_version": 1,
     "metadata_json": "<the metadata as a JSON string>", "state_dict": {name: tensor}}
The metadata travels as a JSON string so that what is saved is exactly what a person reads in the
sidecar `<name>.json`; the sidecar is informational, the .pt file is the source of truth.

Every failure to read a checkpoint — missing, truncated, corrupt, foreign or incompatible — raises
CheckpointError with the file name and the problem, never a bare pickle/zip/KeyError.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from core.io import atomic_write
from core.model import HEADS, DigitSumModel, ModelConfig

FORMAT = "digitsum-checkpoint"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
REQUIRED_METADATA = ("format_version", "model_config", "head")
# What train.py writes; read_metadata fills absent ones with None so callers can index safely.
METADATA_KEYS = ("format_version", "model_config", "head", "train_lengths", "data_checksum", "metrics",
                 "preset", "train_config", "created", "code_version")  # fmt: skip


class CheckpointError(RuntimeError):
    """A checkpoint could not be used; the message names the file and the problem."""


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | os.PathLike, state_dict: dict, metadata: dict) -> None:
    """Write `path` (the state dict + metadata) and its JSON sidecar, both atomically."""
    metadata = dict(metadata)
    metadata["format_version"] = FORMAT_VERSION
    metadata.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise ValueError(f"checkpoint metadata is missing {missing}")
    try:
        metadata_json = json.dumps(metadata, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint metadata must be JSON-serialisable: {e}") from e
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata_json": metadata_json,
               "state_dict": tensors}  # fmt: skip
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    human = {"file": Path(path).name, "size_bytes": os.path.getsize(path), **json.loads(metadata_json)}
    text = json.dumps(human, indent=2, sort_keys=True) + "\n"
    atomic_write(sidecar_path(path), lambda tmp: Path(tmp).write_text(text))


def _read_payload(path: str | os.PathLike, mmap: bool = False) -> dict:
    """torch.load the file safely and check the envelope; CheckpointError on any problem."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: file not found")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: not a regular file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path}: file is empty")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        if not zipfile.is_zipfile(path):  # not torch's zip format at all: random or truncated bytes
            raise CheckpointError(f"checkpoint {path}: not a readable checkpoint (truncated, corrupt or not a "
                                  "torch file)") from e
        # weights_only refused an object; torch's own text would advise loading it unsafely
        raise CheckpointError(f"checkpoint {path}: refused, it holds Python objects that are not plain tensors "
                              "(not a digitsum checkpoint, or not a safe one)") from e
    except Exception as e:  # zip and format errors all mean "not a file we can read"
        raise CheckpointError(f"checkpoint {path}: not a readable checkpoint (truncated, corrupt or not a torch "
                              "file)") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: foreign file (a torch file, but not a {FORMAT} checkpoint)")
    version = payload.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise CheckpointError(
            f"checkpoint {path}: unsupported format_version {version!r} (this code reads {list(SUPPORTED_VERSIONS)})"
        )
    return payload


def _parse_metadata(path, payload: dict) -> dict:
    try:
        metadata = json.loads(payload.get("metadata_json"))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: metadata is not valid JSON: {e}") from e
    if not isinstance(metadata, dict):
        raise CheckpointError(f"checkpoint {path}: metadata must be a JSON object")
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise CheckpointError(f"checkpoint {path}: metadata is missing {missing}")
    if metadata["head"] not in HEADS:
        raise CheckpointError(f"checkpoint {path}: unknown head {metadata['head']!r} (known: {list(HEADS)})")
    _check_calibration(path, metadata.get("calibration"))
    return metadata


def _check_calibration(path, block) -> None:
    """The calibration block (core.predict.temperature), if any: positive temperatures, integer margins."""
    if block is None:
        return
    if not isinstance(block, dict):
        raise CheckpointError(f"checkpoint {path}: calibration must be a JSON object")
    for key in ("cnn_temperature", "head_temperature"):
        value = block.get(key, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
            raise CheckpointError(f"checkpoint {path}: calibration {key} must be a positive number, got {value!r}")
    margins = block.get("interval_margin") or {}
    if not isinstance(margins, dict) or not all(
            str(k).isdigit() and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in margins.items()):
        raise CheckpointError(f"checkpoint {path}: calibration interval_margin must map lengths to whole numbers >= 0")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """(state_dict, metadata) from a checkpoint file; CheckpointError if it is not one we can use."""
    payload = _read_payload(path)
    metadata = _parse_metadata(path, payload)
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise CheckpointError(f"checkpoint {path}: state_dict is missing or not a dict of tensors")
    return state_dict, metadata


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata only (memory-mapped read: the tensors are not loaded). Absent keys read as None."""
    metadata = _parse_metadata(path, _read_payload(path, mmap=True))
    return {**dict.fromkeys(METADATA_KEYS), **metadata}


def load_model(path: str | os.PathLike, map_location="cpu") -> tuple[DigitSumModel, dict]:
    """Build the model a checkpoint describes and load its weights (strictly) — in eval mode."""
    state_dict, metadata = load_checkpoint(path)
    try:
        config = ModelConfig.from_dict(metadata["model_config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: incompatible model_config: {e}") from e
    if config.head != metadata["head"]:
        raise CheckpointError(f"checkpoint {path}: head {metadata['head']!r} disagrees with model_config")
    model = DigitSumModel(config)
    expected = model.state_dict()
    if config.members > 1 and "cnn.member_temperature" not in state_dict:  # saved before member temperatures
        state_dict = {**state_dict, "cnn.member_temperature": torch.ones(config.members)}
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape)
    if missing or unexpected or reshaped:  # our own summary: torch's message is pages long
        problems = [f"{len(names)} {what} (e.g. {names[0]})" for names, what in
                    ((missing, "missing tensors"), (unexpected, "unexpected tensors"), (reshaped, "wrong shapes"))
                    if names]
        raise CheckpointError(f"checkpoint {path}: state dict does not match the model it describes: "
                              + ", ".join(problems))
    model.load_state_dict(state_dict, strict=True)
    return model.to(map_location).eval(), metadata
