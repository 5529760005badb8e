"""The multi-task network's refitted parts: layer mixture, prototype memory, checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from export.modeling import PrototypeMemory, build_model, default_backbone, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.export

LABELS = {"sentiment": ["negative", "neutral", "positive"], "intent": ["a", "b", "c"]}


def _memory(weight: float = 1.0) -> PrototypeMemory:
    # class a: two prototypes, class b: one (second slot padded), class c: none
    protos = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    pad = torch.tensor([[0.0, 0.0], [0.0, -1e4], [-1e4, -1e4]])
    return PrototypeMemory(protos, pad, tau=0.5, weight=weight)


def test_evidence_is_log_sum_exp_over_the_class_prototypes_only() -> None:
    pooled = torch.tensor([[3.0, 4.0]])  # unit vector (0.6, 0.8) once normalised
    evidence = _memory().evidence(pooled)[0]
    a = np.log(np.exp(0.6 / 0.5) + np.exp(1.0 / 0.5))
    b = 0.8 / 0.5
    assert evidence[0].item() == pytest.approx(a, rel=1e-5)
    assert evidence[1].item() == pytest.approx(b, rel=1e-5)
    assert evidence[2].item() < -1e3  # no prototype: no evidence


def test_memory_blends_probabilities_with_its_weight() -> None:
    pooled = torch.tensor([[0.0, 1.0]])
    logits = torch.tensor([[0.0, 0.0, 5.0]])  # the linear head says c
    only_head = _memory(weight=0.0)(pooled, logits).exp()
    only_memory = _memory(weight=1.0)(pooled, logits).exp()
    half = _memory(weight=0.5)(pooled, logits).exp()
    assert only_head.argmax().item() == 2
    assert only_memory.argmax().item() == 1
    assert torch.allclose(half, 0.5 * only_head + 0.5 * only_memory, atol=1e-6)
    assert half.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_refitted_heads_survive_a_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, tokenizer = build_model(default_backbone(), LABELS, layers={"sentiment": [3, 4, 5, 6]})
    assert model.heads["sentiment"].in_features == 4 * 384
    model.memory = PrototypeMemory(
        torch.nn.functional.normalize(torch.randn(6, 384), dim=-1), torch.zeros(3, 2), tau=0.05, weight=0.5
    )
    save_checkpoint(model, tokenizer, tmp_path)
    loaded, _ = load_checkpoint(tmp_path)
    model.eval()
    batch = tokenizer(["where is my card", "thanks"], padding=True, return_tensors="pt")
    with torch.no_grad():
        before, after = model(**batch), loaded(**batch)
    for head in LABELS:
        assert torch.allclose(before[head], after[head], atol=1e-5)
    assert loaded.needed_layers() == [3, 4, 5, 6]


def test_training_path_refuses_a_refitted_model() -> None:
    model, tokenizer = build_model(default_backbone(), LABELS, layers={"intent": [5, 6]})
    batch = tokenizer(["hi"], return_tensors="pt")
    with pytest.raises(ValueError, match="refitted"):
        model.with_pooled(**batch)


def test_sentence_embedding_concatenates_its_normalised_layers() -> None:
    last, _ = build_model(default_backbone(), LABELS)
    mixed, tokenizer = build_model(default_backbone(), LABELS, layers={"embedding": [2, 6]})
    assert mixed.needed_layers() == [2, 6]
    batch = tokenizer(["where is my card", "thanks a lot"], padding=True, return_tensors="pt")
    with torch.no_grad():
        means = mixed.layer_means(**batch, layers=[2, 6])
        default, combined = last.sentence_embedding(means), mixed.sentence_embedding(means)
    unit = torch.nn.functional.normalize
    assert torch.allclose(default, unit(means[6], dim=-1), atol=1e-6)  # no setting: the last layer
    assert combined.shape == (2, 2 * 384)
    assert torch.allclose(combined.norm(dim=-1), torch.ones(2), atol=1e-5)
    # each layer weighs the same: both halves have length 1/sqrt(2) whatever the layers' scales
    assert torch.allclose(combined[:, :384].norm(dim=-1), torch.full((2,), 2**-0.5), atol=1e-5)
    assert torch.allclose(combined[:, :384] * 2**0.5, unit(means[2], dim=-1), atol=1e-5)
