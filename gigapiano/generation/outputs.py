"""Files written for each generated piece: MIDI with a provenance marker, a JSON sidecar, WAV, piano roll.

Nothing here samples; everything here takes a finished `GenerationResult`. Every file is first written
under a temporary name and then moved into place, so a failure never leaves a half-written output, and
existing files are only replaced when the caller says so.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .grammar import split_notes
from .pianoroll import RollPanel
from .settings import GenerationResult

logger = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi")
_ROLL_LABELS = {
    "continue": ("prompt", "continuation"),
    "knn": ("prompt", "continuation (anti-copy)"),
    "progression": ("prompt", "progression"),
    "inpaint": ("kept", "inpainted"),
    "harmonize": ("melody", "added chord notes"),
}


@dataclass(frozen=True)
class OutputFiles:
    """The files of one piece; `wav` / `png` are None when not requested."""

    midi: Path
    json: Path
    wav: Path | None = None
    png: Path | None = None

    def all(self) -> list[Path]:
        return [p for p in (self.midi, self.json, self.wav, self.png) if p is not None]


def output_files(
    output: str | Path, labels: Sequence[str], wav: bool = False, pianoroll: bool = False
) -> list[OutputFiles]:
    """Name the files of each piece: `out.mid`, or `out-<label>.mid` per label when there are several.

    Args:
        output: the requested MIDI path (`.mid` is added when it has no MIDI suffix).
        labels: one label per piece (e.g. `["1", "2"]` for variations, `["baroque-1"]`); a single
            piece with label `""` keeps the path as given.
    """
    text = str(output)
    output = Path(output).expanduser()
    if output.is_dir() or text.endswith(("/", os.sep)):
        raise IsADirectoryError(
            f"--output {text} is a folder; give a file name in it, e.g. {output / 'generated.mid'}."
        )
    if output.suffix.lower() not in MIDI_SUFFIXES:
        output = output.with_name(output.name + ".mid")
    files = []
    for label in labels:
        midi = output if not label else output.with_name(f"{output.stem}-{label}{output.suffix}")
        files.append(
            OutputFiles(
                midi=midi,
                json=midi.with_suffix(".json"),
                wav=midi.with_suffix(".wav") if wav else None,
                png=midi.with_suffix(".png") if pianoroll else None,
            )
        )
    return files


def check_writable(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse to replace existing files unless `overwrite`; create missing parent folders and check that
    each can be written to (before any generation, not after it).

    Raises:
        FileExistsError: naming the first existing file.
        PermissionError: a folder that cannot be created or written to.
        IsADirectoryError: an output path that is a folder.
        ValueError: the same path requested twice.
    """
    if len(set(paths)) != len(paths):
        raise ValueError(f"Output paths collide: {sorted(str(p) for p in paths)}.")
    if not overwrite:
        for path in paths:
            if path.exists():
                raise FileExistsError(f"{path} already exists; pass --overwrite to replace it.")
    for path in paths:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; it cannot be written as an output file.")
    for folder in dict.fromkeys(path.parent for path in paths):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".gigapiano-write-test-"):
                pass
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise PermissionError(f"Cannot write output files into {folder}: {reason}.") from None


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def provenance(
    result: GenerationResult,
    variation: int,
    *,
    model: str,
    style: str | None = None,
    velocity: int | str = 90,
    prompt_path: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce one piece (the JSON sidecar's content)."""
    import torch
    import transformers

    from gigapiano import __version__

    piece = result.pieces[variation]
    notes = split_notes(piece)
    record: dict[str, Any] = {
        "generator": f"GIGA-Piano {__version__}",
        "model": model,
        "style": style,
        "mode": result.settings.mode,
        "seed": result.settings.seed,
        "variation": variation + 1,
        "num_variations": len(result.pieces),
        "temperature": result.settings.temperature,
        "top_k": result.settings.top_k,
        "top_p": result.settings.top_p,
        "pitch_range": list(result.settings.pitch_range),  # the pitches the model could choose (inclusive)
        "velocity": velocity,
        "settings": _settings_as_run(result),
        "prompt": None,
        "notes": len(notes),
        "generated_notes": sum(not flag for flag in result.given[variation]),
        "context_windows": result.extra.get("windows"),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }
    if "knn_notes" in result.extra:  # anti-copy: how often no candidate was far enough
        record["knn"] = {"notes": result.extra["knn_notes"], "fallbacks": result.extra["knn_fallbacks"]}
    if prompt_path is not None:
        record["prompt"] = {
            "path": str(prompt_path),
            "sha256": file_sha256(prompt_path),
            "notes": len(result.prompt_ids) // 4,
        }
    record.update(extra or {})
    return record


def _settings_as_run(result: GenerationResult) -> dict[str, Any]:
    """The settings with the defaults the run resolved filled in (a `None` note count becomes the number the
    run asked for), so the sidecar says what happened and replaying it does the same."""
    settings = result.settings.to_dict()
    if result.settings.mode in ("continue", "knn", "progression") and result.settings.max_new_notes is None:
        if result.settings.seconds is None:  # with --seconds, None means "until the span is filled"
            settings["max_new_notes"] = result.settings.note_budget()
    if settings.get("chord_notes") is None and result.settings.mode in ("harmonize", "progression"):
        settings["chord_notes"] = result.settings.resolved_chord_notes
    return settings


def marker_text(record: dict[str, Any]) -> str:
    """A one-line summary for the MIDI text/marker event (the JSON sidecar has the rest)."""
    keys = ("model", "style", "style_strength", "mode", "seed", "temperature", "top_k", "top_p", "velocity")
    fields = " ".join(f"{key}={record[key]}" for key in keys if record.get(key) is not None)
    return f"{record['generator']}: {fields} variation={record['variation']}/{record['num_variations']}"


def _replace_atomically(path: Path, write) -> Path:
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_midi(tokenizer: Any, ids: list[int], path: Path, velocity: int | str, text: str) -> Path:
    """MIDI through the tokenizer (piano, exact milliseconds) with `text` as a text/marker event."""
    return _replace_atomically(path, lambda tmp: tokenizer.save_midi(ids, tmp, velocity=velocity, text=text))


def write_json(record: dict[str, Any], path: Path) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    return _replace_atomically(path, write)


def roll_panel(
    tokenizer: Any, result: GenerationResult, variation: int, title: str, velocity: int | str = 90
) -> RollPanel:
    """Split one piece into given / generated timed notes for the piano roll (inpaint: source behind)."""
    piece = result.pieces[variation]
    timed = tokenizer.ids_to_timed_notes(piece, velocity=velocity)
    flags = result.given[variation]
    given_label, generated_label = _ROLL_LABELS[result.settings.mode]
    reference = []
    if result.settings.mode == "inpaint":
        reference = tokenizer.ids_to_timed_notes(result.prompt_ids, velocity=velocity)[: len(timed)]
    return RollPanel(
        title=title,
        given=[note for note, flag in zip(timed, flags, strict=True) if flag],
        generated=[note for note, flag in zip(timed, flags, strict=True) if not flag],
        reference=reference,
        given_label=given_label,
        generated_label=generated_label,
    )


__all__ = [
    "OutputFiles",
    "check_writable",
    "marker_text",
    "output_files",
    "provenance",
    "roll_panel",
    "write_json",
    "write_midi",
]
