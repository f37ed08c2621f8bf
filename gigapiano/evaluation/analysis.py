"""From raw per-window losses, labels and statistics to the report's figures and the Done-when checks.

Every figure is an `Estimate` (value and 95% piece-bootstrap interval, see `bootstrap.py`); every
difference between the style model and the base model is paired: the same validation windows, or the same
prompts continued with the same seeds.

Done-when checks (computed, never written by hand), per style:

* (a) the style model's validation loss is at least 0.5 nats/token below its n-gram baseline's (point
  estimate), and below the base model's with a paired 95% interval that excludes 0;
* (b) at least 60% of the style model's continuations of its style's prompts are classified as the style,
  at least 15 points more than the base model's continuations of the same prompts, with a paired interval
  that excludes 0;
* (c) no generated note (base or style model) lies outside 21..108, and the style model's motif reuse is at
  least half that of the real continuations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .bootstrap import paired_bootstrap, piece_bootstrap

LOSS_MARGIN = 0.5
HIT_SHARE = 0.60
HIT_GAIN = 0.15
MOTIF_FRACTION = 0.5
REAL_ROW = "real"


def _loss(entry: Mapping[str, Any], resamples: int, seed: int) -> dict:
    return piece_bootstrap(
        entry["pieces"], entry["nats"], entry["tokens"], resamples=resamples, seed=seed
    ).to_dict()


def _loss_difference(a: Mapping[str, Any], b: Mapping[str, Any], resamples: int, seed: int) -> dict:
    if list(a["pieces"]) != list(b["pieces"]):
        raise ValueError("Paired losses need the same windows for both models.")
    return paired_bootstrap(
        a["pieces"], a["nats"], b["nats"], a["tokens"], b["tokens"], resamples=resamples, seed=seed
    ).to_dict()


def validation_table(
    losses: Mapping[str, Mapping[str, Mapping[str, Any]]], styles: Sequence[str], resamples: int, seed: int
) -> dict[str, dict[str, dict]]:
    """Per style: losses (nats/token) of the n-grams, the base and the style model, and paired differences.

    Args:
        losses: Row (`ngram-base`, `base`, `ngram-<style>`, `<style>`) -> style -> `nats`, `tokens`, `pieces`
            per validation window.
    """
    table = {}
    for style in styles:
        own_ngram = losses[f"ngram-{style}"][style]
        base_ngram = losses["ngram-base"][style]
        base, model = losses["base"][style], losses[style][style]
        table[style] = {
            "windows": len(model["pieces"]),
            "ngram_base": _loss(base_ngram, resamples, seed),
            "ngram_style": _loss(own_ngram, resamples, seed),
            "base": _loss(base, resamples, seed),
            "style": _loss(model, resamples, seed),
            "style_minus_base": _loss_difference(model, base, resamples, seed),
            "style_minus_ngram": _loss_difference(model, own_ngram, resamples, seed),
            "base_minus_ngram": _loss_difference(base, base_ngram, resamples, seed),
        }
    return table


def _hits_of(
    labels: Sequence[str], items: Sequence[tuple[str, str, tuple[int, int]]], style: str
) -> dict[tuple[int, int], tuple[str, float]]:
    """Key -> (piece, 1.0 if classified as `style`) of the items whose prompt is of `style`."""
    return {
        key: (piece, float(label == style))
        for label, (prompt_style, piece, key) in zip(labels, items, strict=True)
        if prompt_style == style
    }


def hit_table(
    labels: Mapping[str, Sequence[str]],
    rows: Mapping[str, Sequence[tuple[str, str, tuple[int, int]]]],
    styles: Sequence[str],
    resamples: int,
    seed: int,
) -> dict[str, dict]:
    """Per style: share of continuations of its prompts classified as the style.

    Args:
        labels: Row (`real`, `base`, a style) -> classifier label per item.
        rows: Row -> per item `(prompt style, piece, (prompt index, seed))`; the key pairs the base's and the
            style model's items; the real row has one item per prompt (seed -1).
    """
    table = {}
    for style in styles:
        base, own, real = (_hits_of(labels[row], rows[row], style) for row in ("base", style, REAL_ROW))
        keys = sorted(set(base) & set(own))
        pieces = [own[key][0] for key in keys]
        own_hits, base_hits = [own[key][1] for key in keys], [base[key][1] for key in keys]
        table[style] = {
            "continuations": len(keys),
            "real": piece_bootstrap(
                [p for p, _ in real.values()], [h for _, h in real.values()], resamples=resamples, seed=seed
            ).to_dict(),
            "base": piece_bootstrap(pieces, base_hits, resamples=resamples, seed=seed).to_dict(),
            "style": piece_bootstrap(pieces, own_hits, resamples=resamples, seed=seed).to_dict(),
            "style_minus_base": paired_bootstrap(
                pieces, own_hits, base_hits, resamples=resamples, seed=seed
            ).to_dict(),
        }
    return table


def hits_by_seed(
    labels: Mapping[str, Sequence[str]],
    rows: Mapping[str, Sequence[tuple[str, str, tuple[int, int]]]],
    styles: Sequence[str],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per style, row (`base`, the style) and seed: the plain share classified as the style."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for style in styles:
        result[style] = {}
        for row in ("base", style):
            by_seed: dict[int, list[float]] = {}
            for label, (prompt_style, _, key) in zip(labels[row], rows[row], strict=True):
                if prompt_style == style:
                    by_seed.setdefault(key[1], []).append(float(label == style))
            result[style][row] = {str(seed): float(np.mean(hits)) for seed, hits in sorted(by_seed.items())}
    return result


def stats_table(
    stats: Mapping[str, Sequence[dict[str, float]]],
    rows: Mapping[str, Sequence[tuple[str, str, tuple[int, int]]]],
    styles: Sequence[str],
    names: Sequence[str],
    resamples: int,
    seed: int,
) -> dict[str, dict[str, dict[str, dict]]]:
    """Per style and row (`real`, `base`, the style): mean of each statistic with its interval.

    Items whose statistic is undefined (NaN, e.g. no chord) are left out of that statistic. `outside_piano`
    is also reported as a total count (`outside_piano_total`).
    """
    table: dict[str, dict[str, dict[str, dict]]] = {}
    for style in styles:
        table[style] = {}
        for row in (REAL_ROW, "base", style):
            chosen = [
                (item, values) for item, values in zip(rows[row], stats[row], strict=True) if item[0] == style
            ]
            entry = {}
            for name in names:
                kept = [(item[1], values[name]) for item, values in chosen if not np.isnan(values[name])]
                entry[name] = piece_bootstrap(
                    [p for p, _ in kept], [v for _, v in kept], resamples=resamples, seed=seed
                ).to_dict()
            entry["outside_piano_total"] = int(sum(values["outside_piano"] for _, values in chosen))
            entry["continuations"] = len(chosen)
            table[style][row] = entry
    return table


def done_when(
    validation: Mapping[str, dict], hits: Mapping[str, dict], stats: Mapping[str, dict]
) -> list[dict]:
    """The Done-when checks of the module docstring, one entry per check and style."""
    checks = []
    for style in validation:
        loss = validation[style]
        below_ngram = loss["ngram_style"]["value"] - loss["style"]["value"]
        diff = loss["style_minus_base"]
        checks.append(
            {
                "check": "a",
                "style": style,
                "passed": bool(below_ngram >= LOSS_MARGIN and diff["value"] < 0 and diff["high"] < 0),
                "detail": f"style model {loss['style']['value']:.3f} nats/token, its n-gram "
                f"{loss['ngram_style']['value']:.3f}: {below_ngram:.3f} below it (needs >= {LOSS_MARGIN}); "
                f"style minus base {diff['value']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}] (needs < 0 "
                "with the interval below 0)",
            }
        )
        hit, gain = hits[style], hits[style]["style_minus_base"]
        checks.append(
            {
                "check": "b",
                "style": style,
                "passed": bool(
                    hit["style"]["value"] >= HIT_SHARE and gain["value"] >= HIT_GAIN and gain["low"] > 0
                ),
                "detail": f"classified as {style}: style model {hit['style']['value']:.1%}, base "
                f"{hit['base']['value']:.1%}; difference {100 * gain['value']:+.1f} points "
                f"[{100 * gain['low']:+.1f}, {100 * gain['high']:+.1f}] (needs >= {HIT_SHARE:.0%}, >= "
                f"{100 * HIT_GAIN:.0f} points, interval above 0)",
            }
        )
        rows = stats[style]
        outside = rows["base"]["outside_piano_total"] + rows[style]["outside_piano_total"]
        real_reuse, own_reuse = rows[REAL_ROW]["motif_reuse"]["value"], rows[style]["motif_reuse"]["value"]
        checks.append(
            {
                "check": "c",
                "style": style,
                "passed": bool(outside == 0 and own_reuse >= MOTIF_FRACTION * real_reuse),
                "detail": f"{outside} generated notes outside 21..108 (base and style model); motif reuse "
                f"{own_reuse:.3f} vs real {real_reuse:.3f} (needs >= {MOTIF_FRACTION} x real)",
            }
        )
    return checks


__all__ = ["REAL_ROW", "done_when", "hit_table", "hits_by_seed", "stats_table", "validation_table"]
