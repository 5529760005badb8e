"""Every webhook signature scheme Switchboard checks or produces, in one place.

* Twilio: ``X-Twilio-Signature`` = base64(HMAC-SHA1(auth token, URL + sorted params)),
  or HMAC-SHA256 with a SharedKey when ``X-Twilio-Webhooks-Signature-Settings`` says so.
  Mirrors ``twilio.request_validator.RequestValidator`` (tests check we agree with it).
* Timestamped HMAC-SHA256 (Chatwoot, the generic webhook and our own decision callbacks):
  ``sha256=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>`` with the timestamp in its
  own header, rejected outside a window so a captured request cannot be replayed later.
* Standard Webhooks (https://www.standardwebhooks.com/) for decision callbacks:
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>``
  where the key is the base64-decoded part of a ``whsec_`` secret (or a plain secret's
  UTF-8 bytes), so off-the-shelf verifiers accept our callbacks.

All comparisons are constant time. Failures raise ``service.errors.Unauthorized`` whose
detail says what was wrong, never what the expected signature was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit

from service.errors import Unauthorized

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
TWILIO_SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"
_TWILIO_HASHES = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}

SHA256_PREFIX = "sha256="


class StaleTimestamp(Unauthorized):
    """The signature verifies but its timestamp is outside the window: a late replay or a skewed clock."""


def _challenge(realm: str) -> dict[str, str]:
    # Unauthorized defaults to a Bearer challenge; webhooks are authenticated by signature.
    return {"WWW-Authenticate": f'Signature realm="{realm}"'}


# --- Twilio -------------------------------------------------------------------------------


def twilio_algorithm(settings_header: str | None) -> str:
    """The algorithm named by ``X-Twilio-Webhooks-Signature-Settings`` (absent: legacy HMAC_SHA1)."""
    for part in (settings_header or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return HMAC_SHA1


def twilio_signature(
    url: str, params: Iterable[tuple[str, str]], secret: str, algorithm: str = HMAC_SHA1
) -> str:
    """Compute Twilio's signature of ``url`` and the form ``params`` (name, value pairs).

    Names are sorted; a name sent several times contributes each distinct value, sorted,
    exactly as Twilio's own validator does.
    """
    digest = _TWILIO_HASHES.get(algorithm.upper())
    if digest is None:
        raise ValueError(f"unsupported Twilio signature algorithm {algorithm!r}")
    mac = hmac.new(secret.encode(), _twilio_payload(url, params).encode(), digest)
    return base64.b64encode(mac.digest()).decode()


def _twilio_payload(url: str, params: Iterable[tuple[str, str]]) -> str:
    """The string Twilio signs: the URL, then each name + value, names and values sorted."""
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    return url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))


def twilio_replay_key(url: str, params: Sequence[tuple[str, str]]) -> str:
    """A digest of exactly what a Twilio signature covers: the identity of a delivery.

    Twilio signs no timestamp, so a captured request verifies forever; remembering this
    key is what refuses it. Every variant that ``verify_twilio`` accepts under the same
    signature maps to the same key: the URL with or without its port, repeated or
    reordered form fields, and (as the signed string is a plain concatenation) fields
    re-split between name and value. With ``bodySHA256`` in the query only the URL is
    signed, and the URL carries the body's hash.
    """
    parts = urlsplit(url)
    if parts.port is not None:
        url = urlunsplit(
            parts._replace(netloc=_netloc(parts.username, parts.password, parts.hostname or "", None))
        )
    if parse_qs(parts.query).get("bodySHA256"):
        params = []
    return hashlib.sha256(_twilio_payload(url, params).encode()).hexdigest()


def _with_and_without_port(url: str) -> list[str]:
    """Twilio signs sometimes with, sometimes without the default port: accept both forms."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        return [url, urlunsplit(parts._replace(netloc=_netloc(parts.username, parts.password, host, None)))]
    port = 443 if parts.scheme == "https" else 80
    return [url, urlunsplit(parts._replace(netloc=_netloc(parts.username, parts.password, host, port)))]


def _netloc(user: str | None, password: str | None, host: str, port: int | None) -> str:
    if ":" in host:  # IPv6 literal: urlsplit dropped its brackets
        host = f"[{host}]"
    auth = ""
    if user is not None:
        auth = user + (f":{password}" if password is not None else "") + "@"
    return auth + host + (f":{port}" if port is not None else "")


def verify_twilio(
    *,
    url: str,
    params: Sequence[tuple[str, str]],
    raw_body: bytes,
    signature: str | None,
    settings_header: str | None,
    auth_token: str | None,
    shared_key_secret: str | None,
) -> None:
    """Check a Twilio webhook; raise ``Unauthorized`` unless it verifies.

    ``url`` is the public URL Twilio requested (scheme, host, port, path and query).
    With ``bodySHA256`` in the query (JSON webhooks) the body hash is checked and only the
    URL is signed, as Twilio documents.
    """
    if not signature:
        raise Unauthorized(f"missing {TWILIO_SIGNATURE_HEADER} header", headers=_challenge("twilio"))
    algorithm = twilio_algorithm(settings_header)
    if algorithm not in _TWILIO_HASHES:
        raise Unauthorized(
            f"unsupported Twilio signature algorithm {algorithm!r}", headers=_challenge("twilio")
        )
    # A SharedKey-signed request carries the settings header; the legacy scheme uses the auth token.
    secret = shared_key_secret if settings_header else auth_token
    if not secret:
        variable = (
            "SWITCHBOARD_TWILIO_SHARED_KEY_SECRET" if settings_header else "SWITCHBOARD_TWILIO_AUTH_TOKEN"
        )
        raise Unauthorized(
            f"Twilio webhooks are not configured: set {variable}", headers=_challenge("twilio")
        )
    body_hash = parse_qs(urlsplit(url).query).get("bodySHA256")
    if body_hash:
        if not hmac.compare_digest(hashlib.sha256(raw_body).hexdigest(), body_hash[0].lower()):
            raise Unauthorized("bodySHA256 does not match the request body", headers=_challenge("twilio"))
        params = []
    for candidate in _with_and_without_port(url):
        if hmac.compare_digest(twilio_signature(candidate, params, secret, algorithm), signature.strip()):
            return
    raise Unauthorized(
        f"{TWILIO_SIGNATURE_HEADER} does not match (check the auth token and SWITCHBOARD_PUBLIC_BASE_URL)",
        headers=_challenge("twilio"),
    )


# --- timestamped HMAC-SHA256 --------------------------------------------------------------


def sign_timestamped(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``"{timestamp}.{body}"``)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SHA256_PREFIX + mac.hexdigest()


def parse_timestamp(value: str | None, *, header: str, realm: str) -> int:
    """Parse a unix-seconds timestamp header or raise ``Unauthorized`` naming it."""
    if value is None or not value.strip():
        raise Unauthorized(f"missing {header} header", headers=_challenge(realm))
    text = value.strip()
    if not text.isdigit() or len(text) > 12:
        raise Unauthorized(f"{header} must be unix seconds", headers=_challenge(realm))
    return int(text)


def verify_timestamped(
    *,
    secrets: Sequence[str],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    max_age_s: float,
    timestamp_header: str,
    signature_header: str,
    realm: str,
) -> int:
    """Check a ``sha256=`` signature over ``"{timestamp}.{body}"`` against any of ``secrets``.

    Returns the verified timestamp. Raises ``Unauthorized`` for a missing or malformed
    header, a signature that matches no secret, or a timestamp more than ``max_age_s``
    away from ``now`` (in either direction: clocks drift, and a far-future stamp would
    otherwise stay replayable for long). The signature is checked before the age so a
    forged request learns nothing about the window.
    """
    if not secrets:
        raise Unauthorized(f"{realm} webhooks are not configured (no secret set)", headers=_challenge(realm))
    if not signature or not signature.strip():
        raise Unauthorized(f"missing {signature_header} header", headers=_challenge(realm))
    stamp = parse_timestamp(timestamp, header=timestamp_header, realm=realm)
    given = signature.strip()
    if not given.lower().startswith(SHA256_PREFIX):
        raise Unauthorized(f"{signature_header} must be sha256=<hex>", headers=_challenge(realm))
    given = SHA256_PREFIX + given[len(SHA256_PREFIX) :].lower()
    if not any(hmac.compare_digest(sign_timestamped(s, stamp, body), given) for s in secrets):
        raise Unauthorized(f"{signature_header} does not match", headers=_challenge(realm))
    if abs(now - stamp) > max_age_s:
        raise StaleTimestamp(
            f"{timestamp_header} is outside the {max_age_s:g}s window (stale or clock skew)",
            headers=_challenge(realm),
        )
    return stamp


# --- Standard Webhooks (decision callbacks) ----------------------------------------------

WHSEC_PREFIX = "whsec_"
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key Standard Webhooks signs with for ``secret``.

    A ``whsec_<base64>`` secret gives its base64-decoded bytes (unpadded base64 accepted,
    as the reference libraries do); any other secret gives its UTF-8 bytes, and a receiver
    then verifies with ``"whsec_" + base64(secret)``. Raises ``ValueError`` for a
    ``whsec_`` secret that is not base64 or decodes to nothing.
    """
    if not secret.startswith(WHSEC_PREFIX):
        if not secret:
            raise ValueError("the callback secret is empty")
        return secret.encode()
    encoded = secret[len(WHSEC_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError as exc:
        raise ValueError("a whsec_ secret must be followed by base64") from exc
    if not key:
        raise ValueError("a whsec_ secret must not be empty")
    return key


def receiver_secret(secret: str) -> str:
    """The ``whsec_`` form a Standard Webhooks verifier needs for ``secret`` (unchanged if it is one)."""
    if secret.startswith(WHSEC_PREFIX):
        return secret
    return WHSEC_PREFIX + base64.b64encode(secret.encode()).decode()


def sign_standard_webhooks(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "{message_id}.{timestamp}.{body}")>`` (one signature)."""
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def tokens_match(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of a shared token; False when either side is missing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
