"""Command-line arguments of `generate.py` (parsed with `gigapiano.cli.DataclassArgumentParser`).

Imports nothing heavy: `generate.py --help`, a flag error or a missing `--model` folder answer before torch
and transformers load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .audio import SYNTHESIZER_CHOICES
from .grammar import PIANO_PITCH_RANGE
from .settings import (
    DEFAULT_MOTIF_MEMORY,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    KEEP_CHOICES,
    MODES,
    GenerationSettings,
)
from .style_spec import StyleBlend


@dataclass
class GenerateArguments:
    """Every flag of `generate.py`; `to_settings()` gives the library's `GenerationSettings`."""

    model: str | None = field(
        default=None,
        metadata={"help": "Model folder or Hub id (e.g. a folder written by train.py). Or use --style."},
    )
    style: str | None = field(
        default=None,
        metadata={
            "help": "Shipped style model: baroque, romantic, rachmaninoff (models/gigapiano-<style>/); a "
            "blend of styles such as baroque:0.5,romantic:0.5 (their next-note probabilities mixed; what the "
            "weights leave to 1 goes to the base model); or 'all' for one piece per shipped style model from "
            "the same prompt and the same seed, so the pieces differ only by the model (add --with_base for "
            "the base model too). Or use --model."
        },
    )
    style_strength: float = field(
        default=1.0,
        metadata={
            "help": "How much of the style: 0 = the base model, 1 = the style model (default), in between "
            "blends the two, above 1 (up to 2) pushes past the style model, away from the base. Scales every "
            "weight of a blend; with --style all, each style. Needs --style."
        },
    )
    with_base: bool = field(
        default=False,
        metadata={"help": "With --style all: also generate with the base model (models/gigapiano-base)."},
    )
    models_dir: str | None = field(
        default=None,
        metadata={"help": "Folder holding the gigapiano-<style>/ models (None: the repository's models/)."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run the model code a --model folder or Hub repo carries instead of the installed "
            "project's classes (only for models you trust). Default: off."
        },
    )
    prompt: str | None = field(
        default=None,
        metadata={"help": "MIDI file to continue / inpaint / harmonize (None: improvise from nothing)."},
    )
    timing: str = field(
        default="upstream",
        metadata={
            "help": "Tokenizer timing for the prompt: 'upstream' (what the pretrained weights saw) or "
            "'tempo_map' (drift-free)."
        },
    )
    mode: str = field(
        default="continue",
        metadata={
            "help": "continue: extend the prompt; knn: extend it with upstream's anti-copy filter (each new "
            "note is one of --knn_candidates samples that does not repeat a recent note); inpaint: new "
            "pitches on the prompt's timing; harmonize: chord notes under the prompt's melody; progression: "
            "notes/chords at a fixed step.",
            "choices": list(MODES),
        },
    )
    max_new_notes: int | None = field(
        default=None,
        metadata={
            "help": "Notes to generate (None: 256, or what --seconds needs). For inpaint/harmonize: the "
            "number of source (melody) notes to use (None: all)."
        },
    )
    seconds: float | None = field(
        default=None,
        metadata={"help": "Instead of --max_new_notes: generate until the new notes span this many seconds."},
    )
    temperature: float = field(
        default=DEFAULT_TEMPERATURE,
        metadata={
            "help": "Divides the logits: below 1 safer, above 1 wilder, 0 = greedy. Default: "
            f"{DEFAULT_TEMPERATURE} (chosen by measurement, docs/sampling.md)."
        },
    )
    top_k: int = field(
        default=0, metadata={"help": "Sample among the k most likely legal ids of each field (0 = off)."}
    )
    top_p: float = field(
        default=DEFAULT_TOP_P,
        metadata={"help": "Nucleus sampling: the smallest set of legal ids with this probability (1 = off)."},
    )
    motif_memory: float = field(
        default=DEFAULT_MOTIF_MEMORY,
        metadata={
            "help": "How strongly pitches take up the prompt's motifs (0 = off): the steps that followed "
            "the latest pitch steps elsewhere in the prompt get up to 1 + this times their probability. "
            f"Default: {DEFAULT_MOTIF_MEMORY:g} (chosen by measurement, docs/sampling.md)."
        },
    )
    seed: int | None = field(
        default=None, metadata={"help": "Random seed (None: drawn at random and recorded in the JSON)."}
    )
    num_variations: int = field(
        default=1, metadata={"help": "Pieces generated together in one batch; files are numbered -1, -2, ..."}
    )
    keep: str = field(
        default="time+dur",
        metadata={
            "help": "inpaint: keep each source note's time (dt), or its time and duration.",
            "choices": list(KEEP_CHOICES),
        },
    )
    chord_notes: int | None = field(
        default=None,
        metadata={
            "help": "Notes added (dt = 0, going down) under each melody note (None: 2 for harmonize) or each "
            "step (None: 0 for progression)."
        },
    )
    step_ms: int = field(
        default=256, metadata={"help": "progression: time between steps in ms (16..2016, rounded to 16 ms)."}
    )
    step_duration_ms: int | None = field(
        default=None,
        metadata={"help": "progression: duration of every note in ms, 32..4032 (None: the model chooses)."},
    )
    knn_candidates: int = field(
        default=4,
        metadata={"help": "knn mode: candidate notes sampled for each new note (upstream: 4)."},
    )
    knn_threshold: float = field(
        default=0.1,
        metadata={
            "help": "knn mode: a candidate is kept only if its (dt, duration, pitch) lies at least this far, "
            "in token units, from every remembered note (upstream: 0.1 = refuse exact repeats); when no "
            "candidate does, the first is kept."
        },
    )
    knn_memory_tokens: int = field(
        default=256,
        metadata={"help": "knn mode: how many recent tokens (4 per note) are remembered (upstream: 256)."},
    )
    min_pitch: int = field(
        default=PIANO_PITCH_RANGE[0],
        metadata={
            "help": "Lowest pitch the model may generate, as a MIDI note number (default 21 = A0, the piano's"
            " lowest key; any of 1..126). Prompt notes and harmonised melody notes are kept as given."
        },
    )
    max_pitch: int = field(
        default=PIANO_PITCH_RANGE[1],
        metadata={
            "help": "Highest pitch the model may generate, as a MIDI note number (default 108 = C8, the "
            "piano's highest key; any of 1..126). --min_pitch 1 --max_pitch 126 allows every pitch."
        },
    )
    velocity: str = field(
        default="90",
        metadata={"help": "MIDI velocity 1..127, or 'simulated' (louder chords, brighter notes)."},
    )
    output: str = field(
        default="outputs/generated.mid",
        metadata={"help": "MIDI file to write; a .json with model, seed and settings goes beside it."},
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace existing output files (without it they are an error)."}
    )
    wav: bool = field(
        default=False,
        metadata={
            "help": "Also render a .wav through a General MIDI SoundFont (see --synthesizer and "
            "--soundfont); the .json records the synthesizer and the SoundFont used."
        },
    )
    soundfont: str | None = field(
        default=None,
        metadata={
            "help": "SoundFont for --wav (None: a Debian one in /usr/share/sounds/sf2 if installed, else the "
            "TimGM6mb.sf2 that the pretty_midi package ships, installed by the audio extra)."
        },
    )
    synthesizer: str = field(
        default="auto",
        metadata={
            "help": "Synthesizer for --wav. auto: FluidSynth (library or program) when installed, else "
            "tinysoundfont when installed, else the built-in numpy sampler (needs no system package); or "
            "force one of them.",
            "choices": list(SYNTHESIZER_CHOICES),
        },
    )
    sample_rate: int = field(default=44_100, metadata={"help": "WAV sample rate in Hz."})
    pianoroll: bool = field(
        default=False, metadata={"help": "Also draw a .png piano roll (prompt and generated notes)."}
    )
    device: str = field(default="auto", metadata={"help": "auto (CUDA if available), cpu, cuda, cuda:1, ..."})
    threads: int | None = field(
        default=None,
        metadata={
            "help": "CPU threads for torch (None: torch's default). On a busy machine, more threads than "
            "free cores make decoding several times slower."
        },
    )
    progress: bool = field(
        default=True,
        metadata={
            "help": "Show a progress bar counting notes (on by default).",
            "no_help": "Hide the progress bar (for logs and scripts).",
        },
    )
    log_level: str = field(default="info", metadata={"help": "Logging level: debug, info, warning or error."})

    def __post_init__(self) -> None:
        if (self.model is None) == (self.style is None):
            raise ValueError("Pass exactly one of --model <folder or Hub id> and --style <name>.")
        if self.with_base and self.style != "all":
            raise ValueError("--with_base only applies to --style all.")
        if self.style is None and self.style_strength != 1.0:
            raise ValueError(
                "--style_strength needs --style (it blends the shipped base and style models); "
                "with --model there is no base model to blend with."
            )
        self.style_blend()  # a bad blend or strength is named before anything loads
        if self.velocity != "simulated":
            if not self.velocity.isdigit() or not 1 <= int(self.velocity) <= 127:
                raise ValueError(f"--velocity must be 1..127 or 'simulated', got {self.velocity!r}.")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {self.threads}.")
        if self.sample_rate < 8000:
            raise ValueError(f"--sample_rate must be >= 8000 Hz, got {self.sample_rate}.")
        self.to_settings()  # bad values (e.g. a pitch range) are named before anything is looked up
        if self.model is not None:
            from .resolve import model_source

            model_source(self.model)  # a local path that does not exist fails now, not after a Hub lookup

    def style_blend(self, style: str | None = None) -> StyleBlend | None:
        """The blend of `style` (default `--style`; one style of `all` when given) at `--style_strength`;
        None with `--model`."""
        style = style or self.style
        if style is None:
            return None
        # `all` is checked as one style: the strength applies to each shipped style in turn
        return StyleBlend.parse("baroque" if style == "all" else style, self.style_strength)

    @property
    def velocity_value(self) -> int | str:
        return self.velocity if self.velocity == "simulated" else int(self.velocity)

    def to_settings(self) -> GenerationSettings:
        """The library settings (validated there; errors name the field)."""
        return GenerationSettings(
            mode=self.mode,
            max_new_notes=self.max_new_notes,
            seconds=self.seconds,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            motif_memory=self.motif_memory,
            seed=self.seed,
            num_variations=self.num_variations,
            keep=self.keep,
            chord_notes=self.chord_notes,
            step_ms=self.step_ms,
            step_duration_ms=self.step_duration_ms,
            min_pitch=self.min_pitch,
            max_pitch=self.max_pitch,
            knn_candidates=self.knn_candidates,
            knn_threshold=self.knn_threshold,
            knn_memory_tokens=self.knn_memory_tokens,
        )


__all__ = ["GenerateArguments"]
