"""Finding and loading the models under evaluation: `<models_dir>/gigapiano-<name>`, full models or adapters.

A style model may be a full (or merged) model, or a LoRA adapter whose `adapter_config.json` names its base.
Training records the base as an absolute path on the training machine, so an adapter that was moved
(committed, cloned elsewhere) may point nowhere; the base is then looked for next to the adapter under the
same folder name (`<models_dir>/gigapiano-base`). Adapters are merged after loading: same outputs, faster
sampling.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from gigapiano.generation.resolve import load_model

logger = logging.getLogger(__name__)

BASE_NAME = "base"


def model_folder(models_dir: str | Path, name: str) -> Path:
    """`<models_dir>/gigapiano-<name>` (name `base` or a style)."""
    return Path(models_dir) / f"gigapiano-{name}"


def check_model_folders(models_dir: str | Path, names: Sequence[str]) -> dict[str, Path]:
    """The folder of every model, checked up front so a missing one fails before any work is done.

    Args:
        models_dir: Folder holding `gigapiano-<name>` folders.
        names: `base` and the styles.

    Returns:
        Name -> folder.

    Raises:
        FileNotFoundError: One line naming every missing folder.
    """
    folders = {name: model_folder(models_dir, name) for name in names}
    missing = [str(folder) for folder in folders.values() if not folder.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"Missing model folder(s): {', '.join(missing)}; train and save them there, or pass --models_dir."
        )
    return folders


def adapter_base(folder: Path) -> Path | str | None:
    """The base model of a LoRA adapter folder (None when `folder` holds a full model).

    Returns:
        The recorded base when it is a model folder (has a `config.json`); else a sibling model folder of the
        same name; else the recorded value unchanged (a Hub id).
    """
    config_file = folder / "adapter_config.json"
    if not config_file.is_file() or (folder / "model.safetensors").is_file():
        return None
    recorded = json.loads(config_file.read_text())["base_model_name_or_path"]
    for candidate in (Path(recorded), folder / recorded, folder.parent / Path(recorded).name):
        if (candidate / "config.json").is_file():
            return candidate
    return recorded


def load_evaluation_model(folder: str | Path, device: str | torch.device = "auto") -> torch.nn.Module:
    """A float32 model in eval mode from a full-model folder or a LoRA adapter folder (merged into its base).

    Shipped weights may be stored in fp16; they are upcast so that losses are exact and CPU sampling is fast.

    Args:
        folder: The model folder.
        device: `auto`, `cpu`, `cuda`, ...

    Returns:
        The model.
    """
    folder = Path(folder)
    base = adapter_base(folder)
    if base is None:
        return load_model(folder, device, torch.float32)
    from peft import PeftModel

    logger.info("%s is a LoRA adapter on %s; merging it for evaluation.", folder, base)
    model = PeftModel.from_pretrained(load_model(base, device, torch.float32), str(folder))
    return model.merge_and_unload().eval()


__all__ = ["BASE_NAME", "adapter_base", "check_model_folders", "load_evaluation_model", "model_folder"]
