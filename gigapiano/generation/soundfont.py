"""A small SoundFont 2 sample player in numpy: WAV output that needs nothing but Python packages.

It reads a `.sf2` file (RIFF: `sdta/smpl` 16-bit samples, `pdta` presets, instruments, zones and sample
headers, as the SoundFont 2.01 specification lays them out) and renders notes of one preset (General MIDI
program 0, the acoustic grand piano, by default) as a sampler does: for each note every matching zone's
sample is resampled to the note's pitch (linear interpolation, loops honoured), shaped by the zone's volume
envelope (delay, attack, hold, decay, sustain, release), scaled by its attenuation and the note's velocity,
panned and mixed. What it leaves out: filters, LFOs, the modulation envelope, modulators other than the
default velocity curve, chorus and reverb. That is plenty for listening to a piano continuation; FluidSynth
is used instead whenever it is installed (see `gigapiano.generation.audio`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

# Generator numbers of the SoundFont 2.01 specification (section 8.1.2) that the player uses.
START_OFFSET, END_OFFSET, LOOP_START_OFFSET, LOOP_END_OFFSET = 0, 1, 2, 3
START_COARSE, END_COARSE, LOOP_START_COARSE, LOOP_END_COARSE = 4, 12, 45, 50
PAN, DELAY, ATTACK, HOLD, DECAY, SUSTAIN, RELEASE = 17, 33, 34, 35, 36, 37, 38
INSTRUMENT, KEY_RANGE, VEL_RANGE, ATTENUATION = 41, 43, 44, 48
COARSE_TUNE, FINE_TUNE, SAMPLE_ID, SAMPLE_MODES, SCALE_TUNING, ROOT_KEY = 51, 52, 53, 54, 56, 58
RANGES = (KEY_RANGE, VEL_RANGE)
#: Generators whose amount is unsigned (the rest are signed 16-bit).
UNSIGNED = (INSTRUMENT, SAMPLE_ID, SAMPLE_MODES, ROOT_KEY)
#: Instrument-level defaults that differ from 0 (timecents of -12000 = 1 ms; scale tuning 100 cents/key).
DEFAULTS = {DELAY: -12000, ATTACK: -12000, HOLD: -12000, DECAY: -12000, RELEASE: -12000,
            SCALE_TUNING: 100, ROOT_KEY: -1}  # fmt: skip
#: Where the volume envelope counts as silent (centibels of attenuation).
SILENT_CB = 960.0
LONGEST_RELEASE_S = 3.0
#: Loudest sample of a rendered piece, as a share of full scale (about -2 dBFS).
PEAK = 0.8


class SoundFontError(ValueError):
    """The file is not a SoundFont 2 file this player can read, or lacks the requested preset."""


@dataclass(frozen=True)
class SampleHeader:
    start: int
    end: int
    loop_start: int
    loop_end: int
    sample_rate: int
    original_pitch: int
    pitch_correction: int


@dataclass(frozen=True)
class Zone:
    """One playable region: a sample with its key/velocity ranges and the generators that shape it."""

    key_range: tuple[int, int]
    vel_range: tuple[int, int]
    sample: SampleHeader
    generators: dict[int, int]

    def value(self, generator: int) -> int:
        return self.generators.get(generator, DEFAULTS.get(generator, 0))


def _chunks(data: bytes, offset: int, end: int) -> dict[str, tuple[int, int]]:
    """Sub-chunks between `offset` and `end`: `{id or LIST type: (data start, data end)}`."""
    found = {}
    while offset + 8 <= end:
        name, size = struct.unpack_from("<4sI", data, offset)
        start = offset + 8
        key = name.decode("latin-1")
        if key == "LIST":
            key = data[start : start + 4].decode("latin-1")
            found.update(_chunks(data, start + 4, start + size))
        found[key] = (start, start + size)
        offset = start + size + (size & 1)
    return found


def _records(data: bytes, span: tuple[int, int], layout: str) -> list[tuple]:
    size = struct.calcsize(layout)
    return [struct.unpack_from(layout, data, offset) for offset in range(span[0], span[1] - size + 1, size)]


def _zone_generators(gens: list[tuple[int, bytes]], bags: list[tuple], bag_start: int, bag_end: int):
    """The generator dictionaries of the zones `bag_start..bag_end` (a bag = one zone)."""
    zones = []
    for bag in range(bag_start, bag_end):
        values: dict[int, int | tuple[int, int]] = {}
        for operator, amount in gens[bags[bag][0] : bags[bag + 1][0]]:
            if operator in RANGES:
                values[operator] = (amount[0], amount[1])
            else:
                values[operator] = struct.unpack("<H" if operator in UNSIGNED else "<h", amount)[0]
        zones.append(values)
    return zones


def _split_global(zones: list[dict], link: int) -> tuple[dict, list[dict]]:
    """A first zone without the linking generator is the global zone of the others."""
    if len(zones) > 1 and link not in zones[0]:
        return zones[0], zones[1:]
    return {}, zones


def _intersect(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return max(a[0], b[0]), min(a[1], b[1])


class SoundFont:
    """The zones of one preset of a SoundFont 2 file, ready to render notes."""

    def __init__(self, path: str | Path, bank: int = 0, program: int = 0):
        self.path = Path(path)
        data = self.path.read_bytes()
        if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"sfbk":
            raise SoundFontError(f"{self.path} is not a SoundFont 2 file (no RIFF sfbk header).")
        chunks = _chunks(data, 12, len(data))
        needed = ("smpl", "phdr", "pbag", "pgen", "inst", "ibag", "igen", "shdr")
        missing = [name for name in needed if name not in chunks]
        if missing:
            raise SoundFontError(f"{self.path} lacks the SoundFont chunk(s) {', '.join(missing)}.")
        start, end = chunks["smpl"]
        self.samples = np.frombuffer(data, dtype="<i2", count=(end - start) // 2, offset=start)
        presets = _records(data, chunks["phdr"], "<20sHHHIII")
        pbags = _records(data, chunks["pbag"], "<HH")
        pgens = [(op, data[o + 2 : o + 4]) for o, (op,) in self._offsets(data, chunks["pgen"])]
        insts = _records(data, chunks["inst"], "<20sH")
        ibags = _records(data, chunks["ibag"], "<HH")
        igens = [(op, data[o + 2 : o + 4]) for o, (op,) in self._offsets(data, chunks["igen"])]
        headers = [
            SampleHeader(s, e, ls, le, rate, pitch, correction)
            for _, s, e, ls, le, rate, pitch, correction, _, _ in _records(
                data, chunks["shdr"], "<20sIIIIIBbHH"
            )
        ]
        index = next(
            (i for i, p in enumerate(presets[:-1]) if (p[2], p[1]) == (bank, program)), None
        )  # the last header is the terminal record
        if index is None:
            raise SoundFontError(f"{self.path} has no preset {program} in bank {bank}.")
        preset_global, preset_zones = _split_global(
            _zone_generators(pgens, pbags, presets[index][3], presets[index + 1][3]), INSTRUMENT
        )
        self.zones: list[Zone] = []
        for pzone in preset_zones:
            pvalues = {**preset_global, **pzone}
            instrument = pvalues.get(INSTRUMENT)
            if instrument is None or instrument + 1 >= len(insts):
                continue
            inst_global, inst_zones = _split_global(
                _zone_generators(igens, ibags, insts[instrument][1], insts[instrument + 1][1]), SAMPLE_ID
            )
            for izone in inst_zones:
                values = {**inst_global, **izone}
                if SAMPLE_ID not in values or values[SAMPLE_ID] >= len(headers):
                    continue
                keys = _intersect(values.get(KEY_RANGE, (0, 127)), pvalues.get(KEY_RANGE, (0, 127)))
                vels = _intersect(values.get(VEL_RANGE, (0, 127)), pvalues.get(VEL_RANGE, (0, 127)))
                generators = {k: v for k, v in values.items() if k not in RANGES}
                for k, v in pvalues.items():  # preset generators add to the instrument's (spec 9.4)
                    if k not in RANGES and k not in (INSTRUMENT, SAMPLE_ID, SAMPLE_MODES, ROOT_KEY):
                        generators[k] = generators.get(k, DEFAULTS.get(k, 0)) + v
                self.zones.append(Zone(keys, vels, headers[values[SAMPLE_ID]], generators))
        if not self.zones:
            raise SoundFontError(f"{self.path}: preset {program} of bank {bank} has no playable zone.")

    @staticmethod
    def _offsets(data: bytes, span: tuple[int, int]) -> Iterable[tuple[int, tuple[int]]]:
        for offset in range(span[0], span[1] - 3, 4):
            yield offset, struct.unpack_from("<H", data, offset)

    def zones_for(self, key: int, velocity: int) -> list[Zone]:
        return [
            zone
            for zone in self.zones
            if zone.key_range[0] <= key <= zone.key_range[1]
            and zone.vel_range[0] <= velocity <= zone.vel_range[1]
        ]

    def render(
        self, notes: Iterable, sample_rate: int, tail_s: float = 1.5, peak: float = PEAK
    ) -> np.ndarray:
        """Render notes (`onset_ms`, `offset_ms`, `pitch`, `velocity`) to `(num_samples, 2)` int16 samples.

        The mix is scaled so its loudest sample is `peak` of full scale (no clipping, never too quiet).
        """
        notes = list(notes)
        last = max((note.offset_ms for note in notes), default=0)
        mix = np.zeros((round((last / 1000 + tail_s) * sample_rate) + 1, 2), dtype=np.float32)
        for note in notes:
            start = round(note.onset_ms * sample_rate / 1000)
            held = max(note.offset_ms - note.onset_ms, 1) / 1000
            velocity = max(1, min(127, int(note.velocity)))
            for zone in self.zones_for(note.pitch, velocity):
                voice = self._voice(zone, note.pitch, velocity, held, sample_rate)
                stop = min(start + len(voice), len(mix))
                mix[start:stop] += voice[: stop - start]
        loudest = float(np.abs(mix).max()) if len(mix) else 0.0
        if loudest > 0:
            mix *= peak / loudest
        return np.round(mix * 32767).astype(np.int16)

    def _voice(self, zone: Zone, key: int, velocity: int, held_s: float, sample_rate: int) -> np.ndarray:
        """One zone sounding one note: `(samples, 2)` float32, release included."""
        header, value = zone.sample, zone.value
        start = header.start + value(START_OFFSET) + 32768 * value(START_COARSE)
        end = header.end + value(END_OFFSET) + 32768 * value(END_COARSE)
        loop_start = header.loop_start + value(LOOP_START_OFFSET) + 32768 * value(LOOP_START_COARSE)
        loop_end = header.loop_end + value(LOOP_END_OFFSET) + 32768 * value(LOOP_END_COARSE)
        data = self.samples[max(start, 0) : max(min(end, len(self.samples)), start + 1)]
        root = value(ROOT_KEY) if value(ROOT_KEY) >= 0 else header.original_pitch
        cents = (key - root) * value(SCALE_TUNING) + 100 * value(COARSE_TUNE) + value(FINE_TUNE)
        cents += header.pitch_correction
        step = 2 ** (cents / 1200) * header.sample_rate / sample_rate
        envelope = _volume_envelope(zone, held_s, sample_rate)
        position = np.arange(len(envelope), dtype=np.float64) * step
        looped = value(SAMPLE_MODES) & 1 and 0 <= loop_start - start < loop_end - start <= len(data)
        if looped:
            first, length = loop_start - start, loop_end - loop_start
            beyond = position >= first + length
            position[beyond] = first + np.mod(position[beyond] - first, length)
        else:
            keep = position < len(data) - 1
            envelope, position = envelope[keep], position[keep]
        whole = position.astype(np.int64)
        fraction = (position - whole).astype(np.float32)
        following = np.minimum(whole + 1, len(data) - 1)
        if looped:
            following = np.where(following >= loop_end - start, loop_start - start, following)
        wave = data[whole] * (1 - fraction) + data[following] * fraction
        # attenuation (cB) plus the default velocity curve (40 log10(v / 127) dB, as FluidSynth's default)
        level = 10 ** (-value(ATTENUATION) / 200) * (velocity / 127) ** 2
        wave = wave.astype(np.float32) * np.float32(level / 32768) * envelope
        pan = min(max(value(PAN), -500), 500) / 1000 + 0.5
        return np.stack([wave * np.cos(pan * np.pi / 2), wave * np.sin(pan * np.pi / 2)], axis=1)


def _seconds(timecents: int) -> float:
    return 2.0 ** (timecents / 1200) if timecents > -12000 else 0.0


def _volume_envelope(zone: Zone, held_s: float, sample_rate: int) -> np.ndarray:
    """Gain per output sample: delay, linear attack, hold, decay to sustain in dB, release after `held_s`."""
    value = zone.value
    delay, attack, hold = _seconds(value(DELAY)), _seconds(value(ATTACK)), _seconds(value(HOLD))
    decay, sustain_cb = _seconds(value(DECAY)), min(max(value(SUSTAIN), 0), 1440)
    release = min(_seconds(value(RELEASE)), LONGEST_RELEASE_S)
    time = np.arange(round((held_s + release) * sample_rate) + 1, dtype=np.float64) / sample_rate
    attack_end = delay + attack
    decay_start = attack_end + hold
    attenuation = np.where(
        time < decay_start, 0.0, np.minimum((time - decay_start) / max(decay, 1e-9), 1.0) * sustain_cb
    )
    amplitude = 10 ** (-attenuation / 200)
    amplitude = np.where(time < delay, 0.0, amplitude)
    rising = (time >= delay) & (time < attack_end)
    amplitude[rising] *= (time[rising] - delay) / max(attack, 1e-9)
    releasing = time >= held_s
    if releasing.any():  # from the level at note-off down by SILENT_CB over the release time
        at_off = amplitude[np.argmax(releasing)]
        fade = np.minimum((time[releasing] - held_s) / max(release, 1e-9), 1.0) * SILENT_CB
        amplitude[releasing] = at_off * 10 ** (-fade / 200) * (fade < SILENT_CB)
    return amplitude.astype(np.float32)


@lru_cache(maxsize=4)
def load_soundfont(path: str, bank: int = 0, program: int = 0) -> SoundFont:
    """A parsed SoundFont (cached: `--style all` renders several pieces with the same file)."""
    return SoundFont(path, bank, program)


def render_notes(notes: Iterable, soundfont: str | Path, sample_rate: int, tail_s: float = 1.5) -> np.ndarray:
    """Notes to `(num_samples, 2)` int16 samples with the acoustic grand piano of `soundfont`."""
    return load_soundfont(str(soundfont)).render(notes, sample_rate, tail_s=tail_s)


__all__ = ["SoundFont", "SoundFontError", "load_soundfont", "render_notes"]
