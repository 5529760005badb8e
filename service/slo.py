"""The friction-SLO evaluator: the policy's ``[[slos]]`` judged continuously (``routing.slo``).

Every ``SWITCHBOARD_SLO_INTERVAL_S`` seconds the evaluator reads, once per window its SLOs
need, the ``all`` counters of the insights store (``Insights.totals``), judges every SLO and:

* sets ``switchboard_slo_burn_rate{slo,window}`` and ``switchboard_slo_breached{slo}``;
* on a transition (ok -> breached, breached -> ok) logs one line (the SLO, its objective, the
  burn rates: never conversation content) and stores a signed ``slo.breached`` /
  ``slo.recovered`` event in the callback outbox, for source ``slo``'s callback URL (else
  the ``*`` one).

The state (``routing.slo.SloState``) lives in the insights store, so replicas sharing it agree.
A replica that sees a transition first *claims* it: a compare-and-set from the state it read to
the new state marked not yet announced. Only the winner logs the line and stores the event,
under the deterministic key ``slo.<event>:<slo>:<seq>``, then marks the state announced; the
losers just report the stored state. A claimed transition whose event is still not stored
``retry_after_s`` later (its replica died, or the outbox backend was down) is stored by the
next replica to evaluate, under the same key (the outbox skips a key it knows), and the SLO
makes no further transition until it is: every transition is announced once, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import msgspec
from prometheus_client import CollectorRegistry, Gauge

from routing.slo import (
    EVENT_BREACHED,
    EVENT_RECOVERED,
    SLO,
    Evaluation,
    SloState,
    Transition,
    evaluate,
    format_window,
    next_state,
    windows,
)
from service.adapters.backend import BackendError
from service.adapters.outbox import Outbox
from service.insights import Insights
from service.logs import exception_location
from service.store.base import StoreError

__all__ = ["EVENT_SOURCE", "SloEvaluator", "SloMetrics", "event_key"]

EVENT_SOURCE = "slo"
_log = logging.getLogger("switchboard.slo")
_state_decoder = msgspec.json.Decoder(SloState)


class SloMetrics:
    """The SLO gauges on the app's registry (a private one if none is given)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.burn_rate = Gauge(
            "switchboard_slo_burn_rate",
            "Friction-SLO error-budget burn rate per window (1 = exactly at the objective).",
            ("slo", "window"),
            registry=r,
            multiprocess_mode="livemostrecent",  # every worker reads the same shared counters
        )
        self.breached = Gauge(
            "switchboard_slo_breached",
            "1 while the friction SLO is breached (shared state: one breach across replicas).",
            ("slo",),
            registry=r,
            multiprocess_mode="livemostrecent",
        )


def event_key(transition: Transition) -> str:
    """The event's idempotency key: the same on every replica for one transition."""
    return f"{transition.event}:{transition.slo}:{transition.seq}"


class SloEvaluator:
    """Judges the SLOs ``slos()`` returns (the current policy's) against ``insights``' counters."""

    def __init__(
        self,
        insights: Insights,
        slos: Callable[[], Sequence[SLO]],
        outbox: Outbox | None,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        retry_after_s: float = 30.0,
    ) -> None:
        self.insights = insights
        self.metrics = SloMetrics(registry)
        self._slos = slos
        self._outbox = outbox
        self._clock = clock
        # A transition whose event is not stored this long after it is stored by whoever sees it:
        # long enough that the replica that won it is not still storing it.
        self._retry_after_s = retry_after_s

    async def run(self, interval_s: float) -> None:
        """Evaluate now, then every ``interval_s`` seconds until cancelled; failures are logged."""
        while True:
            try:
                await self.tick()
            except (StoreError, BackendError) as exc:
                _log.warning(
                    "SLO evaluation skipped: store unavailable", extra={"exc_type": type(exc).__name__}
                )
            except Exception as exc:
                _log.error(
                    "SLO evaluation failed",
                    extra={"exc_type": type(exc).__name__, "where": exception_location(exc.__traceback__)},
                )
            await asyncio.sleep(interval_s)

    async def tick(self) -> list[Transition]:
        """One evaluation of every SLO; returns the transitions this process won and announced."""
        slos = list(self._slos())
        if not slos:
            return []
        bucket_s = self.insights.store.bucket_s
        counts = await self.insights.totals(windows(slos, bucket_s))
        now = self._clock()
        won: list[Transition] = []
        for slo in slos:
            evaluation = evaluate(slo, counts, bucket_s)
            burns = {b.window: b.burn_rate for b in evaluation.burns.values()}
            for window, burn in burns.items():
                if burn is not None:
                    self.metrics.burn_rate.labels(slo.id, window).set(burn)
            state = await self._judge(slo, evaluation, burns, now, won)
            self.metrics.breached.labels(slo.id).set(1 if state.state == "breached" else 0)
        return won

    async def _judge(
        self,
        slo: SLO,
        evaluation: Evaluation,
        burns: dict[str, float | None],
        now: float,
        won: list[Transition],
    ) -> SloState:
        """Move the shared state and announce what moved it; return the state now stored."""
        key = _state_key(slo)
        raw = await self.insights.store.get_state(key)
        state = _state_decoder.decode(raw) if raw else SloState()
        if not state.announced and now - state.since >= self._retry_after_s:
            # The replica that won this transition did not store its event (it died, or the
            # outbox was down): store it now, under the same key.
            raw, state = await self._settle(slo, raw, state, _transition_of(slo, state), burns)
        if not state.announced:
            return state  # events go out in order: the next transition waits for this one's
        new, transition = next_state(state, evaluation, now)
        if transition is None:
            return state
        claimed = msgspec.structs.replace(new, announced=False)
        claimed_raw = msgspec.json.encode(claimed)
        if not await self.insights.store.swap_state(key, raw, claimed_raw):
            # Another replica moved the state first: it announces; report what it stored.
            raw = await self.insights.store.get_state(key)
            return _state_decoder.decode(raw) if raw else SloState()
        won.append(transition)
        _log.warning(
            "SLO %s %s",
            slo.id,
            "breached" if new.state == "breached" else "recovered",
            extra={
                "slo": slo.id,
                "event": transition.event,
                "objective": slo.objective,
                "window": format_window(slo.window_s),
                "severity": transition.severity,
                "burn_rates": burns,
            },
        )
        _, stored = await self._settle(slo, claimed_raw, claimed, transition, burns)
        return stored

    async def _settle(
        self,
        slo: SLO,
        raw: bytes | None,
        state: SloState,
        transition: Transition,
        burns: dict[str, float | None],
    ) -> tuple[bytes | None, SloState]:
        """Store ``transition``'s event, then mark ``state`` announced (compare-and-set on ``raw``)."""
        if not await self._announce(slo, transition, burns):
            return raw, state
        done = msgspec.structs.replace(state, announced=True)
        done_raw = msgspec.json.encode(done)
        if await self.insights.store.swap_state(_state_key(slo), raw, done_raw):
            return done_raw, done
        raw = await self.insights.store.get_state(_state_key(slo))
        return raw, _state_decoder.decode(raw) if raw else SloState()

    async def _announce(self, slo: SLO, transition: Transition, burns: dict[str, float | None]) -> bool:
        """Store the event (True also when no URL is configured, or the key is already stored)."""
        if self._outbox is None:
            return True
        payload = {
            "slo": slo.id,
            "objective": slo.objective,
            "window": format_window(slo.window_s),
            "state": "breached" if transition.event.endswith("breached") else "ok",
            "severity": transition.severity,
            "seq": transition.seq,
            "burn_rates": burns,
            "description": slo.description,
        }
        try:
            await self._outbox.enqueue_event(
                transition.event, event_key(transition), payload, EVENT_SOURCE, stream=f"slo:{slo.id}"
            )
        except BackendError:
            _log.warning("SLO event could not be stored; retried next evaluation", extra={"slo": slo.id})
            return False
        return True


def _state_key(slo: SLO) -> str:
    return f"slo:{slo.id}"


def _transition_of(slo: SLO, state: SloState) -> Transition:
    """The transition that led to ``state`` (its ``seq`` says which; see ``routing.slo``)."""
    event = EVENT_BREACHED if state.state == "breached" else EVENT_RECOVERED
    return Transition(slo.id, event, state.seq, state.since, state.severity)
