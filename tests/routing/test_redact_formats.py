"""PII in every common written and spoken format, split across turns, and the look-alikes that must survive.

The property tests build each kind of PII in every format a transcript
produces (separators, full-width digits, spoken digits with their word
variants, typed and spoken mixed, split over two turns) and check that the
redacted text is exactly the surrounding words plus one placeholder: no digit,
typed or spoken, survives, and nothing else changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from routing.redact import find_pii, iban_valid, luhn_valid, redact, redact_across, redact_found

NEGATIVES = [
    line
    for line in (Path(__file__).parent / "data" / "redact_negatives.txt")
    .read_text(encoding="utf-8")
    .splitlines()
    if line.strip() and not line.startswith("#")
]

FAST = settings(max_examples=150, derandomize=True, deadline=None)

# --- generators ----------------------------------------------------------------

_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it pass Luhn."""
    for d in "0123456789":
        if luhn_valid(body + d):
            return body + d
    raise AssertionError("unreachable")


@st.composite
def cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    first = draw(st.sampled_from("3456"))
    body = draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    return _luhn_complete(first + body)


@st.composite
def ssns(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    return f"{area:03d}{draw(st.integers(1, 99)):02d}{draw(st.integers(1, 9999)):04d}"


@st.composite
def phones10(draw: st.DrawFn) -> str:
    area, exchange = draw(st.integers(200, 999)), draw(st.integers(200, 999))
    return f"{area}{exchange}{draw(st.integers(0, 9999)):04d}"


@st.composite
def phones7(draw: st.DrawFn) -> str:
    return f"{draw(st.integers(200, 999))}{draw(st.integers(0, 9999)):04d}"


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country, length = draw(
        st.sampled_from([("DE", 22), ("GB", 22), ("FR", 27), ("ES", 24), ("BE", 16), ("PL", 28)])
    )
    bban = draw(st.text("0123456789", min_size=length - 4, max_size=length - 4))
    if country == "GB":
        bban = draw(st.sampled_from(["WEST", "NWBK", "BARC"])) + bban[4:]
    value = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    iban = f"{country}{98 - value % 97:02d}{bban}"
    assert iban_valid(iban)
    return iban


def _groups(digits: str, sizes: list[int]) -> list[str]:
    out, pos = [], 0
    for size in sizes:
        if pos < len(digits):
            out.append(digits[pos : pos + size])
            pos += size
    if pos < len(digits):
        out.append(digits[pos:])
    return out


def _fullwidth(text: str) -> str:
    table = {ord(c): chr(ord(c) + 0xFEE0) for c in "0123456789-./"}
    table[ord(" ")] = "\u3000"
    return text.translate(table)


@st.composite
def spoken(draw: st.DrawFn, digits: str, sizes: tuple[int, ...] = ()) -> str:
    """``digits`` read out: word variants for zero, "double"/"triple", capitals.

    Between groups (``sizes``) the reader may pause (a comma, or a full stop);
    within a group words are joined by spaces or hyphens.
    """
    groups = _groups(digits, list(sizes)) if sizes else [digits]
    said = []
    for group in groups:
        words: list[str] = []
        i = 0
        while i < len(group):
            d = group[i]
            run = len(group[i:]) - len(group[i:].lstrip(d))
            word = draw(st.sampled_from(["zero", "oh", "o"])) if d == "0" else _WORDS[int(d)]
            if run >= 3 and draw(st.booleans()):
                words.append(f"triple {word}")
                i += 3
            elif run >= 2 and draw(st.booleans()):
                words.append(f"double {word}")
                i += 2
            else:
                words.append(word)
                i += 1
        said.append(draw(st.sampled_from([" ", " ", "-"])).join(words))
    out = said[0]
    for group_said in said[1:]:
        out += draw(st.sampled_from([" ", ", ", ". "])) + group_said
    return out.capitalize() if draw(st.booleans()) else out


@st.composite
def written(draw: st.DrawFn, digits: str, sizes: list[int]) -> str:
    """``digits`` typed: grouped with one separator (or none), maybe in full-width digits."""
    sep = draw(st.sampled_from([" ", "-", ".", "/", ""]))
    text = sep.join(_groups(digits, sizes))
    return _fullwidth(text) if draw(st.booleans()) else text


@st.composite
def any_form(draw: st.DrawFn, digits: str, sizes: list[int]) -> str:
    """Typed, spoken, or typed groups followed by the rest read out (mixed)."""
    form = draw(st.sampled_from(["written", "spoken", "mixed"]))
    if form == "written":
        return draw(written(digits, sizes))
    if form == "spoken":
        return draw(spoken(digits, tuple(sizes)))
    groups = _groups(digits, sizes)
    k = draw(st.integers(1, len(groups) - 1))
    return " ".join(groups[:k]) + " " + draw(spoken("".join(groups[k:]), tuple(len(g) for g in groups[k:])))


def _only_placeholders(text: str) -> bool:
    """Placeholders and separators (ASCII or full-width), no digit or number word."""
    return re.fullmatch(r"[\s,./\-－．／]*(?:\[[A-Z_]+\][\s,./\-－．／]*)+", text) is not None


# --- every format, one turn ------------------------------------------------------


@given(cards().flatmap(lambda c: any_form(c, [4, 4, 4, 4, 3])))
@FAST
def test_card_in_any_format_is_redacted(form: str) -> None:
    assert redact(f"my card is {form} thanks") == "my card is [CARD_NUMBER] thanks", form


@given(ssns().flatmap(lambda s: any_form(s, [3, 2, 4])))
@FAST
def test_ssn_in_any_format_is_redacted_after_a_social_word(form: str) -> None:
    assert redact(f"my social is {form} thanks") == "my social is [SSN] thanks", form


@given(
    ssns().flatmap(
        lambda s: st.sampled_from(["-", ".", "/", " "]).map(lambda sep: sep.join(_groups(s, [3, 2, 4])))
    )
)
@FAST
def test_ssn_grouped_3_2_4_needs_no_context(form: str) -> None:
    assert redact(f"it is {form} ok") == "it is [SSN] ok", form


@given(phones10().flatmap(lambda p: any_form(p, [3, 3, 4])))
@FAST
def test_ten_digit_phone_in_any_format_is_redacted(form: str) -> None:
    assert redact(f"call me on {form} thanks") == "call me on [PHONE] thanks", form


@given(
    phones7().flatmap(lambda p: any_form(p, [3, 4])),
    st.sampled_from(["call me on", "my number is", "my cell is"]),
)
@FAST
def test_seven_digit_phone_after_a_phone_word_is_redacted(form: str, lead: str) -> None:
    assert redact(f"{lead} {form} thanks") == f"{lead} [PHONE] thanks", form


@given(ibans(), st.data())
@FAST
def test_iban_in_any_format_is_redacted(iban: str, data: st.DataObject) -> None:
    form = data.draw(st.sampled_from(["compact", "grouped", "spoken"]))
    if form == "compact":
        text = iban.lower() if data.draw(st.booleans()) else iban
    elif form == "grouped":
        text = data.draw(st.sampled_from([" ", "-", "."])).join(_groups(iban, [4] * 9))
    else:
        # Letters spelt one by one, digit runs read out.
        parts = re.findall(r"[A-Z]|[0-9]+", iban)
        text = " ".join(p if p.isalpha() else data.draw(spoken(p)) for p in parts)
    assert redact(f"my iban is {text} thanks") == "my iban is [IBAN] thanks", text


@given(
    st.sampled_from(["tom", "jane.doe", "k_smith", "alex99", "mary-ann"]),
    st.sampled_from(["example", "gmail", "mail.example", "acme-corp"]),
    st.sampled_from(["com", "org", "net", "co.uk", "io"]),
    st.sampled_from(["(at)", "[at]", " (at) ", " @ ", "@", " at "]),
    st.sampled_from(["(dot)", "[dot]", " (dot) ", " . ", ".", " dot "]),
)
@FAST
def test_obfuscated_email_is_redacted(local: str, domain: str, tld: str, at: str, dot: str) -> None:
    # "tom at example.com" is ambiguous ("look at amazon.com"): it counts only with an
    # address-like name or a mail provider, and " . " only with an "@" or "(at)".
    assume(at != " at " or dot != " . ")
    assume(at != " at " or dot != "." or local in ("jane.doe", "k_smith", "alex99") or domain == "gmail")
    address = local + at + (domain + "." + tld).replace(".", dot)
    assert redact(f"write to {address} thanks") == "write to [EMAIL] thanks", address


# --- split across two turns ------------------------------------------------------


@st.composite
def split_forms(draw: st.DrawFn) -> tuple[str, str, str]:
    """A lead-in, and a piece of PII cut in two where a speaker pauses."""
    kind = draw(st.sampled_from(["card", "phone", "ssn"]))
    if kind == "card":
        lead, form = "my card is", draw(cards().flatmap(lambda c: any_form(c, [4, 4, 4, 4, 3])))
    elif kind == "phone":
        lead, form = "call me on", draw(phones10().flatmap(lambda p: any_form(p, [3, 3, 4])))
    else:
        lead, form = "my social is", draw(ssns().flatmap(lambda s: any_form(s, [3, 2, 4])))
    # At a space or a separator; an unseparated number anywhere.
    cuts = [i for i, ch in enumerate(form) if i and not ch.isalnum()] or list(range(1, len(form)))
    cut = draw(st.sampled_from(cuts))
    # A lone "oh" opening a turn is read as the exclamation, not as a zero.
    assume(form[cut:].strip(" ,.-").lower() not in ("oh", "o"))
    return lead, form[:cut], form[cut:]


@given(split_forms())
@settings(max_examples=300, derandomize=True, deadline=None)
def test_pii_split_across_two_turns_leaves_no_digit(parts: tuple[str, str, str]) -> None:
    lead, head, tail = parts
    stored = redact(f"{lead} {head}")
    new_previous, current = redact_across(stored, f"{tail} thanks")
    previous = stored if new_previous is None else new_previous
    assert previous.startswith(lead)
    assert current.endswith(" thanks")
    assert _only_placeholders(previous[len(lead) :]), (parts, previous)
    assert _only_placeholders(current[: -len(" thanks")]), (parts, current)


REDACTED_ACROSS = [
    # (stored previous turn, raw current turn, new previous, new current)
    ("my card is 4111 1111", "1111 1111 thanks", "my card is [CARD_NUMBER]", "[CARD_NUMBER] thanks"),
    (
        "it's four one one one one one one one",
        "one one one one one one one one",
        "it's [CARD_NUMBER]",
        "[CARD_NUMBER]",
    ),
    ("my iban is GB82 WEST 1234", "5698 7654 32", "my iban is [IBAN]", "[IBAN]"),
    ("call me on 555", "123 4567 please", "call me on [PHONE]", "[PHONE] please"),
    ("my ssn is 123 45", "6789", "my ssn is [SSN]", "[SSN]"),
    # context in the previous turn, the number in this one
    ("my social security number is", "123456789", None, "[SSN]"),
    # the first part was PII on its own: the rest still goes
    ("call me on [PHONE]", "89 thanks", None, "[PHONE] thanks"),
    # nothing split: this turn is redacted on its own, the previous one is left alone
    ("my card is [CARD_NUMBER]", "thanks, 1234 is my pin", None, "thanks, 1234 is my pin"),
    ("order 12345", "6789 is the other one", None, "6789 is the other one"),
    ("hello", "mail me at jo@example.com", None, "mail me at [EMAIL]"),
    ("", "card 4111 1111 1111 1111", None, "card [CARD_NUMBER]"),
]


@pytest.mark.parametrize(("previous", "current", "new_previous", "new_current"), REDACTED_ACROSS)
def test_redact_across(previous: str, current: str, new_previous: str | None, new_current: str) -> None:
    assert redact_across(previous, current) == (new_previous, new_current)
    # with the turn's own finds handed over (the service's one pass), the same answer
    clean, found = redact_found(current)
    assert (clean, found) == (redact(current), find_pii(current))
    assert redact_across(previous, current, found) == (new_previous, new_current)


# --- the written forms, one by one -------------------------------------------------

FORMS = [
    ("card 4111.1111.1111.1111 ok", "card [CARD_NUMBER] ok"),
    ("card 4111/1111/1111/1111 ok", "card [CARD_NUMBER] ok"),
    ("card ４１１１ １１１１ １１１１ １１１１ ok", "card [CARD_NUMBER] ok"),
    ("card ４１１１－１１１１－１１１１－１１１１", "card [CARD_NUMBER]"),
    (
        "my card is four one one one one one one one one one one one one one one one",
        "my card is [CARD_NUMBER]",
    ),
    ("it's forty one eleven, eleven eleven, eleven eleven, eleven eleven.", "it's [CARD_NUMBER]."),
    ("four double one one, one one one one, triple one one, one one one one", "[CARD_NUMBER]"),
    ("card 4111 1111 1111 one one one one thanks", "card [CARD_NUMBER] thanks"),
    ("card 4111 1111 1111 1111 12/26", "card [CARD_NUMBER] 12/26"),
    ("ssn 123.45.6789", "ssn [SSN]"),
    ("it is 123/45/6789", "it is [SSN]"),
    ("my social is one two three four five six seven eight nine", "my social is [SSN]"),
    ("it's one two three, four five, six seven eight nine", "it's [SSN]"),
    ("IBAN GB82-WEST-1234-5698-7654-32 thanks", "IBAN [IBAN] thanks"),
    (
        "iban d e eight nine, three seven oh four, double oh four four, oh five three two, oh one three, "
        "triple oh",
        "iban [IBAN]",
    ),
    ("mail tom(at)example(dot)com please", "mail [EMAIL] please"),
    ("mail ken @ example . com please", "mail [EMAIL] please"),
    ("it's john underscore doe at gmail dot com", "it's [EMAIL]"),
    ("it's jo.smith at gmail.com", "it's [EMAIL]"),
    ("call me on 555-1234", "call me on [PHONE]"),
    ("my number is 5551234.", "my number is [PHONE]."),
    ("my number is five five five, one two three four", "my number is [PHONE]"),
    ("call me at eight hundred, five five five, one two one two", "call me at [PHONE]"),
    ("reach me on nine one seven, five five five, oh one nine nine", "reach me on [PHONE]"),
    ("it's 555-123-4567, thanks", "it's [PHONE], thanks"),
    ("phone ５５５－１２３－４５６７", "phone [PHONE]"),
]


@pytest.mark.parametrize(("text", "expected"), FORMS)
def test_each_written_and_spoken_form(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_spans_point_into_the_original_text() -> None:
    text = "Hi! It's four one one one, one one one one, one one one one, one one one one — thanks."
    [match] = find_pii(text)
    assert (
        text[match.start : match.end] == "four one one one, one one one one, one one one one, one one one one"
    )
    assert redact(text) == "Hi! It's [CARD_NUMBER] — thanks."


# --- look-alikes -------------------------------------------------------------------


def test_negative_corpus_is_large() -> None:
    assert len(NEGATIVES) >= 150


@pytest.mark.parametrize("line", NEGATIVES)
def test_negative_corpus_is_left_alone(line: str) -> None:
    assert redact(line) == line


@given(st.lists(st.sampled_from(NEGATIVES), min_size=2, max_size=4))
@FAST
def test_look_alikes_in_one_turn_are_left_alone(lines: list[str]) -> None:
    # Sentences said in one turn stay look-alikes.
    text = ". ".join(line[0].upper() + line[1:] for line in lines)
    assert redact(text) == text
