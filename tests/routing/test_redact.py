"""PII redaction: every type, the look-alikes that must survive, and the invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.redact import PII_KINDS, find_pii, iban_valid, luhn_valid, redact, safe_truncate

REDACTED = [
    # payment cards, Luhn-checked, any grouping
    ("my card is 4111 1111 1111 1111", "my card is [CARD_NUMBER]"),
    ("card 4111-1111-1111-1111 exp 12/26", "card [CARD_NUMBER] exp 12/26"),
    ("4111111111111111", "[CARD_NUMBER]"),
    ("amex 3782 822463 10005 thanks", "amex [CARD_NUMBER] thanks"),
    ("mastercard 5555555555554444.", "mastercard [CARD_NUMBER]."),
    ("visa 13 digits 4222222222222", "visa 13 digits [CARD_NUMBER]"),
    # security codes next to card words
    ("cvv 123", "cvv [CVV]"),
    ("CVV: 456", "CVV: [CVV]"),
    ("my CVC is 7890", "my CVC is [CVV]"),
    ("the security code is 321", "the security code is [CVV]"),
    ("123 is my cvv", "[CVV] is my cvv"),
    ("c v v is 321", "c v v is [CVV]"),
    ("the code on the back is 987", "the code on the back is [CVV]"),
    ("card 4111 1111 1111 1111 cvv 123", "card [CARD_NUMBER] cvv [CVV]"),
    # US social security numbers
    ("ssn 123-45-6789", "ssn [SSN]"),
    ("SSN 078 05 1120", "SSN [SSN]"),
    ("my social security number is 123456789", "my social security number is [SSN]"),
    # IBANs, mod-97 checked, spaced or not, any case
    ("IBAN GB82 WEST 1234 5698 7654 32 thanks", "IBAN [IBAN] thanks"),
    ("de89370400440532013000", "[IBAN]"),
    ("to FR14 2004 1010 0505 0001 3M02 606.", "to [IBAN]."),
    # e-mail addresses, typed and spoken
    ("mail me at john.doe+x@example.co.uk.", "mail me at [EMAIL]."),
    ("it's john dot doe at gmail dot com", "it's [EMAIL]"),
    ("Jo_Smith@Mail.Example.org", "[EMAIL]"),
    # phone numbers
    ("call me on (555) 123-4567", "call me on [PHONE]"),
    ("my number is 555-123-4567", "my number is [PHONE]"),
    ("+44 20 7946 0958", "[PHONE]"),
    ("+1 415 555 2671 after 5", "[PHONE] after 5"),
    ("07700 900123", "[PHONE]"),
    ("5551234567 is my cell", "[PHONE] is my cell"),
    ("ring 555.123.4567", "ring [PHONE]"),
]

UNCHANGED = [
    # order numbers and reference codes
    "order ORD-2024-001234 arrived",
    "order number 5551234567",
    "order #123-456-7890",
    "reference AB-123456-7890",
    "tracking 1Z999AA10123456784",
    "ticket 20240115-0042",
    "invoice INV-000123456",
    "case 00123456",
    # a card-length number failing Luhn
    "number 4111 1111 1111 1112 is wrong",
    # an IBAN-shaped string failing mod-97
    "iban GB82WEST12345698765433",
    # dates, times, amounts
    "on 2024-01-15 at 10:30",
    "15/01/2024",
    "I paid $1,234.56 on 01/02/2023",
    "at 12:30:15 pm",
    "between 2020 and 2024 I paid 1200 1500 2000",
    "€1.234.567,89 were moved",
    "it cost 1234567.89",
    # card words without a code, codes without card words
    "my card ends in 1234",
    "the 3 items cost 120",
    "security is important",
    # bits of e-mail that are not addresses
    "look at the site dot com for details",
    "@support please help",
    # a PIN-like short number and a year
    "since 1999",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_redacts_each_type(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_leaves_look_alikes_alone(text: str) -> None:
    assert redact(text) == text


def test_every_kind_is_covered_by_the_table() -> None:
    seen = {kind for text, _ in REDACTED for kind in (m.kind for m in find_pii(text))}
    assert seen == set(PII_KINDS)


def test_find_pii_reports_spans_in_order() -> None:
    text = "card 4111111111111111, cvv 123, mail a@b.co"
    found = find_pii(text)
    assert [(m.kind, text[m.start : m.end]) for m in found] == [
        ("CARD_NUMBER", "4111111111111111"),
        ("CVV", "123"),
        ("EMAIL", "a@b.co"),
    ]


def test_text_without_pii_is_returned_as_is() -> None:
    text = "Hello, I need help with my order."
    assert redact(text) is text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_iban_checksum() -> None:
    assert iban_valid("GB82WEST12345698765432")
    assert iban_valid("gb82west12345698765432")
    assert not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82")
    assert not iban_valid("1234WEST12345698765432")


def test_safe_truncate_never_splits_pii() -> None:
    text = "x" * 20 + " card 4111 1111 1111 1111 and more text after it"
    for limit in range(20, len(text)):
        cut = safe_truncate(text, limit)
        assert len(cut) <= limit
        # Whatever survives either has the whole card (redactable) or none of its digits.
        assert "[CARD_NUMBER]" in redact(cut) or "4111" not in cut
    assert safe_truncate("short", 10) == "short"
    assert safe_truncate("a long sentence here", 10).endswith("…")


_digits = st.text("0123456789", min_size=12, max_size=18)


@given(_digits)
@settings(max_examples=200, derandomize=True, deadline=None)
def test_any_luhn_valid_card_number_is_redacted(body: str) -> None:
    number = "4" + body
    if not luhn_valid(number):
        number = number[:-1] + str((10 - _luhn_sum(number[:-1] + "0") % 10) % 10)
    assert luhn_valid(number)
    spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    for form in (number, spaced, spaced.replace(" ", "-")):
        out = redact(f"my card is {form} ok")
        assert out == "my card is [CARD_NUMBER] ok", form


def _luhn_sum(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total


@given(st.text(max_size=200))
@settings(max_examples=200, derandomize=True, deadline=None)
def test_redact_is_idempotent_and_total(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
