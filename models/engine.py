"""The synchronous inference pipeline, split into its three steps.

``tokenize`` (pre-process) -> ``run`` (ONNX, one pass per graph) ->
``postprocess`` (calibrate and assemble results). ``predict`` chains them with
length bucketing. The micro-batcher calls the same steps from its worker
thread, so synchronous and asynchronous paths compute exactly the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from models.errors import InferenceError
from models.pack import LoadedPack
from models.postprocess import predictions
from models.tokenize import bucket_by_length
from models.types import TextPrediction

Tokens = tuple[np.ndarray, ...]
"""One text's id arrays, one per distinct tokenizer of the pack (usually exactly one)."""

DEFAULT_RUN_OVERHEAD_TOKENS = 64.0

BatchHook = Callable[[int, int, float], None]
"""Called after every ONNX batch with (texts, real tokens, seconds)."""


class Engine:
    """Runs a loaded pack: every graph once per batch, every head from its graph's output."""

    def __init__(self, pack: LoadedPack) -> None:
        self.pack = pack
        self._encoder_keys = list(pack.encoders)
        self._encoders = [pack.encoders[key] for key in self._encoder_keys]
        self._slots = {key: index for index, key in enumerate(self._encoder_keys)}
        # head -> (graph key, output name): fixed at load, looked up per batch.
        self._head_sources = {name: (head.graph, head.output) for name, head in pack.heads.items()}
        # Fixed cost of one ONNX run in padded-token equivalents; calibrated by the runtime's warm-up.
        self.run_overhead_tokens = DEFAULT_RUN_OVERHEAD_TOKENS

    def tokenize(self, texts: Sequence[str]) -> list[Tokens]:
        """Pre-process: ids per text and tokenizer, truncated, not yet padded."""
        per_encoder = [encoder.encode(texts) for encoder in self._encoders]
        return list(zip(*per_encoder, strict=True))

    @staticmethod
    def length(tokens: Tokens) -> int:
        """Tokens a text costs in a batch: its longest id array."""
        return max(len(ids) for ids in tokens)

    def run(self, batch: Sequence[Tokens]) -> dict[str, np.ndarray]:
        """Run every graph once on a batch; returns logits [batch, labels] per head.

        Raises InferenceError when a session fails or returns an unexpected shape.
        """
        outputs: dict[tuple[str, str], np.ndarray] = {}
        for key, runner in self.pack.graphs.items():
            slot = self._slots[runner.encoder_key]
            feed = runner.feed([tokens[slot] for tokens in batch], self._encoders[slot].pad_id)
            try:
                values = runner.session.run(list(runner.outputs), feed)
            except Exception as exc:
                raise InferenceError(f"graph {key!r} failed on a batch of {len(batch)}: {exc}") from exc
            for name, value in zip(runner.outputs, values, strict=True):
                outputs[(key, name)] = np.asarray(value)
        logits = {head: outputs[source] for head, source in self._head_sources.items()}
        for head, value in logits.items():
            expected = (len(batch), len(self.pack.heads[head].labels))
            if value.shape != expected:
                raise InferenceError(
                    f"head {head!r} returned shape {list(value.shape)}, expected {list(expected)}"
                )
        return logits

    def postprocess(self, logits: dict[str, np.ndarray]) -> list[TextPrediction]:
        """Post-process: calibrated probabilities -> one TextPrediction per row."""
        return predictions(logits, self.pack.heads)

    def infer(self, batch: Sequence[Tokens], on_batch: BatchHook | None = None) -> list[TextPrediction]:
        """Run + post-process one already-formed batch, reporting it to ``on_batch``."""
        started = time.perf_counter()
        results = self.postprocess(self.run(batch))
        if on_batch is not None:
            on_batch(len(batch), sum(self.length(tokens) for tokens in batch), time.perf_counter() - started)
        return results

    def predict(
        self,
        texts: Sequence[str],
        max_batch_size: int,
        max_batch_tokens: int,
        on_batch: BatchHook | None = None,
    ) -> list[TextPrediction]:
        """Predict every text in order, in length-bucketed batches within the given limits."""
        if not texts:
            return []
        tokens = self.tokenize(texts)
        return self.predict_tokens(tokens, max_batch_size, max_batch_tokens, on_batch)

    def plan(self, tokens: Sequence[Tokens], max_batch_size: int, max_batch_tokens: int) -> list[list[int]]:
        """Length-bucketed batches (lists of indices into ``tokens``), shortest first."""
        lengths = [self.length(item) for item in tokens]
        return bucket_by_length(lengths, max_batch_size, max_batch_tokens, self.run_overhead_tokens)

    def predict_tokens(
        self,
        tokens: Sequence[Tokens],
        max_batch_size: int,
        max_batch_tokens: int,
        on_batch: BatchHook | None = None,
    ) -> list[TextPrediction]:
        """Like ``predict`` for already tokenized texts; results keep the input order."""
        results: dict[int, TextPrediction] = {}
        for group in self.plan(tokens, max_batch_size, max_batch_tokens):
            results.update(zip(group, self.infer([tokens[i] for i in group], on_batch), strict=True))
        return [results[index] for index in range(len(tokens))]
