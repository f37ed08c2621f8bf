"""The shipped recipe's data as plain arrays, so the GPU recipe (`gpu_recipe.py`) runs where only torch is.

A GPU machine may lack the MIDI and `datasets` stack, and it may not see the MAESTRO folder at all, so the
data goes there already tokenised: for the base (every composer) and for each style, exactly the pieces
and the composition-safe MAESTRO split that `train.py` builds from the same configs, as

* ``<name>.npz`` holding ``train_tokens`` (every training performance's token stream, concatenated,
  uint8: the vocabulary is 0..127), ``train_offsets`` (where each performance starts; one more entry than
  performances) and ``validation_windows`` (the validation performances cut into the 1024-token windows
  that `train.py` evaluates on, uncapped, uint8, one row each);
* ``manifest.json`` naming the configs, styles and sizes.

    python -m gigapiano.training.gpu_data --maestro_dir ../shared/maestro/maestro-v3.0.0 --output gpu_data

The folder is about 30 MB: small enough to travel with the working tree (name it in `carry`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from .arguments import PROJECT_ROOT
from .gpu_recipe import output_taken

logger = logging.getLogger(__name__)

#: (name, config, style): the base's data (every composer) and each style's, as `shipping.py` trains them.
DATASETS = (
    ("maestro", "configs/train/base_medium_1024_final.yaml", None),
    ("baroque", "configs/train/style_medium_full.yaml", "baroque"),
    ("romantic", "configs/train/style_medium_full.yaml", "romantic"),
    ("rachmaninoff", "configs/train/style_medium_full.yaml", "rachmaninoff"),
)


def _as_uint8(rows) -> np.ndarray:
    array = np.asarray(rows, dtype=np.int64)
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError("Token ids outside 0..255 cannot be stored as uint8.")
    return array.astype(np.uint8)


def export_dataset(name: str, config: str, style: str | None, maestro_dir: str, output: Path) -> dict:
    """Tokenise one dataset the way `train.py` would for `config` and write `<output>/<name>.npz`."""
    from ..data.pipeline import prepare_training_data
    from .arguments import parse_training_args

    argv = [
        "--config",
        str(PROJECT_ROOT / config),
        "--maestro_dir",
        maestro_dir,
        "--base_model",
        "scratch:medium",
    ]
    if style is not None:
        argv += ["--style", style]
    _, data_args, _ = parse_training_args(argv)
    data_args.transpose = 0
    data = prepare_training_data(data_args)
    streams = [np.asarray(ids, dtype=np.int64) for ids in data.pieces["train"]["input_ids"]]
    offsets = np.cumsum([0] + [len(s) for s in streams]).astype(np.int64)
    train_tokens = _as_uint8(np.concatenate(streams))
    validation = _as_uint8(data.windows["validation"]["input_ids"])
    np.savez_compressed(
        output / f"{name}.npz",
        train_tokens=train_tokens,
        train_offsets=offsets,
        validation_windows=validation,
    )
    record = {
        "name": name,
        "config": config,
        "style": style,
        "train_performances": len(streams),
        "train_tokens": int(train_tokens.size),
        "validation_performances": len(data.pieces["validation"]),
        "validation_windows": int(validation.shape[0]),
        "window_length": int(validation.shape[1]) if validation.size else data_args.window_length,
    }
    logger.info("%s: %s", name, record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--maestro_dir", required=True, help="Extracted MAESTRO v3 folder (CSV + year folders)."
    )
    parser.add_argument("--output", default="gpu_data", help="Folder to write (default: gpu_data).")
    parser.add_argument(
        "--only", nargs="+", choices=[name for name, _, _ in DATASETS], help="Export only these datasets."
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an earlier export in --output.")
    args = parser.parse_args(argv)
    if output_taken(Path(args.output) / "manifest.json", args.overwrite, "an export"):
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    manifest = []
    try:
        for name, config, style in DATASETS:
            if args.only and name not in args.only:
                continue
            manifest.append(export_dataset(name, config, style, args.maestro_dir, output))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
