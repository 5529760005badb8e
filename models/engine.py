"""The synchronous inference pipeline, split into its three steps.

``tokenize`` (pre-process: normalise the transcript, detect its language,
tokenize) -> ``run`` (ONNX, one pass per graph) -> ``postprocess`` (calibrate
and assemble results). ``predict`` chains them with length bucketing. The
micro-batcher calls the same steps from its worker thread, so synchronous and
asynchronous paths compute exactly the same thing.

Batch invariance: dynamic int8 quantization computes one activation scale per
input tensor, so a text padded into a batch gets slightly different scores
from the same text alone (measured on pack v1: up to 0.2 in probability, 2% of
sentiment labels flipped). With ``invariant=True`` (the default) every text of
a micro-batch runs as its own ONNX call at its exact length: its scores depend
on its text only, and a decision can be replayed from a stored transcript.
Batching still pays for the queueing, tokenization, post-processing and the
Python-to-C++ crossings; ``bench runtime`` measures what the per-text calls cost.

Thread plan of padded runs (``invariant=False``): a run of at most
``single_thread_tokens`` padded tokens goes to a second set of sessions with one
intra-op thread, larger runs to the sessions with the CPU quota's threads. A
short run finishes before a second thread would pay for its wake-up and
synchronisation, and leaves the other core to the event loop and tokenizer
(measured on two quiet cores, one thread vs two: 1 text x 25 tokens 2.15 vs
2.66 ms, 3 x 25 = 75 tokens 6.30 vs 6.34 ms, 4 x 27 = 108 tokens 8.89 vs
8.07 ms, 32 x 28 tokens 92 vs 52 ms; hence the default of 64 tokens).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from models.cpu import name_os_thread
from models.errors import InferenceError
from models.language import LanguageDetector, LanguageResult
from models.normalize import Normalized, normalize
from models.pack import GraphRunner, LoadedPack
from models.postprocess import predictions
from models.tokenize import bucket_by_length
from models.types import TextPrediction

EMBEDDING = "__embedding__"


@dataclass(frozen=True)
class Tokens:
    """One text after pre-processing: id arrays (one per distinct tokenizer), normalisation, language."""

    ids: tuple[np.ndarray, ...]
    norm: Normalized
    language: LanguageResult


DEFAULT_RUN_OVERHEAD_TOKENS = 64.0

BatchHook = Callable[[int, int, float], None]
"""Called after every ONNX batch with (texts, real tokens, seconds)."""


class Engine:
    """Runs a loaded pack: every graph once per batch, every head from its graph's output."""

    def __init__(
        self,
        pack: LoadedPack,
        invariant: bool = True,
        workers: int = 1,
        single_thread_graphs: Mapping[str, GraphRunner] | None = None,
        single_thread_tokens: int = 0,
        lone_text_graphs: Mapping[str, GraphRunner] | None = None,
    ) -> None:
        """``single_thread_graphs`` (optional): the pack's graphs on one-intra-op-thread sessions, used
        for runs of at most ``single_thread_tokens`` padded tokens (see the module docstring).
        ``lone_text_graphs`` (optional): the graphs on sessions with every CPU, used for a batch
        of one text that may take the whole machine (``run(..., parallel=True)``)."""
        self.pack = pack
        self.invariant = invariant
        self.workers = max(1, workers)
        self._single_thread_graphs = single_thread_graphs
        self.single_thread_tokens = single_thread_tokens if single_thread_graphs is not None else 0
        self._lone_text_graphs = lone_text_graphs
        # Row workers for per-text runs: ONNX Runtime releases the GIL, so texts run side by side.
        self._pool = (
            ThreadPoolExecutor(self.workers, "sb-rows", initializer=name_os_thread)
            if invariant and self.workers > 1
            else None
        )
        self.languages = LanguageDetector(pack.manifest.languages)
        self._encoder_keys = list(pack.encoders)
        self._encoders = [pack.encoders[key] for key in self._encoder_keys]
        self._slots = {key: index for index, key in enumerate(self._encoder_keys)}
        # head -> (graph key, output name): fixed at load, looked up per batch.
        self._head_sources = {name: (head.graph, head.output) for name, head in pack.heads.items()}
        embedding = pack.manifest.embedding
        if embedding is not None:
            self._head_sources[EMBEDDING] = (embedding.graph, embedding.output)
        # Fixed cost of one ONNX run in padded-token equivalents; calibrated by the runtime's warm-up.
        self.run_overhead_tokens = DEFAULT_RUN_OVERHEAD_TOKENS

    @property
    def has_lone_text_graphs(self) -> bool:
        """Whether a lone text may run on the every-CPU sessions."""
        return self._lone_text_graphs is not None

    def drop_lone_text_graphs(self) -> None:
        """Run lone texts on one thread like the rest, and let the every-CPU sessions go."""
        self._lone_text_graphs = None

    def close(self) -> None:
        """Stop the row workers (idempotent); a closed engine still runs, one text after another."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def tokenize(self, texts: Sequence[str]) -> list[Tokens]:
        """Pre-process: normalise, detect the language, ids per tokenizer (truncated, not padded)."""
        norms = [normalize(text) for text in texts]
        clean = [norm.text for norm in norms]
        languages = self.languages.detect_many(clean)
        per_encoder = [encoder.encode(clean) for encoder in self._encoders]
        return [
            Tokens(ids, norm, language)
            for ids, norm, language in zip(zip(*per_encoder, strict=True), norms, languages, strict=True)
        ]

    @staticmethod
    def length(tokens: Tokens) -> int:
        """Tokens a text costs in a batch: its longest id array."""
        return max(len(ids) for ids in tokens.ids)

    def graphs_for(self, batch: Sequence[Tokens], whole_machine: bool = False) -> Mapping[str, GraphRunner]:
        """The runners a batch runs on: a lone text that may take the whole machine runs on the
        lone-text sessions, small runs on the one-thread sessions, everything else on the pack's."""
        if whole_machine and len(batch) == 1 and self._lone_text_graphs is not None:
            return self._lone_text_graphs
        graphs = self._single_thread_graphs
        if graphs is not None and len(batch) * max(map(self.length, batch)) <= self.single_thread_tokens:
            return graphs
        return self.pack.graphs

    def _run_graphs(
        self, batch: Sequence[Tokens], whole_machine: bool = False
    ) -> dict[tuple[str, str], np.ndarray]:
        outputs: dict[tuple[str, str], np.ndarray] = {}
        for key, runner in self.graphs_for(batch, whole_machine).items():
            slot = self._slots[runner.encoder_key]
            feed = runner.feed([tokens.ids[slot] for tokens in batch], self._encoders[slot].pad_id)
            try:
                values = runner.session.run(list(runner.outputs), feed)
            except Exception as exc:
                raise InferenceError(f"graph {key!r} failed on a batch of {len(batch)}: {exc}") from exc
            for name, value in zip(runner.outputs, values, strict=True):
                outputs[(key, name)] = np.asarray(value)
        return outputs

    def run(self, batch: Sequence[Tokens], parallel: bool = True) -> dict[str, np.ndarray]:
        """Run every graph on a batch; returns logits [batch, labels] per head (and the embedding).

        With ``invariant`` each text is its own run (see the module docstring), on the row
        workers when ``parallel``, else one after another on the caller's thread (for callers
        that are themselves one of several workers). A lone text with ``parallel`` runs on the
        lone-text sessions when there are any. Raises InferenceError when a session
        fails or returns an unexpected shape.
        """
        if self.invariant and len(batch) > 1:
            pool = self._pool if parallel else None
            if pool is not None:
                rows = list(pool.map(lambda tokens: self._run_graphs([tokens]), batch))
            else:
                rows = [self._run_graphs([tokens]) for tokens in batch]
            outputs = {key: np.concatenate([row[key] for row in rows]) for key in rows[0]}
        else:
            outputs = self._run_graphs(batch, whole_machine=parallel)
        logits = {head: outputs[source] for head, source in self._head_sources.items()}
        for head, value in logits.items():
            if head == EMBEDDING:
                continue
            expected = (len(batch), len(self.pack.heads[head].labels))
            if value.shape != expected:
                raise InferenceError(
                    f"head {head!r} returned shape {list(value.shape)}, expected {list(expected)}"
                )
        return logits

    def postprocess(self, logits: dict[str, np.ndarray], batch: Sequence[Tokens]) -> list[TextPrediction]:
        """Post-process: calibrated probabilities -> one TextPrediction per row."""
        embeddings = logits.get(EMBEDDING)
        return predictions(
            logits,
            self.pack.heads,
            [tokens.norm for tokens in batch],
            [tokens.language for tokens in batch],
            embeddings,
        )

    def infer(
        self, batch: Sequence[Tokens], on_batch: BatchHook | None = None, parallel: bool = True
    ) -> list[TextPrediction]:
        """Run + post-process one already-formed batch, reporting it to ``on_batch``."""
        started = time.perf_counter()
        results = self.postprocess(self.run(batch, parallel), batch)
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
