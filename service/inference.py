"""The model runtime as the service sees it: readiness, admission control, submission.

One ``ModelGate`` per app. The HTTP layer, live conversations and the probes
reach the model only through it (``Analyzer`` receives it as a dependency), so
a request never touches a runtime that is still loading, failed to load or is
draining, and admission control sees every submission.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models.process import ServingRuntime
from models.types import TextPrediction
from service.admission import InferenceAdmission
from service.errors import NotReady

if TYPE_CHECKING:
    from models.runtime import Runtime


@dataclass
class ModelGate:
    """The runtime once loaded (``None`` before), its admission control and its lifecycle state."""

    deadline_ms: float
    runtime: ServingRuntime | None = None
    admission: InferenceAdmission | None = None
    load_error: str | None = None
    draining: bool = False
    ready_event: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def serving(cls, runtime: ServingRuntime, deadline_ms: float) -> ModelGate:
        """A gate around a runtime that is already loaded and started (CLI, tests)."""
        gate = cls(deadline_ms=deadline_ms, runtime=runtime)
        gate.ready_event.set()
        return gate

    @property
    def ready(self) -> bool:
        """Pack loaded and warm, and not shutting down."""
        return self.runtime is not None and self.runtime.ready and not self.draining

    @property
    def pack_status(self) -> str:
        """``starting`` / ``ready`` / ``failed`` / ``draining`` for the probes."""
        if self.load_error is not None:
            return "failed"
        if self.draining:
            return "draining"
        return "ready" if self.ready else "starting"

    async def predict(self, texts: list[str]) -> list[TextPrediction]:
        """Inference through the runtime's micro-batcher; ``NotReady`` (503) until it is ready,
        ``Overloaded`` (429) when admission control refuses, model errors otherwise."""
        runtime = self.runtime
        if runtime is None or not self.ready:
            raise NotReady(
                "the model pack is still loading"
                if self.load_error is None
                else "the model pack failed to load"
            )
        if self.admission is not None:
            self.admission.check(runtime.backlog, len(texts))
        return await runtime.submit(texts, deadline_ms=self.deadline_ms)

    def pressure(self) -> float | None:
        """Retry-After while the inference queue is too long for new work (middleware shedding)."""
        runtime, admission = self.runtime, self.admission
        if runtime is None or admission is None:
            return None
        return admission.pressure(runtime.backlog)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the runtime is warm (tests, CLI); raise if loading failed."""
        # Polls instead of awaiting the event: callers (test clients) may run another event loop.
        deadline = time.monotonic() + timeout
        while not self.ready_event.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the model pack was not ready within {timeout:g} s")
            await asyncio.sleep(0.02)
        if self.load_error is not None:
            raise RuntimeError(f"model pack failed to load: {self.load_error}")


@dataclass
class DirectInference:
    """A loaded runtime called directly on a worker thread, without the micro-batcher
    (``switchboard analyze`` and offline tools: one caller, no admission control needed)."""

    runtime: Runtime

    async def predict(self, texts: list[str]) -> list[TextPrediction]:
        """Predictions for ``texts``, computed off the event loop."""
        return await asyncio.to_thread(self.runtime.predict, texts)
