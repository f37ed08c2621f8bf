"""GIGA-Piano web demo (Gradio): continue, inpaint or harmonize a MIDI prompt in a composer's style.

    python app.py                                   # the shipped models in models/gigapiano-<style>/
    python app.py --models_dir runs/published --port 7861
    python app.py --models baroque=my-user/gigapiano-baroque,romantic=my-user/gigapiano-romantic

Upload a MIDI file (or pick an example), choose style, style strength (0 = the base model, 1 = the style
model, up to 2 exaggerates), optionally a second style to blend in, mode (`knn`: continuation that does not
repeat recent notes), temperature, length, seed and (under "More settings") the pitch range and the motif
memory, and press Generate: the page shows the piano roll, plays the audio (when FluidSynth and a SoundFont
are installed) and offers the MIDI file. Requests are queued and show their progress. A strength other than 1
needs the base model (`gigapiano-base/` in the models folder, or `base=...` in `--models`). Which models:
`--models` (or `$GIGAPIANO_MODELS`), else `--models_dir` (or `$GIGAPIANO_MODELS_DIR`), else `demo_models.json`
next to this file (what `publish.py space` writes into a Space), else the project's `models/`. On Hugging Face
Spaces this file is the app (`app_file: app.py`); the logic lives in `gigapiano.hub.demo`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a demo server

from gigapiano.generation.settings import GenerationSettings  # noqa: E402
from gigapiano.hub.demo import (  # noqa: E402 - after the environment default above
    BASE_STYLE,
    DEFAULT_EXAMPLES_DIR,
    DEFAULT_MODELS_DIR,
    DEFAULT_MOTIF_MEMORY,
    DEFAULT_TEMPERATURE,
    DEMO_MODES,
    MAX_DEMO_MOTIF_MEMORY,
    MAX_NEW_NOTES,
    MAX_STYLE_STRENGTH,
    MAX_UPLOAD_BYTES,
    PIANO_PITCH_RANGE,
    DemoInputError,
    ModelCatalog,
    example_prompts,
    read_upload,
    run_demo_generation,
)

logger = logging.getLogger("app")
HERE = Path(__file__).resolve().parent
NO_EXAMPLE = "(none: use the upload, or improvise)"
NO_BLEND = "(none)"
KNN = GenerationSettings(mode="knn")  # the demo's knn mode runs upstream's defaults
MODE_HELP = (
    "continue: extend the prompt · knn: extend it without copying itself (each new note is the first of "
    f"{KNN.knn_candidates} samples that repeats none of the last {KNN.knn_memory_tokens // 4} notes: "
    "upstream's anti-copy) · inpaint: new pitches on the prompt's rhythm · harmonize: chord notes under the "
    "prompt's melody · progression: notes at a steady pulse after the prompt"
)
STRENGTH_HELP = "0 = the base model, 1 = the style model, above 1 exaggerates the style"
BLEND_HELP = "Mix a second style's next-note probabilities into the first's"


def resolve_catalog(models: str | None, models_dir: str | None) -> ModelCatalog:
    """The models to offer, by the priority in the module docstring.

    Raises:
        ValueError: no model found (the message says where it looked).
    """
    models = models or os.environ.get("GIGAPIANO_MODELS")
    models_dir = models_dir or os.environ.get("GIGAPIANO_MODELS_DIR")
    if models:
        catalog = ModelCatalog.from_spec(models)
    elif models_dir:
        catalog = ModelCatalog.from_models_dir(models_dir)
    elif (HERE / "demo_models.json").is_file():
        catalog = ModelCatalog.from_spec(json.loads((HERE / "demo_models.json").read_text())["models"])
    else:
        catalog = ModelCatalog.from_models_dir(DEFAULT_MODELS_DIR)
    if not catalog.styles:
        where = models_dir or DEFAULT_MODELS_DIR
        raise ValueError(
            f"No style model found in {where} (expected gigapiano-<style>/ folders); pass --models_dir or "
            "--models STYLE=FOLDER_OR_HUB_ID."
        )
    return catalog


def build_demo(
    catalog: ModelCatalog, examples_dir: str | Path = DEFAULT_EXAMPLES_DIR, soundfont: str | None = None
):
    """The Gradio `Blocks` of the demo (not launched)."""
    import gradio as gr

    examples = example_prompts(examples_dir)

    progress_tracker = gr.Progress(track_tqdm=True)  # Gradio injects a live tracker through this default

    def generate(
        upload,
        example,
        style,
        strength,
        blend_with,
        blend_share,
        mode,
        temperature,
        length,
        seed,
        min_pitch,
        max_pitch,
        motif_memory,
        progress=progress_tracker,
    ):
        try:
            prompt = read_upload(upload)
            if prompt is None and example in examples:
                prompt = examples[example].read_bytes()
            blend_with = None if blend_with in (None, "", NO_BLEND) else blend_with
            progress(
                0, desc=f"loading the {style} model" + (f" and the {blend_with} model" if blend_with else "")
            )
            result = run_demo_generation(
                catalog,
                style,
                mode,
                prompt,
                temperature=temperature,
                max_new_notes=length,
                seed=None if seed is None or seed < 0 else seed,
                min_pitch=min_pitch,
                max_pitch=max_pitch,
                style_strength=strength,
                blend_with=blend_with,
                blend_share=blend_share,
                motif_memory=motif_memory,
                soundfont=soundfont,
                show_progress=True,
            )
        except DemoInputError as error:
            raise gr.Error(str(error)) from None
        return (
            str(result.pianoroll),
            (str(result.wav) if result.wav else None),
            str(result.midi),
            result.summary,
        )

    with gr.Blocks(title="GIGA-Piano", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# GIGA-Piano\nA piano-music language model that continues MIDI in the style of a composer. "
            "Upload the opening of a piece (or pick an example), choose a style and press **Generate**. "
            "Turn the style strength down towards the base model or up past the style, or blend in a "
            "second style."
        )
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label=f"Prompt MIDI (.mid / .midi, up to {MAX_UPLOAD_BYTES // 1_000_000} MB)",
                    file_types=[".mid", ".midi"],
                    type="filepath",
                    elem_id="prompt-upload",
                )
                example = gr.Dropdown(
                    [NO_EXAMPLE, *examples], value=NO_EXAMPLE, label="…or an example prompt"
                )
                style = gr.Dropdown(catalog.styles, value=catalog.styles[0], label="Style")
                has_base = BASE_STYLE in catalog.sources
                strength = gr.Slider(
                    0.0,
                    MAX_STYLE_STRENGTH,
                    value=1.0,
                    step=0.1,
                    label="Style strength",
                    info=STRENGTH_HELP
                    + ("" if has_base else " (needs the base model, which this demo lacks)"),
                    elem_id="style-strength",
                )
                blend_styles = [name for name in catalog.styles if name != BASE_STYLE]
                with gr.Row(visible=len(blend_styles) > 1):
                    blend_with = gr.Dropdown(
                        [NO_BLEND, *blend_styles],
                        value=NO_BLEND,
                        label="Blend with",
                        info=BLEND_HELP,
                        elem_id="blend-with",
                    )
                    blend_share = gr.Slider(
                        0.0,
                        1.0,
                        value=0.5,
                        step=0.05,
                        label="Share of the second style",
                        info="0 = only the first style, 1 = only the second",
                        elem_id="blend-share",
                    )
                mode = gr.Radio(list(DEMO_MODES), value="continue", label="Mode", info=MODE_HELP)
                temperature = gr.Slider(
                    0.0,
                    2.0,
                    value=DEFAULT_TEMPERATURE,
                    step=0.05,
                    label="Temperature (0 = most likely notes)",
                )
                length = gr.Slider(8, MAX_NEW_NOTES, value=128, step=8, label="Length (new notes)")
                seed = gr.Number(
                    value=-1, precision=0, minimum=-1, label="Seed (-1: a random one, shown after)"
                )
                with gr.Accordion("More settings", open=False):
                    min_pitch = gr.Slider(
                        1,
                        126,
                        value=PIANO_PITCH_RANGE[0],
                        step=1,
                        label="Lowest generated pitch (MIDI note; 21 = A0, the piano's lowest key)",
                    )
                    max_pitch = gr.Slider(
                        1,
                        126,
                        value=PIANO_PITCH_RANGE[1],
                        step=1,
                        label="Highest generated pitch (MIDI note; 108 = C8, the piano's highest key)",
                    )
                    motif_memory = gr.Slider(
                        0,
                        MAX_DEMO_MOTIF_MEMORY,
                        value=DEFAULT_MOTIF_MEMORY,
                        step=5,
                        label="Motif memory (0 = off): how strongly the prompt's motifs come back",
                        elem_id="motif-memory",
                    )
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                roll = gr.Image(label="Piano roll", type="filepath", interactive=False, elem_id="pianoroll")
                audio = gr.Audio(label="Listen", type="filepath", interactive=False, elem_id="audio")
                midi = gr.File(label="Download MIDI", interactive=False, elem_id="midi-download")
        # in the order of generate's parameters
        inputs = [upload, example, style, strength, blend_with, blend_share, mode, temperature, length, seed,
                  min_pitch, max_pitch, motif_memory]  # fmt: skip
        button.click(
            generate,
            inputs=inputs,
            outputs=[roll, audio, midi, summary],
            concurrency_limit=1,
        )
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models_dir", help="Folder of gigapiano-<style>/ models (default: models/).")
    parser.add_argument(
        "--models", help="STYLE=FOLDER_OR_HUB_ID pairs, comma-separated (overrides --models_dir)."
    )
    parser.add_argument(
        "--examples_dir", default=str(DEFAULT_EXAMPLES_DIR), help="Folder of example *.mid prompts."
    )
    parser.add_argument("--soundfont", help="SoundFont for the audio (default: the Debian General MIDI one).")
    parser.add_argument("--host", help="Interface to listen on (default: 127.0.0.1, or $GRADIO_SERVER_NAME).")
    parser.add_argument("--port", type=int, help="Port (default: 7860, or $GRADIO_SERVER_PORT).")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice).")
    parser.add_argument("--share", action="store_true", help="Also open a public gradio.live link.")
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Run the model code the --models folders or Hub repos carry instead of the installed project's "
        "classes (only for models you trust).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        catalog = resolve_catalog(args.models, args.models_dir)
        catalog.trust_remote_code = args.trust_remote_code
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import gradio as gr

    font = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web-font download: the demo works offline
    demo = build_demo(catalog, args.examples_dir, args.soundfont)
    demo.queue(max_size=16, default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=MAX_UPLOAD_BYTES,
        show_error=True,
        theme=gr.themes.Soft(font=font, font_mono=["ui-monospace", "monospace"]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
