"""Command-line arguments of the style evaluation (`python -m gigapiano.evaluation --help`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .memorization import COPY_KEYS

DEFAULT_STYLES = ["baroque", "romantic", "rachmaninoff"]


@dataclass
class GigaPianoEvaluationArguments:
    """Everything that decides an evaluation run; written into its report so it can be reproduced."""

    maestro_dir: str | None = field(
        default=None,
        metadata={
            "help": "Extracted MAESTRO v3.0.0 folder (e.g. ../shared/maestro-subset/maestro-v3.0.0); "
            "default: download MAESTRO into the cache once."
        },
    )
    models_dir: str = field(
        default="models",
        metadata={
            "help": "Folder holding gigapiano-base and gigapiano-<style> model folders (full models or "
            "LoRA adapters). Default: models."
        },
    )
    styles: list[str] = field(
        default_factory=lambda: list(DEFAULT_STYLES),
        metadata={
            "help": "Styles to evaluate (names of configs/styles/*.yaml); each needs its model folder. "
            "Default: baroque romantic rachmaninoff."
        },
    )
    output: str = field(
        default="docs/evaluation.md",
        metadata={
            "help": "Markdown report. If it exists, only the part between its GENERATED markers is "
            "replaced; plots (PNG) and all numbers (evaluation.json) go next to it. Default: "
            "docs/evaluation.md."
        },
    )
    samples: int = field(default=2, metadata={"help": "Continuations per prompt and model. Default: 2."})
    prompt_notes: int = field(default=64, metadata={"help": "Notes per prompt. Default: 64."})
    new_notes: int = field(default=128, metadata={"help": "Notes generated after each prompt. Default: 128."})
    prompts_per_piece: int = field(
        default=2,
        metadata={
            "help": "Excerpts per test piece, spread evenly from its opening on. Default: 2 (about 32 "
            "prompts from the 16 test pieces of the three styles)."
        },
    )
    extra_prompts: list[str] = field(
        default_factory=lambda: ["auto"],
        metadata={
            "help": "MIDI files used as extra prompts (their first --prompt_notes notes). 'auto': the "
            "Für Elise example (examples/fur_elise.mid, else ../shared/prompts/fur_elise.mid); 'none': "
            "no extra prompt. Default: auto."
        },
    )
    seed: int = field(default=0, metadata={"help": "Sampling seed: prompt i uses seed + i. Default: 0."})
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature (0 = greedy). Default: 1.0."}
    )
    top_k: int = field(default=0, metadata={"help": "Top-k sampling filter (0 = off). Default: 0."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling filter (1.0 = off). Default: 1.0."})
    split_seed: int = field(
        default=42,
        metadata={"help": "Seed of the train/validation/test split by piece (as in training). Default: 42."},
    )
    classifier_window_notes: int = field(
        default=256,
        metadata={
            "help": "Notes per classifier window (256 = 1024 tokens). Windows of --new_notes notes "
            "are added to its training set so it also judges continuations of that length. "
            "Default: 256."
        },
    )
    classifier_seed: int = field(default=0, metadata={"help": "Random-forest seed. Default: 0."})
    retrain_classifier: bool = field(
        default=False, metadata={"help": "Retrain the style classifier even when a cached one fits."}
    )
    classifier_only: bool = field(
        default=False,
        metadata={"help": "Only train (or load) the classifier and print its test accuracy (no models)."},
    )
    copy_key: str = field(
        default="dt_dur_pitch",
        metadata={
            "help": f"What makes two notes equal in the memorisation check: {', '.join(COPY_KEYS)}."
            " Default: dt_dur_pitch (pitch and rhythm)."
        },
    )
    eval_batch_size: int = field(default=8, metadata={"help": "Windows per forward pass (validation loss)."})
    max_eval_windows: int | None = field(
        default=None,
        metadata={
            "help": "Score at most this many validation windows per style, evenly spread. Default: all."
        },
    )
    num_threads: int | None = field(
        default=None,
        metadata={
            "help": "CPU threads for torch (torch.set_num_threads). On a CPU shared with other jobs, 1 is "
            "often several times faster for these small models. Default: torch's default."
        },
    )
    device: str = field(default="auto", metadata={"help": "auto (CUDA if available, else CPU), cpu or cuda."})
    cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Cache for MAESTRO, tokenised pieces and the fitted classifier. Default: "
            "$HF_HOME/gigapiano."
        },
    )
    styles_dir: str | None = field(
        default=None, metadata={"help": "Folder of style YAML files. Default: configs/styles."}
    )
    progress: bool = field(default=True, metadata={"help": "Show progress bars. Default: true."})
    log_level: str = field(
        default="info", metadata={"help": "Logging level: debug, info, warning or error. Default: info."}
    )

    def __post_init__(self) -> None:
        checks = {
            "--samples": self.samples,
            "--prompt_notes": self.prompt_notes,
            "--new_notes": self.new_notes,
            "--prompts_per_piece": self.prompts_per_piece,
            "--classifier_window_notes": self.classifier_window_notes,
            "--eval_batch_size": self.eval_batch_size,
        }
        for flag, value in checks.items():
            if value < 1:
                raise ValueError(f"{flag} must be at least 1, got {value}.")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"--num_threads must be at least 1 or omitted, got {self.num_threads}.")
        if self.max_eval_windows is not None and self.max_eval_windows < 1:
            raise ValueError(f"--max_eval_windows must be >= 1 or omitted, got {self.max_eval_windows}.")
        if self.copy_key not in COPY_KEYS:
            raise ValueError(f"--copy_key must be one of {', '.join(COPY_KEYS)}, got {self.copy_key!r}.")
        if len(self.styles) < 2 or len(set(self.styles)) != len(self.styles):
            raise ValueError(f"--styles needs at least two distinct styles, got {self.styles}.")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"--log_level must be debug, info, warning or error, got {self.log_level!r}.")
        if "base" in self.styles:
            raise ValueError("--styles must not contain 'base': the base model is always evaluated.")


__all__ = ["DEFAULT_STYLES", "GigaPianoEvaluationArguments"]
