"""Distributed training paths on CPUs: activation (gradient) checkpointing through transformers' `Trainer`,
and a 2-process FSDP2 run launched with `accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback, TrainingArguments

from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM

REPO = Path(__file__).resolve().parents[1]
SAMPLES, LENGTH, STEPS = 4, 32, 3


def tiny_model() -> GigaPianoForCausalLM:
    config = GigaPianoConfig.from_preset("tiny", embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    return GigaPianoForCausalLM(config)


def samples() -> list[dict[str, torch.Tensor]]:
    """One global batch of random windows, so every step sees all of them whatever the sampler's order."""
    ids = torch.randint(0, 128, (SAMPLES, LENGTH), generator=torch.Generator().manual_seed(1))
    return [{"input_ids": row, "labels": row} for row in ids]


def training_args(output_dir: Path | str, **overrides) -> TrainingArguments:
    """SGD (not Adam, whose normalised step magnifies rounding in near-zero gradients) for STEPS steps."""
    arguments = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=SAMPLES,
        max_steps=STEPS,
        learning_rate=0.1,
        optim="sgd",
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    return TrainingArguments(**(arguments | overrides))


class FirstGradients(TrainerCallback):
    """Keeps the gradients of the first optimizer step."""

    def __init__(self) -> None:
        self.gradients: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if not self.gradients:
            self.gradients = {name: p.grad.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("use_reentrant", [False, True], ids=["non-reentrant", "reentrant"])
def test_trainer_activation_checkpointing_gives_the_same_losses_and_gradients(tmp_path, use_reentrant):
    runs = {}
    for checkpointing in (False, True):
        model = tiny_model()
        block_calls: list[int] = []  # forwards of the first block's attention, recomputations included
        model.model.layers[0].attn.register_forward_hook(lambda *_, calls=block_calls: calls.append(1))
        gradients = FirstGradients()
        extra = {}
        if checkpointing:
            extra = {
                "activation_checkpointing": True,
                "activation_checkpointing_kwargs": {"use_reentrant": use_reentrant},
            }
        args = training_args(tmp_path / str(checkpointing), **extra)
        trainer = Trainer(model=model, args=args, train_dataset=samples(), callbacks=[gradients])
        trainer.train()
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        runs[checkpointing] = (losses, gradients.gradients, dict(model.named_parameters()), len(block_calls))
    plain_losses, plain_grads, plain_params, plain_calls = runs[False]
    losses, grads, params, calls = runs[True]
    # Checkpointing really ran: every block forward is recomputed in the backward pass.
    assert plain_calls == STEPS and calls == 2 * STEPS
    assert len(losses) == STEPS and losses == pytest.approx(plain_losses, abs=1e-6)
    assert grads.keys() == plain_grads.keys() and all(g.abs().sum() > 0 for g in plain_grads.values())
    for name, grad in plain_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    for name, param in plain_params.items():
        torch.testing.assert_close(params[name], param, atol=1e-6, rtol=1e-5, msg=name)


FSDP_SCRIPT = r'''
import json, os, sys
import torch
from accelerate import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor
from transformers import Trainer

sys.path.insert(0, os.environ["REPO"])
sys.path.insert(0, os.environ["TEST_DIR"])
from test_training_distributed import samples, tiny_model, training_args  # noqa: E402


class CpuFsdpTrainer(Trainer):
    """accelerate 1.16 enables FSDP only on accelerator devices; on CPUs its state says MULTI_CPU (plain data
    parallelism over gloo). Once that process group is up, switch the state to FSDP with the plugin that
    `accelerate launch` configured from the YAML (FSDP_* environment variables)."""

    def create_accelerator_and_postprocess(self):
        super().create_accelerator_and_postprocess()
        state = self.accelerator.state
        assert state.distributed_type == DistributedType.MULTI_CPU, state.distributed_type
        assert os.environ.get("ACCELERATE_USE_FSDP") == "true"
        state.distributed_type = PartialState().distributed_type = DistributedType.FSDP
        state.fsdp_plugin = FullyShardedDataParallelPlugin()
        self.is_fsdp_enabled = True


torch.set_num_threads(1)
output = sys.argv[1]
args = training_args(output, per_device_train_batch_size=2)
trainer = CpuFsdpTrainer(model=tiny_model(), args=args, train_dataset=samples())
trainer.train()
model = trainer.model_wrapped
block = model.model.layers[0]
weight = block.attn.qkv_proj.weight
report = {
    "rank": trainer.args.process_index,
    "world_size": trainer.args.world_size,
    "fsdp_version": trainer.accelerator.state.fsdp_plugin.fsdp_version,
    "model_sharded": isinstance(model, FSDPModule),
    "block_sharded": isinstance(block, FSDPModule),
    "dtensor": isinstance(weight, DTensor),
    "local_rows": weight.to_local().shape[0] if isinstance(weight, DTensor) else weight.shape[0],
    "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
}
trainer.save_model(output)
with open(os.path.join(output, f"report-{report['rank']}.json"), "w") as handle:
    json.dump(report, handle)
'''


def free_port() -> int:
    """A port nothing listens on now (a fixed one collides when two test runs share the machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_fsdp_two_cpu_processes_train_like_one_process(tmp_path):
    """`accelerate launch` with configs/accelerate/fsdp_cpu.yaml: 2 gloo processes, each block an FSDP2 unit
    with its parameters sharded in halves, 2 windows per process; same losses and weights as one process
    training on all 4 windows, and the saved folder is a loadable GIGA-Piano folder."""
    script = tmp_path / "fsdp_train.py"
    script.write_text(FSDP_SCRIPT)
    output = tmp_path / "fsdp"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "fsdp_cpu.yaml"),
        "--main_process_port",
        str(free_port()),
        str(script),
        str(output),
    ]
    env = {
        **os.environ,
        "REPO": str(REPO),
        "TEST_DIR": str(Path(__file__).resolve().parent),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]

    reports = [json.loads((output / f"report-{rank}.json").read_text()) for rank in (0, 1)]
    width = GigaPianoConfig.from_preset("tiny").hidden_size
    for report in reports:
        assert report["world_size"] == 2 and report["fsdp_version"] == 2
        assert report["model_sharded"] and report["block_sharded"] and report["dtensor"]
        assert report["local_rows"] == 3 * width // 2  # each process holds half of every weight

    single = tiny_model()
    trainer = Trainer(model=single, args=training_args(tmp_path / "single"), train_dataset=samples())
    trainer.train()
    single_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert reports[0]["losses"] == pytest.approx(single_losses, abs=1e-5)

    # The folder names the model's own class (not FSDP's wrapper class) and holds no torch FSDP files.
    config = json.loads((output / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_gigapiano.GigaPianoForCausalLM"
    assert not list(output.glob("_fsdp*.py")), sorted(p.name for p in output.iterdir())
    saved = load_file(output / "model.safetensors")
    expected = single.state_dict()
    assert saved.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(saved[name], tensor, atol=1e-5, rtol=1e-5, msg=name)
