"""The model's transformers capabilities: config-driven outputs, tuples, cache naming, loss, attention
backends, static cache, compilation, export and gradient checkpointing, each on a tiny random model."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from transformers import DynamicCache, StaticCache

from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM

VOCAB, CONTEXT = 128, 64


def tiny_model(**overrides) -> GigaPianoForCausalLM:
    """Tiny model without dropout; relative table longer than the context, as in every real checkpoint."""
    settings = dict(embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0, relative_attention_length=80)
    config = GigaPianoConfig.from_preset("tiny", **(settings | overrides))
    torch.manual_seed(0)
    return GigaPianoForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model() -> GigaPianoForCausalLM:
    return tiny_model()


def ids(batch: int = 2, length: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_config_flags_drive_hidden_states_and_attentions():
    model = tiny_model(output_hidden_states=True, output_attentions=True)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(ids(), use_cache=False)
    layers = model.config.num_hidden_layers
    assert len(out.hidden_states) == layers + 1 and len(out.attentions) == layers
    assert out.attentions[0].shape == (2, model.config.num_attention_heads, 12, 12)
    with torch.no_grad():
        off = model(ids(), use_cache=False, output_hidden_states=False, output_attentions=False)
    assert off.hidden_states is None and off.attentions is None
    torch.testing.assert_close(off.logits, out.logits)


def test_return_dict_false_gives_a_tuple(model):
    labels = ids()
    with torch.no_grad():
        as_dict = model(ids(), labels=labels, use_cache=False)
        as_tuple = model(ids(), labels=labels, use_cache=False, return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.loss)
    torch.testing.assert_close(as_tuple[1], as_dict.logits)


def test_past_key_values_is_the_deprecated_name_of_cache(model):
    prompt = ids(1, 8)
    with torch.no_grad():
        first = model(prompt[:, :5], use_cache=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            old = model(prompt[:, 5:], past_key_values=first.cache).logits
    assert any("`past_key_values` is deprecated" in str(w.message) for w in caught)
    with torch.no_grad():
        full = model(prompt, use_cache=False).logits
    torch.testing.assert_close(old, full[:, 5:], atol=1e-5, rtol=1e-5)


def test_loss_honours_shift_labels_and_num_items_in_batch(model):
    tokens = ids()
    labels = tokens.clone()
    labels[0, :4] = -100
    with torch.no_grad():
        plain = model(tokens, labels=labels, use_cache=False)
        aligned = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
        shifted = model(tokens, labels=torch.zeros_like(labels), shift_labels=aligned, use_cache=False)
        summed = model(tokens, labels=labels, num_items_in_batch=torch.tensor(5), use_cache=False)
    torch.testing.assert_close(shifted.loss, plain.loss)
    total = torch.nn.functional.cross_entropy(
        plain.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"
    )
    torch.testing.assert_close(summed.loss, total / 5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_set_attn_implementation_keeps_the_logits(model, implementation):
    tokens = ids()
    mask = torch.ones_like(tokens)
    mask[0, :3] = 0
    with torch.no_grad():
        reference = model(tokens, attention_mask=mask, use_cache=False).logits
        model.set_attn_implementation(implementation)
        try:
            logits = model(tokens, attention_mask=mask, use_cache=False).logits
        finally:
            model.set_attn_implementation("sdpa")
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(logits[1], reference[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[0, 3:], reference[0, 3:], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_flex_attention_equals_sdpa():
    """flex_attention (the relative term as its score modification; compiled, about 10 s on a CPU)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = tiny_model().to(device)
    tokens = ids().to(device)
    with torch.no_grad():
        sdpa = model(tokens, use_cache=False).logits
        model.set_attn_implementation("flex_attention")
        flex = model(tokens, use_cache=False).logits
    torch.testing.assert_close(flex, sdpa, atol=1e-4, rtol=1e-4)


def test_static_cache_generate_equals_dynamic_cache_generate(model):
    tokens = ids(2, 9, seed=4)
    mask = torch.ones_like(tokens)
    mask[1, :4] = 0  # a left-padded row
    kwargs = dict(
        attention_mask=mask,
        max_new_tokens=10,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
    )
    with torch.no_grad():
        dynamic = model.generate(tokens, **kwargs)
        static = model.generate(tokens, cache_implementation="static", **kwargs)
    assert torch.equal(static.sequences, dynamic.sequences)
    torch.testing.assert_close(torch.stack(static.logits), torch.stack(dynamic.logits), atol=1e-5, rtol=1e-5)


def static_decode(model, prompt, steps, step_fn=None):
    """Prefill a `StaticCache` eagerly, then run `steps` greedy one-token forwards through `step_fn`."""
    cache = StaticCache(config=model.config, max_cache_len=CONTEXT)
    step_fn = step_fn or model
    logits = model(prompt, cache=cache).logits[:, -1:]
    out = []
    for _ in range(steps):
        logits = step_fn(logits.argmax(-1), cache=cache).logits
        out.append(logits)
    return torch.cat(out, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_decode_step_compiles_as_one_graph(dtype):
    """`fullgraph=True` fails on any graph break; the eager backend keeps the test fast. In bf16 on a CPU
    the graph calls the packed product as a custom op: the same kernel as eager, so the same bits."""
    model = tiny_model().to(dtype)
    torch._dynamo.reset()
    compiled = torch.compile(model.forward, backend="eager", fullgraph=True)
    prompt = ids(1, 6, seed=2)
    with torch.no_grad():
        eager = static_decode(model, prompt, 4)
        graph = static_decode(model, prompt, 4, compiled)
    tolerance = 1e-5 if dtype == torch.float32 else 0.0
    torch.testing.assert_close(graph, eager, atol=tolerance, rtol=tolerance)


class LogitsOnly(torch.nn.Module):
    """What an exported scorer computes: logits of a whole window, no cache."""

    def __init__(self, model: GigaPianoForCausalLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, use_cache=False).logits


def test_torch_export_round_trip(model):
    """A dynamic sequence length exports without data-dependent guards and runs at other lengths."""
    tokens = ids(1, 10, seed=3)
    length = torch.export.Dim("length", min=2, max=CONTEXT)
    exported = torch.export.export(LogitsOnly(model), (tokens,), dynamic_shapes=({1: length},))
    with torch.no_grad():
        for sample in (tokens, ids(1, 17, seed=5)):
            reference = model(sample, use_cache=False).logits
            torch.testing.assert_close(exported.module()(sample), reference, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    tokens = ids()
    grads = []
    for checkpointing in (False, True):
        model = tiny_model().train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            assert model.is_activation_checkpointing
        model(tokens, labels=tokens).loss.backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5, msg=name)


# ----------------------------------------------------------------------------------------------------------
# Fast CPU inference paths: each must compute what the plain path computes.
# ----------------------------------------------------------------------------------------------------------


def long_model(dtype: torch.dtype = torch.float32) -> GigaPianoForCausalLM:
    """Tiny widths with a 600-token context, so prefills run the blocked (chunked) SDPA path."""
    model = tiny_model(max_position_embeddings=600, relative_attention_length=640).to(dtype)
    with torch.no_grad():  # larger position terms, so a wrong offset would show in the logits
        for layer in model.model.layers:
            layer.attn.relative_embedding.mul_(20)
    return model


def test_blocked_prefill_equals_one_pass():
    from modeling_gigapiano import modeling_gigapiano as modeling

    model = long_model()
    tokens = ids(2, 530, seed=6)
    mask = torch.ones_like(tokens)
    mask[1, :37] = 0
    with torch.no_grad():
        blocked = model(tokens, attention_mask=mask, use_cache=False).logits
        cache = DynamicCache(config=model.config)
        model(tokens[:, :200], attention_mask=mask[:, :200], cache=cache)
        after_prefix = model(tokens[:, 200:], attention_mask=mask, cache=cache).logits
        model.set_attn_implementation("eager")  # one pass, explicit softmax
        reference = model(tokens, attention_mask=mask, use_cache=False).logits
    assert 200 >= 4 * modeling._PREFILL_CHUNK  # both forwards run blocked
    torch.testing.assert_close(blocked[0], reference[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(blocked[1, 37:], reference[1, 37:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after_prefix[0], reference[0, 200:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after_prefix[1], reference[1, 200:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("capacity", [600, 300], ids=["cache-half-full", "cache-nearly-full"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_eager_static_cache_equals_dynamic_cache(dtype, capacity):
    """Eager steps on a static cache use its filled part (or, for one bf16 query in a cache at least 3/4
    full, all of it, the empty tail masked); both caches give the logits of one pass without a cache."""
    model = long_model(dtype)
    tokens = ids(1, 300, seed=7)
    outputs = []
    with torch.no_grad():
        for cache in (
            DynamicCache(config=model.config),
            StaticCache(config=model.config, max_cache_len=capacity),
        ):
            chunks = (tokens[:, :260], tokens[:, 260:290], tokens[:, 290:291], tokens[:, 291:292])
            outputs.append(torch.cat([model(chunk, cache=cache).logits for chunk in chunks], 1).float())
        model.set_attn_implementation("eager")  # no cache, one pass, explicit softmax
        reference = model(tokens[:, :292], use_cache=False).logits.float()
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(outputs[1], outputs[0], atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(outputs[0], reference, atol=tolerance, rtol=tolerance)


def test_packed_bf16_linear_is_exact_and_follows_the_weights():
    from modeling_gigapiano import modeling_gigapiano as modeling

    if not modeling._ONEDNN_BF16:
        pytest.skip("this torch build has no oneDNN bf16 kernels")
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96).to(torch.bfloat16)
    x = torch.randn(3, 5, 64).to(torch.bfloat16)
    with torch.no_grad():
        torch.testing.assert_close(modeling._linear(linear, x), linear(x), atol=0, rtol=0)
        assert id(linear.weight) in modeling._PACKED_WEIGHTS
        linear.weight.mul_(2)  # an in-place update (optimizer step, load) repacks
        torch.testing.assert_close(modeling._linear(linear, x), linear(x), atol=0, rtol=0)
        # GELU inside the product: rounded to bf16 once, so at least as close to fp32 as GELU after it.
        exact = F.gelu(F.linear(x.float(), linear.weight.float(), linear.bias.float()))
        fused = modeling._linear(linear, x, "gelu").float()
        after = F.gelu(linear(x)).float()
        assert (fused - exact).abs().max() <= (after - exact).abs().max()
        torch.testing.assert_close(fused, exact, atol=2e-2, rtol=2e-2)
    wrapped = torch.nn.Linear(64, 96).to(torch.bfloat16)
    wrapped.register_forward_hook(lambda module, args, out: out * 0)  # hooks keep the module's own call
    with torch.no_grad():
        assert modeling._linear(wrapped, x).abs().sum() == 0
    key = id(linear.weight)
    del linear
    assert key not in modeling._PACKED_WEIGHTS  # dropped with its weight


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(
    ("query_length", "offset", "key_length"),
    [(7, 0, 7), (5, 9, 14), (1, 13, 14), (1, 13, 20), (3, 4, 11)],
    ids=["whole", "chunk", "decode", "decode-static", "chunk-static"],
)
def test_relative_term_of_every_geometry_matches_its_definition(dtype, query_length, offset, key_length):
    """`q_i . Er[er_len - 1 - (i - j)]` for every visible key (j <= i) in eager inference, whatever path
    (strided skew, packed bf16 product for one query, gather for a tensor offset) computes it."""
    from modeling_gigapiano.modeling_gigapiano import relative_position_bias

    generator = torch.Generator().manual_seed(query_length + offset)
    q = torch.randn(2, 3, query_length, 8, generator=generator).to(dtype)
    table = torch.randn(24, 8, generator=generator).to(dtype)
    positions = torch.arange(query_length) + offset
    keys = torch.arange(key_length)
    rows = table.float()[23 - (positions[:, None] - keys).clamp(0)]
    expected = torch.einsum("bhtd,tjd->bhtj", q.float(), rows)
    visible = keys[None, :] <= positions[:, None]
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    with torch.no_grad():
        for query_offset in (offset, torch.tensor(offset)):
            bias = relative_position_bias(q, table, key_length, query_offset).float()
            assert bias.shape == (2, 3, query_length, key_length)
            torch.testing.assert_close(
                bias[..., visible], expected[..., visible], atol=tolerance, rtol=tolerance
            )
