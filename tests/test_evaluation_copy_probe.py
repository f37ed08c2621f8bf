"""The copy probe: losses of a passage and of its repeat, and its one-line errors."""

from __future__ import annotations

import math

import torch

from gigapiano.evaluation.copy_probe import main, repeat_losses
from gigapiano.generation.grammar import join_notes
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM


def test_repeat_losses_score_both_copies_and_their_pitches():
    torch.manual_seed(0)
    model = GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).eval()
    ids = join_notes([(4, 8, 60 + i) for i in range(6)])
    first, second, pitch_first, pitch_second = repeat_losses(model, ids)
    assert all(math.isfinite(value) and value > 0 for value in (first, second, pitch_first, pitch_second))
    with torch.no_grad():
        logits = model(torch.tensor([ids + ids])).logits[0]
    # 24 tokens per copy; the second copy's pitches (tokens 27, 31, ..., 47) are scored at 26, 30, ..., 46
    rows = list(range(26, 47, 4))
    expected = torch.nn.functional.cross_entropy(logits[rows], torch.tensor(ids + ids)[[r + 1 for r in rows]])
    assert abs(pitch_second - expected.item()) < 1e-5


def test_missing_model_folder_is_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path / "nothing"), "--maestro_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
