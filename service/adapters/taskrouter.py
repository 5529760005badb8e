"""Twilio TaskRouter tasks for handoffs, through the official ``twilio`` SDK (the ``[twilio]`` extra).

One task per conversation: the first human decision creates it in the workflow mapped to
the decision's queue; a later decision (another queue, another priority) updates the live
task's attributes and priority. A task is found again by its ``switchboard_ref`` attribute
(``EvaluateTaskAttributes``), which makes the call idempotent: an attempt whose create
succeeded but whose answer was lost finds the task on its retry and updates it instead of
creating a second one.

The SDK is synchronous (``requests``); calls run in a worker thread. It is imported on
first use, so the service runs without the extra until a Twilio source opts into actions.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

# A task in one of these states is still with TaskRouter and can be updated; completed or
# canceled ones are history, and a new handoff then makes a new task.
LIVE_STATES = ["pending", "reserved", "assigned"]
REF_ATTRIBUTE = "switchboard_ref"


class TaskRouterError(Exception):
    """A failed API call: ``outcome`` is 4xx/5xx/timeout/error, ``error`` a short log-safe text."""

    def __init__(self, outcome: str, error: str) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error


def require_sdk() -> None:
    """Raise ``ImportError`` with the install hint when the ``twilio`` package is missing."""
    try:
        import twilio  # noqa: F401
    except ImportError as exc:
        raise ImportError("Twilio actions need the twilio SDK: pip install 'switchboard[twilio]'") from exc


class TaskRouter:
    """Tasks of one TaskRouter workspace.

    ``base_url`` replaces ``https://taskrouter.twilio.com`` (the SDK domain's own
    ``base_url``); only tests set it, to send the real SDK's requests to a local server.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        workspace_sid: str,
        *,
        timeout_s: float,
        base_url: str | None = None,
    ) -> None:
        require_sdk()
        self._account_sid = account_sid
        self._auth_token = auth_token
        self.workspace_sid = workspace_sid
        self._timeout_s = timeout_s
        self._base_url = base_url

    def _workspace(self) -> Any:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        # A client per call: requests sessions are not meant to be shared across threads.
        client = Client(
            self._account_sid,
            self._auth_token,
            http_client=TwilioHttpClient(timeout=self._timeout_s, pool_connections=False),
        )
        if self._base_url is not None:
            client.taskrouter.base_url = self._base_url
        return client.taskrouter.v1.workspaces(self.workspace_sid)

    async def upsert(
        self,
        ref: str,
        *,
        attributes: dict[str, Any],
        priority: int,
        workflow_sid: str | None,
        task_channel: str | None,
    ) -> tuple[Literal["created", "updated"], str]:
        """Update the live task whose ``switchboard_ref`` is ``ref``, else create one; return what
        was done and the task sid. ``attributes`` gets ``switchboard_ref`` added.

        Raises ``TaskRouterError`` for an API error or a transport failure.
        """
        body = json.dumps({**attributes, REF_ATTRIBUTE: ref}, separators=(",", ":"), sort_keys=True)
        return await asyncio.to_thread(self._upsert, ref, body, priority, workflow_sid, task_channel)

    def _upsert(
        self, ref: str, body: str, priority: int, workflow_sid: str | None, task_channel: str | None
    ) -> tuple[Literal["created", "updated"], str]:
        import requests
        from twilio.base import values
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            workspace = self._workspace()
            # ``ref`` is hex made by the caller: safe inside the expression's quotes.
            live = workspace.tasks.list(
                evaluate_task_attributes=f'{REF_ATTRIBUTE} == "{ref}"', assignment_status=LIVE_STATES, limit=1
            )
            if live:
                sid = str(live[0].sid)
                workspace.tasks(sid).update(attributes=body, priority=priority)
                return "updated", sid
            task = workspace.tasks.create(
                workflow_sid=workflow_sid if workflow_sid is not None else values.unset,
                task_channel=task_channel if task_channel is not None else values.unset,
                attributes=body,
                priority=priority,
            )
            return "created", str(task.sid)
        except TwilioRestException as exc:
            raise TaskRouterError(f"{exc.status // 100}xx", f"TaskRouter {exc.method} {exc.status}") from None
        except requests.Timeout:
            raise TaskRouterError("timeout", "timeout") from None
        except requests.RequestException as exc:
            raise TaskRouterError("error", type(exc).__name__) from None
        except TwilioException as exc:
            # A failed list page is a bare TwilioException("Unable to fetch page", response).
            status = getattr(exc.args[1], "status_code", None) if len(exc.args) > 1 else None
            if isinstance(status, int):
                raise TaskRouterError(f"{status // 100}xx", f"TaskRouter GET {status}") from None
            raise TaskRouterError("error", type(exc).__name__) from None
