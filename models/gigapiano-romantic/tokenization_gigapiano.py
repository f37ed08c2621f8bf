"""Tokenizer for GIGA-Piano: MIDI <-> the 128-id note vocabulary, as a Hugging Face tokenizer.

Encoding (what the pretrained weights saw, see ``gigapiano_midi``): every non-drum note of a MIDI file
becomes ``[127, dt, dur, pitch]`` where ``dt`` is the onset delta in 16 ms steps, ``dur`` the duration in
32 ms steps and ``pitch`` the MIDI pitch, each clamped to 0/1..126; notes are ordered by onset and, in a
chord, from the highest pitch down.

Vocabulary and token strings
----------------------------
Ids 0..126 are field values whose meaning (dt, dur or pitch) depends only on their position after the
separator, so one id cannot have one meaning-bearing string. The vocabulary therefore maps the plain
numbers ``"0"`` .. ``"126"`` to ids 0..126 and ``"<sep>"`` to 127 (``bos_token`` and ``pad_token``).
:meth:`GigaPianoTokenizer.decode` adds the meaning from the position: ``[127, 5, 12, 60]`` decodes to
``"<sep> dt_5 dur_12 pitch_60"``; ids after the third of a group stay plain numbers, ids that are not in
the vocabulary show as ``<invalid:ID>``, and the run before the first separator is labelled from its
end (a window cut inside a note). Text input accepts both forms, so ``tokenizer(tokenizer.decode(ids))``
gives back ``ids``.

Saving: the vocabulary is fixed, so ``save_pretrained`` writes only ``tokenizer_config.json`` (with an
``auto_map``) and, for ``trust_remote_code``, this file and its two sibling modules.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

from transformers import PreTrainedTokenizer
from transformers.utils import logging

from .gigapiano_midi import (
    TIMING_MODES,
    MidiTokenizationError,
    check_timing,
    encode_midi,
    notes_to_score,
)
from .gigapiano_notes import (
    DEFAULT_VELOCITY,
    SEP_ID,
    VOCAB_SIZE,
    Note,
    TimedNote,
    VelocityArg,
    as_id_array,
    ids_to_notes,
    ids_to_timed_notes,
    notes_to_ids,
    timed_note_arrays,
)

logger = logging.get_logger(__name__)

SEP_TOKEN = "<sep>"
_FIELD_NAMES = ("dt", "dur", "pitch")
_FIELD_PREFIXES = tuple(f"{name}_" for name in _FIELD_NAMES)
OnError = Literal["raise", "empty"]


class GigaPianoTokenizer(PreTrainedTokenizer):
    """GIGA-Piano's tokenizer: 128 ids, MIDI in (``encode_midi``) and out (``decode_midi``, ``save_midi``).

    No files are needed: ``GigaPianoTokenizer()`` is complete. See the module docstring for the token
    strings and ``gigapiano_midi`` for how upstream's millisecond times are reproduced.

    Args:
        bos_token: The separator, also used to start a sequence.
        pad_token: The separator (padding is masked out by the attention mask).
        model_max_length: Context length of the released GIGA-Piano models.
        kwargs: Passed to ``PreTrainedTokenizer``.
    """

    vocab_files_names: dict[str, str] = {}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        bos_token: str = SEP_TOKEN,
        pad_token: str = SEP_TOKEN,
        model_max_length: int = 1024,
        **kwargs: Any,
    ) -> None:
        # The base __init__ looks the special tokens up in the vocabulary, so it must exist first.
        self._vocab = {str(value): value for value in range(SEP_ID)}
        self._vocab[SEP_TOKEN] = SEP_ID
        self._tokens = {index: token for token, index in self._vocab.items()}
        super().__init__(
            bos_token=bos_token, pad_token=pad_token, model_max_length=model_max_length, **kwargs
        )

    # ------------------------------------------------------------------------------------------------------
    # Vocabulary (PreTrainedTokenizer interface)
    # ------------------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids: 128."""
        return VOCAB_SIZE

    @property
    def sep_id(self) -> int:
        """The note separator id (127)."""
        return SEP_ID

    def get_vocab(self) -> dict[str, int]:
        """Token string -> id, including tokens added later with ``add_tokens`` (if any)."""
        vocab = dict(self._vocab)
        vocab.update(self._added_tokens_encoder)
        return vocab

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """Splits text on whitespace; ``dt_5``, ``dur_5`` and ``pitch_5`` all become the token ``5``."""
        tokens = []
        for piece in text.split():
            for prefix in _FIELD_PREFIXES:
                if piece.startswith(prefix):
                    piece = piece[len(prefix) :]
                    break
            tokens.append(piece)
        return tokens

    def _convert_token_to_id(self, token: str) -> int:
        """Looks a token string up; unknown strings are an error (there is no unknown token)."""
        try:
            return self._vocab[token]
        except KeyError:
            raise ValueError(
                f"unknown GIGA-Piano token {token!r}; expected '<sep>', 0..126, dt_N, dur_N or pitch_N"
            ) from None

    def _convert_id_to_token(self, index: int) -> str:
        """Id -> token string; ids outside the vocabulary give ``<invalid:ID>``."""
        return self._tokens.get(index, f"<invalid:{index}>")

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Joins tokens with spaces."""
        return " ".join(tokens)

    def _decode(
        self,
        token_ids: int | list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str:
        """Readable, position-aware text, e.g. ``"<sep> dt_5 dur_12 pitch_60"`` (see the module docstring)."""
        ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
        labels = readable_tokens(ids)
        if skip_special_tokens:
            labels = [label for label in labels if label != SEP_TOKEN]
        return " ".join(labels)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Writes nothing: the vocabulary is fixed and rebuilt by ``__init__``."""
        return ()

    # ------------------------------------------------------------------------------------------------------
    # MIDI
    # ------------------------------------------------------------------------------------------------------

    def encode_midi(self, source: str | os.PathLike | bytes | Any, timing: str = "upstream") -> list[int]:
        """Tokenises one MIDI file.

        Args:
            source: A path, the file's bytes, or a ``symusic.Score`` (tokenised as the MIDI file symusic
                writes for it).
            timing: ``"upstream"`` (default): upstream's per-event millisecond rounding, exact to the
                pretrained models' training data. ``"tempo_map"``: exact tempo-map times without drift.

        Returns:
            ``[127, dt, dur, pitch]`` for every non-drum note.

        Raises:
            MidiTokenizationError: If the source is missing, not MIDI, truncated, or has no non-drum notes.
            ValueError: If ``timing`` is not a known mode.
        """
        return encode_midi(source, timing)

    def encode_midi_batch(
        self,
        sources: Iterable[str | os.PathLike | bytes | Any],
        timing: str = "upstream",
        show_progress: bool = True,
        num_workers: int = 1,
        on_error: OnError = "raise",
    ) -> list[list[int]]:
        """Tokenises many MIDI files, optionally in worker processes, with a progress bar.

        Args:
            sources: Paths, bytes or scores (see :meth:`encode_midi`).
            timing: See :meth:`encode_midi`.
            show_progress: Show a progress bar (files per second).
            num_workers: Worker processes; 1 tokenises in this process.
            on_error: ``"raise"`` stops at the first bad file; ``"empty"`` logs a warning and returns ``[]``
                for it, so results stay aligned with ``sources``.

        Returns:
            One id list per source, in order.
        """
        check_timing(timing)
        _check_on_error(on_error)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
        cpus = os.cpu_count() or 1
        if num_workers > cpus:
            warnings.warn(
                f"num_workers={num_workers} is more than the {cpus} CPU(s) here; it will not run faster",
                stacklevel=2,
            )
        sources = list(sources)
        job = MidiEncodeJob(timing=timing, on_error=on_error)
        progress = logging.tqdm(
            total=len(sources), disable=not show_progress, desc="Tokenizing MIDI", unit="file"
        )
        results: list[list[int]] = []
        with progress:
            if num_workers == 1 or len(sources) < 2:
                for source in sources:
                    results.append(job(source))
                    progress.update()
            else:
                workers = min(num_workers, len(sources))
                chunksize = max(1, len(sources) // (workers * 8))
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    for packed in pool.map(job.encode_packed, sources, chunksize=chunksize):
                        results.append(list(packed))
                        progress.update()
        return results

    def midi_map_function(
        self,
        column: str = "midi",
        timing: str = "upstream",
        output_column: str = "input_ids",
        on_error: OnError = "raise",
        error_column: str | None = None,
    ) -> MidiMapFunction:
        """A picklable function for ``datasets.Dataset.map(..., batched=True)`` that tokenises a column.

        Example: ``dataset.map(tokenizer.midi_map_function("path"), batched=True, num_proc=2)``.

        Args:
            column: Column holding paths, MIDI bytes, or ``{"bytes": ..., "path": ...}`` dicts.
            timing: See :meth:`encode_midi`.
            output_column: Column to write the ids to.
            on_error: ``"raise"`` or ``"empty"`` (see :meth:`encode_midi_batch`).
            error_column: If set, also write the error message (``""`` when fine) to this column.

        Returns:
            The map function.
        """
        check_timing(timing)
        _check_on_error(on_error)
        return MidiMapFunction(column, timing, output_column, on_error, error_column)

    def decode_midi(self, ids: Any, velocity: VelocityArg = DEFAULT_VELOCITY) -> Any:
        """Decodes ids to a one-track piano score; malformed note groups are skipped.

        Args:
            ids: A 1-D id sequence (list, numpy array or tensor).
            velocity: A MIDI velocity for every note, or ``"simulated"`` (upstream's chord heuristic,
                see :func:`~gigapiano_notes.ids_to_timed_notes`).

        Returns:
            A ``symusic.Score`` in ticks, one tick per millisecond (500 ticks per quarter at 120 bpm),
            one track with program 0 (acoustic grand piano). ``encode_midi`` of it gives back ``ids``
            (well-formed groups, clamped fields), with one exception a single MIDI channel cannot hold:
            a note struck again at the same pitch while sounding and released after the re-strike's
            release ends at the re-strike (see :func:`~gigapiano_notes.end_at_restrikes`). To keep the
            order of notes sharing a 16 ms step, such a note may start up to 15 ms after its step
            (see :func:`~gigapiano_notes.order_keeping_delays`); ``ids_to_timed_notes`` gives upstream's
            times exactly.
        """
        return notes_to_score(*timed_note_arrays(ids, velocity, for_midi=True))

    def save_midi(
        self,
        ids: Any,
        path: str | os.PathLike,
        velocity: VelocityArg = DEFAULT_VELOCITY,
        text: str | None = None,
    ) -> Path:
        """Decodes ids and writes a MIDI file.

        Args:
            ids: A 1-D id sequence.
            path: Where to write the ``.mid`` file (the folder must exist).
            velocity: See :meth:`decode_midi`.
            text: Optional provenance (model, seed, settings...) stored as a marker event at time 0.

        Returns:
            The path written.
        """
        score = self.decode_midi(ids, velocity=velocity)
        if text is not None:
            import symusic

            score.markers.append(symusic.TextMeta(0, str(text)))
        path = Path(path)
        score.dump_midi(str(path))
        return path

    def ids_to_notes(self, ids: Any) -> list[Note]:
        """The notes ``(dt, dur, pitch)`` of an id sequence, skipping malformed groups; never raises."""
        return ids_to_notes(ids)

    def notes_to_ids(self, notes: Iterable[Sequence[int]]) -> list[int]:
        """``[127, dt, dur, pitch]`` per note, fields clamped to their legal ranges."""
        return notes_to_ids(notes)

    def ids_to_timed_notes(self, ids: Any, velocity: VelocityArg = DEFAULT_VELOCITY) -> list[TimedNote]:
        """Notes with absolute onset/offset in milliseconds (onsets accumulate ``dt * 16`` ms)."""
        return ids_to_timed_notes(ids, velocity)


def readable_tokens(ids: Sequence[int]) -> list[str]:
    """Position-aware token strings ``<sep>``, ``dt_N``, ``dur_N``, ``pitch_N`` (see the module docstring)."""
    values = as_id_array(ids).tolist() if len(ids) else []
    raw = list(ids)
    first_sep = values.index(SEP_ID) if SEP_ID in values else len(values)
    # The run before the first separator is labelled from its end: a window cut inside a note.
    position = 3 - first_sep if first_sep <= 3 else 3
    labels = []
    for value, original in zip(values, raw, strict=True):
        if value == SEP_ID:
            labels.append(SEP_TOKEN)
            position = 0
            continue
        if value < 0:
            labels.append(f"<invalid:{original}>")
        elif position < 3:
            labels.append(f"{_FIELD_NAMES[position]}_{value}")
        else:
            labels.append(str(value))
        position += 1
    return labels


def _check_on_error(on_error: str) -> None:
    """Validates ``on_error``."""
    if on_error not in ("raise", "empty"):
        raise ValueError(f"on_error must be 'raise' or 'empty', got {on_error!r}")


class MidiEncodeJob:
    """Tokenises one source with fixed settings; picklable, so it runs in worker processes.

    Args:
        timing: See :meth:`GigaPianoTokenizer.encode_midi`.
        on_error: ``"raise"`` or ``"empty"`` (log a warning, return ``[]``).
    """

    def __init__(self, timing: str = "upstream", on_error: OnError = "raise") -> None:
        self.timing = timing
        self.on_error = on_error

    def __call__(self, source: Any) -> list[int]:
        return self.encode_with_error(source)[0]

    def encode_packed(self, source: Any) -> bytes:
        """The ids as bytes (all ids are below 128): much cheaper to send back from a worker process."""
        return bytes(self.encode_with_error(source)[0])

    def encode_with_error(self, source: Any) -> tuple[list[int], str]:
        """Returns ``(ids, "")``, or ``([], message)`` for a bad file when ``on_error="empty"``."""
        try:
            return encode_midi(source, self.timing), ""
        except MidiTokenizationError as error:
            if self.on_error == "raise":
                raise
            logger.warning("skipping a MIDI file: %s", error)
            return [], str(error)


class MidiMapFunction:
    """Batched ``datasets.map`` function made by :meth:`GigaPianoTokenizer.midi_map_function`."""

    def __init__(
        self, column: str, timing: str, output_column: str, on_error: OnError, error_column: str | None
    ) -> None:
        self.column = column
        self.output_column = output_column
        self.error_column = error_column
        self.job = MidiEncodeJob(timing=timing, on_error=on_error)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        ids_column, errors = [], []
        for value in batch[self.column]:
            if isinstance(value, dict):  # e.g. {"bytes": ..., "path": ...} from a binary feature
                value = value.get("bytes") or value.get("path")
            ids, error = self.job.encode_with_error(value)
            ids_column.append(ids)
            errors.append(error)
        output: dict[str, list[Any]] = {self.output_column: ids_column}
        if self.error_column is not None:
            output[self.error_column] = errors
        return output


GigaPianoTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = [
    "TIMING_MODES",
    "GigaPianoTokenizer",
    "MidiEncodeJob",
    "MidiMapFunction",
    "MidiTokenizationError",
    "readable_tokens",
]
