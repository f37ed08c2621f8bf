"""Does a model copy? Its loss on a passage seen a second time, right after the first.

A model that uses its context well predicts a verbatim repeat far better the second time: the whole passage
is there to be copied. For each model folder this prints the mean loss (nats per token; all tokens, and the
pitch tokens alone) on the first and the second copy of (a) random note sequences (nothing to know but the
copy) and (b) excerpts of held-out MAESTRO performances (the `test` split of the model's `pieces.json`),
each repeated once in one window. It motivated the motif memory of `gigapiano.generation`
(docs/sampling.md).

    python -m gigapiano.evaluation.copy_probe --maestro_dir ../shared/maestro/maestro-v3.0.0 \\
        models/gigapiano-base models/gigapiano-romantic
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from ..cli import EXPECTED_ERRORS, report_failure


def repeat_losses(model, notes_ids: list[int]) -> tuple[float, float, float, float]:
    """(all first, all second, pitch first, pitch second) mean losses of `notes_ids` followed by itself."""
    import torch
    import torch.nn.functional as F

    half = len(notes_ids)
    ids = torch.tensor([notes_ids + notes_ids], device=model.device)
    with torch.no_grad():
        losses = F.cross_entropy(model(ids).logits[0, :-1].float(), ids[0, 1:], reduction="none").cpu()
    # losses[i] scores token i + 1; a note is <sep> dt dur pitch, so pitches are scored at 2, 6, 10, ...
    return (
        losses[: half - 1].mean().item(),
        losses[half:].mean().item(),
        losses[2 : half - 1 : 4].mean().item(),
        losses[half + 2 :: 4].mean().item(),
    )


def probe(model_dir: str, maestro_dir: Path, notes: int, excerpts: int, seed: int = 0) -> dict[str, list]:
    """Mean losses per kind (`random`, `real`) for one model folder."""
    import torch

    from gigapiano.generation.grammar import join_notes
    from gigapiano.generation.resolve import load_model
    from tokenization import GigaPianoTokenizer

    model = load_model(model_dir, torch.device("cpu"))
    if 8 * notes > model.config.max_position_embeddings:
        raise ValueError(
            f"{2 * notes} notes do not fit the {model.config.max_position_embeddings}-token context."
        )
    rng = random.Random(seed)
    random_rows = []
    for _ in range(excerpts):
        sequence = [
            (rng.choice((0, 0, 8, 12, 16)), rng.randint(4, 20), rng.randint(48, 84)) for _ in range(notes)
        ]
        random_rows.append(repeat_losses(model, join_notes(sequence)))
    tokenizer = GigaPianoTokenizer()
    test = json.loads((Path(model_dir) / "pieces.json").read_text())["test"]
    real_rows = []
    for name in rng.sample(test, min(excerpts, len(test))):
        ids = tokenizer.encode_midi(maestro_dir / name)
        start = (len(ids) // 2) // 4 * 4  # a separator in the middle of the performance
        real_rows.append(repeat_losses(model, ids[start : start + 4 * notes]))
    return {"random": np.mean(random_rows, axis=0).tolist(), "real": np.mean(real_rows, axis=0).tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gigapiano.evaluation.copy_probe", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("models", nargs="+", help="Model folders (each with its pieces.json).")
    parser.add_argument("--maestro_dir", required=True, help="The MAESTRO v3.0.0 folder.")
    parser.add_argument("--notes", type=int, default=60, help="Notes per passage (default: 60).")
    parser.add_argument("--excerpts", type=int, default=8, help="Passages of each kind (default: 8).")
    parser.add_argument("--num_threads", type=int, default=None, help="torch intra-op threads.")
    args = parser.parse_args(argv)
    try:
        import torch

        if args.num_threads:
            torch.set_num_threads(args.num_threads)
        print("| model | passages | all tokens: 1st / 2nd copy | pitch tokens: 1st / 2nd copy |")
        print("|---|---|---|---|")
        for model_dir in args.models:
            result = probe(model_dir, Path(args.maestro_dir), args.notes, args.excerpts)
            for kind, label in (("random", "random notes"), ("real", "test excerpts")):
                first, second, pitch_first, pitch_second = result[kind]
                print(
                    f"| {Path(model_dir).name} | {label} | {first:.3f} / {second:.3f} "
                    f"| {pitch_first:.3f} / {pitch_second:.3f} |"
                )
    except (*EXPECTED_ERRORS, KeyboardInterrupt) as error:
        return report_failure(error, "gigapiano.evaluation.copy_probe")
    return 0


if __name__ == "__main__":
    sys.exit(main())
