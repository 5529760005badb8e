"""Configuration of the platform adapters and decision callbacks.

Every value comes from the environment under the ``SWITCHBOARD_`` prefix (see
``AdapterConfig.from_env``); nothing is read at import. Secrets are kept out of
``repr`` so a config dump in a log never leaks them.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from typing import Literal

import msgspec

from service.errors import SettingsError

PREFIX = "SWITCHBOARD_"

NonCustomerSpeaker = Literal["agent", "bot", "system"]

# A callback source is also an env-var suffix (SWITCHBOARD_CALLBACK_URL_<SOURCE>), so it is
# restricted to what survives the round trip through an upper-case variable name.
SOURCE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")

# The sources this package itself produces; the generic webhook may name others.
SOURCE_TWILIO_VOICE = "twilio_voice"
SOURCE_TWILIO_CONVERSATIONS = "twilio_conversations"
SOURCE_CHATWOOT = "chatwoot"
SOURCE_GENERIC = "generic"

# Key in callback_urls that applies to every source without its own URL.
ANY_SOURCE = "*"

# (variable without prefix, default as documented, meaning): the adapters' rows of the
# README configuration table, in the same shape as ``service.settings.ENV_DOC``.
ENV_DOC: tuple[tuple[str, str, str], ...] = (
    (
        "PUBLIC_BASE_URL",
        "(request URL)",
        "URL the platforms call (incl. a path prefix a proxy strips); Twilio signs it.",
    ),
    (
        "TWILIO_AUTH_TOKEN",
        "(none: 401)",
        "Auth token that `X-Twilio-Signature` (HMAC-SHA1) is checked against.",
    ),
    ("TWILIO_SHARED_KEY_SECRET", "(none)", "Secret for SharedKey-signed Twilio webhooks (HMAC-SHA256)."),
    ("TWILIO_ACCOUNT_SID", "(any)", "Refuse (403) validly signed Twilio events of other accounts."),
    ("TWILIO_CUSTOMER_TRACK", "inbound_track", "Transcription `Track` that is the customer."),
    ("TWILIO_OTHER_TRACK_SPEAKER", "agent", "Speaker of the other track: agent, bot or system."),
    (
        "TWILIO_AGENT_AUTHORS",
        "(none)",
        "Conversations authors who are agents: names or globs, comma-separated.",
    ),
    (
        "TWILIO_BOT_AUTHORS",
        "system",
        "Conversations authors who are bots (checked first); others are customers.",
    ),
    ("CHATWOOT_SECRET", "(none)", "Chatwoot webhook secret for `X-Chatwoot-Signature`."),
    ("CHATWOOT_TOKEN", "(none)", "Shared-token fallback for unsigned Chatwoot webhooks (`?token=`)."),
    ("WEBHOOK_SECRET", "(none: 401)", "Generic webhook secret(s), comma-separated while rotating."),
    ("SIGNATURE_MAX_AGE_S", "300", "Largest distance of a signed timestamp from now (replay window)."),
    ("CALLBACK_URL", "(none)", "Decision callback URL for sources without their own."),
    ("CALLBACK_URL_<SOURCE>", "(none)", "Callback URL of one source (TWILIO_VOICE, CHATWOOT, GENERIC, ...)."),
    ("CALLBACK_URLS", "(none)", "Callback URLs as a JSON object `{source: url}` (`*` = any)."),
    ("CALLBACK_SECRET", "(first webhook secret)", "Signs callbacks; required when a callback URL is set."),
    ("CALLBACK_MAX_ATTEMPTS", "10", "Attempts before a callback is dead-lettered."),
    ("CALLBACK_BACKOFF_BASE_S", "1", "First retry delay; doubles per attempt, with jitter."),
    ("CALLBACK_BACKOFF_MAX_S", "300", "Cap on one retry delay (and on a honoured Retry-After)."),
    ("CALLBACK_TIMEOUT_S", "5", "HTTP timeout of one callback attempt."),
    ("CALLBACK_CONCURRENCY", "4", "Callbacks in flight at once per worker process."),
    ("CALLBACK_RETENTION_S", "604800", "How long delivered and dead callbacks are kept."),
    (
        "OUTBOX",
        "(the store URL)",
        "Outbox and replay-guard backend: sqlite:///path, redis://... or memory://.",
    ),
)


class AuthorPatterns(msgspec.Struct, frozen=True):
    """Author names matched exactly or with shell-style wildcards (``agent_*``, ``*@example.com``).

    Matching is case-insensitive: Twilio identities and e-mail style authors are not
    case-stable across SDKs.
    """

    patterns: tuple[str, ...] = ()

    def matches(self, author: str) -> bool:
        """True when ``author`` matches any pattern."""
        folded = author.casefold()
        return any(fnmatch.fnmatchcase(folded, p.casefold()) for p in self.patterns)


class AdapterConfig(msgspec.Struct, frozen=True):
    """Settings for the webhook adapters, the replay guard and the callback outbox.

    A platform whose secret is unset stays mounted but rejects every request with 401
    (fail closed), so a forgotten variable never lets unsigned turns in.
    """

    public_base_url: str | None = None
    twilio_auth_token: str | None = None
    twilio_shared_key_secret: str | None = None
    twilio_account_sid: str | None = None
    twilio_customer_track: str = "inbound_track"
    twilio_other_track_speaker: NonCustomerSpeaker = "agent"
    twilio_agent_authors: AuthorPatterns = AuthorPatterns()
    twilio_bot_authors: AuthorPatterns = AuthorPatterns(("system",))
    chatwoot_secret: str | None = None
    chatwoot_token: str | None = None
    webhook_secrets: tuple[str, ...] = ()
    signature_max_age_s: float = 300.0
    callback_urls: dict[str, str] = msgspec.field(default_factory=dict)
    callback_secret: str | None = None
    callback_max_attempts: int = 10
    callback_backoff_base_s: float = 1.0
    callback_backoff_max_s: float = 300.0
    callback_timeout_s: float = 5.0
    callback_concurrency: int = 4
    callback_retention_s: float = 7 * 24 * 3600.0
    outbox_url: str | None = None

    def __repr__(self) -> str:
        # Secrets never appear in logs or tracebacks: show only whether they are set.
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if _is_secret(name):
                value = "<set>" if value else None
            shown.append(f"{name}={value!r}")
        return f"AdapterConfig({', '.join(shown)})"

    def callback_url_for(self, source: str | None) -> str | None:
        """The callback URL for decisions of ``source`` (its own, else the ``*`` one, else None)."""
        if source is not None and source in self.callback_urls:
            return self.callback_urls[source]
        return self.callback_urls.get(ANY_SOURCE)

    @property
    def signing_secret(self) -> str | None:
        """The secret that signs callbacks: ``callback_secret``, else the first generic webhook secret."""
        if self.callback_secret:
            return self.callback_secret
        return self.webhook_secrets[0] if self.webhook_secrets else None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdapterConfig:
        """Build the config from ``SWITCHBOARD_*`` variables; ``SettingsError`` names a bad one."""
        reader = _EnvReader(env)
        config = cls(
            public_base_url=reader.url("PUBLIC_BASE_URL"),
            twilio_auth_token=reader.text("TWILIO_AUTH_TOKEN"),
            twilio_shared_key_secret=reader.text("TWILIO_SHARED_KEY_SECRET"),
            twilio_account_sid=reader.text("TWILIO_ACCOUNT_SID"),
            twilio_customer_track=reader.text("TWILIO_CUSTOMER_TRACK") or "inbound_track",
            twilio_other_track_speaker=reader.speaker("TWILIO_OTHER_TRACK_SPEAKER", "agent"),
            twilio_agent_authors=AuthorPatterns(reader.csv("TWILIO_AGENT_AUTHORS")),
            twilio_bot_authors=AuthorPatterns(reader.csv("TWILIO_BOT_AUTHORS", default=("system",))),
            chatwoot_secret=reader.text("CHATWOOT_SECRET"),
            chatwoot_token=reader.text("CHATWOOT_TOKEN"),
            webhook_secrets=reader.csv("WEBHOOK_SECRET"),
            signature_max_age_s=reader.number("SIGNATURE_MAX_AGE_S", 300.0, minimum=1.0),
            callback_urls=reader.callback_urls(),
            callback_secret=reader.text("CALLBACK_SECRET"),
            callback_max_attempts=int(reader.number("CALLBACK_MAX_ATTEMPTS", 10, minimum=1, integer=True)),
            callback_backoff_base_s=reader.number("CALLBACK_BACKOFF_BASE_S", 1.0, minimum=0.001),
            callback_backoff_max_s=reader.number("CALLBACK_BACKOFF_MAX_S", 300.0, minimum=0.001),
            callback_timeout_s=reader.number("CALLBACK_TIMEOUT_S", 5.0, minimum=0.1),
            callback_concurrency=int(reader.number("CALLBACK_CONCURRENCY", 4, minimum=1, integer=True)),
            callback_retention_s=reader.number("CALLBACK_RETENTION_S", 7 * 24 * 3600.0, minimum=0.0),
            outbox_url=reader.text("OUTBOX"),
        )
        if config.callback_urls and not config.signing_secret:
            raise SettingsError(
                "SWITCHBOARD_CALLBACK_URL* is set but neither SWITCHBOARD_CALLBACK_SECRET nor "
                "SWITCHBOARD_WEBHOOK_SECRET is: callbacks must be signed"
            )
        if config.callback_backoff_max_s < config.callback_backoff_base_s:
            raise SettingsError(
                "SWITCHBOARD_CALLBACK_BACKOFF_MAX_S must be >= SWITCHBOARD_CALLBACK_BACKOFF_BASE_S"
            )
        return config


def _is_secret(field_name: str) -> bool:
    return field_name.endswith(("_token", "_secret", "_secrets"))


class _EnvReader:
    """Typed reads of ``SWITCHBOARD_*`` variables; every failure names the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(PREFIX + name, "").strip()
        return value or None

    def csv(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        raw = self.env.get(PREFIX + name)
        if raw is None:
            return default
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def number(self, name: str, default: float, *, minimum: float, integer: bool = False) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(int(raw)) if integer else float(raw)
        except ValueError:
            kind = "an integer" if integer else "a number"
            raise SettingsError(f"{PREFIX}{name} must be {kind}, got {raw!r}") from None
        if value < minimum:
            raise SettingsError(f"{PREFIX}{name} must be >= {minimum:g}, got {raw!r}")
        return value

    def url(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        if not re.match(r"^https?://[^/\s]+", raw):
            raise SettingsError(f"{PREFIX}{name} must be an absolute http(s) URL, got {raw!r}")
        # The public base is joined with request paths that start with "/".
        return raw.rstrip("/")

    def speaker(self, name: str, default: NonCustomerSpeaker) -> NonCustomerSpeaker:
        raw = self.text(name)
        if raw is None:
            return default
        if raw not in ("agent", "bot", "system"):
            raise SettingsError(f"{PREFIX}{name} must be agent, bot or system, got {raw!r}")
        return raw  # type: ignore[return-value]

    def callback_urls(self) -> dict[str, str]:
        """Merge SWITCHBOARD_CALLBACK_URLS (JSON), SWITCHBOARD_CALLBACK_URL and ..._URL_<SOURCE>."""
        urls: dict[str, str] = {}
        raw_map = self.text("CALLBACK_URLS")
        if raw_map is not None:
            try:
                parsed = json.loads(raw_map)
            except ValueError:
                raise SettingsError(f"{PREFIX}CALLBACK_URLS must be a JSON object of source -> URL") from None
            if not isinstance(parsed, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
            ):
                raise SettingsError(f"{PREFIX}CALLBACK_URLS must be a JSON object of source -> URL")
            for source, url in parsed.items():
                urls[_checked_source(source, f"{PREFIX}CALLBACK_URLS")] = _checked_url(
                    url, f"{PREFIX}CALLBACK_URLS[{source}]"
                )
        default = self.text("CALLBACK_URL")
        if default is not None:
            urls[ANY_SOURCE] = _checked_url(default, f"{PREFIX}CALLBACK_URL")
        per_source_prefix = PREFIX + "CALLBACK_URL_"
        for key, value in self.env.items():
            if key.startswith(per_source_prefix) and value.strip():
                source = key[len(per_source_prefix) :].lower()
                urls[_checked_source(source, key)] = _checked_url(value.strip(), key)
        return urls


def _checked_source(source: str, variable: str) -> str:
    if source != ANY_SOURCE and not SOURCE_PATTERN.match(source):
        raise SettingsError(f"{variable}: source {source!r} must match {SOURCE_PATTERN.pattern} or be '*'")
    return source


def _checked_url(url: str, variable: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise SettingsError(f"{variable} must be an absolute http(s) URL, got {url!r}")
    return url
