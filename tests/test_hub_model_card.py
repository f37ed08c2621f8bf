"""Model cards: metadata that validates against the run's own numbers, prose per style, adapter pointers."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from gigapiano.hub.model_card import (
    METRIC_NAMES,
    TAGS,
    card_values,
    is_hub_id,
    render_model_card,
    write_model_card,
)

TINY_REPO_ID = "gigapiano-test/gigapiano-tiny"  # the ids the conftest fixtures publish for
TINY_LORA_REPO_ID = "gigapiano-test/gigapiano-tiny-lora"
REQUIRED_TAGS = {"music", "midi", "piano", "symbolic-music"}


def usage_snippet(card_text: str) -> str:
    return re.search(r"## Usage\n\n```python\n(.*?)```", card_text, re.S).group(1)


def test_card_metadata_validates_and_carries_the_runs_numbers(published_tiny_repo, trained_tiny_run):
    card = ModelCard.load(published_tiny_repo / "README.md")
    data = card.data
    assert data.license == "cc-by-nc-sa-4.0"
    assert REQUIRED_TAGS <= set(data.tags) and set(TAGS) <= set(data.tags) and "baroque" in data.tags
    assert data.pipeline_tag == "text-generation" and data.library_name == "transformers"
    assert data.datasets == ["gigapiano-test/gigapiano-maestro-styles"]
    assert data.base_model is None  # trained from scratch: no base to point at
    assert data.model_name == "gigapiano-tiny"

    # The model-index parses back into results equal to the run's all_results.json, metric by metric.
    results = json.loads((trained_tiny_run / "all_results.json").read_text())
    model_name, eval_results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert model_name == "gigapiano-tiny"
    measured = {result.metric_type: result.metric_value for result in eval_results}
    assert measured == {metric: results[key] for metric, key in METRIC_NAMES.items()}
    for result in eval_results:
        assert result.dataset_split == "validation" and result.task_type == "text-generation"
        assert result.dataset_type == "gigapiano-test/gigapiano-maestro-styles"
        assert result.dataset_config == "baroque"  # a named style: one config of the dataset repo
        assert result.dataset_args["split_seed"] == 42 and result.dataset_args["validation_fraction"] == 0.2

    # The prose table shows the same numbers, rounded.
    assert f"| loss (cross-entropy, nats/token) | {results['eval_loss']:.4f} |" in card.text
    assert f"| perplexity | {results['eval_perplexity']:.3f} |" in card.text


def test_card_prose_comes_from_the_style_notes_and_the_run(published_tiny_repo, trained_tiny_run):
    text = (published_tiny_repo / "README.md").read_text()
    info = json.loads((trained_tiny_run / "run_info.json").read_text())
    pieces = json.loads((trained_tiny_run / "pieces.json").read_text())
    assert "counterpoint" in text  # model_cards/styles/baroque.yaml
    assert "1.490" in text and "0.532" in text  # upstream's baroque reference, labelled as not comparable
    assert f"Steps: {info['global_step']} " in text and info["hardware"] in text
    assert f"| train | {len(pieces['train'])} |" in text
    assert "## Inference Endpoints" in text and "![Training and validation loss](loss_curves.png)" in text
    # Every published file is listed in the card's file table, the card itself included.
    files = sorted(
        str(p.relative_to(published_tiny_repo)) for p in published_tiny_repo.rglob("*") if p.is_file()
    )
    for name in files:
        assert f"| `{name}` |" in text, name


def test_usage_snippet_names_the_repo_and_fits_the_context(published_tiny_repo):
    snippet = usage_snippet((published_tiny_repo / "README.md").read_text())
    assert f'repo = "{TINY_REPO_ID}"' in snippet
    assert 'hf_hub_download(repo, "examples/fur_elise.mid")' in snippet
    context = json.loads((published_tiny_repo / "config.json").read_text())["max_position_embeddings"]
    assert "attention_mask=torch.ones_like(input_ids)" in snippet  # no separator is ever taken for padding
    prompt, new = re.search(r"\[-(\d+):\].*max_new_tokens=(\d+)", snippet, re.S).groups()
    assert int(prompt) + int(new) <= context
    compile(snippet, "usage", "exec")  # valid Python


def test_adapter_card_points_at_the_base_repo(published_tiny_lora_repo):
    card = ModelCard.load(published_tiny_lora_repo / "README.md")
    assert card.data.library_name == "peft"
    assert card.data.base_model == TINY_REPO_ID
    assert card.data.to_dict()["base_model_relation"] == "adapter"
    snippet = usage_snippet(card.text)
    assert f'AutoModelForCausalLM.from_pretrained("{TINY_REPO_ID}"' in snippet
    assert "PeftModel.from_pretrained(base, repo)" in snippet and f'repo = "{TINY_LORA_REPO_ID}"' in snippet
    # The context comes from the base model's config (the adapter repo has none): 64 tokens.
    assert "[-32:]" in snippet and "max_new_tokens=32" in snippet


def test_write_model_card_keeps_working_for_train_py(trained_tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_tiny_run, run, ignore=shutil.ignore_patterns("checkpoint-*", "*.safetensors"))
    (run / "README.md").unlink()
    path = write_model_card(run)
    card = ModelCard.load(path)
    assert card.data.license == "cc-by-nc-sa-4.0" and card.data.datasets is None
    assert "<namespace>/run" in card.text  # a draft: no repo id yet
    results = json.loads((run / "all_results.json").read_text())
    assert card.data.eval_results[0].metric_value == results["eval_loss"]


def test_card_refuses_an_unfinished_run(trained_tiny_run, tmp_path):
    run = tmp_path / "unfinished"
    run.mkdir()
    shutil.copy(trained_tiny_run / "run_info.json", run / "run_info.json")
    with pytest.raises(FileNotFoundError, match="all_results.json"):
        render_model_card(run)


def test_card_values_describe_a_local_base_without_a_hub_id(trained_tiny_lora_run):
    values = card_values(Path(trained_tiny_lora_run))
    assert values["base_model"] is None and values["is_adapter"]
    assert "local model folder" in values["base_model_description"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("someone/gigapiano-base", True),
        ("models/gigapiano-base", False),  # the project's shipped-model folder, even before it exists
        ("runs/gigapiano-baroque", False),
        ("/abs/path/model", False),
        ("./model", False),
        ("scratch:tiny", False),
        ("a/b/c", False),
        ("single-name", False),
    ],
)
def test_hub_ids_are_told_apart_from_local_folders(name, expected):
    assert is_hub_id(name) is expected
