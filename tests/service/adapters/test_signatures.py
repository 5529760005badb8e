"""Signature schemes, checked against the real ``twilio`` package's RequestValidator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError
from twilio.request_validator import RequestValidator

from service.adapters.signatures import (
    HMAC_SHA256,
    StaleTimestamp,
    receiver_secret,
    sign_standard_webhooks,
    sign_timestamped,
    standard_webhooks_key,
    tokens_match,
    twilio_algorithm,
    twilio_replay_key,
    twilio_signature,
    verify_timestamped,
    verify_twilio,
)
from service.errors import Unauthorized

TOKEN = "12345678901234567890123456789012"
URL = "https://switchboard.example.com/v1/webhooks/twilio/voice?tenant=acme"
PARAMS = [
    ("AccountSid", "AC0000000000000000000000000000000a"),
    ("CallSid", "CA0000000000000000000000000000000b"),
    ("TranscriptionEvent", "transcription-content"),
    ("TranscriptionData", '{"transcript":"I want to cancel my plan","confidence":0.97}'),
    ("Final", "true"),
]


class MultiDict(dict[str, list[str]]):
    """What Flask hands RequestValidator for repeated form fields (it calls ``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def _verify(url: str, params: list[tuple[str, str]], signature: str | None, **overrides: object) -> None:
    kwargs: dict[str, object] = {
        "url": url,
        "params": params,
        "raw_body": b"",
        "signature": signature,
        "settings_header": None,
        "auth_token": TOKEN,
        "shared_key_secret": None,
    }
    kwargs.update(overrides)
    verify_twilio(**kwargs)  # type: ignore[arg-type]


def test_twilio_signature_matches_request_validator() -> None:
    expected = RequestValidator(TOKEN).compute_signature(URL, dict(PARAMS))
    assert twilio_signature(URL, PARAMS, TOKEN) == expected


def test_repeated_fields_are_sorted_like_request_validator() -> None:
    params = [("b", "2"), ("a", "z"), ("a", "y"), ("a", "z")]
    grouped = MultiDict({"a": ["z", "y", "z"], "b": ["2"]})
    assert twilio_signature(URL, params, TOKEN) == RequestValidator(TOKEN).compute_signature(URL, grouped)


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=12), st.text(max_size=40)),
        max_size=8,
        unique_by=lambda pair: pair[0],
    ),
    st.text(min_size=1, max_size=40),
)
def test_any_form_agrees_with_request_validator(params: list[tuple[str, str]], token: str) -> None:
    assert twilio_signature(URL, params, token) == RequestValidator(token).compute_signature(
        URL, dict(params)
    )


def test_sha256_variant_matches_request_validator() -> None:
    expected = RequestValidator("shared-key").compute_signature(URL, dict(PARAMS), algorithm="HMAC_SHA256")
    assert twilio_signature(URL, PARAMS, "shared-key", HMAC_SHA256) == expected


def test_valid_twilio_request_verifies() -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, dict(PARAMS))
    _verify(URL, PARAMS, signature)


@pytest.mark.parametrize(
    ("signed", "received"),
    [
        ("https://sb.example.com:443/hook", "https://sb.example.com/hook"),
        ("https://sb.example.com/hook", "https://sb.example.com:443/hook"),
    ],
)
def test_default_port_may_or_may_not_be_signed(signed: str, received: str) -> None:
    signature = RequestValidator(TOKEN).compute_signature(signed, dict(PARAMS))
    _verify(received, PARAMS, signature)
    assert RequestValidator(TOKEN).validate(received, dict(PARAMS), signature)


def test_tampered_param_is_rejected() -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, dict(PARAMS))
    tampered = [*PARAMS[:-1], ("Final", "false")]
    with pytest.raises(Unauthorized, match="does not match"):
        _verify(URL, tampered, signature)


def test_added_param_is_rejected() -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, dict(PARAMS))
    with pytest.raises(Unauthorized):
        _verify(URL, [*PARAMS, ("Extra", "1")], signature)


def test_other_url_is_rejected() -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, dict(PARAMS))
    with pytest.raises(Unauthorized):
        _verify(URL.replace("acme", "evil"), PARAMS, signature)
    with pytest.raises(Unauthorized):
        _verify(URL.replace("https", "http"), PARAMS, signature)


def test_wrong_token_is_rejected() -> None:
    signature = RequestValidator("another-token").compute_signature(URL, dict(PARAMS))
    with pytest.raises(Unauthorized):
        _verify(URL, PARAMS, signature)


def test_missing_signature_and_missing_token_are_rejected() -> None:
    with pytest.raises(Unauthorized, match="missing X-Twilio-Signature"):
        _verify(URL, PARAMS, None)
    signature = RequestValidator(TOKEN).compute_signature(URL, dict(PARAMS))
    with pytest.raises(Unauthorized, match="SWITCHBOARD_TWILIO_AUTH_TOKEN"):
        _verify(URL, PARAMS, signature, auth_token=None)


def test_shared_key_signature_uses_the_shared_key_secret() -> None:
    header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    signature = RequestValidator("shared").compute_signature(URL, dict(PARAMS), algorithm=HMAC_SHA256)
    _verify(URL, PARAMS, signature, settings_header=header, shared_key_secret="shared")
    with pytest.raises(Unauthorized, match="SHARED_KEY_SECRET"):
        _verify(URL, PARAMS, signature, settings_header=header)
    with pytest.raises(Unauthorized, match="unsupported"):
        _verify(URL, PARAMS, signature, settings_header="algorithm=HMAC_MD5", shared_key_secret="shared")


def test_twilio_algorithm_header_parsing() -> None:
    assert twilio_algorithm(None) == "HMAC_SHA1"
    assert twilio_algorithm("key=k1") == "HMAC_SHA1"
    assert twilio_algorithm("key=k1, algorithm=hmac_sha256") == "HMAC_SHA256"


def test_json_body_is_bound_by_body_sha256() -> None:
    body = '{"a": 1}'
    url = f"https://sb.example.com/hook?bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = RequestValidator(TOKEN).compute_signature(url, {})
    assert RequestValidator(TOKEN).validate(url, body, signature)
    _verify(url, [], signature, raw_body=body.encode())
    with pytest.raises(Unauthorized, match="bodySHA256"):
        _verify(url, [], signature, raw_body=b'{"a": 2}')


def test_replay_key_is_the_same_for_every_variant_the_signature_accepts() -> None:
    """Whatever an attacker may vary without breaking Twilio's signature maps to one key."""
    validator = RequestValidator(TOKEN)
    signature = validator.compute_signature(URL, dict(PARAMS))
    port_url = URL.replace("example.com/", "example.com:443/")
    reordered = [*PARAMS[::-1], PARAMS[0]]  # reordered, one field repeated
    name, value = PARAMS[0]
    resplit = [(name + value[:4], value[4:]), *PARAMS[1:]]  # the signed string is name + value
    key = twilio_replay_key(URL, PARAMS)
    for url, params in ((port_url, PARAMS), (URL, reordered), (URL, resplit)):
        _verify(url, params, signature)  # still verifies under the captured signature ...
        assert validator.validate(
            url, MultiDict({n: [v for k, v in params if k == n] for n, _ in params}), signature
        )
        assert twilio_replay_key(url, params) == key  # ... so it is the same delivery


def test_replay_key_differs_when_the_signed_content_does() -> None:
    key = twilio_replay_key(URL, PARAMS)
    assert twilio_replay_key(URL, [*PARAMS[:-1], ("Final", "false")]) != key
    assert twilio_replay_key(URL.replace("voice", "conversations"), PARAMS) != key
    assert len(key) == 64


def test_replay_key_of_a_json_webhook_is_its_url() -> None:
    url = "https://sb.example.com/hook?bodySHA256=" + "ab" * 32
    assert twilio_replay_key(url, [("ignored", "form")]) == twilio_replay_key(url, [])


# --- timestamped HMAC-SHA256 ------------------------------------------------------------------


def _check(signature: str | None, timestamp: str | None, body: bytes, *, now: float = 1_700_000_000) -> int:
    return verify_timestamped(
        secrets=["old-secret", "new-secret"],
        timestamp=timestamp,
        signature=signature,
        body=body,
        now=now,
        max_age_s=300,
        timestamp_header="X-Ts",
        signature_header="X-Sig",
        realm="test",
    )


def test_sign_timestamped_is_hmac_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign_timestamped("k", 1_700_000_000, b"{}") == "sha256=" + expected


def test_timestamped_signature_verifies_with_any_configured_secret() -> None:
    body = b'{"conversation_id":"c1"}'
    for secret in ("old-secret", "new-secret"):
        assert _check(sign_timestamped(secret, 1_700_000_000, body), "1700000000", body) == 1_700_000_000
    upper = "sha256=" + sign_timestamped("new-secret", 1_700_000_000, body).removeprefix("sha256=").upper()
    assert _check(upper, "1700000000", body) == 1_700_000_000


@pytest.mark.parametrize(
    ("signature", "timestamp", "message"),
    [
        (None, "1700000000", "missing X-Sig"),
        ("sha256=00", None, "missing X-Ts"),
        ("sha256=00", "yesterday", "unix seconds"),
        ("md5=00", "1700000000", "sha256=<hex>"),
        ("sha256=" + "0" * 64, "1700000000", "does not match"),
    ],
)
def test_timestamped_rejections(signature: str | None, timestamp: str | None, message: str) -> None:
    with pytest.raises(Unauthorized, match=message):
        _check(signature, timestamp, b"{}")


def test_signature_of_other_body_or_timestamp_is_rejected() -> None:
    signature = sign_timestamped("new-secret", 1_700_000_000, b'{"a":1}')
    with pytest.raises(Unauthorized):
        _check(signature, "1700000000", b'{"a":2}')
    with pytest.raises(Unauthorized):
        _check(signature, "1700000001", b'{"a":1}')


@pytest.mark.parametrize("skew", [-301, 301, -86_400])
def test_stale_or_future_timestamp_is_rejected(skew: int) -> None:
    stamp = 1_700_000_000 + skew
    with pytest.raises(StaleTimestamp, match="window"):
        _check(sign_timestamped("new-secret", stamp, b"{}"), str(stamp), b"{}")


def test_no_secret_configured_rejects() -> None:
    with pytest.raises(Unauthorized, match="not configured"):
        verify_timestamped(
            secrets=[],
            timestamp="1",
            signature="sha256=00",
            body=b"",
            now=1,
            max_age_s=300,
            timestamp_header="X-Ts",
            signature_header="X-Sig",
            realm="test",
        )


def test_tokens_match() -> None:
    assert tokens_match("abc", "abc")
    assert not tokens_match("abd", "abc")
    assert not tokens_match(None, "abc")
    assert not tokens_match("abc", None)


# --- Standard Webhooks, against the reference ``standardwebhooks`` package --------------------------

KEY_BYTES = bytes(range(32))


@given(
    message_id=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    body=st.binary(max_size=200).map(lambda b: base64.b64encode(b)),
    key=st.binary(min_size=1, max_size=64),
)
def test_standard_webhooks_signature_matches_the_reference_library(
    message_id: str, body: bytes, key: bytes
) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    stamp = int(time.time())
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_standard_webhooks(standard_webhooks_key(secret), message_id, stamp, body),
    }
    assert Webhook(secret).verify(body, headers, json_parse=False) is None
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b"x", headers, json_parse=False)


def test_standard_webhooks_keys() -> None:
    padded = "whsec_" + base64.b64encode(KEY_BYTES[:31]).decode()
    assert padded.endswith("=") and standard_webhooks_key(padded) == KEY_BYTES[:31]
    assert standard_webhooks_key(padded.rstrip("=")) == KEY_BYTES[:31]  # unpadded, as the libraries accept
    assert standard_webhooks_key("plain secret") == b"plain secret"
    assert receiver_secret("plain secret") == "whsec_" + base64.b64encode(b"plain secret").decode()
    assert standard_webhooks_key(receiver_secret("plain secret")) == b"plain secret"
    for bad in ("", "whsec_", "whsec_%%%", "whsec_ab cd"):
        with pytest.raises(ValueError):
            standard_webhooks_key(bad)


def test_standard_webhooks_signature_is_the_documented_hmac() -> None:
    mac = hmac.new(KEY_BYTES, b"msg_1.1736443850.{}", hashlib.sha256).digest()
    assert (
        sign_standard_webhooks(KEY_BYTES, "msg_1", 1736443850, b"{}")
        == "v1," + base64.b64encode(mac).decode()
    )
