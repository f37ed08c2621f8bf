"""Assemble a Hugging Face Space (Gradio SDK) that runs the demo `app.py` on published style models.

The Space folder holds `app.py`, the few project modules it imports (`gigapiano.generation`,
`gigapiano.hub.demo` and the tokenizer package), the example prompt, `requirements.txt` (pip),
`packages.txt` (apt: FluidSynth and a General MIDI SoundFont for the audio), `demo_models.json` (style ->
model repo id, read by `app.py`) and `README.md`, whose YAML front matter configures the Space.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData

from .model_card import CARDS_DIR, is_hub_id
from .repo_folder import check_repo_id, prepare_output_dir

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPACE_TEMPLATE_PATH = CARDS_DIR / "space_template.md"
#: Project files the app needs, relative to the project root (folders are copied without caches).
SPACE_SOURCES = (
    "app.py",
    "gigapiano/__init__.py",
    "gigapiano/generation",
    "gigapiano/hub/__init__.py",
    "gigapiano/hub/demo.py",
    "tokenization",
    "examples/fur_elise.mid",
)
SPACE_REQUIREMENTS = (
    "--extra-index-url https://download.pytorch.org/whl/cpu",  # CPU torch wheels for CPU Spaces
    "torch>=2.4",
    "transformers>=5.20,<6",
    "peft>=0.17",
    "huggingface_hub>=1.0",
    "symusic>=0.5.8",
    "numpy>=1.26",
    "matplotlib>=3.8",
    "tqdm>=4.66",
    "pyfluidsynth>=1.3.4",
)
SPACE_APT_PACKAGES = ("libfluidsynth3", "fluid-soundfont-gm")


@dataclass
class SpaceFolder:
    """What `assemble_space` wrote: the folder, the Space id, its models and files."""

    path: Path
    repo_id: str
    models: dict[str, str]
    files: list[str] = field(default_factory=list)


def parse_models(spec: str) -> dict[str, str]:
    """`"baroque=ns/gigapiano-baroque,..."` -> `{"baroque": "ns/gigapiano-baroque", ...}`.

    Raises:
        ValueError: an entry that is not STYLE=HUB_ID.
    """
    models = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        style, sep, repo = entry.partition("=")
        if not sep or not style.strip():
            raise ValueError(f"--models entry {entry!r} must be STYLE=NAMESPACE/NAME.")
        models[style.strip()] = check_repo_id(repo.strip(), f"--models ({style.strip()})")
    if not models:
        raise ValueError("--models is empty; give at least one STYLE=NAMESPACE/NAME.")
    return models


def _copy_source(relative: str, output_dir: Path) -> None:
    source, target = PROJECT_ROOT / relative, output_dir / relative
    if not source.exists():
        raise FileNotFoundError(f"{source} is missing from the project; the Space needs it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copy2(source, target)


def _gradio_version() -> str | None:
    try:
        return metadata.version("gradio")
    except metadata.PackageNotFoundError:
        return None


def assemble_space(
    output_dir: str | Path,
    repo_id: str,
    models: dict[str, str],
    *,
    dataset_id: str | None = None,
    title: str = "GIGA-Piano",
    overwrite: bool = False,
) -> SpaceFolder:
    """Write the Space folder (see the module docstring).

    Args:
        output_dir: the folder to write; it must be empty or absent unless `overwrite`.
        repo_id: `NAMESPACE/NAME` of the Space.
        models: style -> model repo id (or a local folder, for a Space tried on this machine).
        dataset_id: dataset repo to list in the Space's metadata.
        title: the Space's title.
        overwrite: replace the content of a non-empty `output_dir`.

    Returns:
        The `SpaceFolder`.
    """
    check_repo_id(repo_id)
    if not models:
        raise ValueError("A Space needs at least one style model.")
    output_dir = prepare_output_dir(Path(output_dir), overwrite, [PROJECT_ROOT])
    for relative in SPACE_SOURCES:
        _copy_source(relative, output_dir)
    (output_dir / "requirements.txt").write_text("\n".join(SPACE_REQUIREMENTS) + "\n")
    (output_dir / "packages.txt").write_text("\n".join(SPACE_APT_PACKAGES) + "\n")
    (output_dir / "demo_models.json").write_text(json.dumps({"models": models}, indent=2) + "\n")
    hub_models = [source for source in models.values() if is_hub_id(source)]
    card_data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=_gradio_version(),
        app_file="app.py",
        python_version="3.11",
        license="apache-2.0",
        models=hub_models or None,
        datasets=[dataset_id] if dataset_id else None,
        tags=["music", "midi", "piano", "symbolic-music", "gigapiano"],
        emoji="🎹",
        colorFrom="indigo",
        colorTo="blue",
        pinned=False,
        short_description="Continue piano MIDI in a composer's style",
    )
    card = SpaceCard.from_template(
        card_data, template_path=str(SPACE_TEMPLATE_PATH), title=title, repo_id=repo_id, models=models
    )
    card.save(output_dir / "README.md")
    files = sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*") if p.is_file())
    logger.info("Space folder for %s written to %s.", repo_id, output_dir)
    return SpaceFolder(output_dir, repo_id, dict(models), files)


__all__ = ["SPACE_SOURCES", "SpaceFolder", "assemble_space", "parse_models"]
