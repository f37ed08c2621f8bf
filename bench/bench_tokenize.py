"""Benchmark: tokenise the 150 MAESTRO files of ``../shared`` and compare with a pure-Python event walk.

Measures ``GigaPianoTokenizer.encode_midi_batch`` end to end (reading the files included), in this process
and with worker processes, checks the ids against upstream's reference tokens, and times in the same run
a straightforward baseline: upstream's reader re-stated as a per-event Python walk over ``mido`` messages
(what upstream's pure-Python TMIDIX does, event by event). Results go to stdout.

    python bench/bench_tokenize.py [--repeats 5] [--workers 2] [--no-baseline]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tokenization import GigaPianoTokenizer  # noqa: E402

SHARED_DIR = REPO_ROOT.parent / "shared"
logger = logging.getLogger("bench_tokenize")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--maestro_dir",
        type=Path,
        default=SHARED_DIR / "maestro-subset" / "maestro-v3.0.0",
        help="Folder searched recursively for *.mid / *.midi files (default: the shared 150-file subset).",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=SHARED_DIR / "reference" / "tokens.json.gz",
        help="Upstream token sequences (basename -> ids) to check exactness against; skipped if missing.",
    )
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs per configuration (default 5).")
    parser.add_argument(
        "--workers", type=int, default=2, help="Worker processes for the parallel run (default 2)."
    )
    parser.add_argument("--no-baseline", action="store_true", help="Skip the slow mido baseline (about 8 s).")
    return parser.parse_args()


def mido_walk_notes(path: Path) -> list[tuple[int, int, int, int]]:
    """Baseline: upstream's millisecond reader as a plain per-event loop over mido messages.

    Returns ``(onset_ms, duration_ms, channel, pitch)`` for every note.
    """
    import mido

    midi = mido.MidiFile(str(path))
    division = midi.ticks_per_beat
    tempo_at: dict[int, int] = {}
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                tempo_at[tick] = message.tempo
    tempo_ticks = sorted(tempo_at)
    notes = []
    for track in midi.tracks:
        rate, pending, ticks, exact, previous, absolute = 400 / division, 0, 0, 0.0, 0.0, 0
        sounding: dict[tuple[int, int], list[int]] = {}
        for message in track:
            delta, rest = message.time, message.time
            if message.type == "end_of_track" and delta == 0:
                break
            if pending < len(tempo_ticks) and tempo_ticks[pending] < ticks + delta:
                exact += rate * (tempo_ticks[pending] - ticks)
                rest -= tempo_ticks[pending] - ticks
                ticks = tempo_ticks[pending]
                rate = tempo_at[ticks] / (1000.0 * division)
                pending += 1
            exact += rate * delta
            ticks += rest
            if message.type == "set_tempo":
                continue
            absolute += round(exact - previous)
            previous = exact
            if message.type in ("note_on", "note_off"):
                key = (message.channel, message.note)
                if message.type == "note_on" and message.velocity > 0:
                    sounding.setdefault(key, []).append(absolute)
                elif sounding.get(key):
                    onset = sounding[key].pop(0)
                    notes.append((onset, absolute - onset, message.channel, message.note))
        notes += [
            (onset, absolute - onset, ch, pitch) for (ch, pitch), ons in sounding.items() for onset in ons
        ]
    return notes


def mido_walk_ids(path: Path) -> list[int]:
    """Baseline tokens: drop drums, sort (pitch descending, then stably by onset), quantise, clamp."""
    notes = sorted((n for n in mido_walk_notes(path) if n[2] != 9), key=lambda n: n[3], reverse=True)
    notes.sort(key=lambda n: n[0])
    ids, previous = [], None
    for onset, duration, _, pitch in notes:
        step = int(onset / 16)
        dt = 0 if previous is None else step - previous
        previous = step
        ids += [127, min(max(dt, 0), 126), min(max(int(duration / 32), 1), 126), min(max(pitch, 1), 126)]
    return ids


def timed(function, repeats: int) -> tuple[list[float], object]:
    """Runs ``function`` ``repeats`` times; returns the wall times and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return times, result


def exactness(ids_per_file: list[list[int]], paths: list[Path], reference_path: Path) -> str:
    """``files exact / notes identical`` against upstream's reference tokens, or why it was skipped."""
    if not reference_path.is_file():
        return f"not checked ({reference_path} absent)"
    with gzip.open(reference_path, "rt") as handle:
        reference = json.load(handle)
    files_exact = notes_same = notes_total = 0
    for ids, path in zip(ids_per_file, paths, strict=True):
        expected = reference[path.name]
        files_exact += ids == expected
        notes_total += len(expected) // 4
        notes_same += sum(
            ids[i : i + 4] == expected[i : i + 4] for i in range(0, min(len(ids), len(expected)), 4)
        )
    return f"{files_exact}/{len(paths)} files exact, {notes_same}/{notes_total} notes identical"


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = sorted(p for p in args.maestro_dir.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not paths:
        logger.error("no MIDI files under %s", args.maestro_dir)
        return 1
    tokenizer = GigaPianoTokenizer()
    tokenizer.encode_midi_batch(paths[:3], show_progress=False)  # warm-up: imports, caches

    times, ids_per_file = timed(lambda: tokenizer.encode_midi_batch(paths, show_progress=False), args.repeats)
    n_notes = sum(len(ids) // 4 for ids in ids_per_file)
    best, median = min(times), statistics.median(times)
    print(f"files: {len(paths)}  notes: {n_notes}")
    print(f"exactness vs upstream: {exactness(ids_per_file, paths, args.reference)}")
    print(f"1 process   : best {best:.3f} s ({n_notes / best / 1e6:.2f}M notes/s), median {median:.3f} s")
    if args.workers > 1:
        run = lambda: tokenizer.encode_midi_batch(paths, show_progress=False, num_workers=args.workers)  # noqa: E731
        worker_times, worker_ids = timed(run, args.repeats)
        assert worker_ids == ids_per_file, "worker processes gave different ids"
        w_best = min(worker_times)
        print(
            f"{args.workers} processes : best {w_best:.3f} s ({n_notes / w_best / 1e6:.2f}M notes/s), "
            f"median {statistics.median(worker_times):.3f} s"
        )
    if args.no_baseline:
        return 0
    try:
        import mido  # noqa: F401
    except ImportError:
        logger.warning("mido is not installed: no baseline (pip install mido)")
        return 0
    baseline_times, baseline_ids = timed(lambda: [mido_walk_ids(path) for path in paths], 1)
    assert baseline_ids == ids_per_file, "the baseline walk and the tokenizer disagree"
    base = baseline_times[0]
    print(
        f"baseline (mido per-event Python walk, same ids): {base:.2f} s ({n_notes / base / 1e3:.0f}k notes/s)"
    )
    print(f"speed-up over the baseline: {base / best:.1f}x (1 process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
