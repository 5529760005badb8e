"""The active routing policy and how it is reloaded without a restart.

The policy comes from ``SWITCHBOARD_POLICY`` (a TOML file) or, when unset,
routing's committed default. Three ways to reload, all through ``reload()``:

* polling: every ``SWITCHBOARD_POLICY_RELOAD_INTERVAL`` seconds the file's
  mtime/size/inode is checked (this is what picks up a Kubernetes ConfigMap
  update and reaches every worker process and replica without coordination);
* ``SIGHUP`` to a single-process server;
* ``POST /v1/policy/reload`` (reports validation errors to the caller).

A policy that fails validation never replaces the active one: the old policy
stays, the error is logged and counted, and the reload endpoint returns 422.

The policy is validated against the active custom contact reasons (their ids
and categories are valid labels, see ``service.reasons``): when the reasons
change, ``candidate``/``rebind`` recompile the same policy text against them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from routing.errors import PolicyError
from routing.policy import Policy, default_policy_text, load_policy
from routing.reasons import ReasonSet
from service.body_guard import toml_nesting_error
from service.errors import SettingsError
from service.metrics import Metrics

_log = logging.getLogger("switchboard.policy")


@dataclass(frozen=True)
class ActivePolicy:
    """A validated policy with where it came from and when it was loaded."""

    policy: Policy
    text: str
    source: str
    loaded_at: str


class PolicySource:
    """Holds the active policy; swaps it atomically on a successful reload."""

    def __init__(self, path: Path | None, metrics: Metrics, reasons: ReasonSet | None = None) -> None:
        self.path = path
        self._metrics = metrics
        self._reasons = reasons
        self._stamp: FileStamp | None = None
        self._active = self._load()

    @property
    def active(self) -> ActivePolicy:
        """The policy in force now (read once per request: a reload mid-request cannot mix two)."""
        return self._active

    @property
    def policy(self) -> Policy:
        """Shortcut for ``active.policy``."""
        return self._active.policy

    def _read(self) -> tuple[str, str]:
        if self.path is None:
            return default_policy_text(), "default"
        try:
            return self.path.read_text(encoding="utf-8"), str(self.path)
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"SWITCHBOARD_POLICY: cannot read {self.path} ({type(exc).__name__})"
            ) from exc

    def _load(self) -> ActivePolicy:
        stamp = file_stamp(self.path)
        text, source = self._read()
        policy = validate_policy_text(text, self._reasons)  # PolicyError at startup: fail fast
        self._stamp = stamp
        self._metrics.set_policy(policy.version, policy.hash)
        return ActivePolicy(policy=policy, text=text, source=source, loaded_at=utc_now())

    def reload(self) -> bool:
        """Re-read and validate; activate if valid. True if the active policy changed.

        Raises ``PolicyError`` / ``SettingsError`` (old policy kept) when the new one is unusable.
        """
        previous = self._active
        try:
            candidate = self._load()
        except (PolicyError, SettingsError) as exc:
            self._metrics.policy_reloads.labels(result="invalid").inc()
            self._metrics.set_policy(previous.policy.version, previous.policy.hash)
            _log.error(
                "policy reload rejected; keeping the active policy",
                # The validator's messages name rules, fields and the file, never transcript text.
                extra={"source": previous.source, "errors": reload_errors(exc)},
            )
            raise
        changed = candidate.policy.hash != previous.policy.hash
        self._active = candidate if changed else previous
        self._metrics.policy_reloads.labels(result="changed" if changed else "unchanged").inc()
        if changed:
            _log.info(
                "policy reloaded",
                extra={
                    "version": candidate.policy.version,
                    "hash": candidate.policy.hash,
                    "source": candidate.source,
                },
            )
        return changed

    @property
    def reasons(self) -> ReasonSet | None:
        """The custom contact reasons the active policy was validated against."""
        return self._reasons

    def candidate(self, reasons: ReasonSet | None) -> Policy:
        """The active policy text compiled against ``reasons`` (``PolicyError`` if it does not validate)."""
        return validate_policy_text(self._active.text, reasons)

    def rebind(self, reasons: ReasonSet | None, policy: Policy) -> None:
        """Make ``policy`` (from ``candidate(reasons)``) active, with ``reasons`` for later reloads."""
        self._reasons = reasons
        self._active = ActivePolicy(
            policy=policy,
            text=self._active.text,
            source=self._active.source,
            loaded_at=self._active.loaded_at,
        )

    def reload_if_modified(self) -> bool:
        """Reload when the file's stamp changed since the last load; never raises."""
        stamp = file_stamp(self.path)
        if self.path is None or stamp is None or stamp == self._stamp:
            return False
        try:
            return self.reload()
        except (PolicyError, SettingsError):
            # Remember the bad file's stamp so it is not re-validated (and re-logged) every tick.
            self._stamp = stamp
            return False

    async def watch(self, interval_s: float) -> None:
        """Poll for file changes forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(interval_s)
            self.reload_if_modified()


def validate_policy_text(text: str, reasons: ReasonSet | None = None) -> Policy:
    """Parse and validate policy text without activating it (raises ``PolicyError``).

    With ``reasons``, their ids and categories are valid labels, and the
    intents they replace are not. TOML nested deeper than ``body_guard.MAX_DEPTH`` is refused
    before it is parsed (the parser recurses once per level).
    """
    nesting = toml_nesting_error(text)
    if nesting is not None:
        raise PolicyError([nesting])
    if reasons is None:
        return load_policy(text)
    return load_policy(text, reasons.categories, replaced=tuple(reasons.replaced))


def reload_errors(exc: PolicyError | SettingsError, limit: int = 20) -> list[str]:
    """Why a reload was rejected, one line per problem (the first ``limit``), for the log."""
    messages = exc.errors if isinstance(exc, PolicyError) else [str(exc)]
    return [str(message) for message in messages[:limit]]


FileStamp = tuple[int, int, int]


def file_stamp(path: Path | None) -> FileStamp | None:
    """(mtime, size, inode) of a watched file, None when there is none or it cannot be read.

    An editor that replaces the file changes the inode even within one mtime tick.
    """
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def utc_now() -> str:
    """Now as an RFC 3339 UTC timestamp to the second (``...Z``), for ``loaded_at`` fields."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
