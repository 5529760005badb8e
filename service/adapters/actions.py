"""Platform actions: act on a human handoff inside Chatwoot or Twilio TaskRouter, from the outbox.

Opt-in per source (``SWITCHBOARD_ACTIONS``). When a decision of an opted-in source routes
to a human (any route but ``self_serve_bot``), ``PlatformActions.on_decision`` turns the
handoff into one durable outbox message per API step:

* Chatwoot: **assign** the conversation to the team (then the agent) that
  ``SWITCHBOARD_ACTION_QUEUES`` maps the decision's queue to; **labels**: contact reason
  category, ``sentiment-<label>`` and the decision's flags, merged into the labels the
  conversation has (Chatwoot's labels endpoint replaces them all, so it is read first);
  **note**: the handoff context as a private note, redacted text only.
* Twilio (voice calls and Conversations): one TaskRouter task per conversation with the
  queue, priority, contact reason, sentiment and context summary as attributes, created in
  the queue's workflow, updated (attributes, priority) by later decisions.

Bot-routed decisions do nothing. Steps are outbox messages whose ``url`` is
``action:chatwoot`` / ``action:taskrouter``: the outbox delivers them with the callbacks'
retries, backoff, dead letters, redrive, leases, purge and erase, FIFO per conversation
(so a conversation's steps run in order), and they survive restarts. Each message's key is
derived from the handoff — Chatwoot: (conversation, route, queue, step), so a handoff is
acted on once however often its decision is reported, and a priority change is no new
handoff; TaskRouter: (conversation, version, decision), so every decision change updates the
task once. Delivery is at-least-once, so every step checks first and
skips what is already done (team already set, labels already there, a private note carrying
this handoff's ref among the latest messages, a live task with this conversation's ref):
a retry after a lost answer or a restart never posts a second note or a second task.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from prometheus_client import Counter

from routing.redact import redact
from routing.types import BOT_ROUTE
from service.adapters.backend import BackendError
from service.adapters.chatwoot_api import ChatwootApi, ChatwootApiError
from service.adapters.config import (
    SOURCE_CHATWOOT,
    SOURCE_TWILIO_CONVERSATIONS,
    SOURCE_TWILIO_VOICE,
    AdapterConfig,
)
from service.adapters.outbox import AttemptResult, Outbox
from service.adapters.outbox_store import NewMessage, OutboxMessage
from service.adapters.taskrouter import TaskRouter, TaskRouterError
from service.errors import SettingsError
from service.settings import QueueActions

if TYPE_CHECKING:
    from service.conversations import ConversationService

log = logging.getLogger("switchboard.adapters.actions")

ACTION_URL_PREFIX = "action:"
CHATWOOT_TARGET = "action:chatwoot"
TASKROUTER_TARGET = "action:taskrouter"
ACTION_SOURCES = (SOURCE_CHATWOOT, SOURCE_TWILIO_VOICE, SOURCE_TWILIO_CONVERSATIONS)
ANY_QUEUE = "*"
# TaskRouter creates these task channels in every workspace (Flex uses them too).
_TASK_CHANNELS = {SOURCE_TWILIO_VOICE: "voice", SOURCE_TWILIO_CONVERSATIONS: "chat"}
_LABEL_CHARS = re.compile(r"[^a-z0-9_-]+")
_MAX_QUOTES = 5
_MAX_QUOTE_CHARS = 300


# -- the actions: outbox message bodies -----------------------------------------------------------


class ChatwootAssign(msgspec.Struct, frozen=True, tag="chatwoot.assign"):
    """Assign the conversation to a team and/or an agent."""

    account_id: str
    conversation: str
    team_id: int | None
    agent_id: int | None


class ChatwootLabels(msgspec.Struct, frozen=True, tag="chatwoot.labels"):
    """Add labels (merged with the conversation's own)."""

    account_id: str
    conversation: str
    labels: list[str]


class ChatwootNote(msgspec.Struct, frozen=True, tag="chatwoot.note"):
    """Post ``content`` as a private note unless a note carrying ``ref`` is already there."""

    account_id: str
    conversation: str
    content: str
    ref: str


class TaskRouterTask(msgspec.Struct, frozen=True, tag="taskrouter.task"):
    """Create or update the conversation's TaskRouter task (found again by ``ref``)."""

    ref: str
    workflow_sid: str | None
    task_channel: str | None
    priority: int
    attributes: dict[str, Any]


Action = ChatwootAssign | ChatwootLabels | ChatwootNote | TaskRouterTask
_decoder = msgspec.json.Decoder(Action)


# -- the handoff ------------------------------------------------------------------------------------


class Quote(msgspec.Struct, frozen=True):
    """A turn the handoff context quotes."""

    turn: int
    speaker: str
    text: str


class Handoff(msgspec.Struct, frozen=True):
    """What the actions need from one analysis (the API's ``AnalysisResponse`` or its JSON)."""

    conversation_id: str
    source: str
    route: str
    queue: str
    priority: int
    rule: str
    why: str
    flags: list[str]
    churn_risk: float
    category: str | None
    intent: str | None
    reason_confidence: float | None
    sentiment: str | None
    sentiment_score: float | None
    trend: str | None
    quotes: list[Quote]
    # The conversation's version after the append that made this decision (None: not stored).
    version: int | None = None


def _get(value: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def handoff_from(conversation_id: str, source: str, analysis: Any) -> Handoff | None:
    """The handoff of an analysis; None when it carries no decision."""
    data = msgspec.to_builtins(analysis)
    decision = _get(data, "decision")
    if not isinstance(decision, dict) or not isinstance(decision.get("route"), str):
        return None
    quotes = []
    for line in _get(data, "context", "summary") or []:
        if isinstance(line, dict) and isinstance(line.get("text"), str):
            turn = line.get("turn")
            quotes.append(
                Quote(
                    turn=turn if isinstance(turn, int) else -1,
                    speaker=str(line.get("speaker") or "customer"),
                    text=line["text"],
                )
            )
    reason = _get(data, "contact_reason") or {}
    sentiment = _get(data, "sentiment") or {}
    return Handoff(
        conversation_id=conversation_id,
        source=source,
        route=decision["route"],
        queue=str(decision.get("queue") or ""),
        priority=int(decision.get("priority") or 0),
        rule=str(decision.get("rule") or ""),
        why=str(decision.get("summary") or ""),
        flags=[f for f in decision.get("flags") or [] if isinstance(f, str)],
        churn_risk=float(decision.get("churn_risk") or 0.0),
        category=_get(reason, "category"),
        intent=_get(reason, "intent"),
        reason_confidence=_get(reason, "confidence"),
        sentiment=_get(sentiment, "label"),
        sentiment_score=_get(sentiment, "score"),
        trend=_get(sentiment, "trend"),
        quotes=quotes,
        version=data.get("version") if isinstance(data.get("version"), int) else None,
    )


def labels_for(handoff: Handoff) -> list[str]:
    """Chatwoot labels of a handoff: contact reason category, ``sentiment-<label>``, the flags.

    Lower case, characters outside ``[a-z0-9_-]`` become ``-`` (Chatwoot's label alphabet).
    """
    raw = [
        handoff.category or "",
        f"sentiment-{handoff.sentiment}" if handoff.sentiment else "",
        *handoff.flags,
    ]
    labels: list[str] = []
    for item in raw:
        label = _LABEL_CHARS.sub("-", item.lower()).strip("-")
        if label and label not in labels:
            labels.append(label)
    return labels


def context_summary(handoff: Handoff) -> str:
    """A readable summary of the handoff context (PII redacted, whatever the service's settings)."""
    lines = [f"Switchboard handoff: {handoff.route}, queue {handoff.queue}, priority {handoff.priority}"]
    if handoff.why or handoff.rule:
        lines.append(f"Why: {redact(handoff.why or handoff.rule)}")
    if handoff.category:
        reason = handoff.category
        if handoff.intent and handoff.intent != handoff.category:
            reason += f" ({handoff.intent}"
            reason += f", {handoff.reason_confidence:.0%})" if handoff.reason_confidence is not None else ")"
        lines.append(f"Contact reason: {reason}")
    if handoff.sentiment:
        score = f" ({handoff.sentiment_score:+.2f})" if handoff.sentiment_score is not None else ""
        trend = f", {handoff.trend}" if handoff.trend else ""
        lines.append(f"Sentiment: {handoff.sentiment}{score}{trend}")
    if handoff.flags:
        lines.append(f"Flags: {', '.join(handoff.flags)}")
    if handoff.churn_risk:
        lines.append(f"Churn risk: {handoff.churn_risk:.2f}")
    if handoff.quotes:
        lines.append("")
        lines.append(
            "Customer said:" if all(q.speaker == "customer" for q in handoff.quotes) else "Quoted turns:"
        )
        for quote in handoff.quotes[:_MAX_QUOTES]:
            text = redact(quote.text)
            if len(text) > _MAX_QUOTE_CHARS:
                text = text[: _MAX_QUOTE_CHARS - 1] + "…"
            who = "" if quote.speaker == "customer" else f"{quote.speaker} "
            lines.append(f'- {who}turn {quote.turn}: "{text}"')
    return "\n".join(lines)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def chatwoot_ids(conversation_id: str) -> tuple[str, str] | None:
    """(account id, conversation display id) of ``chatwoot:{account}:{conversation}``, else None."""
    parts = conversation_id.split(":")
    if len(parts) != 3 or parts[0] != SOURCE_CHATWOOT or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


# -- the runner -------------------------------------------------------------------------------------


class PlatformActions:
    """Plans handoff actions into the outbox (``on_decision``) and performs them (``perform``).

    ``taskrouter_base_url`` points the Twilio SDK at another host (tests only).
    """

    def __init__(
        self,
        config: AdapterConfig,
        outbox: Outbox,
        *,
        taskrouter_base_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = sorted(set(config.actions) - set(ACTION_SOURCES))
        if unknown:
            raise SettingsError(
                f"SWITCHBOARD_ACTIONS: unknown source(s) {', '.join(unknown)}; "
                f"actions exist for {', '.join(ACTION_SOURCES)}"
            )
        self.sources = frozenset(config.actions)
        self.config = config
        self.outbox = outbox
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._chatwoot_base: str | None = None
        self._chatwoot_token: str | None = None
        if SOURCE_CHATWOOT in self.sources:
            if not config.chatwoot_api_url or not config.chatwoot_api_token:
                raise SettingsError(
                    "SWITCHBOARD_ACTIONS includes chatwoot: set SWITCHBOARD_CHATWOOT_API_URL and "
                    "SWITCHBOARD_CHATWOOT_API_TOKEN"
                )
            self._chatwoot_base, self._chatwoot_token = config.chatwoot_api_url, config.chatwoot_api_token
        self._taskrouter: TaskRouter | None = None
        if self.sources & {SOURCE_TWILIO_VOICE, SOURCE_TWILIO_CONVERSATIONS}:
            if not (
                config.twilio_account_sid and config.twilio_auth_token and config.taskrouter_workspace_sid
            ):
                raise SettingsError(
                    "SWITCHBOARD_ACTIONS includes a Twilio source: set SWITCHBOARD_TWILIO_ACCOUNT_SID, "
                    "SWITCHBOARD_TWILIO_AUTH_TOKEN and SWITCHBOARD_TASKROUTER_WORKSPACE_SID"
                )
            try:
                self._taskrouter = TaskRouter(
                    config.twilio_account_sid,
                    config.twilio_auth_token,
                    config.taskrouter_workspace_sid,
                    timeout_s=config.callback_timeout_s,
                    base_url=taskrouter_base_url,
                )
            except ImportError as exc:
                raise SettingsError(str(exc)) from exc
        self.performed = Counter(
            "switchboard_actions_total",
            "Platform action steps performed, by step and result (done, skipped: already done).",
            ("step", "result"),
            registry=outbox.metrics.registry,
        )

    def attach(self, conversations: ConversationService) -> None:
        """Perform action messages from the outbox and plan them on every decision change."""
        self.outbox.use_actions(self)
        conversations.add_decision_listener(self.on_decision)

    # -- producer ------------------------------------------------------------------------------

    def _targets(self, queue: str) -> QueueActions:
        queues = self.config.action_queues
        return queues.get(queue) or queues.get(ANY_QUEUE) or QueueActions()

    def plan(self, handoff: Handoff, now: float) -> list[NewMessage]:
        """The outbox messages of one handoff, in the order they must run (none for a bot route)."""
        if handoff.route == BOT_ROUTE or handoff.source not in self.sources:
            return []
        targets = self._targets(handoff.queue)
        cid = handoff.conversation_id
        actions: list[tuple[str, str, Action]] = []
        if handoff.source == SOURCE_CHATWOOT:
            ids = chatwoot_ids(cid)
            if ids is None:
                log.warning(
                    "chatwoot conversation id without an account; no actions", extra={"conversation_id": cid}
                )
                return []
            account, number = ids
            ref = _digest(cid, handoff.route, handoff.queue)
            if targets.chatwoot_team_id is not None or targets.chatwoot_agent_id is not None:
                assign = ChatwootAssign(account, number, targets.chatwoot_team_id, targets.chatwoot_agent_id)
                actions.append((CHATWOOT_TARGET, "assign", assign))
            labels = labels_for(handoff)
            if labels:
                actions.append((CHATWOOT_TARGET, "labels", ChatwootLabels(account, number, labels)))
            content = f"{context_summary(handoff)}\n\nSwitchboard ref {ref}"
            actions.append((CHATWOOT_TARGET, "note", ChatwootNote(account, number, content, ref)))
            step_key = ref
        else:
            workflow = targets.taskrouter_workflow_sid or self.config.taskrouter_workflow_sid
            attributes = self._task_attributes(handoff)
            task = TaskRouterTask(
                ref=_digest(cid, "taskrouter"),
                workflow_sid=workflow,
                task_channel=_TASK_CHANNELS.get(handoff.source),
                priority=handoff.priority,
                attributes=attributes,
            )
            actions.append((TASKROUTER_TARGET, "task", task))
            # Every decision change updates the task (A -> B -> A must end at A); only the same
            # change reported twice (same conversation version) is one update.
            step_key = _digest(cid, str(handoff.version), handoff.route, handoff.queue, str(handoff.priority))
        return [
            NewMessage(
                key=f"act-{_digest(step_key, step)}",
                conversation_id=cid,
                source=handoff.source,
                url=url,
                body=msgspec.json.encode(action),
                created_at=now,
            )
            for url, step, action in actions
        ]

    @staticmethod
    def _task_attributes(handoff: Handoff) -> dict[str, Any]:
        sid_name = "call_sid" if handoff.source == SOURCE_TWILIO_VOICE else "conversation_sid"
        return {
            "type": "switchboard_handoff",
            "conversation_id": handoff.conversation_id,
            sid_name: handoff.conversation_id,
            "route": handoff.route,
            "queue": handoff.queue,
            "priority": handoff.priority,
            "rule": handoff.rule,
            "contact_reason": {
                "category": handoff.category,
                "intent": handoff.intent,
                "confidence": handoff.reason_confidence,
            },
            "sentiment": {
                "label": handoff.sentiment,
                "score": handoff.sentiment_score,
                "trend": handoff.trend,
            },
            "flags": handoff.flags,
            "churn_risk": handoff.churn_risk,
            "summary": context_summary(handoff),
        }

    async def on_decision(self, conversation_id: str, analysis: Any, source: str | None) -> bool:
        """Decision listener: store the steps of a human handoff of an opted-in source.

        Returns whether it stored (or tried to store) any step. Never raises into the append
        (like the callbacks): a backend failure is logged.
        """
        if source not in self.sources:
            return False
        handoff = handoff_from(conversation_id, source, analysis)
        if handoff is None:
            return False
        messages = self.plan(handoff, self._clock())
        if not messages:
            return False
        try:
            await self.outbox.add(messages)
        except BackendError:
            log.error(
                "platform actions could not be stored; they are lost",
                extra={"conversation_id": conversation_id},
            )
        return True

    # -- performer (ActionRunner) ----------------------------------------------------------------

    def handles(self, url: str) -> bool:
        """Action messages are the ones whose URL is ``action:...``."""
        return url.startswith(ACTION_URL_PREFIX)

    async def aclose(self) -> None:
        """Close the HTTP client (a later ``perform`` opens a new one)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _chatwoot(self) -> ChatwootApi:
        if self._chatwoot_base is None or self._chatwoot_token is None:
            raise ChatwootApiError("error", "chatwoot actions are not configured")
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.config.callback_timeout_s, follow_redirects=False)
        return ChatwootApi(self._chatwoot_base, self._chatwoot_token, self._http)

    async def perform(self, message: OutboxMessage) -> AttemptResult:
        """One attempt at one step: check, then act if not done. Failures come back as results."""
        try:
            action = _decoder.decode(message.body)
        except msgspec.DecodeError:
            return AttemptResult(False, "error", "undecodable action", None)
        try:
            step, done = await self._perform(action)
        except ChatwootApiError as exc:
            return AttemptResult(False, exc.outcome, exc.error, exc.retry_after)
        except TaskRouterError as exc:
            return AttemptResult(False, exc.outcome, exc.error, None)
        self.performed.labels(step, "done" if done else "skipped").inc()
        return AttemptResult(True, "2xx", None, None)

    async def _perform(self, action: Action) -> tuple[str, bool]:
        """Return the step's name and whether it changed anything (False: already done)."""
        if isinstance(action, ChatwootAssign):
            api = self._chatwoot()
            meta = (await api.conversation(action.account_id, action.conversation)).get("meta") or {}
            changed = False
            if action.team_id is not None and _get(meta, "team", "id") != action.team_id:
                await api.assign(action.account_id, action.conversation, team_id=action.team_id)
                changed = True
            if action.agent_id is not None and _get(meta, "assignee", "id") != action.agent_id:
                await api.assign(action.account_id, action.conversation, agent_id=action.agent_id)
                changed = True
            return "chatwoot.assign", changed
        if isinstance(action, ChatwootLabels):
            api = self._chatwoot()
            existing = await api.labels(action.account_id, action.conversation)
            merged = existing + [label for label in action.labels if label not in existing]
            if merged == existing:
                return "chatwoot.labels", False
            await api.set_labels(action.account_id, action.conversation, merged)
            return "chatwoot.labels", True
        if isinstance(action, ChatwootNote):
            api = self._chatwoot()
            for message in await api.messages(action.account_id, action.conversation):
                content = message.get("content")
                if message.get("private") and isinstance(content, str) and action.ref in content:
                    return "chatwoot.note", False
            await api.private_note(action.account_id, action.conversation, action.content)
            return "chatwoot.note", True
        if self._taskrouter is None:
            raise TaskRouterError("error", "twilio actions are not configured")
        done, _sid = await self._taskrouter.upsert(
            action.ref,
            attributes=action.attributes,
            priority=action.priority,
            workflow_sid=action.workflow_sid,
            task_channel=action.task_channel,
        )
        return f"taskrouter.{done}", True


def attach_actions(
    config: AdapterConfig, outbox: Outbox, conversations: ConversationService
) -> PlatformActions | None:
    """Wire platform actions into the app when any source opted in (``SWITCHBOARD_ACTIONS``).

    Raises ``SettingsError`` for a source without the credentials its platform needs.
    """
    if not config.actions:
        return None
    actions = PlatformActions(config, outbox)
    actions.attach(conversations)
    return actions
