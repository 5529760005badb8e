"""Input types of the routing layer: one scored turn and the customer metadata.

These Structs are the boundary between ``models``/``service`` and ``routing``:
the service turns model output into ``TurnScores`` and platform metadata into
``CustomerInfo``; everything downstream in ``routing`` reads only these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Speaker = Literal["customer", "agent", "bot", "system"]
SPEAKERS: tuple[Speaker, ...] = ("customer", "agent", "bot", "system")

Route = Literal["self_serve_bot", "specialist", "retention_human"]
ROUTES: tuple[Route, ...] = ("self_serve_bot", "specialist", "retention_human")
BOT_ROUTE: Route = "self_serve_bot"

AttributeValue = str | int | float | bool


class TurnScores(msgspec.Struct):
    """One scored turn, the input of ``update_signals``.

    ``sentiment_score`` is ``p(positive) - p(negative)`` in [-1, 1].
    ``emotions`` holds every emotion's calibrated score, ``emotion_labels`` the
    ones over their per-label threshold (strongest first). ``intent`` is the
    top-k ``(label, prob)`` best first for customer turns and ``None`` for other
    speakers (we do not classify what the bot or agent wants). ``ts`` may be
    naive (taken as UTC) or aware.

    ``act`` is the turn's conversation act (``routing.taxonomy.CONVERSATION_ACTS``;
    ``""`` or ``unknown`` when not known: a pack without an act head, or turns
    stored before acts existed). ``lexical`` is False for a turn with no lexical
    content (speech-to-text tags, fillers, backchannels, spoken digits): it
    weighs nothing in any conversation-level signal. ``language`` is the turn's
    ISO 639-1 code (``und`` when too short to judge) and ``language_supported``
    False only for a confidently detected language the model pack does not
    support: such a turn carries no sentiment, emotion or intent evidence, and
    its ``sentiment_label`` may be ``unknown``. ``custom_categories`` gives the
    category of every custom contact reason (``routing.reasons``) among
    ``intent``; labels not in it are the intent head's, categorised by the
    taxonomy. ``custom_example`` is ``(reason, closest example, similarity)`` when
    a custom reason matched the turn (the evidence an explanation quotes). The
    defaults keep turns built before these fields existed valid.
    """

    index: int
    speaker: Speaker
    text: str
    ts: datetime | None
    sentiment_label: str
    sentiment_score: float
    emotions: dict[str, float]
    emotion_labels: list[str]
    intent: list[tuple[str, float]] | None
    act: str = ""
    lexical: bool = True
    language: str = "und"
    language_supported: bool = True
    custom_categories: dict[str, str] = {}
    custom_example: tuple[str, str, float] | None = None


class CustomerInfo(msgspec.Struct):
    """Conversation metadata about the customer, as the platform knows it.

    Every field is optional; a missing value makes every policy comparison on
    it false (see POLICY.md). ``attributes`` are free-form and reachable in the
    policy as ``customer.attributes.<name>``.
    """

    id: str | None = None
    tier: str | None = None
    tenure_months: int | None = None
    lifetime_value: float | None = None
    contacts_last_30d: int | None = None
    attributes: dict[str, AttributeValue] = {}
