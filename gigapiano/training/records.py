"""What a training run leaves next to its weights so its model is always explained.

`run_info.json` (resolved arguments, library versions, git commit, hardware, times), the loss-curve
plot, and the style YAML(s) the data came from. `pieces.json` is written by the data module.
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from ..data import GigaPianoStyle

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "datasets",
    "peft",
    "evaluate",
    "symusic",
    "gigapiano",
)


def git_commit() -> str | None:
    """The project's current commit (with `-dirty` for local changes), or None outside a checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) or None


def library_versions() -> dict[str, str]:
    versions = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def hardware_description() -> str:
    """E.g. '1 x NVIDIA H100 80GB HBM3' or 'CPU (x86_64, 2 threads)'."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def write_run_info(output_dir: Path, arguments: dict[str, dict[str, Any]], extra: dict[str, Any]) -> Path:
    """Write `run_info.json`: every resolved argument, versions, commit, hardware and run facts."""
    info = {
        "arguments": {
            group: {k: _jsonable(v) for k, v in values.items()} for group, values in arguments.items()
        },
        "versions": library_versions(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "hardware": hardware_description(),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    path = output_dir / "run_info.json"
    path.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return path


def write_styles(output_dir: Path, styles: Sequence[GigaPianoStyle]) -> Path:
    """Copy the resolved style definition(s) used by the run into `style.yaml`."""
    path = output_dir / "style.yaml"
    documents = [style.to_dict() for style in styles]
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True))
    return path


def plot_loss_curves(log_history: list[dict[str, Any]], path: Path) -> Path | None:
    """Training and validation loss against the optimisation step, as a PNG. None if nothing was logged."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    valid = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    if not train and not valid:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train", color="tab:blue")
    if valid:
        ax.plot(*zip(*valid, strict=True), label="validation", color="tab:orange", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title("GIGA-Piano training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
