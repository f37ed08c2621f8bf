"""The model vs an independent reference of the upstream math; the cache, the converter, Auto loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM
from modeling_gigapiano.convert_gigapiano_checkpoint import (
    CheckpointConversionError,
    convert_checkpoint,
    convert_state_dict,
    infer_config,
    load_upstream_state_dict,
    rename_upstream_keys,
)

REPO = Path(__file__).resolve().parents[1]
VOCAB, CONTEXT, WIDTH, FF, HEADS, LAYERS, ER_LEN = 128, 48, 32, 40, 4, 3, 64


def random_upstream_state_dict(seed: int = 0, layers: int = LAYERS) -> dict[str, torch.Tensor]:
    """Random weights under upstream's key names (as `torch.save(model.state_dict())` wrote them)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    sd = {"tok_emb.weight": rnd(VOCAB, WIDTH, scale=1.0), "pos_emb": rnd(1, CONTEXT, WIDTH)}
    for n in range(layers):
        p = f"blocks.{n}."
        sd |= {
            p + "ln1.weight": 1 + rnd(WIDTH, scale=0.1),
            p + "ln1.bias": rnd(WIDTH, scale=0.1),
            p + "attn.in_proj_weight": rnd(3 * WIDTH, WIDTH),
            p + "attn.in_proj_bias": rnd(3 * WIDTH, scale=0.1),
            p + "attn.out_proj.weight": rnd(WIDTH, WIDTH),
            p + "attn.out_proj.bias": rnd(WIDTH, scale=0.1),
            p + "attn.Er": rnd(ER_LEN, WIDTH // HEADS, scale=1.0),
            p + "ln2.weight": 1 + rnd(WIDTH, scale=0.1),
            p + "ln2.bias": rnd(WIDTH, scale=0.1),
            p + "mlp.0.weight": rnd(FF, WIDTH),
            p + "mlp.0.bias": rnd(FF, scale=0.1),
            p + "mlp.2.weight": rnd(WIDTH, FF),
            p + "mlp.2.bias": rnd(WIDTH, scale=0.1),
        }
    sd |= {
        "ln_f.weight": 1 + rnd(WIDTH, scale=0.1),
        "ln_f.bias": rnd(WIDTH, scale=0.1),
        "head.weight": rnd(VOCAB, WIDTH),
    }
    return sd


def reference_logits(sd: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """Upstream GIGA-Piano math written out plainly, with the relative index built per (i, j)."""
    batch, length = ids.shape
    head_dim = WIDTH // HEADS
    x = sd["tok_emb.weight"][ids] + sd["pos_emb"][:, :length]
    i = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    rel_index = (ER_LEN - 1 - (i - j)).clamp(0, ER_LEN - 1)
    for n in range(LAYERS):
        p = f"blocks.{n}."
        h = F.layer_norm(x, (WIDTH,), sd[p + "ln1.weight"], sd[p + "ln1.bias"], 1e-5)
        q, k, v = (h @ sd[p + "attn.in_proj_weight"].T + sd[p + "attn.in_proj_bias"]).split(WIDTH, dim=-1)
        q, k, v = (t.reshape(batch, length, HEADS, head_dim).transpose(1, 2) for t in (q, k, v))
        q = q * head_dim**-0.5
        all_rel = q @ sd[p + "attn.Er"].T  # (B, H, L, ER_LEN)
        rel = torch.gather(all_rel, -1, rel_index.expand(batch, HEADS, length, length))
        scores = (q @ k.transpose(-1, -2) + rel).masked_fill(j > i, float("-inf"))
        attn = torch.softmax(scores, dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(batch, length, WIDTH)
        x = x + attn @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
        h = F.layer_norm(x, (WIDTH,), sd[p + "ln2.weight"], sd[p + "ln2.bias"], 1e-5)
        h = F.gelu(h @ sd[p + "mlp.0.weight"].T + sd[p + "mlp.0.bias"], approximate="none")
        x = x + h @ sd[p + "mlp.2.weight"].T + sd[p + "mlp.2.bias"]
    x = F.layer_norm(x, (WIDTH,), sd["ln_f.weight"], sd["ln_f.bias"], 1e-5)
    return x @ sd["head.weight"].T


@pytest.fixture(scope="module")
def upstream_sd() -> dict[str, torch.Tensor]:
    return random_upstream_state_dict()


@pytest.fixture(scope="module")
def model(upstream_sd) -> GigaPianoForCausalLM:
    return convert_state_dict(upstream_sd)


def test_infer_config_reads_every_size_from_shapes(upstream_sd):
    config = infer_config(upstream_sd)
    assert (config.vocab_size, config.hidden_size, config.intermediate_size) == (VOCAB, WIDTH, FF)
    assert (config.num_attention_heads, config.num_hidden_layers) == (HEADS, LAYERS)
    assert (config.max_position_embeddings, config.relative_attention_length) == (CONTEXT, ER_LEN)


def test_converter_maps_every_key_and_leaves_none_over(upstream_sd):
    renamed = rename_upstream_keys(upstream_sd)
    model_keys = set(GigaPianoForCausalLM(infer_config(upstream_sd)).state_dict())
    assert set(renamed) == model_keys
    assert len(renamed) == len(upstream_sd)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("prefixed", [False, True])
def test_logits_equal_reference(upstream_sd, implementation, prefixed):
    sd = {f"module.{k}": v for k, v in upstream_sd.items()} if prefixed else upstream_sd
    model = convert_state_dict(sd)
    model.config._attn_implementation = implementation
    ids = torch.randint(0, VOCAB, (2, CONTEXT), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(ids, use_cache=False).logits
    expected = reference_logits(upstream_sd, ids)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_attention_weights_are_returned_and_match_sdpa(upstream_sd):
    model = convert_state_dict(upstream_sd)
    ids = torch.randint(0, VOCAB, (1, 20))
    with torch.no_grad():
        sdpa_out = model(ids, use_cache=False).logits
        model.set_attn_implementation("eager")
        eager = model(ids, use_cache=False, output_attentions=True)
    assert len(eager.attentions) == LAYERS
    weights = eager.attentions[0]
    assert weights.shape == (1, HEADS, 20, 20)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, HEADS, 20))
    assert torch.all(weights.triu(diagonal=1) == 0), "future keys must get zero weight"
    torch.testing.assert_close(eager.logits, sdpa_out, atol=1e-5, rtol=1e-5)


def test_loss_is_shifted_cross_entropy(model):
    ids = torch.randint(0, VOCAB, (2, 16))
    labels = ids.clone()
    labels[0, :5] = -100
    out = model(ids, labels=labels, use_cache=False)
    expected = F.cross_entropy(
        out.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize("prompt_length", [1, 4, 17, 30])
def test_cached_greedy_decoding_equals_full_recomputation(model, prompt_length):
    prompt = torch.randint(
        0, VOCAB, (1, prompt_length), generator=torch.Generator().manual_seed(prompt_length)
    )
    new_tokens = CONTEXT - prompt_length
    with torch.no_grad():
        cached = model.generate(
            prompt,
            max_new_tokens=new_tokens,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        # upstream style: re-run the whole sequence for every new token
        seq = prompt
        full_logits = []
        for _ in range(new_tokens):
            logits = model(seq, use_cache=False).logits[:, -1]
            full_logits.append(logits)
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached.sequences, seq)
    torch.testing.assert_close(
        torch.stack(cached.logits, 1), torch.stack(full_logits, 1), atol=1e-4, rtol=1e-4
    )


def test_generate_without_attention_mask_attends_to_separators(model):
    """The separator (127) is no padding id: plain generate() must not mask the note separators."""
    prompt = torch.tensor([[127, 0, 10, 60, 127, 8, 10, 64, 127, 0, 10, 67, 127]])
    with torch.no_grad():
        generated = model.generate(
            prompt, max_new_tokens=6, do_sample=False, output_logits=True, return_dict_in_generate=True
        )
        expected = model(prompt, use_cache=False).logits[:, -1]
    torch.testing.assert_close(generated.logits[0], expected, atol=1e-5, rtol=1e-5)


def test_left_padded_batch_matches_unpadded_rows(model):
    gen = torch.Generator().manual_seed(3)
    short = torch.randint(0, 127, (1, 6), generator=gen)
    long = torch.randint(0, 127, (1, 11), generator=gen)
    pad = 127  # any id: padded positions are masked
    batch = torch.cat([torch.cat([torch.full((1, 5), pad), short], 1), long])
    mask = torch.ones_like(batch)
    mask[0, :5] = 0
    kwargs = dict(max_new_tokens=12, do_sample=False, output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        batched = model.generate(batch, attention_mask=mask, **kwargs)
        alone = [model.generate(row, **kwargs) for row in (short, long)]
    for row, single in enumerate(alone):
        assert torch.equal(batched.sequences[row, -12:], single.sequences[0, -12:])
        torch.testing.assert_close(
            torch.stack(batched.logits, 1)[row], torch.stack(single.logits, 1)[0], atol=1e-4, rtol=1e-4
        )


def test_input_longer_than_context_is_a_clear_error(model):
    with pytest.raises(ValueError, match="context is 48 tokens"):
        model(torch.zeros(1, CONTEXT + 1, dtype=torch.long))


def test_config_validation_names_the_bad_values():
    with pytest.raises(ValueError, match="hidden_size \\(30\\).*num_attention_heads \\(4\\)"):
        GigaPianoConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="relative_attention_length"):
        GigaPianoConfig(max_position_embeddings=2048, relative_attention_length=1024)
    with pytest.raises(ValueError, match="Unknown GIGA-Piano preset 'huge'"):
        GigaPianoConfig.from_preset("huge")


def test_presets_have_upstream_sizes():
    small, large = GigaPianoConfig.from_preset("small"), GigaPianoConfig.from_preset("large")
    assert (small.num_hidden_layers, large.num_hidden_layers) == (16, 24)
    for config in (small, large):
        assert (config.hidden_size, config.intermediate_size, config.num_attention_heads) == (1024, 1024, 16)
        assert (config.vocab_size, config.max_position_embeddings, config.relative_attention_length) == (
            128,
            1024,
            1024,
        )
        assert config.attn_pdrop == config.resid_pdrop == config.embd_pdrop == 0.1


def test_converter_rejects_preset_mismatch(upstream_sd):
    with pytest.raises(CheckpointConversionError, match="does not match preset 'small'"):
        convert_state_dict(upstream_sd, preset="small")


def test_converter_rejects_wrong_shapes_and_unknown_keys(upstream_sd):
    bad_shape = dict(upstream_sd)
    bad_shape["blocks.1.mlp.0.weight"] = torch.zeros(FF + 1, WIDTH)
    with pytest.raises(CheckpointConversionError, match="blocks|mlp|shape"):
        convert_state_dict(bad_shape)
    extra = dict(upstream_sd, **{"blocks.0.attn.extra": torch.zeros(1)})
    with pytest.raises(CheckpointConversionError, match="Unexpected keys.*blocks.0.attn.extra"):
        convert_state_dict(extra)
    missing = {k: v for k, v in upstream_sd.items() if k != "head.weight"}
    with pytest.raises(CheckpointConversionError, match="lacks 1 tensors.*lm_head.weight"):
        convert_state_dict(missing)


def test_corrupt_checkpoint_file_is_a_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointConversionError, match="Cannot read"):
        load_upstream_state_dict(corrupt)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_upstream_state_dict(tmp_path / "missing.pth")


def test_converter_cli_one_line_error_and_nonzero_exit(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02garbage")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeling_gigapiano.convert_gigapiano_checkpoint",
            "--checkpoint",
            str(corrupt),
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: Cannot read")
    assert "Traceback" not in result.stderr


def test_convert_save_and_load_in_fresh_offline_process(upstream_sd, tmp_path):
    """Upstream .pth (DataParallel keys) -> folder -> AutoModelForCausalLM with remote code, same logits."""
    checkpoint = tmp_path / "upstream.pth"
    torch.save({f"module.{k}": v for k, v in upstream_sd.items()}, checkpoint)
    out = tmp_path / "converted"
    convert_checkpoint(checkpoint, out)
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_gigapiano.GigaPianoForCausalLM"
    assert (out / "modeling_gigapiano.py").exists() and (out / "configuration_gigapiano.py").exists()
    assert (out / "model.safetensors").exists()
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["cache_implementation"] == "static"  # the fast generation defaults
    with pytest.raises(FileExistsError, match="not empty"):
        convert_checkpoint(checkpoint, out)

    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(5))
    torch.save(ids, tmp_path / "ids.pt")
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        "assert 'modeling_gigapiano' not in sys.modules\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True).eval()\n"
        "assert type(m).__module__.startswith('transformers_modules'), type(m).__module__\n"
        f"ids = torch.load({str(tmp_path / 'ids.pt')!r})\n"
        f"torch.save(m(ids).logits, {str(tmp_path / 'logits.pt')!r})\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "PYTHONPATH": "",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    torch.testing.assert_close(
        torch.load(tmp_path / "logits.pt"), reference_logits(upstream_sd, ids), atol=1e-5, rtol=1e-5
    )


def test_sampled_generation_is_seeded(model):
    prompt = torch.full((1, 1), 127)
    outs = []
    for _ in range(2):
        torch.manual_seed(11)
        outs.append(model.generate(prompt, max_new_tokens=20, do_sample=True, top_k=0, temperature=1.0))
    assert torch.equal(outs[0], outs[1])
    assert outs[0].shape == (1, 21)


def test_bf16_training_attention_matches_fp32_softmax_formulation(upstream_sd):
    """A bf16 CPU training step takes softmax in bf16 and an additive causal mask (both faster); its loss
    and gradients stay within bf16 rounding of the fp32-softmax, `where`-masked formulation it replaced."""
    from modeling_gigapiano import modeling_gigapiano as modeling

    reference_calls = []

    def fp32_softmax_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        reference_calls.append(1)
        position_bias = kwargs.pop("position_bias")
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling
        length = query.shape[-2]
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        scores = scores + torch.where(causal, position_bias, torch.finfo(position_bias.dtype).min)
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
        return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights

    ids = torch.randint(0, VOCAB, (4, CONTEXT), generator=torch.Generator().manual_seed(3))
    results = []
    for attention in (modeling.eager_attention_forward, fp32_softmax_attention):
        model = convert_state_dict(upstream_sd).train()
        for module in model.modules():  # no dropout: both runs must see the same function
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
            if hasattr(module, "attn_dropout"):
                module.attn_dropout = 0.0
        original = modeling.eager_attention_forward
        modeling.eager_attention_forward = attention
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(ids, labels=ids, use_cache=False).loss
            loss.backward()
        finally:
            modeling.eager_attention_forward = original
        grads = {name: p.grad.float() for name, p in model.named_parameters() if "relative" in name}
        results.append((loss.detach().float(), grads))
    assert len(reference_calls) == LAYERS, "the reference attention must replace the model's"
    (loss, grads), (expected_loss, expected_grads) = results
    torch.testing.assert_close(loss, expected_loss, atol=2e-2, rtol=1e-2)
    for name, grad in grads.items():
        scale = expected_grads[name].abs().max()
        assert (grad - expected_grads[name]).abs().max() <= 0.03 * scale, name
