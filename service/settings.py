"""Service configuration: environment variables with the ``SWITCHBOARD_`` prefix.

``Settings.from_env(env)`` is the only reader of the environment; everything
else receives a ``Settings`` explicitly (no globals at import). Every variable,
its default and meaning is listed in ``ENV_DOC`` so the README table and
``switchboard serve --help`` cannot drift from the code.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from service.adapters.config import AdapterConfig
from service.errors import SettingsError

PREFIX = "SWITCHBOARD_"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Values of SWITCHBOARD_REASONS that turn custom contact reasons off.
_OFF = frozenset({"none", "off", "false", "0", "disabled"})

# (variable without prefix, default as documented, meaning). Kept next to the parser
# so the README table is generated from the same source (see ``env_table``).
ENV_DOC: tuple[tuple[str, str, str], ...] = (
    ("HOST", "127.0.0.1", "Interface `switchboard serve` binds (the container sets 0.0.0.0)."),
    ("PORT", "8000", "TCP port of `switchboard serve`."),
    ("WORKERS", "1", "Worker processes of `switchboard serve` (each loads the pack; prefer replicas)."),
    ("DATA_DIR", "./var", "Folder for the embedded SQLite store (and the adapters' outbox)."),
    (
        "STORE",
        "sqlite:///$DATA_DIR/switchboard.sqlite3",
        "Conversation store: `memory://`, `sqlite:///path` or `redis://host:port/db`.",
    ),
    ("CONVERSATION_TTL", "86400", "Seconds of inactivity after which a live conversation expires."),
    ("PACK", "models/packs/default (bundled)", "Model pack folder (manifest.json + tokenizer + ONNX)."),
    ("POLICY", "(bundled default policy)", "Routing policy TOML file; reloaded when it changes."),
    ("POLICY_RELOAD_INTERVAL", "5", "Seconds between policy file mtime checks; 0 turns polling off."),
    (
        "REASONS",
        "(bundled default reasons)",
        "Custom contact reasons TOML file (routing/REASONS.md); `none` turns them off; reloaded when it "
        "changes (same interval as the policy).",
    ),
    (
        "API_KEYS",
        "(none)",
        "Comma-separated `name=sha256hex` (or bare sha256 hex) of accepted bearer tokens.",
    ),
    ("AUTH_DISABLED", "false", "`true` turns API-key auth off. Local development only."),
    ("RATE_LIMIT", "50", "Requests per second per API key (token bucket refill); 0 = unlimited."),
    ("RATE_BURST", "100", "Token bucket size per API key."),
    ("MAX_BODY_BYTES", "1048576", "Largest accepted request body (413 above)."),
    ("MAX_INFLIGHT", "128", "Most /v1 requests processed at once per worker; more get 429 + Retry-After."),
    ("MAX_TURNS", "200", "Most turns in one request (422 above)."),
    ("MAX_TEXT_CHARS", "4000", "Longest turn text in characters (422 above)."),
    ("MAX_CONVERSATION_TURNS", "2000", "Most turns one live conversation may hold (422 above)."),
    ("REDACT", "true", "Redact PII (cards, SSNs, IBANs, e-mails, phones) in returned text and context."),
    ("LOG_LEVEL", "INFO", "Log level of the JSON logs on stderr."),
    ("LOG_TRANSCRIPTS", "false", "`true` lets transcript text into logs. Never in production."),
    ("INTRA_OP_THREADS", "(CPU quota / workers)", "onnxruntime intra-op threads per worker."),
    ("MAX_BATCH_SIZE", "32", "Most texts coalesced into one ONNX run."),
    ("MAX_WAIT_MS", "1.5", "Longest a text waits for a batch to fill."),
    ("QUEUE_SIZE", "512", "Bounded inference queue (texts); a full queue answers 429 + Retry-After."),
    ("DEADLINE_MS", "2000", "Per-request inference deadline (503 when exceeded)."),
)


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


@dataclass(frozen=True)
class InferenceSettings:
    """Knobs passed through to ``models.runtime.RuntimeConfig``."""

    intra_op_threads: int | None = None
    max_batch_size: int = 32
    max_wait_ms: float = 1.5
    queue_size: int = 512
    deadline_ms: float = 2000.0


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, resolved once at startup."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    data_dir: Path = Path("var")
    store_url: str = ""  # empty -> sqlite under data_dir (see ``resolved_store_url``)
    conversation_ttl_s: float = 86_400.0
    pack_dir: Path | None = None  # None -> models.packs.DEFAULT_PACK
    policy_path: Path | None = None  # None -> routing's committed default policy
    policy_reload_interval_s: float = 5.0
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
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    adapters: AdapterConfig = field(default_factory=lambda: AdapterConfig.from_env({}))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); ``SettingsError`` names a bad variable."""
        source: Mapping[str, str] = os.environ if env is None else env
        reader = _Reader(source)
        settings = cls(
            host=reader.get_str("HOST", "127.0.0.1"),
            port=reader.get_int("PORT", 8000, minimum=0, maximum=65535),
            workers=reader.get_int("WORKERS", 1, minimum=1),
            data_dir=Path(reader.get_str("DATA_DIR", "var")),
            store_url=reader.get_str("STORE", ""),
            conversation_ttl_s=reader.get_float("CONVERSATION_TTL", 86_400.0, minimum=1.0),
            pack_dir=reader.get_path("PACK"),
            policy_path=reader.get_path("POLICY"),
            policy_reload_interval_s=reader.get_float("POLICY_RELOAD_INTERVAL", 5.0, minimum=0.0),
            reasons_path=reader.get_reasons_path("REASONS"),
            reasons_enabled=reader.get_str("REASONS", "").lower() not in _OFF,
            api_keys=parse_api_keys(reader.get_str("API_KEYS", "")),
            auth_disabled=reader.get_bool("AUTH_DISABLED", False),
            rate_limit_rps=reader.get_float("RATE_LIMIT", 50.0, minimum=0.0),
            rate_limit_burst=reader.get_int("RATE_BURST", 100, minimum=1),
            limits=Limits(
                max_body_bytes=reader.get_int("MAX_BODY_BYTES", 1_048_576, minimum=1024),
                max_turns=reader.get_int("MAX_TURNS", 200, minimum=1),
                max_text_chars=reader.get_int("MAX_TEXT_CHARS", 4000, minimum=1),
                max_conversation_turns=reader.get_int("MAX_CONVERSATION_TURNS", 2000, minimum=1),
                max_inflight=reader.get_int("MAX_INFLIGHT", 128, minimum=0),
            ),
            redact=reader.get_bool("REDACT", True),
            log_level=reader.get_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_transcripts=reader.get_bool("LOG_TRANSCRIPTS", False),
            inference=InferenceSettings(
                intra_op_threads=reader.get_optional_int("INTRA_OP_THREADS", minimum=1),
                max_batch_size=reader.get_int("MAX_BATCH_SIZE", 32, minimum=1),
                max_wait_ms=reader.get_float("MAX_WAIT_MS", 1.5, minimum=0.0),
                queue_size=reader.get_int("QUEUE_SIZE", 512, minimum=1),
                deadline_ms=reader.get_float("DEADLINE_MS", 2000.0, minimum=1.0),
            ),
            adapters=AdapterConfig.from_env(source),
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

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some fields replaced (tests, CLI flags)."""
        return replace(self, **changes)


def hash_api_key(token: str) -> str:
    """The sha256 hex digest stored in configuration for a bearer token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Parse ``name=sha256hex,sha256hex,...``; a bare hash is named by its first 8 hex digits."""
    keys: list[ApiKey] = []
    for position, item in enumerate(part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, _, digest = item.rpartition("=")
        digest = digest.strip().lower()
        name = name.strip() or digest[:8]
        if not _SHA256_HEX.match(digest):
            raise SettingsError(
                f"SWITCHBOARD_API_KEYS entry {position + 1} is not a sha256 hex digest "
                "(store the hash of the key, not the key; `switchboard keygen` prints both)"
            )
        if not _KEY_NAME.match(name):
            raise SettingsError(f"SWITCHBOARD_API_KEYS entry {position + 1} has an invalid name {name!r}")
        keys.append(ApiKey(name=name, sha256=digest))
    return tuple(keys)


def env_table() -> str:
    """The configuration table as Markdown (pasted into the README)."""
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    lines += [f"| `{PREFIX}{name}` | `{default}` | {meaning} |" for name, default, meaning in ENV_DOC]
    return "\n".join(lines)


class _Reader:
    """Typed access to prefixed variables; every error names the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(PREFIX + name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def get_str(self, name: str, default: str) -> str:
        value = self._raw(name)
        return default if value is None else value

    def get_path(self, name: str) -> Path | None:
        value = self._raw(name)
        return None if value is None else Path(value).expanduser()

    def get_reasons_path(self, name: str) -> Path | None:
        """A path, or None for the default and for the words that switch the feature off."""
        value = self._raw(name)
        return None if value is None or value.lower() in _OFF else Path(value).expanduser()

    def get_bool(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{PREFIX}{name} must be true or false, got {value!r}")

    def get_int(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.get_optional_int(name, minimum=minimum, maximum=maximum)
        return default if value is None else value

    def get_optional_int(
        self, name: str, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self._raw(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{PREFIX}{name} must be an integer, got {value!r}") from None
        self._check_range(name, number, minimum, maximum)
        return number

    def get_float(self, name: str, default: float, *, minimum: float | None = None) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{PREFIX}{name} must be a number, got {value!r}") from None
        if number != number:  # NaN
            raise SettingsError(f"{PREFIX}{name} must be a number, got {value!r}")
        self._check_range(name, number, minimum, None)
        return number

    def get_choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        value = self.get_str(name, default).upper()
        if value not in options:
            raise SettingsError(f"{PREFIX}{name} must be one of {', '.join(options)}, got {value!r}")
        return value

    @staticmethod
    def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
        if minimum is not None and number < minimum:
            raise SettingsError(f"{PREFIX}{name} must be >= {minimum:g}, got {number:g}")
        if maximum is not None and number > maximum:
            raise SettingsError(f"{PREFIX}{name} must be <= {maximum:g}, got {number:g}")
