"""GIGA-Piano tokenization: the 128-id note vocabulary as a Hugging Face tokenizer, with MIDI in and out.

>>> from tokenization import GigaPianoTokenizer
>>> tokenizer = GigaPianoTokenizer()
>>> ids = tokenizer.encode_midi("piece.mid")          # [127, dt, dur, pitch, 127, ...]
>>> score = tokenizer.decode_midi(ids)                 # symusic.Score
"""

from .gigapiano_midi import TIMING_MODES, MidiTokenizationError
from .gigapiano_notes import (
    DEFAULT_VELOCITY,
    DURATION_STEP_MS,
    MAX_FIELD,
    MIN_DT,
    MIN_DURATION,
    MIN_PITCH,
    SEP_ID,
    TIME_STEP_MS,
    VOCAB_SIZE,
    Note,
    TimedNote,
)
from .tokenization_gigapiano import GigaPianoTokenizer, MidiEncodeJob, MidiMapFunction

__all__ = [
    "DEFAULT_VELOCITY",
    "DURATION_STEP_MS",
    "MAX_FIELD",
    "MIN_DT",
    "MIN_DURATION",
    "MIN_PITCH",
    "SEP_ID",
    "TIMING_MODES",
    "TIME_STEP_MS",
    "VOCAB_SIZE",
    "GigaPianoTokenizer",
    "MidiEncodeJob",
    "MidiMapFunction",
    "MidiTokenizationError",
    "Note",
    "TimedNote",
]
