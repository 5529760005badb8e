"""Operational endpoints: liveness, readiness, Prometheus metrics. No auth (probes and scrapers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar import Response, Router, get
from litestar.response import Response as LitestarResponse

from service.metrics import CONTENT_TYPE
from service.schemas import Health
from service.store.base import StoreError

if TYPE_CHECKING:
    from service.app import ServiceState


def build_ops_router(service: ServiceState) -> Router:
    """``/healthz``, ``/readyz`` and ``/metrics`` bound to one app's state."""

    @get("/healthz", summary="Liveness", tags=["ops"], include_in_schema=True)
    async def healthz() -> LitestarResponse[Health]:
        """200 while the process can serve; 503 only if the model pack failed to load (restart me)."""
        if service.gate.load_error is not None:
            return Response(
                Health(status="failed", ready=False, checks={"pack": service.gate.load_error}),
                status_code=503,
            )
        return Response(Health(status="ok", ready=service.ready))

    @get("/readyz", summary="Readiness", tags=["ops"])
    async def readyz() -> LitestarResponse[Health]:
        """200 when the pack is loaded and warm and the store answers; 503 (with Retry-After) otherwise."""
        checks = {"pack": service.pack_status, "store": "ok"}
        try:
            await service.store.ping()
        except StoreError:
            checks["store"] = "unavailable"
        ready = service.ready and checks["store"] == "ok"
        status = "ready" if ready else service.pack_status if not service.ready else "degraded"
        return Response(
            Health(status=status, ready=ready, checks=checks),
            status_code=200 if ready else 503,
            headers={} if ready else {"Retry-After": "1"},
        )

    @get("/metrics", summary="Prometheus metrics", tags=["ops"], media_type=CONTENT_TYPE)
    async def metrics() -> Response[bytes]:
        """Text exposition format: every worker's metrics, summed when several workers serve."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    return Router(path="/", route_handlers=[healthz, readyz, metrics], security=[])
