"""Latency-aware load shedding in front of the inference queue.

The runtime's queue is bounded in texts, but a full queue is a late signal:
long before it fills, a newly queued text may already be unable to finish
within its deadline, and would end as a 503 after waiting for nothing. This
estimates the wait from what the inference worker really does (an exponentially
weighted average of seconds per text over recent batches, fed by the runtime's
``on_batch`` hook) and refuses work at once, with 429 and an honest Retry-After,
when the texts ahead of it would take more than a fraction of the deadline.
"""

from __future__ import annotations

from service.errors import Overloaded

# Refuse when the predicted queue wait exceeds this share of the deadline: the rest of
# the deadline is left for the request's own batch and for the HTTP/routing work.
SHED_AT_FRACTION = 0.5
_ALPHA = 0.2


class InferenceAdmission:
    """``check(queued, incoming)`` raises ``Overloaded`` when the predicted wait is too long.

    ``workers``: batches the runtime runs side by side (its batch workers); each observed
    batch took its own seconds, so the queue drains ``workers`` times as fast.
    """

    def __init__(self, deadline_s: float, fraction: float = SHED_AT_FRACTION, workers: int = 1) -> None:
        self.limit_s = deadline_s * fraction
        self.workers = max(1, workers)
        self.seconds_per_text: float | None = None  # unknown until the first batches ran

    def observe(self, batch_size: int, tokens: int, seconds: float) -> None:
        """Runtime ``on_batch`` hook (inference thread): update the per-text cost."""
        if batch_size <= 0 or seconds <= 0:
            return
        sample = seconds / batch_size
        current = self.seconds_per_text
        self.seconds_per_text = sample if current is None else current + _ALPHA * (sample - current)

    def predicted_wait_s(self, queued: int, incoming: int) -> float:
        """Seconds until ``incoming`` more texts behind ``queued`` ones would be done."""
        if self.seconds_per_text is None:
            return 0.0
        return (queued + incoming) * self.seconds_per_text / self.workers

    def pressure(self, queued: int) -> float | None:
        """Retry-After seconds while even one more text would wait too long, else None."""
        wait = self.predicted_wait_s(queued, 1)
        return wait if queued > 0 and wait > self.limit_s else None

    def check(self, queued: int, incoming: int) -> None:
        """Refuse (429) work that would most likely miss its deadline."""
        wait = self.predicted_wait_s(queued, incoming)
        if queued > 0 and wait > self.limit_s:
            raise Overloaded(
                retry_after=wait,
                detail="the inference queue is too long to answer within the deadline; retry later",
            )
