"""How the Training view words and tabulates runs, and the launch form's values as a core.runs config.
Plain functions, no Streamlit (tests/test_components.py)."""

from __future__ import annotations

import pandas as pd

# Streamlit's Material icons, not emoji: they render without an emoji font.
ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:", "cancelling": ":material/stop_circle:",
         "succeeded": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/cancel:"}
EPOCHS = (("epochs_cnn", "CNN epochs"), ("epochs_head", "Head epochs"), ("epochs_joint", "Joint epochs"))


def status(run) -> str:
    """The run's status as shown: a running run whose cancel is in progress reads "cancelling"."""
    return run.display_status


def eta_text(seconds) -> str:
    if seconds is None:
        return "ETA unknown"
    seconds = int(round(seconds))
    return f"ETA {seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"ETA {seconds} s"


def settings_text(run) -> str:
    return ", ".join(f"{k}={v}" for k, v in run.overrides.items())


def run_label(run) -> str:
    # No status here: the live panel updates without a full rerun, so a status would go stale.
    return f"{run.id} · {run.preset}" + (f" ({settings_text(run)})" if run.overrides else "")


def mae_text(value) -> str:
    """A val MAE as the run list shows it: an em dash before the first one is measured (not `None`)."""
    return "—" if pd.isna(value) else f"{value:.3f}"


def runs_rows(items) -> pd.DataFrame:
    """The run list as a table."""
    return pd.DataFrame([{"id": r.id, "status": status(r), "preset": r.preset, "device": f"{r.device} ×{r.world_size}",
                          "progress": r.progress, "val MAE": mae_text(r.metrics.get("val_mae")), "created": r.created,
                          "settings": settings_text(r)} for r in items])


def progress_text(run) -> str:
    shown = status(run)
    if shown == "running":
        return f"{run.progress:.0%} · {eta_text(run.eta)}"
    if shown == "queued":
        return "queued: starts when the device is free"
    if shown == "cancelling":
        return f"{run.progress:.0%} · cancelling: the trainer is saving its state"
    return f"{run.progress:.0%} · {shown} {run.finished or ''}".rstrip()


def launch_config(form: dict, base: dict, device_count: int) -> tuple[dict, int | None]:
    """The launch form's values -> (core.runs.launch config, world_size). `form` holds preset, device,
    head, lengths (lo, hi), lr, batch_size, seed and the EPOCHS keys (None: the preset's value); only
    settings that differ from the preset `base` become overrides."""
    config = {"preset": form["preset"], "device": form["device"], "lr": form["lr"],
              "batch_size": form["batch_size"], "seed": form["seed"]}
    config.update({key: form[key] for key, _ in EPOCHS})
    if form["head"] != base["head"]:
        config["head"] = form["head"]
    if tuple(form["lengths"]) != (base["min_len"], base["max_len"]):
        config["min_len"], config["max_len"] = form["lengths"]
    world = form.get("world") if device_count > 1 and config["device"] != "cpu" else None
    return config, world
