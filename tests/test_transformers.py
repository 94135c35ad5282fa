"""Transformer models under every layer-replacing parameterisation: nn.MultiheadAttention, encoder and decoder
layers, LayerNorm and Embedding (PEFT-style table: model × wrapper through the same assertions)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paretorch import ParetorchError, build_method, conditioned, ensemble, film, lowrank
from paretorch.parameterisations import ParetoAttention, ParetoLayer
from paretorch.preferences import simplex_grid

VOCAB, WIDTH, LENGTH = 20, 16, 7


class TokenTransformer(nn.Module):
    """Embedding → encoder (2 layers) → decoder layer (causal self-attention, cross-attention) → two heads."""

    def __init__(self, batch_first: bool = True):
        super().__init__()
        self.batch_first = batch_first
        self.embedding = nn.Embedding(VOCAB, WIDTH)
        layer = nn.TransformerEncoderLayer(WIDTH, 4, 32, dropout=0.0, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=batch_first)
        self.decoder = nn.TransformerDecoderLayer(WIDTH, 4, 32, dropout=0.0, batch_first=batch_first)
        self.heads = nn.ModuleList([nn.Linear(WIDTH, 3), nn.Linear(WIDTH, 1)])

    def forward(self, tokens, padding=None):
        h = self.embedding(tokens)
        if not self.batch_first:
            h = h.transpose(0, 1)
        h = self.encoder(h, src_key_padding_mask=padding)
        causal = nn.Transformer.generate_square_subsequent_mask(tokens.shape[1])
        h = self.decoder(h, h, tgt_mask=causal, memory_key_padding_mask=padding)
        pooled = (h if self.batch_first else h.transpose(0, 1)).mean(dim=1)
        return [self.heads[0](pooled), self.heads[1](pooled).squeeze(-1)]


WRAPPERS = {
    "lowrank": lambda net: lowrank(net, 2, rank=2),
    "ensemble": lambda net: ensemble(net, 2),
    "film": lambda net: film(net, 2),
    "conditioned": lambda net: conditioned(net, 2),
}


def _inputs(batch=5):
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, VOCAB, (batch, LENGTH), generator=generator)
    padding = torch.zeros(batch, LENGTH, dtype=torch.bool)
    padding[:, LENGTH - 2:] = True
    return tokens, padding


def _steered(name, batch_first=True):
    torch.manual_seed(0)
    pm = WRAPPERS[name](TokenTransformer(batch_first))
    with torch.no_grad():  # move away from the start (zero adapters, equal FiLM) so that the checks can fail
        for param in pm.adapter_parameters():
            param.add_(0.1 * torch.randn_like(param))
    return pm


def _close(a, b, atol=1e-6):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("name", list(WRAPPERS))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_at_equals_the_steered_forward_and_per_sample_equals_a_loop(name, mode):
    pm = _steered(name)
    tokens, padding = _inputs()
    getattr(pm, mode)()
    for pref in simplex_grid(2, 3):
        plain = getattr(pm.at(pref), mode)()
        assert not any(isinstance(m, ParetoLayer) for m in plain.modules())
        with torch.no_grad():  # under no_grad torch's fused fast path runs the plain model in evaluation mode
            _close(pm(tokens, pref, padding), plain(tokens, padding))
    prefs = torch.tensor([[0.1, 0.9], [0.5, 0.5], [1.0, 0.0], [0.3, 0.7], [0.0, 1.0]])
    batched = pm(tokens, prefs, padding)
    for row in range(len(prefs)):
        single = pm(tokens[row:row + 1], prefs[row], padding[row:row + 1])
        _close([out[row:row + 1] for out in batched], single)


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_at_keeps_the_models_mode_in_every_module(name):
    # The merged attention is a new nn.MultiheadAttention: it must not come back in training mode (its dropout
    # running) from a model in evaluation mode.
    pm = _steered(name)
    tokens, padding = _inputs()
    for mode in (False, True):
        pm.train(mode)
        plain = pm.at([0.3, 0.7])
        assert all(module.training == mode for module in plain.modules())
    pm.eval()
    with torch.no_grad():
        _close(pm(tokens, [0.3, 0.7], padding), pm.at([0.3, 0.7])(tokens, padding))
    # A model put in evaluation mode before it is wrapped: its wrappers, and what at() returns, stay there.
    wrapped = WRAPPERS[name](TokenTransformer().eval())
    assert not any(module.training for module in wrapped.pareto_layers().values())
    assert not any(module.training for module in wrapped.at([0.3, 0.7]).modules())


@pytest.mark.parametrize("name", ["lowrank", "ensemble", "film"])
def test_attention_is_wrapped_whole_and_gradients_reach_its_projections(name):
    pm = _steered(name)
    attention = [layer for layer in pm.pareto_layers().values() if isinstance(layer, ParetoAttention)]
    assert len(attention) == 4, "two encoder self-attentions, decoder self- and cross-attention"
    assert not [n for n in pm.layer_names if n.endswith("out_proj")], "projections are never wrapped alone"
    report = {row.name: row for row in pm.parameter_report().layers}
    assert report["encoder.layers.0.self_attn"].layer_type == "MultiheadAttention"
    assert report["encoder.layers.0.self_attn"].base == 4 * WIDTH * WIDTH + 4 * WIDTH
    tokens, padding = _inputs()
    outputs = pm(tokens, [0.4, 0.6], padding)
    (outputs[0].sum() + outputs[1].sum()).backward()
    for layer in attention:
        for projection in layer.projections():
            grads = [p.grad for p in projection.adapter_parameters()]
            assert all(g is not None and g.abs().sum() > 0 for g in grads), projection.layer_name


def test_a_one_hot_preference_uses_only_its_own_task_adapters():
    pm = _steered("lowrank")
    query = pm.model.encoder.layers[0].self_attn.q_proj
    tokens, padding = _inputs()
    for task in range(2):
        pm.zero_grad()
        outputs = pm(tokens, torch.eye(2)[task], padding)
        (outputs[0].sum() + outputs[1].sum()).backward()
        rows = query.down.grad.view(2, query.rank, -1).abs().sum(dim=(1, 2))
        assert rows[task] > 0 and rows[1 - task] == 0


def test_a_lowrank_transformer_starts_at_the_users_model():
    torch.manual_seed(0)
    net = TokenTransformer().eval()
    pm = lowrank(net, 2, rank=2).eval()
    tokens, _ = _inputs()
    # Without a padding mask: with one, torch's own nested-tensor fast path (which the user's model takes here)
    # zeroes padded positions while its regular path does not, so the two differ before any wrapping.
    with torch.no_grad():
        _close(pm(tokens, [0.3, 0.7]), net(tokens))


def test_sequence_first_transformers_work_with_one_preference_per_batch():
    pm = _steered("lowrank", batch_first=False)
    tokens, padding = _inputs()
    with torch.no_grad():
        _close(pm(tokens, [0.3, 0.7], padding), pm.at([0.3, 0.7])(tokens, padding))


@pytest.mark.parametrize("method", ["pamal", "palora", "lorpman", "cosmos"])
def test_presets_train_a_transformer(method):
    torch.manual_seed(0)
    setup = build_method(method, TokenTransformer(), 2, epochs=2, lr=1e-2)
    tokens, _ = _inputs(24)
    targets = (tokens[:, 0] % 3, tokens[:, 1].float() / VOCAB)
    batches = [(tokens[i:i + 8], [targets[0][i:i + 8], targets[1][i:i + 8]]) for i in range(0, 24, 8)]
    before = {k: v.clone() for k, v in setup.pm.state_dict().items()}
    history = setup.trainer([F.cross_entropy, F.mse_loss]).fit(batches)
    assert len(history) == 2
    assert any(not torch.equal(before[k], v) for k, v in setup.pm.state_dict().items())


def test_unsupported_attention_options_and_lone_projections_are_refused_with_the_fix():
    net = nn.Sequential(nn.MultiheadAttention(WIDTH, 4, add_bias_kv=True))
    with pytest.raises(ParetorchError, match=r"add_bias_kv .* exclude=\['0'\]"):
        lowrank(net, 2)
    with pytest.raises(ParetorchError, match=r"belongs to the attention module 'encoder.layers.0.self_attn'"):
        lowrank(TokenTransformer(), 2, targets=["encoder.layers.0.self_attn.out_proj"])


def test_reading_a_steered_weight_directly_is_a_clear_error():
    pm = lowrank(nn.Sequential(nn.Linear(3, 2)), 2)
    layer = pm.model[0]
    assert layer.out_features == 2, "non-tensor attributes come from the user's layer"
    with pytest.raises(AttributeError, match="depends on the preference"):
        _ = ensemble(nn.Sequential(nn.LayerNorm(4)), 2).model[0].weight


def test_the_parameter_report_shows_wrapped_shared_and_frozen_parameters():
    pm = lowrank(TokenTransformer(), 2, rank=2, exclude=["heads"])
    report = pm.parameter_report()
    shared = {row.name: row for row in report.shared}
    assert shared["embedding"].layer_type == "Embedding" and shared["embedding"].count == VOCAB * WIDTH
    assert shared["encoder.layers.0.norm1"].layer_type == "LayerNorm" and "heads.0" in shared
    wrapped = sum(row.base for row in report.layers)
    assert wrapped + report.shared_total == report.base_total == sum(p.numel() for p in TokenTransformer().parameters())
    assert report.frozen_total == 0 and report.trainable_total == report.base_total + report.added_total
    pm.freeze_base()
    frozen = pm.parameter_report()
    assert frozen.trainable_total == frozen.added_total and frozen.frozen_total == frozen.base_total
    assert "trainable%: " in frozen.summary() and "shared (not wrapped)" in str(frozen)
    assert ensemble(TokenTransformer(), 2).parameter_report().shared == [], "ensemble wraps every parameter here"


# ----- steerable checkpoints ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*WRAPPERS, "hypernetwork", "residual hypernetwork", "plain"])
def test_save_pretrained_and_from_pretrained_give_identical_outputs(name, tmp_path):
    from paretorch import from_pretrained, hypernetwork, plain

    wrappers = WRAPPERS | {"hypernetwork": lambda net: hypernetwork(net, 2, hidden=8),
                           "residual hypernetwork": lambda net: hypernetwork(net, 2, hidden=8, residual=True,
                                                                             residual_step=0.3),
                           "plain": lambda net: plain(net, 2)}
    torch.manual_seed(0)
    pm = wrappers[name](TokenTransformer())
    with torch.no_grad():
        for param in pm.parameters():
            param.add_(0.05 * torch.randn_like(param))
    pm.task_names = ["topic", "score"]
    pm.save_pretrained(tmp_path / "saved")
    assert {p.name for p in (tmp_path / "saved").iterdir()} == {"pareto_model.safetensors", "paretorch_config.json"}
    torch.manual_seed(1)  # a fresh model of the same class, with other weights: the saved ones must replace them
    again = from_pretrained(tmp_path / "saved", TokenTransformer())
    assert again.task_names == ["topic", "score"] and again.layer_names == pm.layer_names
    tokens, padding = _inputs()
    pm.eval()
    again.eval()
    for pref in ([0.0, 1.0], [0.3, 0.7], [1.0, 0.0]):
        for a, b in zip(again(tokens, pref, padding), pm(tokens, pref, padding), strict=True):
            assert torch.equal(a, b)


def test_from_pretrained_refuses_another_class_a_custom_wrapper_and_damaged_files(tmp_path):
    from paretorch import from_pretrained, wrap
    from paretorch.parameterisations import LowRankLinear

    lowrank(TokenTransformer(), 2).save_pretrained(tmp_path / "lowrank")
    with pytest.raises(ParetorchError, match=r"does not have the layers|cannot load"):
        from_pretrained(tmp_path / "lowrank", nn.Sequential(nn.Linear(WIDTH, 2)))
    custom = {nn.Linear: lambda layer, state, name: LowRankLinear(layer, state, name, 1, 1.0)}
    wrap(TokenTransformer(), 2, custom, targets=["heads"], name="mine").save_pretrained(tmp_path / "custom")
    with pytest.raises(ParetorchError, match="pass build="):
        from_pretrained(tmp_path / "custom", TokenTransformer())
    rebuilt = from_pretrained(tmp_path / "custom", TokenTransformer(),
                              build=lambda model, tasks: wrap(model, tasks, custom, targets=["heads"], name="mine"))
    assert rebuilt.layer_names == ["heads.0", "heads.1"]
    (tmp_path / "lowrank" / "pareto_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ParetorchError, match="is the file intact"):
        from_pretrained(tmp_path / "lowrank", TokenTransformer())
