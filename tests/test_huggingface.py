"""A Hugging Face model (a small BERT built from a config, nothing downloaded) under every layer-replacing
parameterisation, trained through a preset with PEFT-like targets, exported and reloaded into its own classes."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from transformers import BertConfig, BertModel

from paretorch import build_method, conditioned, ensemble, film, lowrank

TASKS = {"sentiment": 2, "topic": 3}


def _config():
    return BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                      max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


class TwoTaskBert(nn.Module):
    """A BERT encoder shared by two classification heads; forward takes a tokenizer's keyword tensors."""

    def __init__(self):
        super().__init__()
        self.backbone = BertModel(_config(), add_pooling_layer=False)
        self.heads = nn.ModuleDict({name: nn.Linear(16, classes) for name, classes in TASKS.items()})

    def forward(self, input_ids, attention_mask):
        first = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        return {name: head(first) for name, head in self.heads.items()}


def _batches(count=4, size=8):
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        ids = torch.randint(0, 50, (size, 10), generator=generator)
        mask = torch.ones(size, 10, dtype=torch.long)
        mask[: size // 2, 8:] = 0  # padded sequences
        # Labels that a collator would put beside the inputs, keyed by task (in another order than the heads).
        batches.append(({"input_ids": ids, "attention_mask": mask},
                        {"topic": ids[:, 1] % 3, "sentiment": (ids[:, 2] > 25).long()}))
    return batches


WRAPPERS = {
    "lowrank-query-value": lambda net: lowrank(net, 2, rank=2, targets=["query", "value"]),
    "ensemble": lambda net: ensemble(net, 2),
    "film": lambda net: film(net, 2),
    "conditioned": lambda net: conditioned(net, 2),
}


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_every_wrapper_steers_a_hugging_face_model(name):
    torch.manual_seed(0)
    pm = WRAPPERS[name](TwoTaskBert())
    with torch.no_grad():
        for param in pm.adapter_parameters():
            param.add_(0.1 * torch.randn_like(param))
    pm.eval()
    x = _batches()[0][0]
    for pref in ([0.0, 1.0], [0.3, 0.7]):
        steered, plain = pm(x, pref), pm.at(pref).eval()(**x)
        for task in TASKS:
            torch.testing.assert_close(steered[task], plain[task], atol=1e-6, rtol=1e-5)
    prefs = torch.tensor([[0.1, 0.9], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6],
                          [0.9, 0.1]])
    batched = pm(x, prefs)
    for row in range(len(prefs)):
        single = pm({key: value[row:row + 1] for key, value in x.items()}, prefs[row])
        for task in TASKS:
            torch.testing.assert_close(batched[task][row:row + 1], single[task], atol=1e-6, rtol=1e-5)


def test_lowrank_targets_select_the_attention_projections_by_name():
    pm = lowrank(TwoTaskBert(), 2, rank=2, targets=["query", "value"])
    assert pm.layer_names == [f"backbone.encoder.layer.{i}.attention.self.{kind}" for i in range(2)
                              for kind in ("query", "value")]
    shared = {row.name for row in pm.parameter_report().shared}
    assert "backbone.encoder.layer.0.attention.self.key" in shared and "backbone.embeddings.word_embeddings" in shared


def test_a_preset_trains_the_hugging_face_model_and_its_export_reloads_into_the_same_classes(tmp_path):
    torch.manual_seed(0)
    setup = build_method("palora", TwoTaskBert(), 2, epochs=3, lr=1e-2, rank=2, targets=["query", "value"])
    adapters = [p.detach().clone() for p in setup.pm.adapter_parameters()]
    history = setup.trainer({"sentiment": F.cross_entropy, "topic": F.cross_entropy}).fit(_batches())
    assert len(history) == 3
    assert all(not torch.equal(a, p) for a, p in zip(adapters, setup.pm.adapter_parameters(), strict=True))
    assert setup.pm.task_names == ["sentiment", "topic"]
    pref = [0.3, 0.7]
    path = setup.pm.export(tmp_path / "bert-0.3.safetensors", pref)
    fresh = TwoTaskBert().eval()
    fresh.load_state_dict(load_file(str(path)))
    setup.pm.eval()
    x = _batches()[1][0]
    expected = setup.pm(x, pref)
    reloaded = fresh(**x)
    for task in TASKS:
        torch.testing.assert_close(reloaded[task], expected[task], atol=1e-6, rtol=1e-5)
    # The exported backbone is a plain BertModel again: transformers' own save/load round trip (local files only).
    fresh.backbone.save_pretrained(tmp_path / "backbone")
    backbone = BertModel.from_pretrained(tmp_path / "backbone", add_pooling_layer=False).eval()
    torch.testing.assert_close(backbone(**x).last_hidden_state, fresh.backbone(**x).last_hidden_state)
