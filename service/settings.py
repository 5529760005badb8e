"""Service configuration: one table of settings, read by one reader.

``SETTINGS`` declares every setting once: its name (``max_turns``), from which its
environment variable (``SWITCHBOARD_MAX_TURNS``) and its ``switchboard serve`` flag
(``--max-turns``) follow, its type, default, meaning and group. From that table:

* ``Settings.from_env(env, cli=...)`` reads and validates everything, the adapters'
  settings included (precedence: flag > environment > default). Every error names the
  flag or variable the bad value came from. It is the only code that reads configuration;
  everything else receives a ``Settings`` (nothing is read at import).
* ``add_serve_flags`` gives ``switchboard serve`` one flag per setting and ``cli_values``
  turns the flags given back into variables (so worker processes see the same values).
* ``settings_table`` renders the README's configuration table; ``tests/test_readme.py``
  checks it (and rewrites it with ``SWITCHBOARD_UPDATE_README=1``).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import msgspec

from models.config import RuntimeConfig
from service.adapters.signatures import standard_webhooks_key
from service.errors import SettingsError

PREFIX = "SWITCHBOARD_"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HTTP_URL = re.compile(r"^https?://[^/\s]+")
# Values of SWITCHBOARD_REASONS that turn custom contact reasons off.
_OFF = frozenset({"none", "off", "false", "0", "disabled"})

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


# ---- the resolved configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    """One accepted API key: a display name (for logs/metrics) and the sha256 of the token."""

    name: str
    sha256: str


@dataclass(frozen=True)
class Limits:
    """Input size limits; each names its setting so a 422 can say which one was hit."""

    max_body_bytes: int = 1_048_576
    max_turns: int = 200
    max_text_chars: int = 4000
    max_conversation_turns: int = 2000
    max_inflight: int = 128


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


class QueueActions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where platform actions send one routing queue's handoffs (``SWITCHBOARD_ACTION_QUEUES``)."""

    chatwoot_team_id: int | None = None
    chatwoot_agent_id: int | None = None
    taskrouter_workflow_sid: str | None = None


class AdapterConfig(msgspec.Struct, frozen=True):
    """Settings for the webhook adapters, the replay guard and the callback outbox.

    A platform whose secret is unset stays mounted but rejects every request with 401
    (fail closed), so a forgotten variable never lets unsigned turns in. Secrets are
    kept out of ``repr`` so a config dump in a log never leaks them.
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
    callback_signature_scheme: Literal["standard-webhooks", "switchboard"] = "standard-webhooks"
    callback_max_attempts: int = 10
    callback_backoff_base_s: float = 1.0
    callback_backoff_max_s: float = 300.0
    callback_timeout_s: float = 5.0
    callback_concurrency: int = 4
    callback_retention_s: float = 7 * 24 * 3600.0
    outbox_url: str | None = None
    actions: tuple[str, ...] = ()
    chatwoot_api_url: str | None = None
    chatwoot_api_token: str | None = None
    taskrouter_workspace_sid: str | None = None
    taskrouter_workflow_sid: str | None = None
    action_queues: dict[str, QueueActions] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        # Secrets never appear in logs or tracebacks: show only whether they are set.
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name.endswith(("_token", "_secret", "_secrets")):
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
        """Only the adapter settings of ``env`` (same reader and table as ``Settings.from_env``).

        Raises ``SettingsError`` naming the bad variable.
        """
        return _adapter_config(_Reader(env, {}).read(ADAPTER_SETTINGS))


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, resolved once at startup (see ``from_env``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    data_dir: Path = Path("var")
    store_url: str = ""  # empty -> sqlite under data_dir (see ``resolved_store_url``)
    conversation_ttl_s: float = 86_400.0
    # Longer than the longest platform retry window (Twilio retries for hours at most) plus the
    # webhook replay window: a replayed event cannot re-create an erased conversation.
    erase_tombstone_s: float = 48 * 3600.0
    pack_dir: Path | None = None  # None -> models.packs.DEFAULT_PACK
    policy_path: Path | None = None  # None -> routing's committed default policy
    policy_reload_interval_s: float = 5.0
    slo_interval_s: float = 60.0  # 0: the friction-SLO evaluator (service/slo.py) is off
    reasons_path: Path | None = None  # None -> routing's bundled default reasons (unless disabled)
    reasons_enabled: bool = True
    api_keys: tuple[ApiKey, ...] = ()
    auth_disabled: bool = False
    rate_limit_rps: float = 50.0
    rate_limit_burst: int = 100
    limits: Limits = field(default_factory=Limits)
    redact: bool = True
    log_level: str = "INFO"
    log_transcripts: bool = False
    otel_endpoint: str | None = None  # None -> tracing off (see service/tracing.py)
    model_process: str = "auto"  # auto: a child process for the model when the quota has 2+ CPUs
    inference: RuntimeConfig = field(default_factory=RuntimeConfig)
    adapters: AdapterConfig = field(default_factory=AdapterConfig)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, cli: Mapping[str, str] | None = None
    ) -> Settings:
        """Read every setting of ``SETTINGS``: ``cli``, else ``env`` (default ``os.environ``), else default.

        ``cli`` maps variable names to flag values (``cli_values`` makes it). Raises
        ``SettingsError`` naming the flag or variable of a bad value, or the variables
        of a bad combination (see ``validate``).
        """
        values = _Reader(os.environ if env is None else env, cli or {}).read(SETTINGS)
        reasons: str | None = values["reasons"]
        reasons_off = reasons is not None and reasons.lower() in _OFF
        # Fields named like their setting are copied as they are; the others name theirs here.
        copied = {name: values[name] for name in _SAME_NAME}
        renamed = {field: values[name] for field, name in _RENAMED.items()}
        settings = cls(
            **copied,
            **renamed,
            reasons_path=None if reasons is None or reasons_off else Path(reasons).expanduser(),
            reasons_enabled=not reasons_off,
            limits=Limits(**{name: values[name] for name in _LIMIT_FIELDS}),
            inference=RuntimeConfig(
                intra_op_threads=values["intra_op_threads"],
                lone_text_all_cpus=values["lone_text_all_cpus"],
                max_batch_size=values["max_batch_size"],
                max_wait_ms=values["max_wait_ms"],
                queue_size=values["queue_size"],
                default_deadline_ms=values["deadline_ms"],
            ),
            adapters=_adapter_config(values),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse configurations that would start an open or broken service."""
        if not self.auth_disabled and not self.api_keys:
            raise SettingsError(
                "no API keys configured: set SWITCHBOARD_API_KEYS to the sha256 of each accepted key "
                "(`switchboard keygen` makes one), or SWITCHBOARD_AUTH_DISABLED=true for local development"
            )
        if self.limits.max_turns > self.inference.queue_size:
            raise SettingsError(
                f"SWITCHBOARD_MAX_TURNS ({self.limits.max_turns}) must not exceed SWITCHBOARD_QUEUE_SIZE "
                f"({self.inference.queue_size}): a transcript of the largest allowed size could not be queued"
            )
        url = self.resolved_store_url
        if not url.startswith(("memory://", "sqlite:///", "redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"SWITCHBOARD_STORE must be memory://, sqlite:///path or redis://host:port/db, got {url!r}"
            )

    @property
    def resolved_store_url(self) -> str:
        """The store URL, defaulting to an SQLite file under ``data_dir``."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{self.data_dir / 'switchboard.sqlite3'}"


_SAME_NAME = (
    "host",
    "port",
    "workers",
    "data_dir",
    "erase_tombstone_s",
    "slo_interval_s",
    "api_keys",
    "auth_disabled",
    "redact",
    "log_level",
    "log_transcripts",
    "otel_endpoint",
    "model_process",
)
_RENAMED = {
    "store_url": "store",
    "conversation_ttl_s": "conversation_ttl",
    "pack_dir": "pack",
    "policy_path": "policy",
    "policy_reload_interval_s": "policy_reload_interval",
    "rate_limit_rps": "rate_limit",
    "rate_limit_burst": "rate_burst",
}
_LIMIT_FIELDS = ("max_body_bytes", "max_turns", "max_text_chars", "max_conversation_turns", "max_inflight")
_ADAPTER_SAME_NAME = (
    "public_base_url",
    "twilio_auth_token",
    "twilio_shared_key_secret",
    "twilio_account_sid",
    "twilio_customer_track",
    "twilio_other_track_speaker",
    "chatwoot_secret",
    "chatwoot_token",
    "signature_max_age_s",
    "callback_secret",
    "callback_signature_scheme",
    "callback_max_attempts",
    "callback_backoff_base_s",
    "callback_backoff_max_s",
    "callback_timeout_s",
    "callback_concurrency",
    "callback_retention_s",
    "actions",
    "chatwoot_api_url",
    "chatwoot_api_token",
    "taskrouter_workspace_sid",
    "taskrouter_workflow_sid",
    "action_queues",
)


def _adapter_config(values: Mapping[str, Any]) -> AdapterConfig:
    """The adapters' part of the read values, checked as a whole."""
    urls: dict[str, str] = dict(values["callback_urls"])
    if values["callback_url"] is not None:
        urls[ANY_SOURCE] = values["callback_url"]
    urls.update(values["callback_url_<source>"])
    config = AdapterConfig(
        **{name: values[name] for name in _ADAPTER_SAME_NAME},
        twilio_agent_authors=AuthorPatterns(values["twilio_agent_authors"]),
        twilio_bot_authors=AuthorPatterns(values["twilio_bot_authors"]),
        webhook_secrets=values["webhook_secret"],
        callback_urls=urls,
        outbox_url=values["outbox"],
    )
    if config.callback_urls and not config.signing_secret:
        raise SettingsError(
            "SWITCHBOARD_CALLBACK_URL* is set but neither SWITCHBOARD_CALLBACK_SECRET nor "
            "SWITCHBOARD_WEBHOOK_SECRET is: callbacks must be signed"
        )
    if config.signing_secret and config.callback_signature_scheme == "standard-webhooks":
        try:
            standard_webhooks_key(config.signing_secret)
        except ValueError as exc:
            raise SettingsError(f"SWITCHBOARD_CALLBACK_SECRET (the key that signs callbacks): {exc}") from exc
    if config.callback_backoff_max_s < config.callback_backoff_base_s:
        raise SettingsError(
            "SWITCHBOARD_CALLBACK_BACKOFF_MAX_S must be >= SWITCHBOARD_CALLBACK_BACKOFF_BASE_S"
        )
    return config


# ---- value types -----------------------------------------------------------------------------------


class _Invalid(ValueError):
    """A value that does not parse; its message follows the name of the flag or variable."""


@dataclass(frozen=True)
class Kind:
    """How the text of one setting becomes its value (plain text: stripped)."""

    metavar: str = "TEXT"
    # An empty value means "unset, use the default" unless the kind says otherwise.
    blank_is_unset: ClassVar[bool] = True

    def parse(self, raw: str) -> Any:
        """The value of ``raw`` (already stripped, never empty); ``_Invalid`` if it does not parse."""
        return raw


@dataclass(frozen=True)
class Integer(Kind):
    """A whole number within ``[minimum, maximum]``."""

    metavar: str = "N"
    minimum: int | None = None
    maximum: int | None = None

    def parse(self, raw: str) -> int:
        try:
            number = int(raw)
        except ValueError:
            raise _Invalid(f"must be an integer, got {raw!r}") from None
        _check_range(number, self.minimum, self.maximum)
        return number


@dataclass(frozen=True)
class Number(Kind):
    """A real number of at least ``minimum`` (never NaN)."""

    metavar: str = "NUMBER"
    minimum: float | None = None

    def parse(self, raw: str) -> float:
        try:
            number = float(raw)
        except ValueError:
            raise _Invalid(f"must be a number, got {raw!r}") from None
        if number != number:  # NaN
            raise _Invalid(f"must be a number, got {raw!r}")
        _check_range(number, self.minimum, None)
        return number


@dataclass(frozen=True)
class Boolean(Kind):
    """true/false, yes/no, on/off or 1/0 (a ``--name/--no-name`` flag pair)."""

    metavar: str = "BOOL"

    def parse(self, raw: str) -> bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise _Invalid(f"must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Choice(Kind):
    """One of ``options``; ``upper`` folds the value to upper case first."""

    metavar: str = "CHOICE"
    options: tuple[str, ...] = ()
    upper: bool = False

    def parse(self, raw: str) -> str:
        value = raw.upper() if self.upper else raw
        if value not in self.options:
            raise _Invalid(f"must be one of {', '.join(self.options)}, got {value!r}")
        return value


@dataclass(frozen=True)
class FilePath(Kind):
    """A filesystem path (``~`` expanded)."""

    metavar: str = "PATH"

    def parse(self, raw: str) -> Path:
        return Path(raw).expanduser()


@dataclass(frozen=True)
class HttpUrl(Kind):
    """An absolute http(s) URL; ``strip_slash`` drops trailing slashes (it is joined with paths)."""

    metavar: str = "URL"
    strip_slash: bool = False

    def parse(self, raw: str) -> str:
        if not _HTTP_URL.match(raw):
            raise _Invalid(f"must be an absolute http(s) URL, got {raw!r}")
        return raw.rstrip("/") if self.strip_slash else raw


@dataclass(frozen=True)
class Words(Kind):
    """A comma-separated list; set but empty means the empty list (not the default)."""

    metavar: str = "A,B"
    blank_is_unset: ClassVar[bool] = False

    def parse(self, raw: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class ApiKeys(Kind):
    """``name=sha256hex,sha256hex,...``; a bare hash is named by its first 8 hex digits."""

    metavar: str = "NAME=SHA256,..."

    def parse(self, raw: str) -> tuple[ApiKey, ...]:
        keys: list[ApiKey] = []
        for position, item in enumerate(part.strip() for part in raw.split(",")):
            if not item:
                continue
            name, _, digest = item.rpartition("=")
            digest = digest.strip().lower()
            name = name.strip() or digest[:8]
            if not _SHA256_HEX.match(digest):
                raise _Invalid(
                    f"entry {position + 1} is not a sha256 hex digest "
                    "(store the hash of the key, not the key; `switchboard keygen` prints both)"
                )
            if not _KEY_NAME.match(name):
                raise _Invalid(f"entry {position + 1} has an invalid name {name!r}")
            keys.append(ApiKey(name=name, sha256=digest))
        return tuple(keys)


@dataclass(frozen=True)
class SourceUrls(Kind):
    """A JSON object of callback source -> http(s) URL (``*`` = any source)."""

    metavar: str = "JSON"

    def parse(self, raw: str) -> dict[str, str]:
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise _Invalid("must be a JSON object of source -> URL") from None
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
        ):
            raise _Invalid("must be a JSON object of source -> URL")
        return {_source(source): _url(url, f"[{source}]") for source, url in parsed.items()}


@dataclass(frozen=True)
class QueueTargets(Kind):
    """A JSON object of routing queue -> ``QueueActions`` (``*`` = any queue without its own)."""

    metavar: str = "JSON"

    def parse(self, raw: str) -> dict[str, QueueActions]:
        try:
            return msgspec.json.decode(raw, type=dict[str, QueueActions])
        except msgspec.ValidationError as exc:
            raise _Invalid(
                f"must be a JSON object of queue -> {{chatwoot_team_id, chatwoot_agent_id, "
                f"taskrouter_workflow_sid}}: {exc}"
            ) from None
        except msgspec.DecodeError:
            raise _Invalid("must be a JSON object of queue -> targets") from None


def _source(source: str) -> str:
    if source != ANY_SOURCE and not SOURCE_PATTERN.match(source):
        raise _Invalid(f"source {source!r} must match {SOURCE_PATTERN.pattern} or be '*'")
    return source


def _url(url: str, where: str = "") -> str:
    if not _HTTP_URL.match(url):
        raise _Invalid(f"{where} must be an absolute http(s) URL, got {url!r}".lstrip())
    return url


def _check_range(number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise _Invalid(f"must be >= {minimum:g}, got {number:g}")
    if maximum is not None and number > maximum:
        raise _Invalid(f"must be <= {maximum:g}, got {number:g}")


# ---- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting: ``SWITCHBOARD_<NAME>`` in the environment and ``--<name>`` on ``serve``.

    ``default`` is the value when unset; ``shown`` documents it where the value alone
    would not (derived or bundled defaults). A ``<...>`` in the name makes a family of
    variables (``SWITCHBOARD_CALLBACK_URL_<SOURCE>``): its value maps the part filled in,
    lower-cased, to the parsed value, and its flag takes ``PART=VALUE`` and may repeat.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    group: str
    shown: str | None = None
    secret: bool = False
    flag_name: str | None = None

    @property
    def env(self) -> str:
        """The environment variable (``SWITCHBOARD_MAX_TURNS``)."""
        return PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """The ``switchboard serve`` flag (``--max-turns``)."""
        return "--" + (self.flag_name or self.name).replace("_", "-")

    @property
    def family(self) -> bool:
        """True for a family of variables (``SWITCHBOARD_CALLBACK_URL_<SOURCE>``)."""
        return "<" in self.name

    @property
    def default_text(self) -> str:
        """The default as documented: ``shown``, else the default value as it would be written."""
        if self.shown is not None:
            return self.shown
        value = self.default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return str(int(value)) if value.is_integer() else str(value)
        if isinstance(value, tuple):
            return ",".join(value) if value else "(none)"
        return "(none)" if value is None else str(value)


_D = Settings()  # the dataclasses hold the defaults; the table shows and applies them
_A = _D.adapters
_LIMITS = _D.limits
_INFERENCE = _D.inference

SERVICE_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "host",
        Kind(metavar="ADDRESS"),
        _D.host,
        "Interface `switchboard serve` binds (the container sets 0.0.0.0).",
        "server",
    ),
    Setting("port", Integer(minimum=0, maximum=65535), _D.port, "TCP port of `switchboard serve`.", "server"),
    Setting(
        "workers",
        Integer(minimum=1),
        _D.workers,
        "Worker processes of `switchboard serve` (each loads the pack; prefer replicas).",
        "server",
    ),
    Setting(
        "data_dir",
        FilePath(),
        _D.data_dir,
        "Folder for the embedded SQLite store (and the adapters' outbox).",
        "storage",
        shown="./var",
    ),
    Setting(
        "store",
        Kind(metavar="URL"),
        _D.store_url,
        "Conversation store: `memory://`, `sqlite:///path` or `redis://host:port/db`.",
        "storage",
        shown="sqlite:///$DATA_DIR/switchboard.sqlite3",
    ),
    Setting(
        "conversation_ttl",
        Number(minimum=1.0),
        _D.conversation_ttl_s,
        "Seconds of inactivity after which a live conversation expires.",
        "storage",
    ),
    Setting(
        "erase_tombstone_s",
        Number(minimum=0.0),
        _D.erase_tombstone_s,
        "Seconds events for an erased conversation are refused (410), so a late or replayed "
        "platform event cannot re-create it; 0 = not at all.",
        "storage",
    ),
    Setting(
        "pack",
        FilePath(),
        _D.pack_dir,
        "Model pack folder (manifest.json + tokenizer + ONNX).",
        "routing",
        shown="(bundled models/packs/default)",
    ),
    Setting(
        "policy",
        FilePath(),
        _D.policy_path,
        "Routing policy TOML file; reloaded when it changes.",
        "routing",
        shown="(bundled default policy)",
    ),
    Setting(
        "policy_reload_interval",
        Number(minimum=0.0),
        _D.policy_reload_interval_s,
        "Seconds between policy file mtime checks; 0 turns polling off.",
        "routing",
    ),
    Setting(
        "slo_interval_s",
        Number(minimum=0.0),
        _D.slo_interval_s,
        "Seconds between evaluations of the policy's friction SLOs (`[[slos]]`); 0 turns them off.",
        "routing",
    ),
    Setting(
        "reasons",
        Kind(metavar="PATH"),
        None,
        "Custom contact reasons TOML file (routing/REASONS.md); `none` turns them off; reloaded when it "
        "changes (same interval as the policy).",
        "routing",
        shown="(bundled default reasons)",
    ),
    Setting(
        "api_keys",
        ApiKeys(),
        _D.api_keys,
        "Comma-separated `name=sha256hex` (or bare sha256 hex) of accepted bearer tokens.",
        "auth",
    ),
    Setting(
        "auth_disabled",
        Boolean(),
        _D.auth_disabled,
        "`true` turns API-key auth off. Local development only.",
        "auth",
    ),
    Setting(
        "rate_limit",
        Number(minimum=0.0),
        _D.rate_limit_rps,
        "Requests per second per API key (token bucket refill); 0 = unlimited.",
        "auth",
    ),
    Setting("rate_burst", Integer(minimum=1), _D.rate_limit_burst, "Token bucket size per API key.", "auth"),
    Setting(
        "max_body_bytes",
        Integer(minimum=1024),
        _LIMITS.max_body_bytes,
        "Largest accepted request body (413 above).",
        "limits",
    ),
    Setting(
        "max_inflight",
        Integer(minimum=0),
        _LIMITS.max_inflight,
        "Most /v1 requests processed at once per worker; more get 429 + Retry-After.",
        "limits",
    ),
    Setting(
        "max_turns", Integer(minimum=1), _LIMITS.max_turns, "Most turns in one request (422 above).", "limits"
    ),
    Setting(
        "max_text_chars",
        Integer(minimum=1),
        _LIMITS.max_text_chars,
        "Longest turn text in characters (422 above).",
        "limits",
    ),
    Setting(
        "max_conversation_turns",
        Integer(minimum=1),
        _LIMITS.max_conversation_turns,
        "Most turns one live conversation may hold (422 above).",
        "limits",
    ),
    Setting(
        "redact",
        Boolean(),
        _D.redact,
        "Redact PII (cards, SSNs, IBANs, e-mails, phones) in returned text and context.",
        "logging",
    ),
    Setting(
        "log_level",
        Choice(metavar="LEVEL", options=("DEBUG", "INFO", "WARNING", "ERROR"), upper=True),
        _D.log_level,
        "Log level of the JSON logs on stderr.",
        "logging",
    ),
    Setting(
        "log_transcripts",
        Boolean(),
        _D.log_transcripts,
        "`true` lets transcript text into logs. Never in production.",
        "logging",
    ),
    Setting(
        "otel_endpoint",
        HttpUrl(),
        _D.otel_endpoint,
        "OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`); set, requests are traced with "
        "OpenTelemetry (needs the `[otel]` extra); unset, tracing is off.",
        "logging",
        shown="(tracing off)",
    ),
    Setting(
        "model_process",
        Choice(metavar="MODE", options=("auto", "on", "off")),
        _D.model_process,
        "Run the model in a child process of each worker, off the event loop's interpreter lock "
        "(`auto`: when the CPU quota has 2 or more CPUs).",
        "inference",
    ),
    Setting(
        "intra_op_threads",
        Integer(minimum=1),
        _INFERENCE.intra_op_threads,
        "onnxruntime intra-op threads per worker.",
        "inference",
        shown="(CPU quota / workers)",
    ),
    Setting(
        "lone_text_all_cpus",
        Boolean(),
        _INFERENCE.lone_text_all_cpus,
        "A text that is the only work at the time runs on every CPU (threads spin only during that "
        "run) where the warm-up measures that 1.1x faster than one thread; off, every text runs on "
        "one thread, for nodes whose CPUs are shared with other pods.",
        "inference",
    ),
    Setting(
        "max_batch_size",
        Integer(minimum=1),
        _INFERENCE.max_batch_size,
        "Most texts coalesced into one ONNX run.",
        "inference",
    ),
    Setting(
        "max_wait_ms",
        Number(minimum=0.0),
        _INFERENCE.max_wait_ms,
        "Longest a text waits for a batch to fill.",
        "inference",
    ),
    Setting(
        "queue_size",
        Integer(minimum=1),
        _INFERENCE.queue_size,
        "Bounded inference queue (texts); a full queue answers 429 + Retry-After.",
        "inference",
    ),
    Setting(
        "deadline_ms",
        Number(minimum=1.0),
        _INFERENCE.default_deadline_ms,
        "Per-request inference deadline (503 when exceeded).",
        "inference",
    ),
)

ADAPTER_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "public_base_url",
        HttpUrl(strip_slash=True),
        _A.public_base_url,
        "URL the platforms call, including a path prefix a proxy strips (Twilio signs it).",
        "adapters",
        shown="(the request's URL)",
    ),
    Setting(
        "twilio_auth_token",
        Kind(),
        _A.twilio_auth_token,
        "Auth token that `X-Twilio-Signature` (HMAC-SHA1) is checked against.",
        "adapters",
        shown="(none: Twilio webhooks get 401)",
        secret=True,
    ),
    Setting(
        "twilio_shared_key_secret",
        Kind(),
        _A.twilio_shared_key_secret,
        "Secret for SharedKey-signed Twilio webhooks (HMAC-SHA256).",
        "adapters",
        secret=True,
    ),
    Setting(
        "twilio_account_sid",
        Kind(),
        _A.twilio_account_sid,
        "Refuse (403) validly signed Twilio events of other accounts.",
        "adapters",
        shown="(any)",
    ),
    Setting(
        "twilio_customer_track",
        Kind(),
        _A.twilio_customer_track,
        "Transcription `Track` that is the customer (`outbound_track` for outbound calls).",
        "adapters",
    ),
    Setting(
        "twilio_other_track_speaker",
        Choice(metavar="SPEAKER", options=("agent", "bot", "system")),
        _A.twilio_other_track_speaker,
        "Speaker of the other track: agent, bot or system.",
        "adapters",
    ),
    Setting(
        "twilio_agent_authors",
        Words(),
        _A.twilio_agent_authors.patterns,
        "Twilio Conversations authors who are agents: names or globs, comma-separated, case-insensitive.",
        "adapters",
    ),
    Setting(
        "twilio_bot_authors",
        Words(),
        _A.twilio_bot_authors.patterns,
        "Conversations authors who are bots (checked first); everyone else is the customer.",
        "adapters",
    ),
    Setting(
        "chatwoot_secret",
        Kind(),
        _A.chatwoot_secret,
        "Chatwoot webhook secret for `X-Chatwoot-Signature`.",
        "adapters",
        secret=True,
    ),
    Setting(
        "chatwoot_token",
        Kind(),
        _A.chatwoot_token,
        "Shared-token fallback for unsigned Chatwoot webhooks (`?token=`).",
        "adapters",
        secret=True,
    ),
    Setting(
        "webhook_secret",
        Words(),
        _A.webhook_secrets,
        "Generic webhook secret(s), comma-separated while rotating; the first also signs callbacks "
        "when `SWITCHBOARD_CALLBACK_SECRET` is unset.",
        "adapters",
        shown="(none: the generic webhook gets 401)",
        secret=True,
    ),
    Setting(
        "signature_max_age_s",
        Number(minimum=1.0),
        _A.signature_max_age_s,
        "Largest distance of a signed timestamp from now (replay window).",
        "adapters",
    ),
    Setting(
        "callback_url",
        HttpUrl(),
        None,
        "Decision callback URL for sources without their own.",
        "callbacks",
    ),
    Setting(
        "callback_url_<source>",
        HttpUrl(metavar="SOURCE=URL"),
        {},
        "Callback URL of one source (TWILIO_VOICE, TWILIO_CONVERSATIONS, CHATWOOT, GENERIC, or any "
        "source a client names); the flag repeats.",
        "callbacks",
        shown="(none)",
        flag_name="callback_url_for",
    ),
    Setting(
        "callback_urls",
        SourceUrls(),
        {},
        "Callback URLs as one JSON object `{source: url}` (`*` = any source).",
        "callbacks",
        shown="(none)",
    ),
    Setting(
        "callback_secret",
        Kind(),
        _A.callback_secret,
        "Signs callbacks: a `whsec_<base64>` secret or any string; required when a callback URL is set.",
        "callbacks",
        shown="(the first webhook secret)",
        secret=True,
    ),
    Setting(
        "callback_signature_scheme",
        Choice(metavar="SCHEME", options=("standard-webhooks", "switchboard")),
        _A.callback_signature_scheme,
        "`standard-webhooks`: `webhook-id`/`-timestamp`/`-signature` (standardwebhooks.com) plus the "
        "`X-Switchboard-*` signature; `switchboard`: only `X-Switchboard-Timestamp`/`-Signature`.",
        "callbacks",
    ),
    Setting(
        "callback_max_attempts",
        Integer(minimum=1),
        _A.callback_max_attempts,
        "Attempts before a callback is dead-lettered (kept, counted, can be sent again).",
        "callbacks",
    ),
    Setting(
        "callback_backoff_base_s",
        Number(minimum=0.001),
        _A.callback_backoff_base_s,
        "First retry delay; each later one doubles, with jitter.",
        "callbacks",
    ),
    Setting(
        "callback_backoff_max_s",
        Number(minimum=0.001),
        _A.callback_backoff_max_s,
        "Cap on one retry delay (and on a honoured Retry-After).",
        "callbacks",
    ),
    Setting(
        "callback_timeout_s",
        Number(minimum=0.1),
        _A.callback_timeout_s,
        "HTTP timeout of one callback attempt.",
        "callbacks",
    ),
    Setting(
        "callback_concurrency",
        Integer(minimum=1),
        _A.callback_concurrency,
        "Callbacks in flight at once per worker process.",
        "callbacks",
    ),
    Setting(
        "callback_retention_s",
        Number(minimum=0.0),
        _A.callback_retention_s,
        "How long delivered and dead-lettered callbacks are kept.",
        "callbacks",
    ),
    Setting(
        "outbox",
        Kind(metavar="URL"),
        _A.outbox_url,
        "Outbox and replay-guard backend: `sqlite:///path`, `redis://...` or `memory://` (then "
        "pending callbacks do not survive a restart).",
        "callbacks",
        shown="(the store URL)",
    ),
    Setting(
        "actions",
        Words(),
        _A.actions,
        "Sources whose human handoffs act in the platform (opt-in): chatwoot, twilio_voice, "
        "twilio_conversations.",
        "actions",
        shown="(none)",
    ),
    Setting(
        "chatwoot_api_url",
        HttpUrl(strip_slash=True),
        _A.chatwoot_api_url,
        "Chatwoot base URL for actions (`https://app.chatwoot.com` or your install).",
        "actions",
    ),
    Setting(
        "chatwoot_api_token",
        Kind(),
        _A.chatwoot_api_token,
        "Chatwoot `api_access_token` (an agent's or agent bot's) for actions.",
        "actions",
        secret=True,
    ),
    Setting(
        "taskrouter_workspace_sid",
        Kind(),
        _A.taskrouter_workspace_sid,
        "TaskRouter workspace (WS...) of Twilio actions; the REST client authenticates with "
        "`SWITCHBOARD_TWILIO_ACCOUNT_SID` and `SWITCHBOARD_TWILIO_AUTH_TOKEN`.",
        "actions",
    ),
    Setting(
        "taskrouter_workflow_sid",
        Kind(),
        _A.taskrouter_workflow_sid,
        "TaskRouter workflow (WW...) for queues without their own in `SWITCHBOARD_ACTION_QUEUES`.",
        "actions",
        shown="(the workspace's only workflow)",
    ),
    Setting(
        "action_queues",
        QueueTargets(),
        {},
        "Per routing queue: `{queue: {chatwoot_team_id, chatwoot_agent_id, taskrouter_workflow_sid}}` "
        "(`*` = any other queue).",
        "actions",
        shown="(none)",
    ),
)

SETTINGS: tuple[Setting, ...] = SERVICE_SETTINGS + ADAPTER_SETTINGS

GROUPS: dict[str, str] = {
    "server": "HTTP server",
    "storage": "Conversation store",
    "routing": "Model pack, policy and contact reasons",
    "auth": "Authentication and rate limits",
    "limits": "Input limits",
    "logging": "Privacy and logs",
    "inference": "Inference runtime",
    "adapters": "Platform adapters (Twilio, Chatwoot, generic webhook)",
    "callbacks": "Decision callbacks",
    "actions": "Platform actions (Chatwoot, Twilio TaskRouter)",
}


# ---- the reader ------------------------------------------------------------------------------------


class _Reader:
    """The one reader of configuration: flag values first, then the environment."""

    def __init__(self, env: Mapping[str, str], cli: Mapping[str, str]) -> None:
        self._env = env
        self._cli = cli

    def read(self, settings: Iterable[Setting]) -> dict[str, Any]:
        """``{setting name: value}``; ``SettingsError`` names the flag or variable of a bad value."""
        return {s.name: self._family(s) if s.family else self._one(s) for s in settings}

    def _one(self, setting: Setting) -> Any:
        variable = setting.env
        label = setting.flag if variable in self._cli else variable
        raw = self._cli.get(variable, self._env.get(variable))
        if raw is None:
            return setting.default
        raw = raw.strip()
        if not raw and setting.kind.blank_is_unset:
            return setting.default
        return self._parse(setting, raw, label)

    def _family(self, setting: Setting) -> dict[str, Any]:
        stem = setting.env.split("<", 1)[0]
        merged = {
            **{k: (v, k) for k, v in self._env.items()},
            **{k: (v, setting.flag) for k, v in self._cli.items()},
        }
        values: dict[str, Any] = {}
        for variable, (raw, label) in sorted(merged.items()):
            if not variable.startswith(stem) or not raw.strip():
                continue
            part = variable[len(stem) :].lower()
            try:
                values[_source(part)] = setting.kind.parse(raw.strip())
            except _Invalid as exc:
                raise SettingsError(f"{label} {exc}") from None
        return values

    @staticmethod
    def _parse(setting: Setting, raw: str, label: str) -> Any:
        try:
            return setting.kind.parse(raw)
        except _Invalid as exc:
            raise SettingsError(f"{label} {exc}") from None


# ---- uses of the table -----------------------------------------------------------------------------


def hash_api_key(token: str) -> str:
    """The sha256 hex digest stored in configuration for a bearer token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Parse ``name=sha256hex,sha256hex,...`` as ``SWITCHBOARD_API_KEYS``; ``SettingsError`` if invalid."""
    try:
        return ApiKeys().parse(raw)
    except _Invalid as exc:
        raise SettingsError(f"{PREFIX}API_KEYS {exc}") from None


def settings_table() -> str:
    """The README configuration table (Markdown): every setting, its flag, default and meaning."""
    lines = ["| Variable | `serve` flag | Default | Meaning |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        default = setting.default_text
        shown = default if default.startswith("(") else f"`{default}`"
        flag = f"`{setting.flag} {setting.kind.metavar}`" if setting.family else f"`{setting.flag}`"
        lines.append(f"| `{setting.env}` | {flag} | {shown} | {setting.help} |")
    return "\n".join(lines)


def _dest(setting: Setting) -> str:
    return "setting_" + re.sub(r"\W", "", setting.name)


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting to ``parser``, grouped; an absent flag parses as None (unset)."""
    groups = {key: parser.add_argument_group(f"{title} settings") for key, title in GROUPS.items()}
    for setting in SETTINGS:
        text = f"{setting.help} [{setting.env}; default: {setting.default_text}]"
        if setting.secret:
            text += " Prefer the environment: command lines are visible to other users."
        text = text.replace("%", "%%")  # argparse formats help with %
        group = groups[setting.group]
        if isinstance(setting.kind, Boolean):
            group.add_argument(
                setting.flag,
                dest=_dest(setting),
                action=argparse.BooleanOptionalAction,
                default=None,
                help=text,
            )
        elif setting.family:
            group.add_argument(
                setting.flag, dest=_dest(setting), action="append", metavar=setting.kind.metavar, help=text
            )
        else:
            group.add_argument(setting.flag, dest=_dest(setting), metavar=setting.kind.metavar, help=text)


def cli_values(args: argparse.Namespace) -> dict[str, str]:
    """The flags given on the command line (see ``add_serve_flags``) as ``{variable: text}``.

    Pass it as ``Settings.from_env(cli=...)``; writing it into ``os.environ`` gives worker
    processes the same settings. A family flag's ``PART=VALUE`` becomes ``..._<PART>=VALUE``;
    ``SettingsError`` names the flag if the ``=`` is missing.
    """
    values: dict[str, str] = {}
    for setting in SETTINGS:
        given = getattr(args, _dest(setting), None)
        if given is None:
            continue
        if isinstance(given, bool):
            values[setting.env] = "true" if given else "false"
        elif setting.family:
            stem = setting.env.split("<", 1)[0]
            for item in given:
                part, separator, value = item.partition("=")
                if not separator or not part.strip():
                    raise SettingsError(f"{setting.flag} takes {setting.kind.metavar}, got {item!r}")
                values[stem + part.strip().upper()] = value
        else:
            values[setting.env] = given
    return values
