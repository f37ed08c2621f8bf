"""Convert an upstream GIGA-Piano PyTorch checkpoint (`.pth` state dict) into a transformers folder.

Upstream saved plain state dicts, often from `nn.DataParallel` (every key prefixed `module.`). This
module maps each upstream key onto `GigaPianoForCausalLM`, infers the config from the tensor shapes
(or checks them against a named preset) and writes safetensors plus the model code, so the folder
loads anywhere with `AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`.

Usage:
    python -m modeling_gigapiano.convert_gigapiano_checkpoint --checkpoint giga.pth --output gigapiano-small
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

from .configuration_gigapiano import PRESETS, GigaPianoConfig, apply_fast_generation_defaults
from .modeling_gigapiano import GigaPianoForCausalLM

logger = logging.getLogger(__name__)


class CheckpointConversionError(ValueError):
    """The file is not an upstream GIGA-Piano checkpoint, or does not match the requested config."""


# upstream key (after stripping `module.`) -> transformers key; {n} is the block index
_GLOBAL_KEYS = {
    "tok_emb.weight": "model.embed_tokens.weight",
    "pos_emb": "model.position_embedding",
    "ln_f.weight": "model.norm.weight",
    "ln_f.bias": "model.norm.bias",
    "head.weight": "lm_head.weight",
}
_BLOCK_KEYS = {
    "ln1.weight": "ln_1.weight",
    "ln1.bias": "ln_1.bias",
    "ln2.weight": "ln_2.weight",
    "ln2.bias": "ln_2.bias",
    "attn.in_proj_weight": "attn.qkv_proj.weight",
    "attn.in_proj_bias": "attn.qkv_proj.bias",
    "attn.out_proj.weight": "attn.out_proj.weight",
    "attn.out_proj.bias": "attn.out_proj.bias",
    "attn.Er": "attn.relative_embedding",
    "mlp.0.weight": "mlp.fc_in.weight",
    "mlp.0.bias": "mlp.fc_in.bias",
    "mlp.2.weight": "mlp.fc_out.weight",
    "mlp.2.bias": "mlp.fc_out.bias",
}
_BLOCK_PATTERN = re.compile(r"^blocks\.(\d+)\.(.+)$")


def load_upstream_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an upstream checkpoint safely (`weights_only=True`) and strip a `module.` prefix.

    Raises:
        FileNotFoundError: the path does not exist.
        CheckpointConversionError: the file is not a readable tensor dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {str(path)!r} does not exist.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or unsafe pickles
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointConversionError(
            f"Cannot read {str(path)!r} as a PyTorch state dict ({first_line})."
        ) from error
    # Some training scripts wrap the weights; upstream saved the bare dict.
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise CheckpointConversionError(f"{str(path)!r} does not hold a dict of tensors.")
    return strip_data_parallel_prefix(dict(loaded))


def strip_data_parallel_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the `module.` prefix `nn.DataParallel` adds to every key (only if all keys carry it)."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module.") :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def infer_config(state_dict: Mapping[str, torch.Tensor], **overrides) -> GigaPianoConfig:
    """Read the model sizes off the tensor shapes of an upstream state dict.

    Layers come from the block indices; width and vocab from the token embedding; context from the
    position table; feed-forward width from the first MLP matrix; heads = width / width of `Er`.
    """
    required = ["tok_emb.weight", "pos_emb", "blocks.0.attn.Er", "blocks.0.mlp.0.weight"]
    missing = [key for key in required if key not in state_dict]
    if missing:
        raise CheckpointConversionError(
            f"Not an upstream GIGA-Piano state dict: missing {', '.join(missing)} "
            f"(found {len(state_dict)} keys, e.g. {sorted(state_dict)[:3]})."
        )
    vocab_size, hidden_size = state_dict["tok_emb.weight"].shape
    er_len, head_dim = state_dict["blocks.0.attn.Er"].shape
    if hidden_size % head_dim != 0:
        raise CheckpointConversionError(f"Width {hidden_size} is not a multiple of the Er width {head_dim}.")
    layer_indices = {int(m.group(1)) for key in state_dict if (m := _BLOCK_PATTERN.match(key))}
    sizes = dict(
        vocab_size=int(vocab_size),
        hidden_size=int(hidden_size),
        max_position_embeddings=int(state_dict["pos_emb"].shape[1]),
        intermediate_size=int(state_dict["blocks.0.mlp.0.weight"].shape[0]),
        num_attention_heads=int(hidden_size // head_dim),
        num_hidden_layers=len(layer_indices),
        relative_attention_length=int(er_len),
    )
    return GigaPianoConfig(**{**sizes, **overrides})


def rename_upstream_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map upstream key names onto `GigaPianoForCausalLM` names; unknown keys are an error."""
    renamed: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in state_dict.items():
        if key in _GLOBAL_KEYS:
            renamed[_GLOBAL_KEYS[key]] = tensor
            continue
        match = _BLOCK_PATTERN.match(key)
        if match and match.group(2) in _BLOCK_KEYS:
            renamed[f"model.layers.{match.group(1)}.{_BLOCK_KEYS[match.group(2)]}"] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointConversionError(
            f"Unexpected keys in the checkpoint: {', '.join(sorted(unknown)[:8])}"
            + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        )
    return renamed


def convert_state_dict(
    state_dict: Mapping[str, torch.Tensor], preset: str | None = None, **config_overrides
) -> GigaPianoForCausalLM:
    """Build a `GigaPianoForCausalLM` holding the weights of an upstream state dict.

    Args:
        state_dict: upstream keys, with or without the `module.` prefix.
        preset: if given (`small`, `large`, ...), the checkpoint must have exactly that preset's sizes.
        config_overrides: extra config fields (e.g. dropout rates) for the built model.

    Raises:
        CheckpointConversionError: keys or shapes do not match.
    """
    state_dict = strip_data_parallel_prefix(state_dict)
    config = infer_config(state_dict, **config_overrides)
    if preset is not None:
        expected = GigaPianoConfig.from_preset(preset)
        differences = [
            f"{field}: checkpoint {getattr(config, field)} vs preset {getattr(expected, field)}"
            for field in (
                *PRESETS[preset],
                "vocab_size",
                "max_position_embeddings",
                "relative_attention_length",
            )
            if getattr(config, field) != getattr(expected, field)
        ]
        if differences:
            raise CheckpointConversionError(
                f"Checkpoint does not match preset {preset!r}: " + "; ".join(differences)
            )
    model = GigaPianoForCausalLM(config)
    renamed = rename_upstream_keys(state_dict)
    expected_shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}
    missing = sorted(set(expected_shapes) - set(renamed))
    if missing:
        raise CheckpointConversionError(
            f"Checkpoint lacks {len(missing)} tensors the model needs, e.g. {', '.join(missing[:5])}."
        )
    wrong_shape = [
        f"{name} {tuple(tensor.shape)} (expected {tuple(expected_shapes[name])})"
        for name, tensor in renamed.items()
        if tensor.shape != expected_shapes[name]
    ]
    if wrong_shape:
        raise CheckpointConversionError(
            "Tensor shapes do not match the inferred config: " + "; ".join(wrong_shape[:5])
        )
    model.load_state_dict({name: tensor.float() for name, tensor in renamed.items()}, strict=True)
    return model.eval()


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    preset: str | None = None,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
) -> GigaPianoForCausalLM:
    """Convert an upstream `.pth` file; optionally save it as a transformers folder (safetensors + code).

    Args:
        checkpoint: path of the upstream state dict.
        output_dir: where to `save_pretrained`; None only returns the model.
        preset: check the sizes against this preset instead of trusting the shapes alone.
        dtype: dtype of the saved weights (float32 keeps upstream numbers exactly).
        overwrite: allow writing into a non-empty `output_dir`.
    """
    model = convert_state_dict(load_upstream_state_dict(checkpoint), preset=preset)
    if output_dir is not None:
        output_dir = Path(output_dir)
        if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
            raise FileExistsError(
                f"{str(output_dir)!r} is not empty; pass --overwrite to replace its contents."
            )
        apply_fast_generation_defaults(model.generation_config)
        model.to(dtype).save_pretrained(output_dir)
        logger.info("Wrote %s (%d parameters)", output_dir, model.num_parameters())
    return model


def _save_tokenizer(output_dir: Path) -> None:
    """Put the tokenizer next to the weights so the folder is complete (when the project is installed)."""
    try:
        from tokenization import GigaPianoTokenizer
    except ImportError:
        logger.warning("tokenization package not importable; the output folder has no tokenizer files.")
        return
    GigaPianoTokenizer().save_pretrained(output_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert an upstream GIGA-Piano .pth checkpoint into a Hugging Face model folder "
        "(safetensors, config with auto_map, model code, tokenizer)."
    )
    parser.add_argument(
        "--checkpoint", required=True, help="Upstream state dict (.pth), plain or DataParallel."
    )
    parser.add_argument("--output", required=True, help="Folder to write; must be empty or new.")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="Check the checkpoint against this size (default: infer every size from the tensor shapes).",
    )
    parser.add_argument(
        "--dtype", choices=["float32", "float16", "bfloat16"], default="float32", help="Saved weight dtype."
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace the contents of a non-empty --output."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        convert_checkpoint(
            args.checkpoint, args.output, args.preset, getattr(torch, args.dtype), overwrite=args.overwrite
        )
    except (CheckpointConversionError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _save_tokenizer(Path(args.output))
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
