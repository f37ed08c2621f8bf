"""Command-line arguments of the style evaluation (`python -m gigapiano.evaluation --help`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gigapiano.generation.settings import DEFAULT_MOTIF_MEMORY, DEFAULT_TEMPERATURE, DEFAULT_TOP_P

from .memorization import COPY_KEYS

DEFAULT_STYLES = ["baroque", "romantic", "rachmaninoff"]


@dataclass
class GigaPianoEvaluationArguments:
    """Everything that decides an evaluation run; written into its report so it can be reproduced."""

    maestro_dir: str | None = field(
        default=None,
        metadata={
            "help": "Extracted MAESTRO v3.0.0 folder (the full one, e.g. ../shared/maestro/maestro-v3.0.0); "
            "default: download MAESTRO into the cache once."
        },
    )
    models_dir: str = field(
        default="models",
        metadata={
            "help": "Folder holding gigapiano-base and gigapiano-<style> model folders. Default: models."
        },
    )
    styles: list[str] = field(
        default_factory=lambda: list(DEFAULT_STYLES),
        metadata={"help": "Styles to evaluate (configs/styles/*.yaml); each needs its model folder."},
    )
    base_style: str = field(
        default="maestro",
        metadata={
            "help": "The style the base model was trained on (its train split feeds the base n-gram and the "
            "held-out check). Default: maestro (all composers)."
        },
    )
    output: str = field(
        default="docs/evaluation.md",
        metadata={
            "help": "Markdown report; only the part between its GENERATED markers is replaced. The JSON of "
            "every number and the piano-roll gallery (PNG) go next to it. Default: docs/evaluation.md."
        },
    )
    seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2],
        metadata={"help": "Sampling seeds: every prompt is continued once per seed. Default: 0 1 2."},
    )
    prompt_notes: int = field(default=64, metadata={"help": "Notes per prompt. Default: 64."})
    new_notes: int = field(default=128, metadata={"help": "Notes generated after each prompt. Default: 128."})
    prompts_per_piece: int = field(
        default=2, metadata={"help": "Prompts per test performance, spread over it. Default: 2."}
    )
    temperature: float = field(
        default=DEFAULT_TEMPERATURE,
        metadata={"help": f"Sampling temperature. Default: the library's, {DEFAULT_TEMPERATURE}."},
    )
    top_k: int = field(default=0, metadata={"help": "Top-k sampling filter (0 = off). Default: 0."})
    top_p: float = field(
        default=DEFAULT_TOP_P,
        metadata={"help": f"Nucleus sampling filter (1.0 = off). Default: the library's, {DEFAULT_TOP_P}."},
    )
    motif_memory: float = field(
        default=DEFAULT_MOTIF_MEMORY,
        metadata={"help": f"Motif-memory boost (0 = off). Default: the library's, {DEFAULT_MOTIF_MEMORY:g}."},
    )
    generation_batch_size: int = field(
        default=64, metadata={"help": "Continuations (prompt x seed) sampled per batch. Default: 64."}
    )
    windows_per_piece: int = field(
        default=2,
        metadata={
            "help": "Validation windows (one model context each) per validation performance, evenly spread. "
            "Default: 2."
        },
    )
    eval_batch_size: int = field(default=8, metadata={"help": "Windows per forward pass (validation loss)."})
    ngram_k: float = field(default=0.05, metadata={"help": "Add-k constant of the n-gram baseline."})
    classifier_train_windows: int = field(
        default=3000,
        metadata={"help": "Most training windows per style for the style classifier (evenly spread)."},
    )
    classifier_test_windows: int = field(
        default=400, metadata={"help": "Most held-out test windows per style to score the classifier on."}
    )
    classifier_seed: int = field(default=0, metadata={"help": "Random-forest seed. Default: 0."})
    bootstrap_resamples: int = field(default=2000, metadata={"help": "Bootstrap resamples. Default: 2000."})
    bootstrap_seed: int = field(default=0, metadata={"help": "Bootstrap seed. Default: 0."})
    copy_key: str = field(
        default="dt_pitch",
        metadata={
            "help": f"What makes two notes equal in the copying check: {', '.join(COPY_KEYS)}. Default: "
            "dt_pitch (pitch and onset; performances differ in articulation)."
        },
    )
    gallery_prompts: int = field(
        default=1, metadata={"help": "Piano-roll gallery: prompts per style drawn (0 = none). Default: 1."}
    )
    on_overlap: str = field(
        default="error",
        metadata={
            "help": "A held-out performance whose composition is in a model's training data: error (default) "
            "or warn (the report then says so)."
        },
    )
    classifier_only: bool = field(
        default=False,
        metadata={"help": "Only fit the style classifier and print its held-out accuracy (no models)."},
    )
    second_opinion: bool = field(
        default=False,
        metadata={
            "help": "Also fit the sequence network of `python -m gigapiano.evaluation.classifier_check` on "
            "the same TRAIN performances and report the share of continuations it assigns to each style "
            "beside the forest's: a second opinion, which never decides a check. Adds about 4 minutes on 2 "
            "CPU cores."
        },
    )
    num_threads: int | None = field(
        default=None,
        metadata={
            "help": "CPU threads for torch (torch.set_num_threads). On a CPU shared with other jobs, 1 is "
            "often faster for these small models. Default: torch's default."
        },
    )
    device: str = field(default="auto", metadata={"help": "auto (CUDA if available, else CPU), cpu or cuda."})
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Cache for MAESTRO and tokenised pieces. Default: $HF_HOME/gigapiano."},
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
            "--prompt_notes": self.prompt_notes,
            "--new_notes": self.new_notes,
            "--prompts_per_piece": self.prompts_per_piece,
            "--generation_batch_size": self.generation_batch_size,
            "--windows_per_piece": self.windows_per_piece,
            "--eval_batch_size": self.eval_batch_size,
            "--classifier_train_windows": self.classifier_train_windows,
            "--classifier_test_windows": self.classifier_test_windows,
            "--bootstrap_resamples": self.bootstrap_resamples,
        }
        for flag, value in checks.items():
            if value < 1:
                raise ValueError(f"{flag} must be at least 1, got {value}.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds needs at least one seed and no repeats, got {self.seeds}.")
        if self.gallery_prompts < 0:
            raise ValueError(f"--gallery_prompts must be >= 0, got {self.gallery_prompts}.")
        if self.ngram_k <= 0:
            raise ValueError(f"--ngram_k must be > 0 (add-k smoothing), got {self.ngram_k}.")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"--num_threads must be at least 1 or omitted, got {self.num_threads}.")
        if self.copy_key not in COPY_KEYS:
            raise ValueError(f"--copy_key must be one of {', '.join(COPY_KEYS)}, got {self.copy_key!r}.")
        if self.on_overlap not in ("error", "warn"):
            raise ValueError(f"--on_overlap must be error or warn, got {self.on_overlap!r}.")
        if len(self.styles) < 2 or len(set(self.styles)) != len(self.styles):
            raise ValueError(f"--styles needs at least two distinct styles, got {self.styles}.")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"--log_level must be debug, info, warning or error, got {self.log_level!r}.")
        if "base" in self.styles or self.base_style in self.styles:
            raise ValueError(
                "--styles must not contain 'base' or the --base_style: the base is always evaluated."
            )


__all__ = ["DEFAULT_STYLES", "GigaPianoEvaluationArguments"]
