"""Write `examples/fur_elise.mid`: the opening of Beethoven's "Für Elise" (WoO 59), entered by this project.

The composition is in the public domain; the notes below were typed in for this repository (bars 1-8 with
the upbeat, right hand and left hand). One sixteenth note lasts 192 ms (a dotted quarter of about 52 bpm),
which is exactly twelve of the tokenizer's 16 ms steps, so the example round-trips without rounding.

    python examples/make_fur_elise.py [--output examples/fur_elise.mid]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import symusic

TICKS_PER_QUARTER = 480
SIXTEENTH = TICKS_PER_QUARTER // 4
#: 768 ms per quarter note -> 192 ms per sixteenth.
MICROSECONDS_PER_QUARTER = 768_000
E2, A2, E3, GS3, A3, C4, E4, GS4, A4, B4, C5, D5, DS5, E5 = (
    40,
    45,
    52,
    56,
    57,
    60,
    64,
    68,
    69,
    71,
    72,
    74,
    75,
    76,
)

# One bar of 3/8 is six sixteenths. Each entry: (bar, sixteenth in the bar, length in sixteenths, pitch).
# Bar 0 is the upbeat (its two notes fall on sixteenths 4 and 5).
_TURN = [(E5, 1), (DS5, 1), (E5, 1), (B4, 1), (D5, 1), (C5, 1)]
RIGHT_HAND: list[tuple[int, int, int, int]] = [
    (0, 4, 1, E5), (0, 5, 1, DS5),
    *[(1, i, length, pitch) for i, (pitch, length) in enumerate(_TURN)],
    (2, 0, 2, A4), (2, 3, 1, C4), (2, 4, 1, E4), (2, 5, 1, A4),
    (3, 0, 2, B4), (3, 3, 1, E4), (3, 4, 1, GS4), (3, 5, 1, B4),
    (4, 0, 2, C5), (4, 3, 1, E4), (4, 4, 1, E5), (4, 5, 1, DS5),
    *[(5, i, length, pitch) for i, (pitch, length) in enumerate(_TURN)],
    (6, 0, 2, A4), (6, 3, 1, C4), (6, 4, 1, E4), (6, 5, 1, A4),
    (7, 0, 2, B4), (7, 3, 1, E4), (7, 4, 1, C5), (7, 5, 1, B4),
    (8, 0, 4, A4),
]  # fmt: skip
# Left hand: broken chords on the first three sixteenths, each held to the end of the bar.
_BROKEN = {"Am": (A2, E3, A3), "E": (E2, E3, GS3)}
LEFT_HAND: list[tuple[int, int, int, int]] = [
    (bar, i, 6 - i, pitch)
    for bar, chord in ((2, "Am"), (3, "E"), (4, "Am"), (6, "Am"), (7, "E"), (8, "Am"))
    for i, pitch in enumerate(_BROKEN[chord])
]


def fur_elise_score() -> symusic.Score:
    """The opening as a one-track piano score (program 0) with a 768 ms quarter note."""
    score = symusic.Score(TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, mspq=MICROSECONDS_PER_QUARTER))
    score.time_signatures.append(symusic.TimeSignature(0, 3, 8))
    score.markers.append(
        symusic.TextMeta(0, "Fur Elise (Beethoven, WoO 59), bars 1-8; entered by GIGA-Piano")
    )
    track = symusic.Track(name="Piano", program=0)
    upbeat = 4 * SIXTEENTH  # the piece starts on the upbeat: shift so its first note is at tick 0
    for hand, velocity, legato in ((RIGHT_HAND, 72, 0.9), (LEFT_HAND, 56, 0.95)):
        for bar, sixteenth, length, pitch in hand:
            start = (bar * 6 + sixteenth) * SIXTEENTH - upbeat
            track.notes.append(symusic.Note(start, int(length * SIXTEENTH * legato), pitch, velocity))
    track.notes.sort(key=lambda note: (note.time, -note.pitch))
    score.tracks.append(track)
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).with_name("fur_elise.mid"),
        help="MIDI file to write (default: examples/fur_elise.mid next to this script).",
    )
    args = parser.parse_args()
    fur_elise_score().dump_midi(str(args.output))
    print(args.output)


if __name__ == "__main__":
    main()
