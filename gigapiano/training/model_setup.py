"""Load the starting model of a run and decide which of its parameters train.

Upstream fine-tuning trained only the top 4 of 16 blocks (embeddings, final norm and head frozen);
LoRA trains small adapters on the attention and MLP projections instead, so a style costs megabytes.
Frozen parameters get `requires_grad=False`, so autograd stops at the lowest trainable block and the
backward pass is really cheaper, not just masked.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, PreTrainedModel

from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM
from modeling_gigapiano.convert_gigapiano_checkpoint import convert_checkpoint

from .arguments import GigaPianoModelArguments, resolve_project_path, share_of_blocks

logger = logging.getLogger(__name__)

DROPOUT_FIELDS = ("embd_pdrop", "resid_pdrop", "attn_pdrop")


def load_base_model(
    base_model: str, dropout: float | None = None, trust_remote_code: bool = False
) -> GigaPianoForCausalLM:
    """Build or load the model a run starts from.

    Args:
        base_model: `scratch:<preset>`, an upstream `.pth`/`.pt` file, a local folder or a Hub id.
        dropout: if given, every dropout rate of the model is set to it.
        trust_remote_code: run the model code a folder or Hub repo carries instead of the project's classes.

    Raises:
        ValueError: unknown preset, a folder that is not a GIGA-Piano model, or one that needs its own code
            without `trust_remote_code`.
        FileNotFoundError: a local path that does not exist.
    """
    overrides = {name: dropout for name in DROPOUT_FIELDS} if dropout is not None else {}
    if base_model.startswith("scratch:"):
        preset = base_model.split(":", 1)[1]
        model = GigaPianoForCausalLM(GigaPianoConfig.from_preset(preset, **overrides))
        logger.info(
            "Starting from random weights, preset %r (%.2fM parameters).",
            preset,
            model.num_parameters() / 1e6,
        )
        return model
    path = resolve_project_path(base_model)
    if path.suffix in (".pth", ".pt", ".bin") and path.is_file():
        logger.info("Converting upstream checkpoint %s.", path)
        model = convert_checkpoint(path)
        for name, value in overrides.items():
            setattr(model.config, name, value)
        _apply_dropout(model, dropout)
        return model
    if not path.exists() and (base_model.startswith((".", "/")) or base_model.count("/") != 1):
        raise FileNotFoundError(
            f"Base model {base_model!r} is neither a folder, a .pth checkpoint, a Hub id (namespace/name) "
            "nor "
            "scratch:<preset>."
        )
    source = str(path) if path.exists() else base_model
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, trust_remote_code=trust_remote_code, dtype=torch.float32, **overrides
        )
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise ValueError(
            f"Base model {base_model!r} carries its own model code, which runs only with --trust_remote_code "
            "(pass it only for a model you trust)."
        ) from None
    if getattr(model.config, "model_type", None) != "gigapiano":
        raise ValueError(f"{base_model!r} is a {model.config.model_type!r} model, not a GIGA-Piano model.")
    return model


def _apply_dropout(model: PreTrainedModel, dropout: float | None) -> None:
    """Set the rate of every dropout module (a converted checkpoint was built with the default rates)."""
    if dropout is None:
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
        if hasattr(module, "attn_dropout") and isinstance(module.attn_dropout, float):
            module.attn_dropout = dropout


def freeze_for_finetuning(
    model: GigaPianoForCausalLM, trainable_blocks: int, train_head: bool = False
) -> None:
    """Train only the top `trainable_blocks` blocks (and optionally the final norm and head).

    Raises:
        ValueError: more trainable blocks requested than the model has.
    """
    blocks = model.model.layers
    if trainable_blocks > len(blocks):
        raise ValueError(
            f"--trainable_blocks {trainable_blocks} exceeds the model's {len(blocks)} blocks; use "
            "--full_finetune to train everything."
        )
    model.requires_grad_(False)
    for block in blocks[len(blocks) - trainable_blocks :]:
        block.requires_grad_(True)
    if train_head:
        model.model.norm.requires_grad_(True)
        model.lm_head.requires_grad_(True)


def add_lora(model: GigaPianoForCausalLM, args: GigaPianoModelArguments) -> PeftModel:
    """Wrap the model with LoRA adapters on `args.target_modules`; only adapter weights train."""
    config = LoraConfig(
        r=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def prepare_model(args: GigaPianoModelArguments) -> PreTrainedModel:
    """Load the base model and set which parameters train, as the arguments ask."""
    model = load_base_model(args.base_model, args.dropout, args.trust_remote_code)
    if args.lora:
        model = add_lora(model, args)
    elif args.full_finetune or args.from_scratch:
        model.requires_grad_(True)
    else:
        depth = len(model.model.layers)
        if args.trainable_blocks is None:  # the base's depth was not known before loading (Hub id, .pth)
            args.trainable_blocks = share_of_blocks(args.trainable_share, depth)
        freeze_for_finetuning(model, args.trainable_blocks, args.train_head)
        logger.info("Training the top %d of the model's %d blocks.", args.trainable_blocks, depth)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("Trainable parameters: %d of %d (%.2f%%).", trainable, total, 100 * trainable / total)
    return model


def base_model_reference(base_model: str) -> str:
    """What a LoRA adapter records as its base: an absolute folder path, or the Hub id as given."""
    path = resolve_project_path(base_model)
    return str(Path(path).resolve()) if path.exists() else base_model
