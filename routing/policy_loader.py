"""Parsing and validation of the routing policy TOML (see ``routing/POLICY.md``).

``load_policy(text)`` walks the parsed document once and collects *every*
problem, each naming the rule (or section) and the field, before raising one
``PolicyError``; on success it returns the immutable ``Policy`` of
``routing.policy_schema``. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from routing.churn import ChurnConfig
from routing.conditions import AllOf, Condition, describe_kind, parse_condition
from routing.errors import PolicyError, did_you_mean
from routing.policy_schema import (
    DEFAULT_RULE_ID,
    GUARDRAILS,
    PREVIOUS_ROUTE,
    REASON_QUEUE,
    Boost,
    Experiment,
    Guardrail,
    Policy,
    Queue,
    Rule,
    Stability,
    Target,
    Variant,
)
from routing.signals import SignalConfig
from routing.slo import parse_slos
from routing.taxonomy import CATEGORIES, EMOTION_LABELS, INTENT_LABELS, INTENT_SUGGESTIONS, OUT_OF_SCOPE
from routing.types import BOT_ROUTE, ROUTES

__all__ = ["canonical_hash", "load_policy"]

# Guardrails a policy may leave unconfigured (so policies written before they existed still
# load): they are active all the same, with the target of the guardrail named here.
_OPTIONAL_GUARDRAILS: dict[str, str] = {"unsupported_language": "low_confidence"}
_GUARDRAIL_DOC = {
    "human_request": "an explicit request for a person never stays with the bot",
    "unsupported_language": "a customer whose language the models do not support never stays with the bot",
    "low_confidence": "a contact reason that is not confident never goes to the bot",
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_RULE_ID_FORMAT = "must be letters, digits, '_', '-', '.', ':' (at most 64), got {!r}"
_INVALID_ID = "invalid id {!r}"
_QUEUE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_TOP_KEYS = (
    "version",
    "description",
    "signals",
    "churn",
    "queues",
    "guardrails",
    "default",
    "rules",
    "priority_boosts",
    "experiment",
    "families",
    "stability",
    "slos",
)
_TARGET_KEYS = ("route", "queue", "priority")
_RULE_KEYS = ("id", "description", "when", *_TARGET_KEYS, "fallback")
_SHARE_TOLERANCE = 1e-9
# The default target is a rule whose condition always holds (an empty "all").
_ALWAYS: Condition = AllOf(path="default", items=())


def canonical_hash(document: dict[str, Any]) -> str:
    """Return the sha256 hex of the canonical JSON form of a parsed policy document."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_policy(
    text: str, extra_intents: Mapping[str, str] | None = None, *, replaced: Collection[str] = ()
) -> Policy:
    """Parse and validate policy TOML ``text``; return the compiled ``Policy``.

    Raises ``PolicyError`` (a ``ValueError``) whose ``errors`` lists every
    problem: TOML syntax, unknown or missing fields, wrong types, unknown
    signals, labels, categories, intents or queues, duplicate ids, bad shares.

    ``extra_intents`` maps intents beyond the taxonomy (the custom contact
    reasons of a reasons file) to their categories: both become valid labels,
    and new categories need a queue like every other. ``replaced`` lists
    built-in intents a custom reason took the place of: they are no longer
    valid labels (they never reach routing).
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"not valid TOML: {exc}"]) from None
    except RecursionError:
        # tomllib recurses once per nested array or inline table: a hostile file is a bad file.
        raise PolicyError(["not valid TOML: arrays or inline tables nested too deeply"]) from None
    errors: list[str] = []
    policy = _Loader(document, errors, extra_intents or {}, replaced).load()
    if errors or policy is None:
        raise PolicyError(errors or ["policy could not be loaded"])
    return policy


class _Loader:
    """Walks the parsed document once, collecting every error."""

    def __init__(
        self,
        document: dict[str, Any],
        errors: list[str],
        extra_intents: Mapping[str, str] | None = None,
        replaced: Collection[str] = (),
    ) -> None:
        self.doc = document
        self.errors = errors
        self.uses_reason_queue: list[str] = []  # where "@reason" is used, for the coverage error
        # Label sets: the taxonomy's, plus custom contact reasons, minus the intents they replace.
        self.extra = dict(extra_intents or {})
        self.intents: tuple[str, ...] = tuple(
            i for i in INTENT_LABELS if i not in replaced or i in self.extra
        ) + tuple(i for i in self.extra if i not in INTENT_LABELS)
        self.categories: tuple[str, ...] = CATEGORIES + tuple(
            sorted(set(self.extra.values()) - set(CATEGORIES))
        )
        self.domains: dict[str, tuple[str, ...]] = {
            "reason.intent": self.intents,
            "intent.current": self.intents,
            "reason.category": self.categories,
            "intent.current_category": self.categories,
        }

    # -- error helpers --

    def err(self, where: str, path: str, problem: str) -> None:
        prefix = f"{where}, " if where else ""
        self.errors.append(f"{prefix}field '{path}': {problem}")

    def unknown(self, where: str, raw: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for key in raw:
            if key not in allowed:
                self.err(where, f"{prefix}{key}", f"unknown field{did_you_mean(key, allowed)}")

    def table(self, where: str, raw: object, path: str) -> dict[str, Any] | None:
        if isinstance(raw, dict):
            return raw
        self.err(where, path, f"must be a table, got {describe_kind(raw)}")
        return None

    def string(self, where: str, raw: dict[str, Any], key: str, prefix: str, *, required: bool) -> str | None:
        if key not in raw:
            if required:
                self.err(where, f"{prefix}{key}", "missing required field")
            return None
        value = raw[key]
        if not isinstance(value, str):
            self.err(where, f"{prefix}{key}", f"must be a string, got {describe_kind(value)}")
            return None
        return value

    def item_id(self, where: str, raw_id: object, invalid: str) -> str | None:
        """Return ``raw_id`` if it is a well-formed id (``_ID``), else report it and return None.

        A missing id is reported as such; any other bad one with ``invalid``, a
        template whose ``{!r}`` is the value. Uniqueness is the caller's: it differs
        between rules, boosts and variants.
        """
        if isinstance(raw_id, str) and _ID.match(raw_id):
            return raw_id
        self.err(where, "id", "missing required field" if raw_id is None else invalid.format(raw_id))
        return None

    # -- sections --

    def load(self) -> Policy | None:
        doc = self.doc
        self.unknown("", doc, _TOP_KEYS, "")
        version = self.string("", doc, "version", "", required=True)
        if version is not None and not version.strip():
            self.err("", "version", "must not be empty")
        description = self.string("", doc, "description", "", required=False) or ""
        families = self.families()
        signals = self.struct_section("signals", SignalConfig)
        if signals is not None:
            signals = msgspec.structs.replace(signals, families=families)
        churn = self.struct_section("churn", ChurnConfig)
        stability = self.struct_section("stability", Stability)
        queues = self.queues()
        guardrails = self.guardrails(queues)
        default = self.default(queues)
        rules = self.rules(doc.get("rules", []), "rules", queues, where_prefix="")
        boosts = self.boosts(queues)
        experiment = self.experiment(rules, default, queues)
        reason_queues = self.reason_queues(queues)
        slos = parse_slos(doc.get("slos", []), self.err)
        if (
            self.errors
            or version is None
            or signals is None
            or churn is None
            or stability is None
            or default is None
        ):
            return None
        return Policy(
            version=version,
            hash=canonical_hash(doc),
            description=description,
            rules=tuple(rules),
            default=default,
            guardrails=guardrails,
            queues=queues,
            reason_queues=reason_queues,
            boosts=tuple(boosts),
            experiment=experiment,
            signals=signals,
            churn=churn,
            extra_intents=self.extra,
            stability=stability,
            slos=slos,
        )

    def struct_section(self, name: str, cls: type[Any]) -> Any:
        """Build the ``[name]`` settings Struct; report every bad field, then every out-of-range one."""
        raw = self.doc.get(name, {})
        section = self.table("", raw, name)
        if section is None:
            return None
        # Families have their own top-level table ([families]), not a [signals] key.
        fields = {
            f.name: f
            for f in msgspec.structs.fields(cls)
            if not (cls is SignalConfig and f.name == "families")
        }
        self.unknown("", section, tuple(fields), f"{name}.")
        values: dict[str, Any] = {}
        ok = all(key in fields for key in section)
        for key, value in section.items():
            if key not in fields:
                continue
            try:
                values[key] = msgspec.convert(value, fields[key].type)
            except msgspec.ValidationError as exc:
                self.err("", f"{name}.{key}", _convert_problem(exc, value))
                ok = False
        # Check what did convert, so one typo does not hide the next problem.
        config = cls(**values)
        if isinstance(config, SignalConfig):
            self.check_signal_labels(config)
        for field, problem in config.problems():
            self.err("", f"{name}.{field}", problem)
        return config if ok else None

    def intent_hint(self, name: str) -> str:
        """`` (did you mean ...)`` for a name that is not an intent, merged intents' old names included."""
        return did_you_mean(name, self.intents, INTENT_SUGGESTIONS)

    def check_signal_labels(self, config: SignalConfig) -> None:
        for name in ("meta_intents", "human_intents", "churn_intents", "complaint_intents"):
            for label in getattr(config, name):
                if label not in self.intents:
                    self.err("", f"signals.{name}", f"unknown intent {label!r}{self.intent_hint(label)}")
        for label in config.peak_emotions:
            if label not in EMOTION_LABELS:
                hint = did_you_mean(label, EMOTION_LABELS)
                self.err("", "signals.peak_emotions", f"unknown emotion {label!r}{hint}")

    def families(self) -> dict[str, tuple[str, ...]]:
        """``[families]``: named groups of intents; an intent belongs to one family at most.

        Also makes the family names the values ``reason.family`` may be compared with."""
        section = self.table("", self.doc.get("families", {}), "families")
        out: dict[str, tuple[str, ...]] = {}
        owner: dict[str, str] = {}
        for name, intents in (section or {}).items():
            path = f"families.{name}"
            if not _ID.match(name):
                self.err("", path, "family names are letters, digits, '_', '-', '.', ':' (at most 64)")
                continue
            if not isinstance(intents, list) or not intents or not all(isinstance(i, str) for i in intents):
                self.err("", path, "must be a non-empty list of intents")
                continue
            for intent in intents:
                if intent not in self.intents or intent == OUT_OF_SCOPE:
                    self.err("", path, f"unknown intent {intent!r}{self.intent_hint(intent)}")
                elif intent in owner:
                    self.err("", path, f"intent {intent!r} is already in family '{owner[intent]}'")
                else:
                    owner[intent] = name
            out[name] = tuple(dict.fromkeys(intents))
        self.domains["reason.family"] = tuple(out)
        return out

    def queues(self) -> dict[str, Queue]:
        raw = self.doc.get("queues")
        if raw is None:
            self.err("", "queues", "missing required table: declare every queue the policy routes to")
            return {}
        section = self.table("", raw, "queues")
        if section is None:
            return {}
        if not section:
            self.err("", "queues", "declare at least one queue")
        queues: dict[str, Queue] = {}
        owner: dict[str, str] = {}
        for name, body in section.items():
            path = f"queues.{name}"
            if not _QUEUE.match(name):
                self.err("", path, "queue names are lower-case letters, digits, '_', '-', '.' (at most 64)")
                continue
            table = self.table("", body, path)
            if table is None:
                continue
            self.unknown("", table, ("description", "categories"), f"{path}.")
            description = self.string("", table, "description", f"{path}.", required=False) or ""
            categories = table.get("categories", [])
            if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                self.err("", f"{path}.categories", "must be a list of category names")
                categories = []
            for category in categories:
                if category != "*" and category not in self.categories:
                    self.err(
                        "",
                        f"{path}.categories",
                        f"unknown category {category!r}{did_you_mean(category, self.categories)}",
                    )
                elif category in owner:
                    self.err(
                        "",
                        f"{path}.categories",
                        f"category {category!r} is already served by queue '{owner[category]}'",
                    )
                else:
                    owner[category] = name
            queues[name] = Queue(name=name, description=description, categories=tuple(categories))
        return queues

    def reason_queues(self, queues: dict[str, Queue]) -> dict[str, str]:
        mapping = {c: q.name for q in queues.values() for c in q.categories if c != "*"}
        catch_all = next((q.name for q in queues.values() if "*" in q.categories), None)
        missing = [c for c in self.categories if c not in mapping]
        if catch_all is not None:
            mapping.update({c: catch_all for c in missing})
            missing = []
        if self.uses_reason_queue and missing:
            self.err(
                "",
                "queues",
                f"'{REASON_QUEUE}' is used ({self.uses_reason_queue[0]}) but these categories have no queue: "
                f"{', '.join(missing)}; list them in a queue's categories "
                'or give one queue categories = ["*"]',
            )
        return {c: mapping[c] for c in self.categories if c in mapping}

    def target(
        self,
        where: str,
        raw: dict[str, Any],
        prefix: str,
        queues: dict[str, Queue],
        *,
        partial: bool = False,
        base: Target | None = None,
    ) -> Target | None:
        """Read route/queue/priority from ``raw`` (the keys sit in the rule or target table)."""
        ok = True
        route: Any = raw.get("route", base.route if base else None)
        queue: Any = raw.get("queue", base.queue if base else None)
        priority: Any = raw.get("priority", base.priority if base else None)
        for key, value in (("route", route), ("queue", queue), ("priority", priority)):
            if value is None and not partial:
                self.err(where, f"{prefix}{key}", "missing required field")
                ok = False
        if route is not None and route not in ROUTES:
            self.err(where, f"{prefix}route", f"must be one of {', '.join(ROUTES)}, got {route!r}")
            ok = False
        if queue is not None:
            if not isinstance(queue, str):
                self.err(where, f"{prefix}queue", f"must be a string, got {describe_kind(queue)}")
                ok = False
            elif queue == REASON_QUEUE:
                self.uses_reason_queue.append(
                    f"{where}, field '{prefix}queue'" if where else f"field '{prefix}queue'"
                )
            elif queue not in queues:
                hint = did_you_mean(queue, list(queues))
                self.err(where, f"{prefix}queue", f"unknown queue {queue!r}{hint}")
                ok = False
        if priority is not None and (
            not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 100
        ):
            self.err(where, f"{prefix}priority", f"must be an integer from 0 to 100, got {priority!r}")
            ok = False
        if not ok or route is None or queue is None or priority is None:
            return None
        return Target(route=route, queue=queue, priority=priority)

    def fallback(
        self, where: str, raw: object, prefix: str, queues: dict[str, Queue], primary: Target | None
    ) -> Target | None:
        table = self.table(where, raw, prefix.rstrip("."))
        if table is None:
            return None
        self.unknown(where, table, _TARGET_KEYS, prefix)
        target = self.target(where, {"priority": primary.priority if primary else 0, **table}, prefix, queues)
        if (
            target is not None
            and primary is not None
            and (target.route, target.queue)
            == (
                primary.route,
                primary.queue,
            )
        ):
            self.err(where, prefix.rstrip("."), "the fallback must differ from the target it falls back from")
            return None
        return target

    def guardrails(self, queues: dict[str, Queue]) -> dict[str, Guardrail]:
        raw = self.doc.get("guardrails")
        if raw is None:
            self.err(
                "", "guardrails", "missing required table: guardrails cannot be left out, only configured"
            )
            return {}
        section = self.table("", raw, "guardrails")
        if section is None:
            return {}
        out: dict[str, Guardrail] = {}
        for name in section:
            if name not in GUARDRAILS:
                self.err("", f"guardrails.{name}", f"unknown guardrail{did_you_mean(name, GUARDRAILS)}")
        for name in GUARDRAILS:
            path = f"guardrails.{name}"
            if name not in section:
                if name not in _OPTIONAL_GUARDRAILS:
                    self.err(
                        "", path, "missing required table: guardrails cannot be left out, only configured"
                    )
                continue
            table = self.table("", section[name], path)
            if table is None:
                continue
            for key in table:
                if key in ("enabled", "enable", "disabled", "off"):
                    self.err(
                        "", f"{path}.{key}", "guardrails cannot be disabled; configure their target instead"
                    )
                elif key not in (*_TARGET_KEYS, "description"):
                    hint = did_you_mean(key, (*_TARGET_KEYS, "description"))
                    self.err("", f"{path}.{key}", f"unknown field{hint}")
            target = self.target("", table, f"{path}.", queues)
            if target is not None and target.route == BOT_ROUTE:
                self.err("", f"{path}.route", "a guardrail exists to keep conversations away from the bot")
                continue
            if target is not None:
                out[name] = Guardrail(name=name, target=target, description=_GUARDRAIL_DOC[name])
        for name, borrowed in _OPTIONAL_GUARDRAILS.items():
            if name not in section and borrowed in out:
                # Not configured: still on, sending where its sibling sends.
                out[name] = Guardrail(
                    name=name, target=out[borrowed].target, description=_GUARDRAIL_DOC[name]
                )
        return {name: out[name] for name in GUARDRAILS if name in out}

    def default(self, queues: dict[str, Queue]) -> Rule | None:
        raw = self.doc.get("default")
        if raw is None:
            self.err("", "default", "missing required table: the target when no rule matches")
            return None
        table = self.table("", raw, "default")
        if table is None:
            return None
        self.unknown("", table, (*_TARGET_KEYS, "fallback", "description"), "default.")
        target = self.target("", table, "default.", queues)
        fallback = None
        if "fallback" in table:
            fallback = self.fallback("", table["fallback"], "default.fallback.", queues, target)
            if fallback is None:
                return None
        if target is None:
            return None
        description = self.string("", table, "description", "default.", required=False) or ""
        return Rule(
            id=DEFAULT_RULE_ID, when=_ALWAYS, target=target, fallback=fallback, description=description
        )

    def rules(
        self,
        raw: object,
        path: str,
        queues: dict[str, Queue],
        *,
        where_prefix: str,
        taken: set[str] | None = None,
    ) -> list[Rule]:
        if not isinstance(raw, list):
            self.err(where_prefix, path, f"must be an array of tables ([[{path}]]), got {describe_kind(raw)}")
            return []
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for number, body in enumerate(raw, start=1):
            where = f"{where_prefix}rule #{number}"
            if not isinstance(body, dict):
                self.err(where, path, f"each rule must be a table, got {describe_kind(body)}")
                continue
            rule_id = body.get("id")
            valid_id = self.item_id(where, rule_id, _RULE_ID_FORMAT)
            if valid_id is not None:
                where = f"{where_prefix}rule '{valid_id}'"
                if valid_id == DEFAULT_RULE_ID:
                    self.err(where, "id", "'default' is reserved for the [default] target")
                elif valid_id in seen:
                    self.err(where, "id", f"duplicate rule id (first used by rule #{seen[valid_id]})")
                elif taken is not None and valid_id in taken:
                    self.err(where, "id", "a variant rule may not reuse the id of a base rule")
                seen.setdefault(valid_id, number)
            rule = self.rule(where, body, queues)
            if rule is not None and isinstance(rule_id, str):
                rules.append(msgspec.structs.replace(rule, id=rule_id))
        return rules

    def rule(self, where: str, body: dict[str, Any], queues: dict[str, Queue]) -> Rule | None:
        self.unknown(where, body, _RULE_KEYS, "")
        description = self.string(where, body, "description", "", required=False) or ""
        when = None
        if "when" not in body:
            self.err(where, "when", "missing required field (a rule without conditions is the [default])")
        else:
            when = parse_condition(body["when"], "when", where, self.errors, self.domains)
        if body.get("route") == PREVIOUS_ROUTE:
            # Keeps the previous decision's route, queue and priority: nothing else to say.
            for key in ("queue", "priority", "fallback"):
                if key in body:
                    self.err(
                        where,
                        key,
                        f"a rule with route = '{PREVIOUS_ROUTE}' keeps the previous decision's "
                        "queue, priority and fallback; remove it",
                    )
            if when is None or any(key in body for key in ("queue", "priority", "fallback")):
                return None
            return Rule(id="", when=when, target=None, description=description)
        target = self.target(where, body, "", queues)
        fallback = None
        if "fallback" in body:
            fallback = self.fallback(where, body["fallback"], "fallback.", queues, target)
        if when is None or target is None or ("fallback" in body and fallback is None):
            return None
        return Rule(id="", when=when, target=target, fallback=fallback, description=description)

    def boosts(self, queues: dict[str, Queue]) -> list[Boost]:
        raw = self.doc.get("priority_boosts", [])
        if not isinstance(raw, list):
            self.err(
                "",
                "priority_boosts",
                f"must be an array of tables ([[priority_boosts]]), got {describe_kind(raw)}",
            )
            return []
        out: list[Boost] = []
        seen: set[str] = set()
        for number, body in enumerate(raw, start=1):
            where = f"priority boost #{number}"
            if not isinstance(body, dict):
                self.err(where, "priority_boosts", f"each boost must be a table, got {describe_kind(body)}")
                continue
            boost_id = body.get("id")
            valid_id = self.item_id(where, boost_id, _INVALID_ID)
            if valid_id is not None:
                where = f"priority boost '{valid_id}'"
                if valid_id in seen:
                    self.err(where, "id", "duplicate priority boost id")
                seen.add(valid_id)
            self.unknown(where, body, ("id", "description", "when", "add"), "")
            add = body.get("add")
            if add is None:
                self.err(where, "add", "missing required field")
            elif not isinstance(add, int) or isinstance(add, bool) or not -100 <= add <= 100:
                self.err(where, "add", f"must be an integer from -100 to 100, got {add!r}")
                add = None
            when = None
            if "when" in body:
                when = parse_condition(body["when"], "when", where, self.errors, self.domains)
            else:
                self.err(where, "when", "missing required field")
            if when is not None and add is not None and isinstance(boost_id, str):
                out.append(
                    Boost(id=boost_id, when=when, add=add, description=str(body.get("description", "")))
                )
        return out

    def experiment(
        self, rules: list[Rule], default: Rule | None, queues: dict[str, Queue]
    ) -> Experiment | None:
        raw = self.doc.get("experiment")
        if raw is None:
            return None
        table = self.table("", raw, "experiment")
        if table is None:
            return None
        self.unknown("", table, ("id", "description", "variants"), "experiment.")
        exp_id = self.string("", table, "id", "experiment.", required=True)
        variants_raw = table.get("variants")
        if not isinstance(variants_raw, list) or len(variants_raw) < 2:
            self.err("", "experiment.variants", "needs at least two [[experiment.variants]]")
            return None
        variants: list[Variant] = []
        seen: set[str] = set()
        total = 0.0
        rule_ids = {r.id for r in rules}
        for number, body in enumerate(variants_raw, start=1):
            variant = self.variant(number, body, rules, rule_ids, default, queues, seen)
            if variant is not None:
                variants.append(variant)
                total += variant.share
        if len(variants) == len(variants_raw) and abs(total - 1.0) > _SHARE_TOLERANCE:
            self.err("", "experiment.variants", f"shares must add up to 1, they add up to {total:g}")
        if exp_id is None or len(variants) != len(variants_raw):
            return None
        return Experiment(id=exp_id, variants=tuple(variants), description=str(table.get("description", "")))

    def variant(
        self,
        number: int,
        body: object,
        rules: list[Rule],
        rule_ids: set[str],
        default: Rule | None,
        queues: dict[str, Queue],
        seen: set[str],
    ) -> Variant | None:
        where = f"variant #{number}"
        if not isinstance(body, dict):
            self.err(where, "experiment.variants", f"each variant must be a table, got {describe_kind(body)}")
            return None
        variant_id = body.get("id")
        valid_id = self.item_id(where, variant_id, _INVALID_ID)
        if valid_id is not None:
            where = f"variant '{valid_id}'"
            if valid_id in seen:
                self.err(where, "id", "duplicate variant id")
            seen.add(valid_id)
        before = len(self.errors)
        self.unknown(where, body, ("id", "description", "share", "skip_rules", "targets", "rules"), "")
        share = body.get("share")
        if not isinstance(share, int | float) or isinstance(share, bool) or not math.isfinite(share):
            self.err(
                where,
                "share",
                "missing required field" if share is None else f"must be a number, got {share!r}",
            )
            share = 0.0
        elif not 0.0 < share <= 1.0:
            self.err(where, "share", f"must be greater than 0 and at most 1, got {share}")
        skip = body.get("skip_rules", [])
        if not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
            self.err(where, "skip_rules", "must be a list of rule ids")
            skip = []
        for rule_id in skip:
            if rule_id not in rule_ids:
                self.err(
                    where, "skip_rules", f"unknown rule {rule_id!r}{did_you_mean(rule_id, sorted(rule_ids))}"
                )
        overrides = self.overrides(where, body.get("targets", {}), rules, rule_ids, default, queues)
        extra = self.rules(body.get("rules", []), "rules", queues, where_prefix=f"{where}, ", taken=rule_ids)
        if len(self.errors) != before or default is None or not isinstance(variant_id, str):
            return None
        effective = [*extra]
        for rule in rules:
            if rule.id in skip:
                continue
            effective.append(overrides.get(rule.id, rule))
        return Variant(
            id=variant_id,
            share=float(share),
            rules=tuple(effective),
            default=overrides.get(DEFAULT_RULE_ID, default),
            description=str(body.get("description", "")),
        )

    def overrides(
        self,
        where: str,
        raw: object,
        rules: list[Rule],
        rule_ids: set[str],
        default: Rule | None,
        queues: dict[str, Queue],
    ) -> dict[str, Rule]:
        table = self.table(where, raw, "targets")
        if table is None:
            return {}
        by_id = {r.id: r for r in rules}
        if default is not None:
            by_id[DEFAULT_RULE_ID] = default
        out: dict[str, Rule] = {}
        for key, body in table.items():
            path = f"targets.{key}"
            if key not in by_id and key not in rule_ids:
                self.err(where, path, f"unknown rule {key!r}{did_you_mean(key, sorted(rule_ids))}")
                continue
            override = self.table(where, body, path)
            if override is None:
                continue
            self.unknown(where, override, (*_TARGET_KEYS, "fallback"), f"{path}.")
            if not any(k in override for k in (*_TARGET_KEYS, "fallback")):
                self.err(where, path, "an override sets at least one of route, queue, priority, fallback")
                continue
            base_rule = by_id.get(key)
            if base_rule is None:
                continue  # the base rule itself failed validation; its errors are reported
            if base_rule.target is None:
                self.err(
                    where,
                    path,
                    f"rule {key!r} keeps the previous decision (route = '{PREVIOUS_ROUTE}'); "
                    "it has no target to override",
                )
                continue
            target = self.target(where, override, f"{path}.", queues, partial=True, base=base_rule.target)
            if target is None:
                continue
            fallback = base_rule.fallback
            if "fallback" in override:
                fallback = self.fallback(where, override["fallback"], f"{path}.fallback.", queues, target)
            out[key] = msgspec.structs.replace(base_rule, target=target, fallback=fallback)
        return out


def _convert_problem(exc: msgspec.ValidationError, value: object) -> str:
    message = str(exc)
    # msgspec says "Expected `float`, got `str`"; say it the way the rest of the errors do.
    message = message.replace("`", "")
    return f"{message[0].lower()}{message[1:]}" if message else f"invalid value {value!r}"
