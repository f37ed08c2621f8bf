"""`publish.py --dry_run`: the repo folder is complete, safe to publish, and loads alone for a stranger."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

import publish
from gigapiano.hub.repo_folder import assemble_model_repo, redact_local_paths, resolve_base_repo_id

REPO = Path(__file__).resolve().parents[1]
TINY_REPO_ID = "gigapiano-test/gigapiano-tiny"  # the ids the conftest fixtures publish for
TINY_LORA_REPO_ID = "gigapiano-test/gigapiano-tiny-lora"
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def files_of(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_model_folder_holds_weights_code_tokenizer_card_handler_and_records(
    published_tiny_repo, trained_tiny_run
):
    files = files_of(published_tiny_repo)
    assert {
        "README.md",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "configuration_gigapiano.py",
        "modeling_gigapiano.py",
        "tokenizer_config.json",
        "tokenization_gigapiano.py",
        "gigapiano_midi.py",
        "gigapiano_notes.py",
        "handler.py",
        "requirements.txt",
        "examples/fur_elise.mid",
        "all_results.json",
        "pieces.json",
        "style.yaml",
        "run_info.json",
        "trainer_state.json",
        "loss_curves.png",
    } == files  # fmt: skip  (nothing else: no checkpoints, no pickled training_args.bin)
    config = json.loads((published_tiny_repo / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_gigapiano.GigaPianoConfig",
        "AutoModelForCausalLM": "modeling_gigapiano.GigaPianoForCausalLM",
    }
    assert config["use_cache"] is True and config["pad_token_id"] is None  # separators are never padding
    generation = json.loads((published_tiny_repo / "generation_config.json").read_text())
    assert "pad_token_id" not in generation
    assert generation["cache_implementation"] == "static"  # train.py saved the fast generation defaults
    tokenizer_config = json.loads((published_tiny_repo / "tokenizer_config.json").read_text())
    assert tokenizer_config["auto_map"]["AutoTokenizer"][0] == "tokenization_gigapiano.GigaPianoTokenizer"
    assert tokenizer_config["model_max_length"] == config["max_position_embeddings"] == 64
    # Weights are the run's, bit for bit; handler and example are the project's.
    assert (
        load_file(published_tiny_repo / "model.safetensors").keys()
        == load_file(trained_tiny_run / "model.safetensors").keys()
    )
    assert sha256(published_tiny_repo / "model.safetensors") == sha256(trained_tiny_run / "model.safetensors")
    assert sha256(published_tiny_repo / "handler.py") == sha256(REPO / "handler.py")
    assert sha256(published_tiny_repo / "examples" / "fur_elise.mid") == sha256(
        REPO / "examples" / "fur_elise.mid"
    )
    requirements = (published_tiny_repo / "requirements.txt").read_text()
    assert "transformers" in requirements and "symusic" in requirements and "peft" not in requirements


def test_published_records_have_no_local_paths(published_tiny_repo, trained_tiny_run):
    raw = (trained_tiny_run / "run_info.json").read_text()
    assert str(trained_tiny_run.parent) in raw  # the run records where it was written...
    published = (published_tiny_repo / "run_info.json").read_text()
    assert str(trained_tiny_run.parent) not in published  # ...the Hub copy does not
    info = json.loads(published)
    assert info["arguments"]["data"]["maestro_dir"] == "<local>/maestro-v3.0.0"
    assert info["git_commit"] == json.loads(raw)["git_commit"]  # everything else is kept
    assert redact_local_paths({"a": ["/home/me/x.mid", "rel/y"], "b": 3}) == {
        "a": ["<local>/x.mid", "rel/y"],
        "b": 3,
    }


def test_adapter_folder_points_at_the_base_repo_id(published_tiny_lora_repo, trained_tiny_lora_run):
    files = files_of(published_tiny_lora_repo)
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "README.md"} <= files
    assert not {"config.json", "model.safetensors"} & files
    recorded = json.loads((trained_tiny_lora_run / "adapter_config.json").read_text())
    assert Path(recorded["base_model_name_or_path"]).is_absolute()  # train.py records the local folder
    adapter = json.loads((published_tiny_lora_repo / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == TINY_REPO_ID
    assert {k: v for k, v in adapter.items() if k not in ("base_model_name_or_path", "revision")} == {
        k: v for k, v in recorded.items() if k not in ("base_model_name_or_path", "revision")
    }
    assert "peft" in (published_tiny_lora_repo / "requirements.txt").read_text()
    # the handler's style_strength mixes in the base: its Hub id travels next to handler.py
    base = json.loads((published_tiny_lora_repo / "base_model.json").read_text())
    assert base == {"base_model": TINY_REPO_ID}
    assert "base_model.json" in (published_tiny_lora_repo / "README.md").read_text()  # the card lists it


def test_base_repo_id_is_inferred_from_the_base_folder_with_a_warning(
    trained_tiny_lora_run, tmp_path, caplog
):
    with caplog.at_level(logging.WARNING, logger="gigapiano.hub"):
        folder = assemble_model_repo(trained_tiny_lora_run, tmp_path / "repo", "someone/gigapiano-tiny-lora")
    assert folder.base_repo_id == "someone/gigapiano-tiny"  # <namespace>/<name of the base folder>
    assert "--base_repo_id" in caplog.text
    adapter = json.loads((folder.path / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "someone/gigapiano-tiny"


def test_merged_lora_run_publishes_weights_and_the_adapter(trained_tiny_lora_run, trained_tiny_run, tmp_path):
    run = tmp_path / "merged-run"  # the layout of train.py --lora --merge_lora, made from the two runs
    shutil.copytree(trained_tiny_lora_run, run / "adapter", ignore=shutil.ignore_patterns("checkpoint-*"))
    for name in ("config.json", "model.safetensors", "configuration_gigapiano.py", "modeling_gigapiano.py"):
        shutil.copy(trained_tiny_run / name, run / name)
    for name in ("run_info.json", "all_results.json", "tokenizer_config.json", "style.yaml", "pieces.json"):
        shutil.copy(trained_tiny_lora_run / name, run / name)
    folder = assemble_model_repo(run, tmp_path / "repo", "someone/merged", base_repo_id=TINY_REPO_ID)
    assert folder.kind == "merged"
    assert {"model.safetensors", "adapter/adapter_config.json", "adapter/adapter_model.safetensors"} <= set(
        folder.files
    )
    adapter = json.loads((folder.path / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == TINY_REPO_ID


def test_dry_run_never_overwrites_without_permission(trained_tiny_run, tmp_path, capsys):
    out = tmp_path / "repo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = [
        "--run_dir",
        str(trained_tiny_run),
        "--repo_id",
        TINY_REPO_ID,
        "--dry_run",
        "--output_dir",
        str(out),
    ]
    assert publish.main([*argv, "--log_level", "error"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "keep.txt").read_text() == "mine"
    assert publish.main([*argv, "--overwrite", "--log_level", "error"]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    # The run folder itself (or a parent of it) is never an output.
    bad = ["--run_dir", str(trained_tiny_run), "--repo_id", TINY_REPO_ID, "--dry_run", "--overwrite"]
    assert publish.main([*bad, "--output_dir", str(trained_tiny_run.parent), "--log_level", "error"]) == 1
    assert "would overwrite the input" in capsys.readouterr().err
    assert (trained_tiny_run / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--repo_id", "no-namespace", "--dry_run", "--output_dir", "x"], "NAMESPACE/NAME"),
        (["--repo_id", "a/b", "--dry_run"], "--dry_run needs --output_dir"),
        (
            ["--repo_id", "a/b", "--run_dir", "/no/such/run", "--dry_run", "--output_dir", "x"],
            "does not exist",
        ),
        (["--run_dir", "x"], "--repo_id"),
    ],
)
def test_bad_flags_give_one_line_errors(flags, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--run_dir" not in flags:
        flags = [*flags, "--run_dir", str(tmp_path)]
    code = publish.main(flags)
    err = capsys.readouterr().err.strip()
    assert code in (1, 2) and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert fragment in err and "Traceback" not in err


def put_in_hub_cache(cache: Path, repo_id: str, folder: Path, missing: tuple[str, ...] = ()) -> None:
    """Lay `folder` out as `huggingface_hub` caches a downloaded repo (refs/main -> snapshots/<commit>).

    `missing` lists files the Hub answered 404 for: huggingface_hub records them under `.no_exist/`.
    """
    root = cache / f"models--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(FAKE_COMMIT)
    shutil.copytree(folder, root / "snapshots" / FAKE_COMMIT)
    for name in missing:
        (root / ".no_exist" / FAKE_COMMIT).mkdir(parents=True, exist_ok=True)
        (root / ".no_exist" / FAKE_COMMIT / name).touch()


LOAD_BY_PATH = """
import json, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

report = {}
model = AutoModelForCausalLM.from_pretrained("full", trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained("full", trust_remote_code=True)
report["model_module"] = type(model).__module__
prompt = tokenizer.encode_midi("full/examples/fur_elise.mid")[-32:]
torch.manual_seed(0)
out = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=True)
report["full"] = out[0].tolist()

base = AutoModelForCausalLM.from_pretrained("full", trust_remote_code=True)
lora = PeftModel.from_pretrained(base, "lora").eval()
report["lora_modules"] = sum("lora_" in name for name, _ in lora.named_parameters())
report["lora_tokenizer"] = type(AutoTokenizer.from_pretrained("lora", trust_remote_code=True)).__name__
out = lora.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False)
report["lora"] = out[0].tolist()
report["prompt"] = prompt
print("REPORT" + json.dumps(report))
"""


@pytest.mark.slow
def test_published_folders_load_alone_offline_and_the_card_snippets_run(
    published_tiny_repo, published_tiny_lora_repo, tmp_path, run_isolated
):
    blocked = run_isolated("import tokenization")
    assert blocked.returncode != 0 and "Hub users lack the project" in blocked.stderr  # the isolation holds
    # 1. Each folder copied alone, loaded by path through the Auto classes (and peft for the adapter).
    shutil.copytree(published_tiny_repo, tmp_path / "full")
    shutil.copytree(published_tiny_lora_repo, tmp_path / "lora")
    result = run_isolated(LOAD_BY_PATH, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("REPORT", 1)[1])
    assert report["model_module"].startswith("transformers_modules.")  # the shipped code, not the project's
    assert report["lora_modules"] > 0 and report["lora_tokenizer"] == "GigaPianoTokenizer"
    for key in ("full", "lora"):
        ids = report[key]
        assert ids[: len(report["prompt"])] == report["prompt"] and len(ids) == len(report["prompt"]) + 24

    # 2. The cards' usage snippets, verbatim, against the repos as a Hub download leaves them in the cache:
    #    the adapter's base is found by its repo id, from the cached copy of the base repo.
    cache = tmp_path / "hub-cache"
    put_in_hub_cache(cache, TINY_REPO_ID, published_tiny_repo)
    put_in_hub_cache(cache, TINY_LORA_REPO_ID, published_tiny_lora_repo, missing=("config.json",))
    for folder, name in ((published_tiny_repo, "full"), (published_tiny_lora_repo, "lora")):
        snippet = re.search(
            r"## Usage\n\n```python\n(.*?)```", (folder / "README.md").read_text(), re.S
        ).group(1)
        work = tmp_path / f"snippet-{name}"
        work.mkdir()
        result = run_isolated(snippet, cwd=work, env={"HF_HUB_CACHE": str(cache)})
        assert result.returncode == 0, f"{name} snippet failed:\n{snippet}\n{result.stderr[-3000:]}"
        assert (work / "continuation.mid").read_bytes()[:4] == b"MThd"


def test_a_recorded_project_base_folder_maps_to_the_namespace(trained_tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_tiny_run, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    info = json.loads((run / "run_info.json").read_text())
    info["arguments"]["model"]["base_model"] = "models/gigapiano-base"  # train.py's default base
    (run / "run_info.json").write_text(json.dumps(info))
    assert resolve_base_repo_id(run, "someone/gigapiano-baroque", None) == "someone/gigapiano-base"
    assert resolve_base_repo_id(run, "someone/x", "other/base") == "other/base"
    folder = assemble_model_repo(run, tmp_path / "repo", "someone/gigapiano-baroque")
    card = (folder.path / "README.md").read_text()
    assert "base_model: someone/gigapiano-base" in card and "base_model_relation: finetune" in card
