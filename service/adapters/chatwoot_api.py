"""A small Chatwoot REST client: the calls platform actions make (assignment, labels, private note).

Every call authenticates with the ``api_access_token`` header (an agent's or an agent bot's
access token) against ``{base_url}/api/v1/accounts/{account}/conversations/{conversation}``;
``conversation`` is the per-account display id that webhooks carry and agents see. A
non-2xx answer or a transport error raises ``ChatwootApiError`` carrying the outbox's
outcome label, so the caller can retry it like a callback.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from service.adapters.outbox import parse_retry_after

USER_AGENT = "switchboard-actions/1"


class ChatwootApiError(Exception):
    """A failed API call: ``outcome`` is 4xx/5xx/timeout/error, ``error`` a short log-safe text."""

    def __init__(self, outcome: str, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error
        self.retry_after = retry_after


class ChatwootApi:
    """The conversation endpoints of one Chatwoot install, over a caller-owned ``httpx.AsyncClient``."""

    def __init__(self, base_url: str, token: str, client: httpx.AsyncClient) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"api_access_token": token, "User-Agent": USER_AGENT}
        self._client = client

    def _url(self, account_id: str, conversation_id: str, tail: str = "") -> str:
        return f"{self._base}/api/v1/accounts/{account_id}/conversations/{conversation_id}{tail}"

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._client.request(method, url, json=body, headers=self._headers)
        except httpx.TimeoutException:
            raise ChatwootApiError("timeout", "timeout") from None
        except httpx.HTTPError as exc:
            raise ChatwootApiError("error", type(exc).__name__) from None
        if not 200 <= response.status_code < 300:
            raise ChatwootApiError(
                f"{response.status_code // 100}xx",
                f"Chatwoot {method} {response.status_code}",
                parse_retry_after(response.headers.get("retry-after"), time.time()),
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ChatwootApiError("error", f"Chatwoot {method}: body is not JSON") from None

    async def conversation(self, account_id: str, conversation_id: str) -> dict[str, Any]:
        """``GET .../conversations/{id}``: the conversation (``meta.team``, ``meta.assignee``, ``labels``)."""
        found = await self._call("GET", self._url(account_id, conversation_id))
        return found if isinstance(found, dict) else {}

    async def assign(
        self,
        account_id: str,
        conversation_id: str,
        *,
        team_id: int | None = None,
        agent_id: int | None = None,
    ) -> None:
        """``POST .../assignments``: the team, or the agent. Chatwoot takes one per request
        (``assignee_id`` wins when both are sent), so exactly one of them must be given."""
        if (team_id is None) == (agent_id is None):
            raise ValueError("give exactly one of team_id and agent_id")
        body: dict[str, Any] = (
            {"team_id": team_id}
            if team_id is not None
            else {"assignee_id": agent_id, "assignee_type": "User"}
        )
        await self._call("POST", self._url(account_id, conversation_id, "/assignments"), body)

    async def labels(self, account_id: str, conversation_id: str) -> list[str]:
        """``GET .../labels``: the conversation's labels."""
        found = await self._call("GET", self._url(account_id, conversation_id, "/labels"))
        payload = found.get("payload") if isinstance(found, dict) else None
        return [label for label in payload or [] if isinstance(label, str)]

    async def set_labels(self, account_id: str, conversation_id: str, labels: list[str]) -> None:
        """``POST .../labels``: REPLACES the conversation's labels with ``labels``."""
        await self._call("POST", self._url(account_id, conversation_id, "/labels"), {"labels": labels})

    async def messages(self, account_id: str, conversation_id: str) -> list[dict[str, Any]]:
        """``GET .../messages``: the latest page of messages (Chatwoot returns the newest 20)."""
        found = await self._call("GET", self._url(account_id, conversation_id, "/messages"))
        payload = found.get("payload") if isinstance(found, dict) else None
        return [message for message in payload or [] if isinstance(message, dict)]

    async def private_note(self, account_id: str, conversation_id: str, content: str) -> None:
        """``POST .../messages`` with ``private: true``: a note only agents see."""
        body = {"content": content, "message_type": "outgoing", "private": True, "content_type": "text"}
        await self._call("POST", self._url(account_id, conversation_id, "/messages"), body)
