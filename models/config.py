"""The one inference configuration, importable without onnxruntime.

A service that runs the model in a child process (``models.process``) reads its
settings into this class without loading onnxruntime itself.
"""

from __future__ import annotations

from dataclasses import dataclass

# The default of ``RuntimeConfig.lone_text_min_speedup``.
LONE_TEXT_MIN_SPEEDUP = 1.1


@dataclass(frozen=True)
class RuntimeConfig:
    """The one inference configuration (runtime, micro-batcher, service); every field has a default.

    ``intra_op_threads`` None means "the process's CPU quota" (``models.cpu``): the
    row workers of the invariant plan, or the intra-op threads of large padded
    runs. ``max_batch_size`` and ``max_batch_tokens`` bound one batch;
    ``max_wait_ms`` is the longest a batch waits for more requests once it has
    one. ``queue_size`` counts texts waiting for the worker (a full queue
    answers OverloadedError). ``default_deadline_ms`` applies to ``submit``
    without a deadline. ``batching=False`` runs every text alone (for
    comparisons). ``invariant`` runs each text of a batch as its own ONNX call,
    so its scores never depend on its batch neighbours (see ``models.engine``).
    ``single_thread_tokens``: padded runs (``invariant=False``) of at most this
    many tokens use one intra-op thread; 0 runs everything on ``intra_op_threads``.
    ``spinning`` lets ONNX Runtime's worker threads spin briefly between
    operators. It is off by default: on a 2-core box the spinning threads take
    the CPU the event loop and the tokenizer need (measured: 396 vs 157
    utterances/s at concurrency 32 with spinning off vs on).
    ``lone_text_all_cpus`` (invariant plan, more than one CPU; kept after ``start`` only where
    the warm-up measures it ``lone_text_min_speedup`` times faster): a text that is the
    only work at the time runs on an extra set of sessions with every CPU, spinning
    during the run and stopping at its end (``session.force_spinning_stop``), so an
    idle service answers one turn sooner; under load every text keeps one thread.
    """

    intra_op_threads: int | None = None
    inter_op_threads: int = 1
    max_batch_size: int = 32
    max_batch_tokens: int = 4096
    max_wait_ms: float = 1.5
    queue_size: int = 512
    default_deadline_ms: float = 2000
    batching: bool = True
    spinning: bool = False
    invariant: bool = True
    single_thread_tokens: int = 64
    lone_text_all_cpus: bool = True
    # A lone text keeps the every-CPU sessions only when the warm-up finds it this many times faster
    # there than on one thread (medians of alternating runs): otherwise the second core would spin
    # for nothing, which a pod sharing its node pays for. 0 keeps them whatever it measures.
    lone_text_min_speedup: float = LONE_TEXT_MIN_SPEEDUP

    def __post_init__(self) -> None:
        for name in ("inter_op_threads", "max_batch_size", "max_batch_tokens", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"RuntimeConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise ValueError(f"RuntimeConfig.intra_op_threads must be >= 1, got {self.intra_op_threads}")
        if self.single_thread_tokens < 0:
            raise ValueError(
                f"RuntimeConfig.single_thread_tokens must be >= 0, got {self.single_thread_tokens}"
            )
        if self.max_wait_ms < 0 or self.default_deadline_ms <= 0:
            raise ValueError("RuntimeConfig.max_wait_ms must be >= 0 and default_deadline_ms > 0")
        if self.lone_text_min_speedup < 0:
            raise ValueError(
                f"RuntimeConfig.lone_text_min_speedup must be >= 0, got {self.lone_text_min_speedup}"
            )
