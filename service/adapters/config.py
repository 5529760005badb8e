"""The adapters' configuration types, re-exported from ``service.settings``.

The adapter settings live in the one settings table and are read by the one reader
there (``Settings.from_env``, or ``AdapterConfig.from_env`` for the adapter rows
alone). This module only keeps the adapters' existing imports working.
"""

from __future__ import annotations

from service.settings import (
    ANY_SOURCE,
    SOURCE_CHATWOOT,
    SOURCE_GENERIC,
    SOURCE_PATTERN,
    SOURCE_TWILIO_CONVERSATIONS,
    SOURCE_TWILIO_VOICE,
    AdapterConfig,
    AuthorPatterns,
    NonCustomerSpeaker,
)

__all__ = [
    "ANY_SOURCE",
    "SOURCE_CHATWOOT",
    "SOURCE_GENERIC",
    "SOURCE_PATTERN",
    "SOURCE_TWILIO_CONVERSATIONS",
    "SOURCE_TWILIO_VOICE",
    "AdapterConfig",
    "AuthorPatterns",
    "NonCustomerSpeaker",
]
