"""Contact reasons a business defines itself: the reasons file and how a match joins the intent head.

A reasons file (TOML, documented in ``routing/REASONS.md``) lists custom
contact reasons, each defined by a handful of example utterances::

    [[reasons]]
    id = "schedule_appointment"
    category = "appointments"
    description = "book, move or cancel an appointment at a branch"
    examples = ["i'd like to book an appointment", "can i see an advisor on friday", ...]

``load_reasons(text)`` validates the whole file and returns an immutable
``ReasonSet``, or raises ``ReasonsError`` listing every problem, each naming the
reason and the field (``reason 'x', field 'examples': ...``).

Matching itself (embedding the examples, cosine similarity of a turn to each
reason's centroid) needs the model pack and numpy and lives in the service.
This module gets the result, a ``ReasonMatch`` (the best and second-best
reason with their similarities), and decides in plain Python what the turn's
intent evidence becomes (``merge_intents``):

* open set: a match counts only at ``similarity_threshold`` or more; within
  ``ambiguity_margin`` of the runner-up reason it is shared with it (the turn
  is "not sure" between the two);
* it takes the turn only where the intent head has nothing better to say:
  the head's top intent is ``out_of_scope``, or the match's confidence leads
  the head's top probability by ``override_margin`` (an unsure head, below
  0.5, always yields to an accepted match). Otherwise the match is only an
  alternative, with at most the probability the head left over;
* a reason may take the place of a built-in intent (``replaces``): the head's
  predictions of that intent are reported as the reason, and a turn there that
  matches a sibling reason of the file better goes to the sibling (a file that
  replaces ``book_appointment`` and adds ``reschedule_appointment`` tells the
  two apart by their examples; the head only knew booking).

Pure: no I/O, no model code, no numpy.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from routing.errors import ReasonsError, did_you_mean
from routing.taxonomy import CATEGORIES, INTENT_LABELS, INTENT_SUGGESTIONS, OUT_OF_SCOPE

__all__ = [
    "MAX_EXAMPLES",
    "MIN_EXAMPLES",
    "MatchSettings",
    "MergedIntents",
    "Reason",
    "ReasonMatch",
    "ReasonSet",
    "ReasonsError",
    "best_share",
    "empty_reasons",
    "load_reasons",
    "merge_intents",
]

MIN_EXAMPLES = 5
MAX_EXAMPLES = 200
MAX_REASONS = 1000
MAX_EXAMPLE_CHARS = 1000
# Confidence of a match at the similarity threshold, and its ceiling (see ``match_confidence``).
CONFIDENCE_AT_THRESHOLD = 0.6
MAX_CONFIDENCE = 0.95
# Float noise allowed on the ambiguity margin (0.70 - 0.68 is 0.0199999...).
_TOLERANCE = 1e-9
# Alternatives kept per turn (the intent head reports its top 5).
MAX_ALTERNATIVES = 5

_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOP_KEYS = ("version", "description", "matching", "reasons")
_REASON_KEYS = ("id", "category", "description", "examples", "replaces")
_BUILT_IN: frozenset[str] = frozenset(INTENT_LABELS)


class MatchSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``[matching]`` section: when a custom reason counts, and when it beats the intent head.

    A reason's similarity to a turn is its centroid's cosine blended with its
    nearest example's (``example_weight``; ``service.reasons.blended``), less an
    atypicality penalty when the turn lies further from the reason, by the
    discriminant's distance, than the reason's own examples typically do
    (``atypicality_weight``; ``service.reasons.Atypicality``).
    Defaults chosen with ``python -m bench reasons`` (45 CLINC150 intents: travel,
    kitchen and dining, auto and commute; 10 examples each; their CLINC validation
    utterances against utterances of five other CLINC domains and CLINC's
    out-of-scope set; checked on three more sets of 45 with ``--domains``) for the
    pack 2.3 embedding (layers 3-6); the threshold moved to 0.57 with pack 2.4.0 (recall of the
    defined reasons on calls at the same total error), see ``routing/REASONS.md``.
    """

    similarity_threshold: float = 0.57
    ambiguity_margin: float = 0.01
    override_margin: float = 0.1
    # A reason's similarity blends its centroid (1 - w) with its nearest example (w).
    example_weight: float = 0.3
    # An accepted reason also wins when the turn is this much closer to its examples than to the
    # examples of the intent the head picked (the pack's intent prototypes, same blended measure).
    prototype_margin: float = 0.02
    # Similarity a turn loses per spread of discriminant distance beyond the examples' typical one
    # (``service.reasons.Atypicality``); 0 turns the penalty off.
    atypicality_weight: float = 1.0
    # Examples also embedded behind a caller's opening ("hi, I was calling to ask ..."), so that the
    # discriminant learns such openings as variation within a reason (``service.reasons.carrier_plan``);
    # 0 turns it off.
    carrier_pairs: int = 128

    def problems(self) -> list[tuple[str, str]]:
        """``(field, problem)`` for every out-of-range value."""
        out: list[tuple[str, str]] = []
        if not 0.0 < self.similarity_threshold < 1.0:
            out.append(("similarity_threshold", f"must be between 0 and 1, got {self.similarity_threshold}"))
        if not 0.0 <= self.example_weight <= 0.5:
            out.append(("example_weight", f"must be between 0 and 0.5, got {self.example_weight}"))
        if not 0 <= self.carrier_pairs <= 5000:
            out.append(("carrier_pairs", f"must be between 0 and 5000, got {self.carrier_pairs}"))
        if not 0.0 <= self.atypicality_weight <= 5.0:
            out.append(("atypicality_weight", f"must be between 0 and 5, got {self.atypicality_weight}"))
        for name in ("ambiguity_margin", "override_margin", "prototype_margin"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                out.append((name, f"must be at least 0 and below 1, got {value}"))
        return out


class Reason(msgspec.Struct, frozen=True):
    """One custom contact reason: its id (an intent name), category, description and examples.

    ``replaces`` names the built-in intent it takes the place of, if any.
    """

    id: str
    category: str
    examples: tuple[str, ...]
    description: str = ""
    replaces: str | None = None


class ReasonSet(msgspec.Struct, frozen=True):
    """A validated reasons file. Build it with ``load_reasons`` (or ``empty_reasons``).

    ``hash`` is the sha256 of the canonical JSON of the parsed document (like
    the policy's). ``categories`` maps every reason id to its category,
    ``replaced`` every replaced built-in intent to the reason replacing it.
    """

    reasons: tuple[Reason, ...]
    matching: MatchSettings
    hash: str
    categories: dict[str, str]
    replaced: dict[str, str]
    version: str = ""
    description: str = ""

    @property
    def ids(self) -> tuple[str, ...]:
        """Reason ids in file order."""
        return tuple(reason.id for reason in self.reasons)

    @property
    def new_categories(self) -> tuple[str, ...]:
        """Categories the reasons introduce (not in ``routing.taxonomy.CATEGORIES``), sorted."""
        return tuple(sorted(set(self.categories.values()) - set(CATEGORIES)))

    def reason(self, reason_id: str) -> Reason | None:
        """The reason ``reason_id`` (``None`` if there is none)."""
        return next((r for r in self.reasons if r.id == reason_id), None)


def empty_reasons() -> ReasonSet:
    """No custom reasons (``SWITCHBOARD_REASONS=none``)."""
    return ReasonSet(reasons=(), matching=MatchSettings(), hash=_hash({}), categories={}, replaced={})


# --- loading -----------------------------------------------------------------


def load_reasons(text: str) -> ReasonSet:
    """Parse and validate reasons TOML ``text``; raise ``ReasonsError`` listing every problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ReasonsError([f"not valid TOML: {exc}"]) from None
    except RecursionError:
        # tomllib recurses once per nested array or inline table: a hostile file is a bad file.
        raise ReasonsError(["not valid TOML: arrays or inline tables nested too deeply"]) from None
    errors: list[str] = []
    reasons = _Loader(document, errors).load()
    if errors or reasons is None:
        raise ReasonsError(errors or ["reasons file could not be loaded"])
    return reasons


def _hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _example_key(text: str) -> str:
    """Examples that differ only in case and spacing are the same example."""
    return " ".join(text.lower().split())


class _Loader:
    """Walks the parsed document once, collecting every error."""

    def __init__(self, document: dict[str, Any], errors: list[str]) -> None:
        self.doc = document
        self.errors = errors

    def err(self, where: str, path: str, problem: str) -> None:
        prefix = f"{where}, " if where else ""
        self.errors.append(f"{prefix}field '{path}': {problem}")

    def load(self) -> ReasonSet | None:
        doc = self.doc
        for key in doc:
            if key not in _TOP_KEYS:
                self.err("", key, f"unknown field{did_you_mean(key, _TOP_KEYS)}")
        version = self.optional_string("", doc, "version")
        description = self.optional_string("", doc, "description")
        matching = self.matching()
        raw = doc.get("reasons", [])
        if not isinstance(raw, list):
            self.err("", "reasons", f"must be an array of tables ([[reasons]]), got {_kind(raw)}")
            raw = []
        if len(raw) > MAX_REASONS:
            self.err("", "reasons", f"at most {MAX_REASONS} reasons, got {len(raw)}")
        reasons = self.reasons(raw)
        if self.errors or matching is None:
            return None
        return ReasonSet(
            reasons=tuple(reasons),
            matching=matching,
            hash=_hash(doc),
            categories={r.id: r.category for r in reasons},
            replaced={r.replaces: r.id for r in reasons if r.replaces is not None},
            version=version,
            description=description,
        )

    def optional_string(self, where: str, table: dict[str, Any], key: str) -> str:
        value = table.get(key, "")
        if not isinstance(value, str):
            self.err(where, key, f"must be a string, got {_kind(value)}")
            return ""
        return value

    def matching(self) -> MatchSettings | None:
        raw = self.doc.get("matching", {})
        if not isinstance(raw, dict):
            self.err("", "matching", f"must be a table, got {_kind(raw)}")
            return None
        fields = {f.name: f for f in msgspec.structs.fields(MatchSettings)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in fields:
                self.err("", f"matching.{key}", f"unknown field{did_you_mean(key, list(fields))}")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                self.err("", f"matching.{key}", f"must be a number, got {_kind(value)}")
            elif fields[key].type is int and not float(value).is_integer():
                self.err("", f"matching.{key}", f"must be a whole number, got {value}")
            else:
                values[key] = int(value) if fields[key].type is int else float(value)
        settings = MatchSettings(**values)
        for name, problem in settings.problems():
            self.err("", f"matching.{name}", problem)
        return settings

    def reasons(self, raw: list[Any]) -> list[Reason]:
        out: list[Reason] = []
        seen_ids: dict[str, int] = {}
        seen_replaced: dict[str, str] = {}
        example_owner: dict[str, str] = {}
        for number, body in enumerate(raw, start=1):
            where = f"reason #{number}"
            if not isinstance(body, dict):
                self.err(where, "reasons", f"each reason must be a table, got {_kind(body)}")
                continue
            reason_id = body.get("id")
            if isinstance(reason_id, str) and _ID.match(reason_id):
                where = f"reason '{reason_id}'"
                if reason_id in seen_ids:
                    self.err(
                        where, "id", f"duplicate reason id (first used by reason #{seen_ids[reason_id]})"
                    )
                seen_ids.setdefault(reason_id, number)
            elif reason_id is None:
                self.err(where, "id", "missing required field")
                reason_id = None
            else:
                self.err(
                    where,
                    "id",
                    "must be lower-case letters, digits and '_', starting with a letter (at most 64), "
                    f"got {reason_id!r}",
                )
                reason_id = None
            reason = self.reason(where, body, reason_id, seen_replaced, example_owner)
            if reason is not None:
                out.append(reason)
        return out

    def reason(
        self,
        where: str,
        body: dict[str, Any],
        reason_id: str | None,
        seen_replaced: dict[str, str],
        example_owner: dict[str, str],
    ) -> Reason | None:
        before = len(self.errors)
        for key in body:
            if key not in _REASON_KEYS:
                self.err(where, key, f"unknown field{did_you_mean(key, _REASON_KEYS)}")
        category = body.get("category")
        if category is None:
            self.err(where, "category", "missing required field")
        elif not isinstance(category, str) or not _ID.match(category):
            self.err(
                where,
                "category",
                "must be lower-case letters, digits and '_', starting with a letter (at most 64), "
                f"got {category!r}",
            )
        elif category == OUT_OF_SCOPE:
            self.err(where, "category", "out_of_scope is what an unclear reason gets; choose a real category")
        description = self.optional_string(where, body, "description")
        replaces = body.get("replaces")
        if replaces is not None:
            if not isinstance(replaces, str) or replaces not in _BUILT_IN or replaces == OUT_OF_SCOPE:
                shown = replaces if isinstance(replaces, str) else _kind(replaces)
                self.err(
                    where,
                    "replaces",
                    f"must name a built-in intent, got {shown!r}"
                    + (
                        did_you_mean(replaces, INTENT_LABELS, INTENT_SUGGESTIONS)
                        if isinstance(replaces, str)
                        else ""
                    ),
                )
            elif replaces in seen_replaced:
                self.err(
                    where,
                    "replaces",
                    f"{replaces!r} is already replaced by reason '{seen_replaced[replaces]}'",
                )
            elif reason_id is not None:
                seen_replaced[replaces] = reason_id
        if reason_id is not None and reason_id in _BUILT_IN and replaces != reason_id:
            self.err(
                where,
                "id",
                f"collides with the built-in intent {reason_id!r}: choose another id, "
                f'or add replaces = "{reason_id}" to take its place',
            )
        if reason_id == OUT_OF_SCOPE:
            self.err(where, "id", "out_of_scope is reserved")
        examples = self.examples(where, body.get("examples"), reason_id, example_owner)
        if len(self.errors) != before or reason_id is None or not isinstance(category, str):
            return None
        return Reason(
            id=reason_id,
            category=category,
            examples=tuple(examples),
            description=description,
            replaces=replaces,
        )

    def examples(self, where: str, raw: object, reason_id: str | None, owner: dict[str, str]) -> list[str]:
        if raw is None:
            self.err(where, "examples", f"missing required field: at least {MIN_EXAMPLES} example utterances")
            return []
        if not isinstance(raw, list):
            self.err(where, "examples", f"must be a list of strings, got {_kind(raw)}")
            return []
        out: list[str] = []
        mine: dict[str, int] = {}
        for number, item in enumerate(raw, start=1):
            path = f"examples[{number - 1}]"
            if not isinstance(item, str):
                self.err(where, path, f"must be a string, got {_kind(item)}")
                continue
            text = item.strip()
            if not text:
                self.err(where, path, "must not be empty")
                continue
            if len(text) > MAX_EXAMPLE_CHARS:
                self.err(where, path, f"at most {MAX_EXAMPLE_CHARS} characters, got {len(text)}")
                continue
            key = _example_key(text)
            if key in mine:
                self.err(where, path, f"repeats examples[{mine[key]}]")
                continue
            mine[key] = number - 1
            if key in owner and reason_id is not None and owner[key] != reason_id:
                self.err(where, path, f"is also an example of reason '{owner[key]}'")
                continue
            if reason_id is not None:
                owner.setdefault(key, reason_id)
            out.append(text)
        if len(raw) < MIN_EXAMPLES:
            self.err(where, "examples", f"needs at least {MIN_EXAMPLES} examples, got {len(raw)}")
        elif len(raw) > MAX_EXAMPLES:
            self.err(where, "examples", f"at most {MAX_EXAMPLES} examples, got {len(raw)}")
        return out


# --- matching ----------------------------------------------------------------


class ReasonMatch(msgspec.Struct, frozen=True):
    """The reasons closest to one turn: similarity to the best and second-best reason, and the
    best reason's example closest to the turn (``example``, with its cosine ``example_similarity``).

    ``head_similarity``: the turn's similarity, by the same measure, to the examples of the
    intent the head put first (None when the pack has no prototype of that intent).
    ``similarity`` and ``runner_up_similarity`` are the open-set scores the threshold and the
    ambiguity margin read: the blended cosine less each reason's atypicality penalty;
    ``atypicality`` is the best reason's penalty (its blended cosine is ``similarity + atypicality``).
    """

    reason: str
    similarity: float
    runner_up: str | None = None
    runner_up_similarity: float = 0.0
    example: str | None = None
    example_similarity: float = 0.0
    head_similarity: float | None = None
    atypicality: float = 0.0


class MergedIntents(msgspec.Struct, frozen=True):
    """A turn's intent evidence after custom reasons joined it.

    ``intents`` is the top-k ``(label, probability)`` best first, as routing
    takes it; ``categories`` the category of every custom reason among them
    (labels not in it are the intent head's); ``matched`` the reason the turn
    matched at the threshold or above (whether or not it won the turn), with
    its closest example (``example``, ``example_similarity``) when known and the
    atypicality penalty already taken off ``similarity``.
    """

    intents: list[tuple[str, float]]
    categories: dict[str, str]
    matched: str | None = None
    similarity: float | None = None
    example: str | None = None
    example_similarity: float | None = None
    atypicality: float | None = None

    @property
    def source(self) -> str:
        """``reasons`` when the top label is a custom reason, else ``model``."""
        return "reasons" if self.intents and self.intents[0][0] in self.categories else "model"


def accepted(match: ReasonMatch | None, settings: MatchSettings) -> bool:
    """The open-set test: the best reason is at the similarity threshold or above."""
    return match is not None and match.similarity >= settings.similarity_threshold


def best_share(match: ReasonMatch, settings: MatchSettings) -> float:
    """The best reason's share of an accepted match's confidence, between 0.5 and 1.

    1 when it leads the runner-up by ``ambiguity_margin`` or more. Closer than
    that the turn is ambiguous between the two: the share falls linearly to 0.5
    (a tie) and the runner-up gets the rest, so the turn reads "not sure" (a
    confidence near half) instead of losing both reasons. The share is
    continuous at the margin, so a tiny change of similarity never flips the
    turn's label to another intent. The runner-up's similarity can be the
    higher one (the service picks the two reasons by a discriminant, not by
    this similarity): the two disagreeing counts as a tie.
    """
    gap = match.similarity - match.runner_up_similarity
    margin = settings.ambiguity_margin
    if match.runner_up is None or margin <= 0.0 or gap >= margin - _TOLERANCE:
        return 1.0
    return 0.5 + 0.5 * max(0.0, gap) / margin


def match_confidence(similarity: float, settings: MatchSettings) -> float:
    """The probability an accepted match stands for in the evidence.

    0.6 at the threshold, rising one for one with the similarity, at most 0.95
    (set on pack 2.1, where centroid matches at its threshold were right about
    85% of the time and 0.25 above it about 97%).
    """
    gain = max(0.0, similarity - settings.similarity_threshold)
    return min(MAX_CONFIDENCE, CONFIDENCE_AT_THRESHOLD + gain)


def merge_intents(
    head: Sequence[tuple[str, float]], match: ReasonMatch | None, reasons: ReasonSet
) -> MergedIntents:
    """Join the intent head's top-k and a turn's reason match into one evidence list.

    Replaced built-in intents are renamed to the reason replacing them first.
    An accepted match (``accepted``) stands for ``match_confidence`` of the turn,
    shared with the runner-up reason when the two are within the ambiguity
    margin (``best_share``). It takes the turn when the head's top intent is
    ``out_of_scope``, is the same reason, is another reason that replaced a
    built-in intent (the file owns that intent: its examples decide between its
    reasons), is further from the turn than the reason by ``prototype_margin``
    (``match.head_similarity``, from the pack's intent prototypes), or trails the
    best reason's share by ``override_margin``: the
    reason comes first, an ambiguous runner-up second, the head's other intents
    follow scaled by what is left (``out_of_scope`` is dropped: it is not a rival
    reason). Otherwise the best reason is appended as an alternative with at
    most the head's leftover probability. An empty ``head`` (a turn without
    lexical content, or in a language the pack does not support) stays empty:
    such a turn states nothing.
    """
    categories = reasons.categories
    renamed = _renamed(head, reasons.replaced)
    used = {label: categories[label] for label, _ in renamed if label in categories}
    if not renamed:
        return MergedIntents(intents=[], categories={})
    if not accepted(match, reasons.matching) or match is None or match.reason not in categories:
        return MergedIntents(intents=renamed, categories=used)
    settings = reasons.matching
    total = match_confidence(match.similarity, settings)
    share = best_share(match, settings)
    confidence = total * share
    top, top_p = renamed[0]
    # A built-in intent a reason replaces belongs to the reasons file: among its reasons, the
    # examples decide (the head only knew the built-in, not the distinctions the file draws).
    owned = top in reasons.replaced.values()
    # The head's probabilities only compare built-in intents with each other; the prototypes put
    # its pick and the reason on one scale (an over-sure head: "when does my milk expire" ->
    # card_about_to_expire at 0.9, with a food reason defined).
    closer = match.head_similarity is not None and (
        match.similarity + match.atypicality >= match.head_similarity + settings.prototype_margin
    )
    wins = (
        top in (OUT_OF_SCOPE, match.reason)
        or owned
        or closer
        or confidence >= top_p + settings.override_margin
    )
    own = {match.reason: categories[match.reason], **used}
    if wins:
        confidence = max(confidence, top_p) if top == match.reason else confidence
        rivals = []
        if share < 1.0 and match.runner_up in categories:
            rivals = [(str(match.runner_up), total * (1.0 - share))]
            own[str(match.runner_up)] = categories[str(match.runner_up)]
        taken = {match.reason, OUT_OF_SCOPE, *(label for label, _ in rivals)}
        left = max(0.0, 1.0 - confidence - sum(p for _, p in rivals))
        rest = [(label, p * left) for label, p in renamed if label not in taken]
        intents = [(match.reason, confidence), *rivals, *rest][:MAX_ALTERNATIVES]
    else:
        left = max(0.0, 1.0 - top_p)
        existing = dict(renamed).get(match.reason, 0.0)  # a replaced intent the head ranked lower
        probability = existing + confidence * max(0.0, left - existing)
        others = [(label, p) for label, p in renamed[1:] if label != match.reason]
        rest = sorted([*others, (match.reason, probability)], key=lambda kv: -kv[1])
        intents = [renamed[0], *rest][:MAX_ALTERNATIVES]
    kept = {label: own[label] for label, _ in intents if label in own}
    return MergedIntents(
        intents=intents,
        categories=kept,
        matched=match.reason,
        similarity=match.similarity,
        example=match.example,
        example_similarity=match.example_similarity if match.example is not None else None,
        atypicality=match.atypicality,
    )


def _renamed(head: Sequence[tuple[str, float]], replaced: Mapping[str, str]) -> list[tuple[str, float]]:
    if not replaced:
        return [(label, float(p)) for label, p in head]
    out: dict[str, float] = {}
    for label, p in head:
        name = replaced.get(label, label)
        out[name] = out.get(name, 0.0) + float(p)
    return sorted(out.items(), key=lambda kv: -kv[1]) if len(out) != len(head) else list(out.items())
