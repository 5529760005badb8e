"""Guards that run on a request body before any JSON or TOML decoder sees it.

Why: the JSON decoder (msgspec) and ``tomllib`` recurse once per nesting level,
so ~2 KB of ``[[[[...`` raises ``RecursionError`` deep inside the decoder, a
500. A linear scan that counts bracket depth outside strings refuses such input
first, with 400 problem+json naming the limit. Legitimate bodies are shallow
(a transcript is depth 4-5, ``metadata``/``attributes`` a few more), so
``MAX_DEPTH`` = 64 refuses nothing real.

``BodyGuard`` wraps an ASGI ``receive`` (see ``service.middleware``): it checks
the media type once the first body bytes arrive (415 for a non-JSON body on a
JSON endpoint; form-encoded only where a platform sends it, the Twilio
webhooks) and the nesting depth once the last chunk has arrived, before the
handler decodes anything. The checks raise ``ServiceError`` from inside
``receive``, i.e. from the handler's body read: authentication and guards have
already run, and the app's exception handler renders the problem. A handler
that never reads its body (``/close``, the reload endpoints) is never refused
for it. The body size limit stays Litestar's (``SWITCHBOARD_MAX_BODY_BYTES``,
413), enforced while it reads the chunks this wrapper passes on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from litestar.types import Receive, ReceiveMessage, Scope

from service.errors import BadRequest, UnsupportedMediaType

MAX_DEPTH = 64
"""Deepest nesting of arrays/objects (JSON) or arrays/inline tables (TOML) accepted."""
LIMIT_NAME = "max_nesting_depth"
FORM_PATHS: tuple[str, ...] = ("/v1/webhooks/twilio/", "/console/login")
"""Path prefixes whose bodies are ``application/x-www-form-urlencoded`` (checked by their handler)."""
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# A JSON string: no raw quote or backslash, or any escaped character. Unrolled so that the regex
# engine runs in linear time; for valid JSON leftmost matching pairs the quotes exactly as the
# decoder does, and for invalid JSON it can only over-count (the body is a 400 either way).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# What cannot hold a structural bracket in TOML: multi-line basic and literal strings (a closing
# delimiter may carry up to two extra quotes), one-line basic and literal strings, comments.
_TOML_SKIP = re.compile(
    r'"""(?:[^"\\]|\\[\s\S]|"(?!""))*"{3,5}'
    r"|'''[\s\S]*?'{3,5}"
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
    r"|'[^'\n]*'"
    r"|#[^\n]*"
)
_TOML_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = np.zeros(256, dtype=np.int32)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def _bracket_depth(brackets: bytes) -> int:
    """Deepest running count of openers minus closers over a string of only ``[]{}``."""
    if not brackets:
        return 0
    steps = _STEP[np.frombuffer(brackets, dtype=np.uint8)]
    return max(0, int(np.cumsum(steps).max()))


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects in ``body``, outside strings (0 for a scalar).

    Never raises, whatever the bytes: malformed JSON is the decoder's business. For a body
    that is a valid JSON prefix it is never lower than the depth the decoder reaches.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return _bracket_depth(brackets)


def toml_depth(text: str) -> int:
    """Deepest nesting of arrays, inline tables and table headers in TOML ``text``, outside
    strings and comments (a ``[[table]]`` header counts 2). Never raises."""
    brackets = _TOML_NOT_BRACKETS.sub("", _TOML_SKIP.sub("", text))
    return _bracket_depth(brackets.encode("ascii"))


def toml_nesting_error(text: str, max_depth: int = MAX_DEPTH) -> str | None:
    """The problem with ``text``'s nesting (for a validator's error list), or None if it is fine."""
    if text.count("[") + text.count("{") <= max_depth:  # cannot be deeper: skip the scan
        return None
    depth = toml_depth(text)
    if depth <= max_depth:
        return None
    return f"TOML nested {depth} levels deep; at most {max_depth} levels of arrays and inline tables"


def nesting_error(kind: str, field: str, depth: int, max_depth: int) -> BadRequest:
    """The 400 for a body nested deeper than the limit, naming the limit and the field."""
    return BadRequest(
        f"the {kind} is nested {depth} levels deep; the limit is {max_depth}",
        errors=[{"field": field, "message": f"nested deeper than {max_depth} levels"}],
        extra={"limit": LIMIT_NAME, "max": max_depth},
    )


def check_json_depth(body: bytes, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``BadRequest`` (400) when the JSON ``body`` nests deeper than ``max_depth``."""
    if body.count(b"[") + body.count(b"{") <= max_depth:  # cannot be deeper: skip the scan
        return
    depth = json_depth(body)
    if depth > max_depth:
        raise nesting_error("JSON body", "body", depth, max_depth)


def check_toml_depth(text: str, field: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``BadRequest`` (400) when TOML ``text`` (the request field ``field``) nests too deep."""
    if toml_nesting_error(text, max_depth) is not None:
        raise nesting_error(f"TOML in '{field}'", field, toml_depth(text), max_depth)


def media_type_of(scope: Scope) -> tuple[str, dict[str, str]] | None:
    """The request's ``Content-Type`` as (lower-cased type, parameters), None when absent."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            kind, *params = value.decode("latin-1").split(";")
            options: dict[str, str] = {}
            for param in params:
                key, _, val = param.partition("=")
                options[key.strip().lower()] = val.strip().strip('"').lower()
            return kind.strip().lower(), options
    return None


def check_json_media_type(scope: Scope) -> None:
    """Raise ``UnsupportedMediaType`` (415) unless the body is JSON in UTF-8.

    Accepted: no ``Content-Type`` at all (read as JSON), ``application/json`` and any
    ``+json`` type, with no ``charset`` or a UTF-8 one (the decoder reads UTF-8 only).
    """
    found = media_type_of(scope)
    if found is None:
        return
    kind, options = found
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise UnsupportedMediaType(
            f"this endpoint reads application/json, not {kind or 'an empty media type'}",
            errors=[{"field": "Content-Type", "message": "must be application/json"}],
        )
    charset = options.get("charset")
    if charset is not None and charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            f"JSON bodies are read as UTF-8, not {charset}",
            errors=[{"field": "Content-Type", "message": "charset must be utf-8"}],
        )


class BodyGuard:
    """Checks request bodies as the handler reads them (see the module docstring)."""

    def __init__(self, max_depth: int = MAX_DEPTH, form_paths: Sequence[str] = FORM_PATHS) -> None:
        self.max_depth = max_depth
        self.form_paths = tuple(form_paths)

    def applies(self, scope: Scope) -> bool:
        """True for an HTTP request that may carry a JSON body."""
        return (
            scope["type"] == "http"
            and scope.get("method") in BODY_METHODS
            and not scope["path"].startswith(self.form_paths)
        )

    def wrap(self, scope: Scope, receive: Receive) -> Receive:
        """``receive`` that passes the body on unchanged but raises before delivering a bad one.

        The media type is checked when the first body bytes arrive, the depth when the last
        chunk has arrived (before it reaches the handler, so nothing is decoded). An empty body
        is passed on unchecked: the handler reports a missing body itself.
        """
        if not self.applies(scope):
            return receive
        chunks: list[bytes] = []
        max_depth = self.max_depth

        async def guarded() -> ReceiveMessage:
            message = await receive()
            if message["type"] != "http.request":
                return message
            body = message.get("body", b"")
            if body:
                if not chunks:
                    check_json_media_type(scope)
                chunks.append(body)
            if not message.get("more_body", False) and chunks:
                whole = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                check_json_depth(whole, max_depth)
            return message

        return guarded
