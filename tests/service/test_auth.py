"""Bearer API keys: hashed configuration, constant-time comparison, clear 401s."""

from __future__ import annotations

import pytest

from service.auth import ANONYMOUS, Authenticator
from service.errors import Unauthorized
from service.settings import ApiKey, hash_api_key

KEYS = (ApiKey("ops", hash_api_key("key-one")), ApiKey("bot", hash_api_key("key-two")))


def test_valid_keys_resolve_to_their_names() -> None:
    auth = Authenticator(KEYS, disabled=False)
    assert auth.authenticate("Bearer key-one") == "ops"
    assert auth.authenticate("bearer   key-two ") == "bot"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Authorization"),
        ("", "missing Authorization"),
        ("Basic a2V5LW9uZQ==", "Bearer scheme"),
        ("Bearer", "Bearer scheme"),
        ("Bearer key-three", "invalid API key"),
        ("Bearer " + hash_api_key("key-one"), "invalid API key"),  # the hash itself is not a key
    ],
)
def test_rejections(header: str | None, message: str) -> None:
    with pytest.raises(Unauthorized, match=message) as info:
        Authenticator(KEYS, disabled=False).authenticate(header)
    assert info.value.status == 401 and info.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_disabled_auth_is_anonymous() -> None:
    assert Authenticator((), disabled=True).authenticate(None) == ANONYMOUS
