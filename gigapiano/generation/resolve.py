"""Find and load a model: a folder, a Hub id, or a shipped style (`models/gigapiano-<style>/`).

Models and tokenizers load with the project's own, installed classes (`GigaPianoForCausalLM` is registered
with `AutoModelForCausalLM` for the `gigapiano` model type): the `.py` files a model folder or Hub repo
carries are not run unless `trust_remote_code=True` is passed (`--trust_remote_code` on the command line).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a model is loaded, so checking a --model path stays cheap
    import torch

logger = logging.getLogger(__name__)

#: The styles upstream fine-tuned (Bach, Chopin, Rachmaninoff); `all` means every shipped style folder.
KNOWN_STYLES: tuple[str, ...] = ("baroque", "romantic", "rachmaninoff")
ALL_STYLES = "all"
#: The shipped base model's folder is `gigapiano-<BASE_NAME>`; `--style all` leaves it out unless asked.
BASE_NAME = "base"
#: Where shipped style models live, next to this package in a source checkout.
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def style_model_dir(style: str, models_dir: str | Path | None = None) -> Path:
    """`<models_dir>/gigapiano-<style>`."""
    return Path(models_dir or DEFAULT_MODELS_DIR) / f"gigapiano-{style}"


def resolve_styles(
    style: str, models_dir: str | Path | None = None, include_base: bool = False
) -> list[tuple[str, Path]]:
    """Map `--style` to `(style, model folder)` pairs; `all` gives every shipped style folder (the base
    model `gigapiano-base` only with `include_base`).

    A style other than the upstream three is accepted when its folder exists (a style trained later).

    Raises:
        ValueError: unknown style.
        FileNotFoundError: the style's model folder (or, for `all`, every style folder) is missing.
    """
    root = Path(models_dir or DEFAULT_MODELS_DIR)
    if style == ALL_STYLES:
        found = sorted(p.name.removeprefix("gigapiano-") for p in root.glob("gigapiano-*") if p.is_dir())
        found = [name for name in found if include_base or name != BASE_NAME]
        if not found:
            raise FileNotFoundError(
                f"--style all: no shipped style model in {root} (expected folders such as "
                f"{style_model_dir(KNOWN_STYLES[0], root)}); train one or pass --model <folder or Hub id>."
            )
        return [(name, style_model_dir(name, root)) for name in found]
    folder = style_model_dir(style, root)
    if style not in KNOWN_STYLES and not folder.is_dir():
        raise ValueError(
            f"Unknown style {style!r}; choose one of {', '.join(KNOWN_STYLES)}, {ALL_STYLES} "
            "(or pass --model)."
        )
    if not folder.is_dir():
        raise FileNotFoundError(
            f"The {style} model is not shipped yet: {folder} does not exist; pass --model <folder or Hub id>."
        )
    return [(style, folder)]


def pick_device(device: str = "auto") -> torch.device:
    """`auto` -> CUDA when available, else CPU; anything else is passed to `torch.device`."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


#: The project's own output folders (train.py, the shipped models, generate.py): `runs/x` is a path even in a
#: checkout where `runs/` does not exist yet.
LOCAL_ROOTS = ("runs", "models", "outputs")


def model_source(name_or_path: str | Path) -> tuple[str, Path | None]:
    """`(what to pass to from_pretrained, local folder or None for a Hub id)`; cheap (no torch), so the CLI
    checks `--model` before loading anything.

    Something looks like a local path when it exists, starts with `.`, `/` or `~`, has a backslash or
    more than one `/`, or when its first part is one of `LOCAL_ROOTS` or a folder here that is not a Python
    package.

    Raises:
        FileNotFoundError: something that looks like a local path but is not a folder.
    """
    name = str(name_or_path)
    path = Path(name).expanduser()
    looks_local = (
        path.exists()
        or name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or "\\" in name
        or name.split("/", 1)[0] in LOCAL_ROOTS
        or _plain_folder(name.split("/", 1)[0])
    )
    if not looks_local:
        return name, None
    if not path.is_dir():
        raise FileNotFoundError(f"Model folder {name} does not exist (pass a model folder or a Hub id).")
    return str(path), path


def _plain_folder(name: str) -> bool:
    """A folder here that is not a Python package (`runs`, `models`; not a Hub namespace like `gigapiano`)."""
    folder = Path(name).expanduser()
    return folder.is_dir() and not (folder / "__init__.py").is_file()


def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False) -> Any:
    """The tokenizer saved with a model, or the default `GigaPianoTokenizer()` when the folder has none.

    Without `trust_remote_code` the saved settings are read by the project's `GigaPianoTokenizer`; with it,
    `AutoTokenizer` may run the tokenizer code the folder or Hub repo carries.
    """
    from transformers import AutoTokenizer

    from tokenization import GigaPianoTokenizer

    source, folder = model_source(name_or_path)
    if folder is not None and not (folder / "tokenizer_config.json").is_file():
        logger.info("%s has no tokenizer files; using the default GigaPianoTokenizer.", source)
        return GigaPianoTokenizer()
    try:
        if not trust_remote_code:
            return GigaPianoTokenizer.from_pretrained(source)
        return AutoTokenizer.from_pretrained(source, trust_remote_code=True)
    except (OSError, ValueError) as error:
        logger.info("No tokenizer loaded from %s (%s); using the default GigaPianoTokenizer.", source, error)
        return GigaPianoTokenizer()


def load_model(
    name_or_path: str | Path,
    device: str | torch.device = "auto",
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """A GIGA-Piano causal LM in eval mode, through `AutoModelForCausalLM`. On the CPU the weights are
    loaded in float32 unless `dtype` says otherwise.

    Args:
        trust_remote_code: run the model code the folder or Hub repo carries instead of the project's own
            classes (only for models you trust: that code runs with your permissions).

    Raises:
        FileNotFoundError: a local path that does not exist.
        OSError: the model could not be loaded (not a model folder, unknown Hub id, no network).
        ValueError: the model needs its own code and `trust_remote_code` was not given.
    """
    import torch
    from transformers import AutoModelForCausalLM

    import modeling_gigapiano  # noqa: F401 - registers the gigapiano model type with the Auto classes

    source, _ = model_source(name_or_path)
    target = pick_device(device) if isinstance(device, str) else device
    if dtype is None and target.type == "cpu":
        # Shipped weights are stored in fp16 to stay small; CPUs decode float32 1.6-1.8x faster.
        dtype = torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=trust_remote_code, dtype=dtype)
    except OSError as error:
        raise OSError(f"Could not load a model from {source}: {' '.join(str(error).split())}") from error
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise ValueError(
            f"{source} is not a GIGA-Piano model the installed project can load; it carries its own model "
            "code, which runs only with --trust_remote_code (pass it only for a model you trust)."
        ) from None
    return model.to(target).eval()


def load_model_and_tokenizer(
    name_or_path: str | Path,
    device: str | torch.device = "auto",
    dtype: torch.dtype | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """`(load_model(...), load_tokenizer(...))` from one folder or Hub id (for the demo and endpoint).

    Example:
        ```python
        >>> model, tokenizer = load_model_and_tokenizer("models/gigapiano-baroque")
        >>> result = generate_continuation(model, tokenizer.encode_midi("prompt.mid"), seed=0)
        ```
    """
    return (
        load_model(name_or_path, device, dtype, trust_remote_code),
        load_tokenizer(name_or_path, trust_remote_code),
    )


__all__ = [
    "KNOWN_STYLES",
    "load_model",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "model_source",
    "pick_device",
    "resolve_styles",
    "style_model_dir",
]
