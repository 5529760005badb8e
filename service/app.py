"""The app factory: ``create_app(settings)`` builds one independent service.

Nothing is created at import time: the metrics registry, store, policy,
runtime, outbox and routers all belong to the app returned here, so tests can
build several apps in one process and every uvicorn worker builds its own.

Lifecycle: the port opens at once; on startup the model pack is loaded and
warmed up in the background (``/readyz`` answers 503 until it is ready, and
``/v1`` calls answer 503 + Retry-After), the policy watcher, TTL purge and
callback outbox start. On shutdown the runtime drains its queue, then the
outbox and store close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from litestar import Litestar
from litestar.datastructures import State

from models.config import RuntimeConfig
from models.cpu import cpu_quota
from models.errors import PackError
from models.packs import DEFAULT_PACK
from models.process import ProcessRuntime, ServingRuntime
from routing.errors import PolicyError
from service.adapters.actions import attach_actions
from service.adapters.outbox import Outbox
from service.adapters.routes import build_adapter_routers
from service.admin import build_admin_router
from service.admission import InferenceAdmission
from service.analysis import Analyzer, models_summary
from service.api import build_api_router
from service.auth import ApiKeyGuard, Authenticator
from service.console import build_console_router
from service.conversations import ConversationService
from service.errors import SettingsError
from service.inference import ModelGate
from service.insights import Insights, open_insights
from service.insights_api import build_insights_router
from service.logs import configure_logging, exception_location
from service.metrics import Metrics
from service.middleware import RequestContextMiddleware
from service.migration import migrate_legacy
from service.openapi import openapi_config, openapi_plugins
from service.ops import build_ops_router
from service.policy_source import PolicySource
from service.problems import problem_response
from service.ratelimit import build_limiter
from service.reasons import Embedder, EmbeddingCache, ReasonSource
from service.settings import Settings
from service.slo import SloEvaluator
from service.store import ConversationStore, open_store
from service.tracing import Tracing

_log = logging.getLogger("switchboard.app")
VERSION = "0.1.0"


@dataclass
class ServiceState:
    """Everything one app owns; reachable as ``app.state.service``."""

    settings: Settings
    metrics: Metrics
    policies: PolicySource
    store: ConversationStore
    reasons: ReasonSource
    gate: ModelGate
    analyzer: Analyzer
    conversations: ConversationService
    outbox: Outbox
    insights: Insights
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # Conversations still in the first storage layout (a failed migration is retried by the purge loop).
    migration_pending: bool = True
    tracing: Tracing | None = None  # None: tracing off (no SWITCHBOARD_OTEL_ENDPOINT)

    @property
    def ready(self) -> bool:
        """Pack loaded and warm, and not shutting down."""
        return self.gate.ready

    @property
    def pack_status(self) -> str:
        """``starting`` / ``ready`` / ``failed`` / ``draining`` for the probes."""
        return self.gate.pack_status

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the runtime is warm (tests, CLI); raise if loading failed."""
        await self.gate.wait_ready(timeout)


def runtime_config(settings: Settings) -> RuntimeConfig:
    """The runtime tuning from the settings."""
    return settings.inference


async def _load_runtime(service: ServiceState) -> None:
    settings = service.settings
    pack_dir = settings.pack_dir or DEFAULT_PACK
    try:
        runtime: ServingRuntime
        if settings.model_process == "on" or (settings.model_process == "auto" and cpu_quota().cpus >= 2):
            runtime = await asyncio.to_thread(ProcessRuntime.spawn, pack_dir, runtime_config(settings))
        else:
            from models.runtime import Runtime  # onnxruntime only where the model runs in this process

            runtime = await asyncio.to_thread(Runtime.load, pack_dir, runtime_config(settings))
        admission = InferenceAdmission(
            settings.inference.default_deadline_ms / 1000, workers=runtime.batch_workers
        )
        service.gate.admission = admission

        def on_batch(batch_size: int, tokens: int, seconds: float) -> None:
            service.metrics.observe_batch(batch_size, tokens, seconds)
            if service.tracing is not None:
                service.tracing.record_batch(batch_size, tokens, seconds)
            admission.observe(batch_size, tokens, seconds)

        runtime.on_batch = on_batch
        await runtime.start()
        await _attach_reasons(service, runtime)
    except PackError as exc:
        # PackError messages name files and tensors, never request content: log them for the operator.
        service.gate.load_error = "pack invalid"
        _log.error("model pack failed to load", extra={"pack": str(pack_dir), "detail": str(exc)})
    except Exception as exc:
        service.gate.load_error = type(exc).__name__
        _log.error(
            "model pack failed to load",
            extra={
                "pack": str(pack_dir),
                "exc_type": type(exc).__name__,
                "where": exception_location(exc.__traceback__),
            },
        )
    else:
        service.gate.runtime = runtime
        service.metrics.track_queue_depth(lambda: runtime.queue_depth)
        service.analyzer.models = models_summary(runtime.info)
        service.metrics.ready.set(1)
        _log.info(
            "ready", extra={"pack": runtime.info.get("pack"), "warmup_ms": runtime.info.get("warmup_ms")}
        )
    finally:
        service.gate.ready_event.set()


async def _attach_reasons(service: ServiceState, runtime: ServingRuntime) -> None:
    """Embed the custom reasons' examples before the service reports ready (a failure leaves them off)."""
    try:
        embedder = await asyncio.to_thread(Embedder, runtime)
        await asyncio.to_thread(service.reasons.attach, embedder)
        # Reason matches are computed where the predictions are made: on the batch workers, or
        # on this loop as a model process's answers arrive.
        runtime.annotate = service.reasons.annotate
    except Exception as exc:
        _log.error(
            "custom contact reasons could not be embedded; they are not matched",
            extra={"exc_type": type(exc).__name__, "where": exception_location(exc.__traceback__)},
        )


async def _purge_loop(service: ServiceState) -> None:
    interval = min(60.0, max(1.0, service.settings.conversation_ttl_s / 2))
    while True:
        await asyncio.sleep(interval)
        try:
            if service.migration_pending:
                await _migrate(service)
            purged = await service.conversations.purge_expired()
        except Exception:
            _log.warning("TTL purge failed; will retry", exc_info=True)
            continue
        if purged:
            service.metrics.expired.inc(len(purged))


async def _migrate(service: ServiceState) -> None:
    """Move first-layout conversations to turn-level storage (before any append can touch them)."""
    await migrate_legacy(service.store)
    service.migration_pending = False


def _reload_on_sighup(service: ServiceState) -> None:
    with contextlib.suppress(PolicyError, SettingsError):  # logged and counted by reload(); old policy stays
        service.policies.reload()
    # The reasons embed new examples off the loop; failures are logged and counted, old reasons stay.
    service.tasks[:] = [task for task in service.tasks if not task.done()]
    reload = asyncio.create_task(service.reasons.reload_quietly(), name="switchboard-reasons-hup")
    service.tasks.append(reload)


def create_app(settings: Settings, *, tracer_provider: Any | None = None) -> Litestar:
    """Build the service. Raises ``SettingsError``/``PolicyError``/``ReasonsError`` for unusable
    configuration (a policy or reasons file that does not validate).

    ``tracer_provider`` (an OpenTelemetry SDK ``TracerProvider``) turns tracing on into it
    (tests); otherwise tracing is on only when ``settings.otel_endpoint`` is set."""
    settings.validate()
    tracing = Tracing.start(settings.otel_endpoint, provider=tracer_provider, version=VERSION)
    metrics = Metrics()
    reasons = ReasonSource(
        settings.reasons_path,
        metrics,
        enabled=settings.reasons_enabled,
        cache=EmbeddingCache(settings.data_dir / "reasons_cache"),
    )
    policies = PolicySource(settings.policy_path, metrics, reasons=reasons.reasons)
    reasons.bind(policies)
    store = open_store(settings.resolved_store_url, settings.conversation_ttl_s)
    gate = ModelGate(deadline_ms=settings.inference.default_deadline_ms)
    inference = gate if tracing is None else tracing.inference(gate)
    analyzer = Analyzer(settings, policies, inference, models={}, metrics=metrics, reasons=reasons)
    traced_store = store if tracing is None else tracing.store(store, settings.resolved_store_url)
    conversations = ConversationService(analyzer, traced_store, tombstone_s=settings.erase_tombstone_s)
    outbox = Outbox.from_settings(settings, registry=metrics.registry)
    outbox.attach(conversations)
    conversations.add_erase_listener(outbox.erase)
    conversations.add_erase_listener(outbox.nonces.forget)
    attach_actions(settings.adapters, outbox, conversations)
    insights = Insights(open_insights(settings.resolved_store_url))
    insights.attach(conversations)
    slo_evaluator = SloEvaluator(insights, lambda: policies.policy.slos, outbox, registry=metrics.registry)
    service = ServiceState(
        settings=settings,
        metrics=metrics,
        policies=policies,
        store=store,
        reasons=reasons,
        gate=gate,
        analyzer=analyzer,
        conversations=conversations,
        outbox=outbox,
        insights=insights,
        tracing=tracing,
    )
    guard = ApiKeyGuard(
        Authenticator(settings.api_keys, settings.auth_disabled),
        build_limiter(
            settings.rate_limit_rps,
            settings.rate_limit_burst,
            settings.resolved_store_url,
            on_fallback=metrics.ratelimit_fallbacks.inc,
        ),
    )

    async def startup() -> None:
        if settings.auth_disabled:
            _log.warning(
                "API-key authentication is DISABLED (SWITCHBOARD_AUTH_DISABLED=true): local development only"
            )
        gate.ready_event = asyncio.Event()
        try:
            await _migrate(service)
        except Exception:
            _log.error("migration to turn-level storage failed; retried by the purge loop", exc_info=True)
        service.tasks.append(asyncio.create_task(_load_runtime(service), name="switchboard-load-pack"))
        service.tasks.append(asyncio.create_task(_purge_loop(service), name="switchboard-ttl-purge"))
        if settings.policy_path is not None and settings.policy_reload_interval_s > 0:
            watcher = policies.watch(settings.policy_reload_interval_s)
            service.tasks.append(asyncio.create_task(watcher, name="switchboard-policy-watch"))
        if settings.reasons_path is not None and settings.policy_reload_interval_s > 0:
            reasons_watcher = reasons.watch(settings.policy_reload_interval_s)
            service.tasks.append(asyncio.create_task(reasons_watcher, name="switchboard-reasons-watch"))
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            # Only possible in the main thread of a Unix process (not under a test client).
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _reload_on_sighup, service)
        await outbox.start()
        if settings.slo_interval_s > 0:
            slo_task = slo_evaluator.run(settings.slo_interval_s)
            service.tasks.append(asyncio.create_task(slo_task, name="switchboard-slo"))

    async def shutdown() -> None:
        gate.draining = True
        service.metrics.ready.set(0)
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in service.tasks:
            task.cancel()
        await asyncio.gather(*service.tasks, return_exceptions=True)
        service.tasks.clear()
        if gate.runtime is not None:
            await gate.runtime.close()  # drains queued requests before returning
        await outbox.stop()
        await insights.close()  # its last batch checks the conversation store's heads
        await store.close()
        await guard.limiter.aclose()
        metrics.process_exited()
        if tracing is not None:
            tracing.shutdown()

    return Litestar(
        route_handlers=[
            build_api_router(analyzer, conversations, policies, guard),
            build_insights_router(insights, conversations, policies, guard),
            build_admin_router(outbox, guard),
            build_ops_router(service),
            build_console_router(
                store=store,
                conversations=conversations,
                policies=policies,
                insights=insights,
                authenticator=guard.authenticator,
                keys=settings.api_keys,
                limiter=guard.limiter,
            ),
            *build_adapter_routers(
                conversations,
                settings,
                nonces=outbox.nonces,
                registry=metrics.registry,
                record_outcome=partial(insights.record_outcome, conversations),
            ),
        ],
        on_startup=[startup],
        on_shutdown=[shutdown],
        exception_handlers={Exception: problem_response},
        middleware=[RequestContextMiddleware(metrics, settings.limits.max_inflight, gate.pressure)],
        request_max_body_size=settings.limits.max_body_bytes,
        openapi_config=openapi_config(VERSION),
        plugins=[*openapi_plugins(), *([tracing.plugin()] if tracing is not None else [])],
        state=State({"metrics": metrics, "service": service}),
        logging_config=None,
        debug=False,
    )


def app_from_env() -> Litestar:
    """uvicorn factory (``service.app:app_from_env``): settings from the environment, JSON logs."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)
