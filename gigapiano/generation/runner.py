"""What `generate.py` does, as a function: resolve models, read the prompt, generate, write every file."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .arguments import GenerateArguments
from .audio import check_synthesizer, find_soundfont, render_audio
from .core import generate_continuation
from .outputs import (
    check_writable,
    marker_text,
    output_files,
    provenance,
    roll_panel,
    write_json,
    write_midi,
)
from .pianoroll import save_pianoroll
from .prompts import load_prompt
from .resolve import ALL_STYLES, load_model, load_tokenizer, resolve_styles
from .style_mix import BASE_STYLE, blend_members, load_blend
from .style_spec import StyleBlend

logger = logging.getLogger(__name__)


def run_generation(args: GenerateArguments) -> list[Path]:
    """Generate and write MIDI + JSON (+ WAV, + PNG) for every style and variation; return the paths.

    All inputs are checked before any model runs: the style folders, the output files (never replaced
    without `--overwrite`) and, for `--wav`, the SoundFont.
    """
    settings = args.to_settings().with_seed()  # one seed shared by every style
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    targets = _targets(args)
    variations = settings.num_variations
    labels = []
    for style, _, _ in targets:
        for index in range(variations):
            parts = ([style] if len(targets) > 1 else []) + ([str(index + 1)] if variations > 1 else [])
            labels.append("-".join(parts))
    files = output_files(args.output, labels, wav=args.wav, pianoroll=args.pianoroll)
    comparison = None
    if args.pianoroll and len(targets) > 1:
        comparison = files[0].midi.with_name(f"{Path(args.output).stem}-styles.png")
    check_writable(
        [path for group in files for path in group.all()] + ([comparison] if comparison else []),
        args.overwrite,
    )
    soundfont = None
    if args.wav:  # fail before generating, not after
        soundfont = find_soundfont(args.soundfont)
        logger.info("WAV through %s with %s", check_synthesizer(args.synthesizer), soundfont)

    written: list[Path] = []
    panels = []
    for target_index, (style, model_name, blend) in enumerate(targets):
        if len(targets) > 1:
            logger.info("Style %s (%d of %d, seed %d): %s", style, target_index + 1, len(targets),
                        settings.seed, model_name)  # fmt: skip
        tokenizer = load_tokenizer(model_name, trust_remote_code=args.trust_remote_code)
        # the prompt is read before the model is loaded, so a bad prompt fails fast
        prompt_ids = load_prompt(args.prompt, tokenizer, timing=args.timing)
        model_label = str(model_name)
        if blend is not None:
            model_label = " + ".join(str(member.source) for member in blend_members(blend, args.models_dir))
            logger.info("Style blend %s: model weights %s", blend.describe(), blend.record()["model_weights"])
            model = load_blend(blend, args.models_dir, device=args.device)
        else:
            model = load_model(model_name, device=args.device, trust_remote_code=args.trust_remote_code)
        result = generate_continuation(model, prompt_ids, settings, show_progress=args.progress)
        for variation in range(variations):
            group = files[target_index * variations + variation]
            record = provenance(
                result,
                variation,
                model=model_label,
                style=style,
                velocity=args.velocity_value,
                prompt_path=args.prompt,
                extra=blend.record() if blend is not None else None,
            )
            piece = result.pieces[variation]
            written.append(write_midi(tokenizer, piece, group.midi, args.velocity_value, marker_text(record)))
            if group.wav is not None:  # rendered before the JSON, which records the synthesizer used
                notes = tokenizer.ids_to_timed_notes(piece, velocity=args.velocity_value)
                wav = render_audio(
                    notes, group.wav, group.midi, soundfont, args.sample_rate, synthesizer=args.synthesizer
                )
                record["wav"] = {**wav.record(), "sample_rate": args.sample_rate}
            written.append(write_json(record, group.json))
            if group.wav is not None:
                written.append(group.wav)
            title = f"{style or model_name}: {settings.mode}, seed {settings.seed}, variation {variation + 1}"
            panel = roll_panel(tokenizer, result, variation, title, args.velocity_value)
            if group.png is not None:
                written.append(save_pianoroll([panel], group.png))
            if variation == 0:
                panels.append(panel)
        del model
    if comparison is not None:
        written.append(save_pianoroll(panels, comparison))
    return written


def _targets(args: GenerateArguments) -> list[tuple[str | None, str | Path, StyleBlend | None]]:
    """`(style label, folder the tokenizer comes from, blend or None)` per model to run. A blend is None
    for a plain model: `--model`, one style at strength 1, or the base of `--style all --with_base`.

    Raises:
        ValueError / FileNotFoundError: an unknown or unshipped style (before any model loads).
    """
    if not args.style:
        return [(None, args.model, None)]
    if args.style == ALL_STYLES:
        targets = []
        for style, folder in resolve_styles(args.style, args.models_dir, include_base=args.with_base):
            blend = None if style == BASE_STYLE else args.style_blend(style)
            targets.append((style, folder, blend if blend is not None and blend.is_blend else None))
        return targets
    blend = args.style_blend()
    members = blend_members(blend, args.models_dir)  # checks every style folder now
    if not blend.is_blend:
        return [(args.style, members[0].source, None)]
    return [(blend.describe(), members[0].source, blend)]


__all__ = ["run_generation"]
