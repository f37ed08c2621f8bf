"""The tokenised MAESTRO styles as one Hub dataset repo: Parquet files, one config per style, and a card.

Layout of the repo folder::

    README.md                                   dataset card; its YAML lists one config per style
    data/<style>/{train,validation,test}-00000-of-00001.parquet
    styles/<style>.yaml                         the style definitions (composers, piece selection)
    build_info.json                             split settings, counts, versions, git commit

Each row is one MAESTRO performance (`composer`, `title`, `year`, `maestro_split`, `midi_filename`,
`duration`, `input_ids`), built with `gigapiano.data.build_style_dataset`, so the splits are the same
leak-free, by-piece splits the training runs use with the same split settings.
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from .model_card import CARDS_DIR, LICENSE
from .repo_folder import check_repo_id, prepare_output_dir

logger = logging.getLogger(__name__)

DATASET_TEMPLATE_PATH = CARDS_DIR / "dataset_template.md"
DEFAULT_STYLES = ("baroque", "romantic", "rachmaninoff")
SPLITS = ("train", "validation", "test")
DATASET_TAGS = ["music", "midi", "piano", "symbolic-music", "maestro", "gigapiano"]


@dataclass
class DatasetBuildSettings:
    """How the style datasets are built (the same meaning as the `gigapiano.data` flags).

    Args:
        maestro_dir: extracted MAESTRO v3.0.0 folder; None downloads it once into the cache.
        cache_dir: cache of the download and the tokenised tables.
        pieces: override every style's selection (`thesis` or `all`); None keeps each style's default.
        split_by: `piece` (seeded, by composition), `maestro` (MAESTRO's own split column, each composition
            moved whole into one split) or `auto` (`maestro` for an `all` selection, `piece` for the thesis).
        validation_fraction / test_fraction: shares of performances per split (`split_by="piece"`).
        split_seed: seed of the split.
        timing: tokenizer timing mode (`upstream` or `tempo_map`).
        num_proc: worker processes for tokenisation.
        allow_download: permit downloading MAESTRO when `maestro_dir` is None.
    """

    maestro_dir: str | None = None
    cache_dir: str | None = None
    pieces: str | None = None
    split_by: str = "auto"
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 42
    timing: str = "upstream"
    num_proc: int | None = None
    allow_download: bool = True


@dataclass
class DatasetRepoFolder:
    """What `assemble_dataset_repo` wrote: the folder, its repo id, rows per style and split, and files."""

    path: Path
    repo_id: str
    counts: dict[str, dict[str, int]]
    files: list[str] = field(default_factory=list)


def parquet_path(style: str, split: str) -> str:
    """Path of one style's split inside the repo (the `data_files` pattern of its config matches it)."""
    return f"data/{style}/{split}-00000-of-00001.parquet"


def dataset_card_data(styles: Sequence[str], total_rows: int) -> DatasetCardData:
    """The card's YAML: license, tags, and one config per style with its three splits (first = default)."""
    configs = []
    for index, style in enumerate(styles):
        config: dict[str, Any] = {
            "config_name": style,
            "data_files": [{"split": split, "path": f"data/{style}/{split}-*.parquet"} for split in SPLITS],
        }
        if index == 0:
            config["default"] = True
        configs.append(config)
    size = "n<1K" if total_rows < 1000 else "1K<n<10K"
    return DatasetCardData(
        license=LICENSE,
        tags=DATASET_TAGS,
        task_categories=["text-generation"],
        pretty_name="GIGA-Piano MAESTRO styles (tokenised)",
        size_categories=[size],
        configs=configs,
    )


def _build_info(settings: DatasetBuildSettings, counts: dict[str, dict[str, int]], tokens: dict) -> dict:
    from gigapiano.training.records import git_commit, library_versions

    return {
        "settings": {k: v for k, v in vars(settings).items() if k not in ("maestro_dir", "cache_dir")},
        "rows": counts,
        "tokens": tokens,
        "versions": library_versions(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
    }


def assemble_dataset_repo(
    output_dir: str | Path,
    repo_id: str,
    styles: Sequence[str] = DEFAULT_STYLES,
    settings: DatasetBuildSettings | None = None,
    *,
    model_namespace_repo: str | None = None,
    overwrite: bool = False,
) -> DatasetRepoFolder:
    """Build every style with `gigapiano.data` and write the dataset repo folder (see the module docstring).

    Args:
        output_dir: the folder to write; it must be empty or absent unless `overwrite`.
        repo_id: `NAMESPACE/NAME` of the dataset repo (used in the card's snippets).
        styles: style names or YAML paths (`configs/styles/`); each becomes one config.
        settings: how to build them (default `DatasetBuildSettings()`).
        model_namespace_repo: a model repo whose tokenizer the card's decoding snippet uses (default
            `<namespace>/gigapiano-<first style>`).
        overwrite: replace the content of a non-empty `output_dir`.

    Returns:
        The `DatasetRepoFolder`.

    Raises:
        ValueError: no style, a duplicate style, or a bad id; `gigapiano.data` errors for unknown styles
            or missing MAESTRO files.
        FileExistsError: `output_dir` is not empty and `overwrite` is False.
    """
    from gigapiano.data import build_style_dataset, resolve_split_by, resolve_style

    check_repo_id(repo_id)
    settings = settings or DatasetBuildSettings()
    if not styles:
        raise ValueError("--styles is empty; name at least one style (e.g. baroque).")
    resolved = [resolve_style(style, pieces=settings.pieces) for style in styles]
    names = [style.name for style in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"--styles names a style twice: {', '.join(names)}.")
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"--output_dir {output_dir} is not empty; pass --overwrite to replace its content."
        )

    counts: dict[str, dict[str, int]] = {}
    tokens: dict[str, dict[str, int]] = {}
    built = {}
    for style in resolved:
        built[style.name] = build_style_dataset(
            style,
            maestro_dir=settings.maestro_dir,
            cache_dir=settings.cache_dir,
            allow_download=settings.allow_download,
            split_by=settings.split_by,
            validation_fraction=settings.validation_fraction,
            test_fraction=settings.test_fraction,
            seed=settings.split_seed,
            timing=settings.timing,
            num_proc=settings.num_proc,
        )
    output_dir = prepare_output_dir(output_dir, overwrite, [settings.maestro_dir, settings.cache_dir])
    for style in resolved:
        pieces = built[style.name]
        counts[style.name], tokens[style.name] = {}, {}
        for split in SPLITS:
            path = output_dir / parquet_path(style.name, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            pieces[split].to_parquet(str(path))
            counts[style.name][split] = len(pieces[split])
            tokens[style.name][split] = sum(len(ids) for ids in pieces[split]["input_ids"])
        (output_dir / "styles").mkdir(exist_ok=True)
        (output_dir / "styles" / f"{style.name}.yaml").write_text(
            yaml.safe_dump(style.to_dict(), sort_keys=False, allow_unicode=True)
        )
    split_modes = {style.name: resolve_split_by(settings.split_by, style.pieces) for style in resolved}
    info = _build_info(settings, counts, tokens)
    info["split_by"] = split_modes  # what `auto` meant for each style
    # The card names the split actually made; styles split in different ways keep the setting's name.
    modes = set(split_modes.values())
    card_split_by = modes.pop() if len(modes) == 1 else settings.split_by
    (output_dir / "build_info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")

    total = sum(sum(split.values()) for split in counts.values())
    namespace = repo_id.split("/")[0]
    values = {
        "repo_id": repo_id,
        "styles": [
            {
                "name": style.name,
                "display_name": style.display_name,
                "description": style.description,
                "composers": ", ".join(style.composers),
                "selection": style.pieces,
                "counts": counts[style.name],
                "notes": sum(tokens[style.name].values()) // 4,
            }
            for style in resolved
        ],
        "first_style": names[0],
        "model_repo": model_namespace_repo or f"{namespace}/gigapiano-{names[0]}",
        "settings": replace(settings, split_by=card_split_by),
        "total_rows": total,
    }
    card = DatasetCard.from_template(
        dataset_card_data(names, total), template_path=str(DATASET_TEMPLATE_PATH), **values
    )
    card.save(output_dir / "README.md")
    files = sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*") if p.is_file())
    logger.info("Dataset repo folder for %s (%s) written to %s.", repo_id, ", ".join(names), output_dir)
    return DatasetRepoFolder(output_dir, repo_id, counts, files)


__all__ = [
    "DEFAULT_STYLES",
    "DatasetBuildSettings",
    "DatasetRepoFolder",
    "assemble_dataset_repo",
    "dataset_card_data",
    "parquet_path",
]
