"""``python -m bench suite``: build the default policy's test suite from real utterances.

Reads the **train** files of the public data sets only (``banking77/train.csv``,
``bitext_customer_service/train.csv``, ``sgd/train_user_turns.jsonl``,
``complaints/complaints.jsonl``; never a test split), samples utterances
deterministically (a fixed seed over the files in their order) and writes
``bench/suites/default_policy.toml``: labelled conversations with the route,
queue and rule the default policy should give them. The data files are never
copied into the project, only the sampled utterances, each with its source
(file and row) so a case can be traced back.

The expectations come from what the policy is for, not from what a model pack
happens to output: a calm Tier-1 request belongs with the bot, a complaint or
an upset customer with a person, a request for a person with a person, fraud
with the security team, a calm "thanks, that's all" where it already is. The
bot's and agents' lines are short fixed templates (the data sets hold
customer turns; SGD's own system turns are used in its dialogues), and a few
turns no data set has (greetings, other languages) are written here and marked
``handwritten``.

Run it again after changing the data or the policy's intent; the same data and
seed give the same file.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routing.phrases import closing_phrase
from routing.policy import default_policy
from routing.taxonomy import category_of

SUITE = Path(__file__).parent / "suites" / "default_policy.toml"
SEED = 20251130

GREETING = "Hi, I'm the virtual assistant. How can I help you today?"
BOT_ANSWER = "Here's how: open the app, go to Settings and follow the steps there."
# Requests to repeat as a voice caller says them (``models.normalize`` marks them ``repeat_request``).
REPEAT_REQUESTS = ("sorry, can you repeat that?", "i can't hear you", "um what was that")
BOT_AGAIN = "I can help with that. You'll find it in the app under Settings."
# A caller's name or pleasantry before the request, and turns that put the line on hold mid-call.
CALLER_OPENINGS = (
    "hi, my name is Sarah Jones and",
    "hello, how are you doing today?",
    "yes hi, this is Robert,",
)
HOLD_TURNS = ("hold on, let me grab my card", "one second please", "are you still there?")
BOT_DETAIL = "Sure. Could you read me the last four digits of your card?"
BOT_ANYTHING_ELSE = "Glad I could help. Is there anything else?"
AGENT_SORRY = "I'm sorry about that, let me look into it for you."
AGENT_DONE = "That's sorted now. Is there anything else I can do for you?"

# Tier-1 intents of the default policy (families and intents of rule tier1-bot), by data set.
TIER1_BANKING77 = (
    "card_delivery_estimate", "card_arrival", "order_physical_card", "getting_spare_card",
    "card_about_to_expire", "get_physical_card", "activate_my_card", "card_linking", "getting_virtual_card",
    "get_disposable_virtual_card", "disposable_card_limits", "passcode_forgotten", "change_pin",
    "transfer_timing", "receiving_money",
    "transfer_into_account", "exchange_rate", "exchange_via_app", "top_up_limits", "top_up_by_cash_or_cheque",
    "topping_up_by_card", "card_acceptance", "visa_or_mastercard", "apple_pay_or_google_pay", "age_limit",
    "fiat_currency_support", "country_support", "supported_cards_and_currencies",
)  # fmt: skip
TIER1_BITEXT = (
    "track_order", "delivery_options", "delivery_period", "track_refund", "check_refund_policy",
    "recover_password", "check_invoice", "get_invoice", "check_payment_methods", "create_account",
    "newsletter_subscription",
)  # fmt: skip
SGD_TIER1 = {"CheckBalance": "balance", "TransferMoney": "transfer", "BookAppointment": "book_appointment"}
# Problems a specialist solves (the default rule), calm as far as the words go.
PROBLEMS_BANKING77 = (
    "declined_transfer", "pending_transfer", "card_not_working", "card_swallowed", "top_up_failed",
    "pending_top_up", "wrong_amount_of_cash_received", "beneficiary_not_allowed", "failed_transfer",
    "declined_card_payment", "pending_card_payment", "transfer_not_received_by_recipient",
)  # fmt: skip
FRAUD_BANKING77 = (
    "compromised_card", "card_payment_not_recognised", "lost_or_stolen_card",
    "cash_withdrawal_not_recognised", "direct_debit_payment_not_recognised", "lost_or_stolen_phone",
)  # fmt: skip
# Words that make a request read upset (angry, frustrated or anxious): kept out of the calm samples.
_UPSET = re.compile(
    r"!|\b(?:ridiculous|unacceptable|terrible|awful|angry|furious|annoy\w*|frustrat\w*|worst|useless|"
    r"stupid|hate|damn|goddamn|fuck\w*|bloody|hell|crap|shit\w*|wtf|scam\w*|again|still|"
    r"worr(?:y|ied|ying)|anxious|nervous|scared|afraid|upset|stress\w*|panic\w*)\b",
    re.IGNORECASE,
)
_HANDLE = re.compile(r"(?:^|\s)[@#]\w+")
_URL = re.compile(r"https?://\S+")

HANDWRITTEN_GREETINGS = ("hi", "hello there", "good morning", "hey, are you there?")
HANDWRITTEN_FOREIGN = (
    ("es", "Hola, perdí mi tarjeta de crédito ayer y necesito ayuda, por favor"),
    ("fr", "Bonjour, je voudrais savoir pourquoi mon virement n'est pas encore arrivé"),
    ("de", "Guten Tag, ich möchte wissen, wann meine neue Karte ankommt"),
    ("pt", "Olá, não consigo entrar na minha conta e preciso de ajuda urgente"),
)


@dataclass
class Row:
    """One utterance and where it came from."""

    text: str
    label: str
    source: str
    flags: str = ""


@dataclass
class Data:
    """The train files, read once."""

    banking77: dict[str, list[Row]] = field(default_factory=dict)
    bitext: dict[str, list[Row]] = field(default_factory=dict)
    bitext_offensive: list[Row] = field(default_factory=list)
    sgd: list[dict[str, Any]] = field(default_factory=list)
    complaints: list[Row] = field(default_factory=list)


def read_data(root: Path) -> Data:
    """Read the four train files under ``root`` (the layout of ``../shared/data``)."""
    data = Data()
    with (root / "banking77" / "train.csv").open(encoding="utf-8", newline="") as handle:
        for n, row in enumerate(csv.DictReader(handle), start=2):
            label = row["category"]
            data.banking77.setdefault(label, []).append(
                Row(row["text"].strip(), label, f"banking77/train.csv:{n}")
            )
    with (root / "bitext_customer_service" / "train.csv").open(encoding="utf-8-sig", newline="") as handle:
        for n, row in enumerate(csv.DictReader(handle), start=2):
            item = Row(
                row["utterance"].strip(),
                row["intent"],
                f"bitext_customer_service/train.csv:{n}",
                row["flags"],
            )
            if "W" in item.flags:
                data.bitext_offensive.append(item)
            else:
                data.bitext.setdefault(item.label, []).append(item)
    with (root / "sgd" / "train_user_turns.jsonl").open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, start=1):
            if line.strip():
                record = json.loads(line)
                record["source"] = f"sgd/train_user_turns.jsonl:{n}"
                data.sgd.append(record)
    with (root / "complaints" / "complaints.jsonl").open(encoding="utf-8") as handle:
        for n, line in enumerate(handle, start=1):
            record = json.loads(line)
            if record["complaint"] and not str(record["domain"]).startswith("random"):
                text = _URL.sub("", _HANDLE.sub(" ", record["text"])).strip()
                text = re.sub(r"\s+", " ", text)
                if len(text.split()) >= 6:
                    data.complaints.append(Row(text, "complaint", f"complaints/complaints.jsonl:{n}"))
    return data


@dataclass
class Case:
    """One conversation of the suite."""

    id: str
    tags: list[str]
    source: str
    turns: list[tuple[str, str]]
    expect: list[dict[str, Any]]
    note: str = ""
    customer: dict[str, Any] = field(default_factory=dict)


class Builder:
    """Samples utterances with one seeded generator and collects the cases."""

    def __init__(self, data: Data, seed: int = SEED) -> None:
        self.data = data
        self.rng = random.Random(seed)
        self.cases: list[Case] = []
        self.used: set[str] = set()
        self.policy = default_policy()

    def queue_of(self, intent: str) -> str:
        """The queue ``"@reason"`` gives a confident ``intent`` under the default policy."""
        return self.policy.reason_queues[category_of(intent)]

    def pick(self, rows: Sequence[Row], count: int, *, calm: bool = True) -> list[Row]:
        """``count`` rows not used yet (calm ones only, unless told otherwise), in a seeded order."""
        pool = [r for r in rows if r.text not in self.used and (not calm or not _UPSET.search(r.text))]
        chosen = self.rng.sample(pool, min(count, len(pool)))
        self.used.update(r.text for r in chosen)
        return chosen

    def add(self, case: Case) -> None:
        """Add a case; its id must be unique."""
        assert all(c.id != case.id for c in self.cases), case.id
        self.cases.append(case)

    def closings(self, count: int) -> list[Row]:
        """SGD goodbye/thank-you turns that read as a whole-turn closing."""
        rows = [
            Row(r["text"], "closing", r["source"])
            for r in self.data.sgd
            if r["acts"] and set(r["acts"]) <= {"THANK_YOU", "GOODBYE"} and closing_phrase(r["text"])
        ]
        return self.pick(rows, count)


def _bank(data: Data, labels: Iterable[str]) -> list[Row]:
    return [row for label in labels for row in data.banking77.get(label, [])]


def _calm_tier1(b: Builder, count: int) -> list[Row]:
    """``count`` unused Banking77 requests of four common Tier-1 intents."""
    return b.pick(
        _bank(b.data, ("change_pin", "passcode_forgotten", "card_delivery_estimate", "exchange_rate")), count
    )


# --- the case groups ----------------------------------------------------------------------------


def tier1_openings(b: Builder) -> None:
    """A calm Tier-1 request after the bot's greeting: the bot keeps it."""
    picks: list[Row] = []
    for label in TIER1_BANKING77:
        picks += b.pick(b.data.banking77.get(label, []), 1)
    for label in TIER1_BITEXT:
        picks += b.pick(b.data.bitext.get(label, []), 1)
    sgd_first = [
        Row(r["text"], SGD_TIER1[r["intents"][0]], r["source"])
        for r in b.data.sgd
        if r["turn"] == 0
        and r["acts"] == ["INFORM_INTENT"]
        and len(r["intents"]) == 1
        and r["intents"][0] in SGD_TIER1
    ]
    for intent in ("balance", "transfer", "book_appointment"):
        picks += b.pick([r for r in sgd_first if r.label == intent], 4)
    for n, row in enumerate(picks, start=1):
        b.add(
            Case(
                id=f"tier1-{n:03d}-{row.label}",
                tags=["calm_simple", "tier1"],
                source=row.source,
                turns=[("bot", GREETING), ("customer", row.text)],
                expect=[{"route": "self_serve_bot", "queue": "bot", "rule": "tier1-bot"}],
                note=f"calm Tier-1 request ({row.label})",
            )
        )


def sgd_dialogues(b: Builder, count: int = 16) -> None:
    """Whole SGD bank and appointment dialogues (real system turns), ending with thanks: the bot keeps
    them from the first reason to the end, and the calm closing resolves them where they are."""
    dialogues: dict[str, list[dict[str, Any]]] = {}
    for record in b.data.sgd:
        dialogues.setdefault(record["dialogue_id"], []).append(record)
    eligible: list[list[dict[str, Any]]] = []
    for turns in dialogues.values():
        services = {s for t in turns for s in t["services"]}
        intents = {i for t in turns for i in t["intents"]}
        first = turns[0]
        if not services or not all(s.startswith(("Banks", "Services")) for s in services):
            continue
        if not intents <= set(SGD_TIER1) or not 2 <= len(turns) <= 5:
            continue
        if first["acts"] != ["INFORM_INTENT"] or first["turn"] != 0 or not closing_phrase(turns[-1]["text"]):
            continue
        if any(_UPSET.search(t["text"]) for t in turns):
            continue
        # Dialogues where the customer turns down what the bot did ("that doesn't work for me") are
        # not the calm, successful ones this group is about.
        if any({"NEGATE", "NEGATE_INTENT"} & set(t["acts"]) for t in turns[:-1]):
            continue
        eligible.append(turns)
    for kind in ("CheckBalance", "TransferMoney", "BookAppointment"):
        pool = [d for d in eligible if d[0]["intents"] == [kind] and d[0]["text"] not in b.used]
        for turns in b.rng.sample(pool, min(count // 3 + (kind == "CheckBalance"), len(pool))):
            b.used.add(turns[0]["text"])
            spoken: list[tuple[str, str]] = [("bot", GREETING)]
            for t in turns:
                if t["previous_system"]:
                    spoken.append(("bot", t["previous_system"]))
                spoken.append(("customer", t["text"]))
            b.add(
                Case(
                    id=f"dialogue-{turns[0]['dialogue_id']}",
                    tags=["calm_simple", "multi_turn", "closing"],
                    source=f"{turns[0]['source']} (dialogue {turns[0]['dialogue_id']}, "
                    f"{len(turns)} user turns)",
                    turns=spoken,
                    expect=[
                        {"after": 1, "route": "self_serve_bot", "queue": "bot", "rule": "tier1-bot"},
                        {
                            "route": "self_serve_bot",
                            "queue": "bot",
                            "rule": "resolved",
                            "resolved": True,
                            "changed": False,
                        },
                    ],
                    note=f"SGD {kind} dialogue with its own system turns, ending with thanks",
                )
            )


def complaint_openings(b: Builder, count: int = 26) -> None:
    """A complaint to a customer-care account as the opening after the bot's greeting: a person."""
    for n, row in enumerate(b.pick(b.data.complaints, count, calm=False), start=1):
        b.add(
            Case(
                id=f"complaint-opening-{n:03d}",
                tags=["negative", "complaint_opening"],
                source=row.source + " (handles and links removed)",
                turns=[("bot", GREETING), ("customer", row.text)],
                expect=[{"route": "human", "soft": True}],
                note="complaint tweet as the opening turn: a person (judged as a rate, see [[target]])",
            )
        )


def complaints(b: Builder) -> None:
    """Formal complaints: the complaints desk, or retention when angry."""
    rows = b.pick(b.data.bitext.get("complaint", []), 6)
    for n, row in enumerate(rows, start=1):
        b.add(
            Case(
                id=f"complaint-{n:03d}",
                tags=["negative", "complaint"],
                source=row.source,
                turns=[("bot", GREETING), ("customer", row.text)],
                expect=[
                    {
                        "route": "human",
                        "queue": ["complaints", "retention"],
                        "rule": ["complaint", "angry-account-threat"],
                    }
                ],
                note="a complaint: complaints desk, or retention if angry",
            )
        )
    # A calm follow-up after the complaint stays with the complaints desk (rule complaint decides).
    for n, row in enumerate(b.pick(b.data.bitext.get("complaint", []), 3), start=1):
        detail = b.pick(b.data.bitext.get("check_invoice", []), 1)[0]
        b.add(
            Case(
                id=f"complaint-desk-{n:03d}",
                tags=["negative", "complaint"],
                source=f"{row.source}; {detail.source}",
                turns=[
                    ("bot", GREETING),
                    ("customer", row.text),
                    ("agent", "I'm sorry to hear that. What is it about?"),
                    ("customer", detail.text),
                ],
                expect=[{"route": "specialist", "queue": "complaints", "rule": "complaint"}],
                note="a complaint, then a calm detail: the complaints desk",
            )
        )


def human_requests(b: Builder) -> None:
    """Explicit requests for a person: never the bot."""
    asks = b.pick(b.data.bitext.get("contact_human_agent", []), 20)
    for n, ask in enumerate(asks[:6], start=1):
        b.add(
            Case(
                id=f"human-opening-{n:03d}",
                tags=["human_request"],
                source=ask.source,
                turns=[("bot", GREETING), ("customer", ask.text)],
                expect=[{"route": "specialist", "queue": "general"}],
                note="asks for a person straight away",
            )
        )
    # Calm Tier-1 request, the bot answers, then a request for a person: the guardrail takes it.
    tier1 = b.pick(
        _bank(
            b.data,
            (
                "card_delivery_estimate",
                "transfer_timing",
                "exchange_rate",
                "change_pin",
                "top_up_limits",
                "card_about_to_expire",
                "activate_my_card",
                "receiving_money",
            ),
        ),
        8,
    )
    for n, (first, ask) in enumerate(zip(tier1, asks[6:14], strict=False), start=1):
        b.add(
            Case(
                id=f"human-after-bot-{n:03d}",
                tags=["human_request"],
                source=f"{first.source}; {ask.source}",
                turns=[
                    ("bot", GREETING),
                    ("customer", first.text),
                    ("bot", BOT_ANSWER),
                    ("customer", ask.text),
                ],
                expect=[
                    {"after": 1, "route": "self_serve_bot", "rule": "tier1-bot"},
                    {
                        "route": "specialist",
                        "queue": b.queue_of(first.label),
                        "rule": "tier1-bot",
                        "guardrail": "human_request",
                    },
                ],
                note="the human_request guardrail takes a calm Tier-1 conversation from the bot",
            )
        )
    # A calm problem a specialist solves, then a request for a person: rule human-request.
    problems = b.pick(
        _bank(b.data, ("card_swallowed", "declined_transfer", "pending_top_up", "beneficiary_not_allowed")), 4
    )
    for n, (first, ask) in enumerate(zip(problems, asks[14:18], strict=False), start=1):
        b.add(
            Case(
                id=f"human-after-problem-{n:03d}",
                tags=["human_request"],
                source=f"{first.source}; {ask.source}",
                turns=[
                    ("bot", GREETING),
                    ("customer", first.text),
                    ("bot", BOT_ANSWER),
                    ("customer", ask.text),
                ],
                expect=[
                    {
                        "route": "specialist",
                        "queue": b.queue_of(first.label),
                        "rule": "human-request" if n <= 2 else ["human-request", "upset-customer"],
                    }
                ],
                note="a request for a person after a problem the bot cannot solve",
            )
        )
    # At high churn risk (new, valuable, repeat customer, upset): retention.
    angry = b.pick(b.data.bitext_offensive, 2, calm=False)
    for n, (first, ask) in enumerate(zip(angry, asks[18:20], strict=False), start=1):
        b.add(
            Case(
                id=f"human-churn-risk-{n:03d}",
                tags=["human_request", "negative"],
                source=f"{first.source}; {ask.source}",
                customer={"tenure_months": 2, "lifetime_value": 9000.0, "contacts_last_30d": 6},
                turns=[
                    ("bot", GREETING),
                    ("customer", first.text),
                    ("bot", BOT_AGAIN),
                    ("customer", first.text),
                    ("bot", BOT_AGAIN),
                    ("customer", ask.text),
                ],
                expect=[
                    {"route": "retention_human", "queue": "retention", "rule": "human-request-churn-risk"}
                ],
                note="upset, repeating itself, new, valuable and a repeat contact: asks for a person",
            )
        )


def fraud(b: Builder) -> None:
    """Fraud, a lost or stolen card or phone: a person always, the security team as a rate.

    Never the bot is a hard check. Reaching the security queue is soft (the ``fraud_opening``
    target that ``to_toml`` writes):
    Banking77's unrecognised-payment intents sit next to calm siblings (a reverted, pending or
    declined payment), so which one a model names for a given utterance is a model-quality rate,
    not a rule of the policy.
    """
    for n, row in enumerate(b.pick(_bank(b.data, FRAUD_BANKING77), 12, calm=False), start=1):
        b.add(
            Case(
                id=f"fraud-{n:03d}-{row.label}",
                tags=["fraud", "fraud_opening"],
                source=row.source,
                turns=[("bot", GREETING), ("customer", row.text)],
                expect=[
                    {"route": "specialist"},
                    {"queue": "security", "rule": "fraud-security", "soft": True},
                ],
                note=f"fraud or theft ({row.label}): a person, the security team (judged as a rate)",
            )
        )
    first = b.pick(_bank(b.data, ("exchange_rate",)), 1)[0]
    later = b.pick(_bank(b.data, ("compromised_card",)), 1, calm=False)[0]
    b.add(
        Case(
            id="fraud-after-tier1",
            tags=["fraud"],
            source=f"{first.source}; {later.source}",
            turns=[
                ("bot", GREETING),
                ("customer", first.text),
                ("bot", BOT_ANSWER),
                ("customer", later.text),
            ],
            expect=[
                {"after": 1, "route": "self_serve_bot", "rule": "tier1-bot"},
                {"route": "specialist", "queue": "security", "rule": "fraud-security"},
            ],
            note="a Tier-1 question, then the customer reports fraud",
        )
    )


def cancellations(b: Builder) -> None:
    """Closing the account: retention."""
    for n, row in enumerate(b.pick(b.data.bitext.get("delete_account", []), 5), start=1):
        b.add(
            Case(
                id=f"cancel-{n:03d}",
                tags=["churn"],
                source=row.source,
                turns=[("bot", GREETING), ("customer", row.text)],
                expect=[
                    {
                        "route": "retention_human",
                        "queue": "retention",
                        "rule": "cancellation" if n <= 2 else ["cancellation", "angry-account-threat"],
                    }
                ],
                note="wants to close the account",
            )
        )
    angry = [r for r in b.data.bitext_offensive if r.label == "delete_account"]
    for n, row in enumerate(b.pick(angry, 2, calm=False), start=1):
        b.add(
            Case(
                id=f"cancel-angry-{n:03d}",
                tags=["churn", "negative"],
                source=row.source,
                turns=[("bot", GREETING), ("customer", row.text)],
                expect=[{"route": "retention_human", "queue": "retention", "rule": "angry-account-threat"}],
                note="closing the account, with offensive language: an angry account threat",
            )
        )
    rows = b.pick(b.data.bitext.get("delete_account", []), 1)
    for row in rows:
        b.add(
            Case(
                id="cancel-angry-threat",
                tags=["churn", "negative"],
                source=f"{row.source} + handwritten frustration",
                turns=[
                    ("bot", GREETING),
                    ("customer", row.text),
                    ("bot", BOT_AGAIN),
                    ("customer", "This is ridiculous, I've asked three times. Close my account now!"),
                ],
                expect=[
                    {
                        "route": "retention_human",
                        "queue": "retention",
                        "rule": ["angry-account-threat", "cancellation"],
                    }
                ],
                note="an account threat after the bot failed to help: retention",
            )
        )


def upset(b: Builder) -> None:
    """Offensive-language variants of ordinary requests: a specialist for the reason, not the bot."""
    rows = [
        r for r in b.data.bitext_offensive if r.label not in ("delete_account", "switch_account", "complaint")
    ]
    for n, row in enumerate(b.pick(rows, 10, calm=False), start=1):
        b.add(
            Case(
                id=f"upset-{n:03d}-{row.label}",
                tags=["negative", "upset"],
                source=row.source,
                turns=[("bot", GREETING), ("customer", row.text)],
                expect=[
                    {
                        "route": "human",
                        "queue": [b.queue_of(row.label), "general", "complaints"],
                        "rule": "upset-customer"
                        if n <= 3
                        else ["upset-customer", "complaint", "angry-account-threat"],
                    }
                ],
                note=f"{row.label} asked with offensive language",
            )
        )


def bot_loops(b: Builder) -> None:
    """The same request three times while the bot answers: a specialist for the reason."""
    rows = b.pick(
        _bank(b.data, ("top_up_limits", "exchange_via_app", "getting_virtual_card", "card_linking")), 4
    )
    for n, row in enumerate(rows, start=1):
        b.add(
            Case(
                id=f"bot-loop-{n:03d}",
                tags=["bot_loop"],
                source=row.source + " (repeated)",
                turns=[
                    ("bot", GREETING),
                    ("customer", row.text),
                    ("bot", BOT_AGAIN),
                    ("customer", row.text),
                    ("bot", BOT_AGAIN),
                    ("customer", row.text),
                ],
                expect=[
                    {"after": 1, "route": "self_serve_bot", "rule": "tier1-bot"},
                    {"route": "specialist", "queue": b.queue_of(row.label), "rule": "bot-loop"},
                ],
                note="the customer repeats the request while the bot keeps answering",
            )
        )
    # A voice caller who cannot follow the bot: three requests to repeat, each after a bot turn.
    for n, row in enumerate(rows[:2], start=1):
        turns = [("bot", GREETING), ("customer", row.text)]
        for ask in REPEAT_REQUESTS:
            turns += [("bot", BOT_AGAIN), ("customer", ask)]
        b.add(
            Case(
                id=f"bot-loop-repeat-{n:03d}",
                tags=["bot_loop", "voice"],
                source=row.source + " (then asks the bot to repeat itself)",
                turns=turns,
                expect=[
                    {"after": 1, "route": "self_serve_bot", "rule": "tier1-bot"},
                    {"after": 3, "route": "self_serve_bot", "rule": "tier1-bot"},
                    {"route": "specialist", "queue": b.queue_of(row.label), "rule": "bot-loop"},
                ],
                note="the caller keeps asking the bot to say it again",
            )
        )


def problems(b: Builder) -> None:
    """A problem a specialist solves (not Tier-1): the specialist queue for the reason."""
    for n, row in enumerate(b.pick(_bank(b.data, PROBLEMS_BANKING77), 12), start=1):
        b.add(
            Case(
                id=f"problem-{n:03d}-{row.label}",
                tags=["problem"],
                source=row.source,
                turns=[("bot", GREETING), ("customer", row.text)],
                expect=[
                    {
                        "route": "specialist",
                        "queue": b.queue_of(row.label),
                        "rule": "default" if n <= 4 else ["default", "upset-customer"],
                    }
                ],
                note=f"a problem, not a Tier-1 request ({row.label})",
            )
        )


def openings(b: Builder) -> None:
    """Openings without a reason: the bot asks; a second turn without one goes to a generalist."""
    tier1 = b.pick(
        _bank(b.data, ("card_delivery_estimate", "top_up_limits", "exchange_rate", "change_pin")), 4
    )
    for n, (greeting, row) in enumerate(zip(HANDWRITTEN_GREETINGS, tier1, strict=False), start=1):
        b.add(
            Case(
                id=f"greeting-{n:03d}",
                tags=["calm_simple", "opening"],
                source=f"handwritten greeting; {row.source}",
                turns=[
                    ("bot", GREETING),
                    ("customer", greeting),
                    ("bot", "Hello! What can I do for you?"),
                    ("customer", row.text),
                ],
                expect=[
                    {"after": 1, "route": "self_serve_bot", "queue": "bot", "rule": "awaiting-reason"},
                    {"route": "self_serve_bot", "queue": "bot", "rule": "tier1-bot"},
                ],
                note="a greeting, then a calm Tier-1 request",
            )
        )
    other = [
        r
        for r in b.data.sgd
        if r["turn"] == 0
        and r["acts"] == ["INFORM_INTENT"]
        and r["services"]
        and r["services"][0].split("_")[0] in ("Restaurants", "Weather", "Movies", "Music", "Hotels")
    ]
    follow = {r["dialogue_id"]: r for r in b.data.sgd if r["turn"] == 2 and r["acts"] == ["INFORM"]}
    pool = [Row(r["text"], r["dialogue_id"], r["source"]) for r in other if r["dialogue_id"] in follow]
    short = [row for row in pool if len(row.text.split()) <= 5]
    for n, row in enumerate(b.pick(short, 3), start=1):
        second = follow[row.label]
        b.add(
            Case(
                id=f"unclear-{n:03d}",
                tags=["unclear"],
                source=f"{row.source}; {second['source']}",
                turns=[
                    ("bot", GREETING),
                    ("customer", row.text),
                    ("bot", second["previous_system"] or "Could you tell me more?"),
                    ("customer", second["text"]),
                ],
                expect=[
                    {"after": 1, "route": "self_serve_bot", "queue": "bot", "rule": "awaiting-reason"},
                    {"route": "specialist", "queue": "general", "rule": "unclear-reason"},
                ],
                note="out of scope for a bank: the bot asks once, then a generalist takes it",
            )
        )
    long = [row for row in pool if len(row.text.split()) >= 9]
    for n, row in enumerate(b.pick(long, 2), start=1):
        b.add(
            Case(
                id=f"unclear-statement-{n:03d}",
                tags=["unclear"],
                source=row.source,
                turns=[("bot", GREETING), ("customer", row.text)],
                expect=[{"route": "specialist", "queue": "general", "rule": "unclear-reason"}],
                note="a whole statement that names no reason we know: a generalist, not the bot",
            )
        )


def resolved(b: Builder) -> None:
    """A calm closing keeps the conversation where it is, with the bot or with a person."""
    closings = b.closings(12)
    tier1 = _calm_tier1(b, 4)
    for n, (row, bye) in enumerate(zip(tier1, closings[:4], strict=False), start=1):
        b.add(
            Case(
                id=f"resolved-bot-{n:03d}",
                tags=["calm_simple", "closing"],
                source=f"{row.source}; {bye.source}",
                turns=[
                    ("bot", GREETING),
                    ("customer", row.text),
                    ("bot", BOT_ANSWER),
                    ("customer", bye.text),
                ],
                expect=[
                    {"after": 1, "route": "self_serve_bot", "rule": "tier1-bot"},
                    {
                        "route": "self_serve_bot",
                        "queue": "bot",
                        "rule": "resolved",
                        "resolved": True,
                        "changed": False,
                    },
                ],
                note="answered by the bot, closed with thanks: resolved, stays with the bot, no callback",
            )
        )
    problem = b.pick(
        _bank(b.data, ("card_swallowed", "declined_transfer", "pending_top_up", "failed_transfer")), 4
    )
    for n, (row, bye) in enumerate(zip(problem, closings[4:8], strict=False), start=1):
        b.add(
            Case(
                id=f"resolved-agent-{n:03d}",
                tags=["closing"],
                source=f"{row.source}; {bye.source}",
                turns=[
                    ("bot", GREETING),
                    ("customer", row.text),
                    ("agent", AGENT_DONE),
                    ("customer", bye.text),
                ],
                expect=[
                    {
                        "route": "specialist",
                        "queue": b.queue_of(row.label),
                        "rule": "resolved",
                        "resolved": True,
                        "changed": False,
                    }
                ],
                note="solved by a specialist, closed with thanks: resolved, stays with the specialist",
            )
        )
    for n, (greeting, bye) in enumerate(
        zip(HANDWRITTEN_GREETINGS[:2], closings[8:10], strict=False), start=1
    ):
        b.add(
            Case(
                id=f"resolved-no-reason-{n:03d}",
                tags=["closing"],
                source=f"handwritten greeting; {bye.source}",
                turns=[
                    ("bot", GREETING),
                    ("customer", greeting),
                    ("bot", "Hello! What can I do for you?"),
                    ("customer", bye.text),
                ],
                expect=[
                    {"after": 1, "route": "self_serve_bot", "rule": "awaiting-reason"},
                    {
                        "route": "specialist",
                        "queue": "general",
                        "rule": "resolved",
                        "guardrail": "low_confidence",
                        "resolved": True,
                    },
                ],
                note="hello then goodbye: resolved (no callback), but no reason was stated, so the "
                "low_confidence guardrail does not leave it with the bot",
            )
        )


def languages(b: Builder) -> None:
    """A language the pack does not support: a person (who can find a colleague who speaks it)."""
    tier1 = b.pick(_bank(b.data, ("card_delivery_estimate", "exchange_rate", "top_up_limits")), 3)
    for (code, text), row in zip(HANDWRITTEN_FOREIGN, tier1, strict=False):
        b.add(
            Case(
                id=f"language-{code}",
                tags=["language"],
                source=f"{row.source}; handwritten {code}",
                turns=[("bot", GREETING), ("customer", row.text), ("bot", BOT_ANSWER), ("customer", text)],
                expect=[
                    {"after": 1, "route": "self_serve_bot", "rule": "tier1-bot"},
                    {
                        "route": "specialist",
                        "queue": "general",
                        "rule": "tier1-bot",
                        "guardrail": "unsupported_language",
                    },
                ],
                note="a Tier-1 question in English, then the customer switches language",
            )
        )
    code, text = HANDWRITTEN_FOREIGN[-1]
    b.add(
        Case(
            id=f"language-{code}-opening",
            tags=["language"],
            source=f"handwritten {code}",
            turns=[("bot", GREETING), ("customer", text)],
            expect=[{"route": "specialist", "queue": "general"}],
            note="opens in a language the pack does not support",
        )
    )


def stability(b: Builder) -> None:
    """Once a person has the conversation, a calm Tier-1 follow-up does not send it back to the bot."""
    upset_rows = [
        r
        for r in b.data.bitext_offensive
        if r.label
        in ("track_order", "track_refund", "check_invoice", "delivery_period", "check_payment_methods")
    ]
    firsts = b.pick(upset_rows, 3, calm=False)
    follow = b.pick(_bank(b.data, ("exchange_rate", "top_up_limits", "card_delivery_estimate")), 3)
    for n, (first, then) in enumerate(zip(firsts, follow, strict=False), start=1):
        b.add(
            Case(
                id=f"stability-{n:03d}",
                tags=["negative", "stability"],
                source=f"{first.source}; {then.source}",
                turns=[
                    ("bot", GREETING),
                    ("customer", first.text),
                    ("agent", AGENT_SORRY),
                    ("customer", then.text),
                ],
                expect=[
                    {"after": 1, "route": "specialist", "rule": "upset-customer"},
                    {"route": "specialist", "queue": b.queue_of(first.label), "changed": False},
                ],
                note="upset first, then a calm Tier-1 question: stays with the person",
            )
        )


def voice_calls(b: Builder) -> None:
    """Calm Tier-1 requests as callers say them: behind a name or a pleasantry, or followed by a
    turn that puts the line on hold while the customer fetches the card. Neither moves the reason."""
    rows = _calm_tier1(b, 6)
    for n, (opening, row) in enumerate(zip(CALLER_OPENINGS, rows[:3], strict=True), start=1):
        b.add(
            Case(
                id=f"voice-opening-{n:03d}",
                tags=["voice"],
                source=row.source + " (behind a handwritten opening)",
                turns=[("bot", GREETING), ("customer", f"{opening} {row.text[0].lower()}{row.text[1:]}")],
                expect=[{"route": "self_serve_bot", "queue": "bot", "rule": "tier1-bot"}],
                note="a caller's name or pleasantry before a calm Tier-1 request",
            )
        )
    for n, (hold, row) in enumerate(zip(HOLD_TURNS, rows[3:], strict=True), start=1):
        b.add(
            Case(
                id=f"voice-hold-{n:03d}",
                tags=["voice"],
                source=row.source + " (then a handwritten hold)",
                turns=[("bot", GREETING), ("customer", row.text), ("bot", BOT_DETAIL), ("customer", hold)],
                expect=[
                    {"after": 1, "route": "self_serve_bot", "queue": "bot", "rule": "tier1-bot"},
                    {"route": "self_serve_bot", "queue": "bot", "rule": "tier1-bot"},
                ],
                note="the caller puts the line on hold to fetch the card: no new reason",
            )
        )


GROUPS = (
    tier1_openings,
    sgd_dialogues,
    complaint_openings,
    complaints,
    human_requests,
    fraud,
    cancellations,
    upset,
    bot_loops,
    problems,
    openings,
    resolved,
    languages,
    stability,
    voice_calls,
)


def build(data: Data, seed: int = SEED) -> list[Case]:
    """Every case of the suite, in a fixed order."""
    builder = Builder(data, seed)
    for group in GROUPS:
        group(builder)
    return builder.cases


# --- writing ------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(cases: Sequence[Case], seed: int = SEED) -> str:
    """The suite file's text."""
    lines = [
        "# Policy test suite for the default policy (routing/default_policy.toml).",
        "#",
        f"# Built by `python -m bench suite` (bench/build_suite.py, seed {seed}) from the train files of",
        "# Banking77 (CC BY 4.0), the Bitext customer-service sample (licence not stated), SGD",
        "# (CC BY-SA 4.0) and the customer-complaint tweets of Preotiuc-Pietro et al. (licence not stated);",
        "# never from a test split. Each case names its source rows. Bot and agent lines are fixed",
        "# templates (SGD dialogues keep their own system turns); turns marked handwritten have no source.",
        "# Expectations are what the policy is for (see POLICY.md, 'The default policy, rule by rule'),",
        "# not what a model pack happens to output.",
        "# Run: switchboard policy test bench/suites/default_policy.toml",
        "",
        "format = 1",
        'name = "default policy v2"',
        "description = "
        + _value(
            f"{len(cases)} labelled conversations covering every rule and guardrail of the default policy"
        ),
        "",
        "# Complaint tweets are judged as a rate (their labels include borderline complaints):",
        "# their expectations are soft and count towards this target (the issue's bar: at most 5%",
        "# of complaint openings kept by the bot).",
        "[[target]]",
        'tag = "complaint_opening"',
        "share = 0.95",
        'note = "complaint openings after the bot greeting go to a person"',
        "",
        "# Fraud openings always reach a person (hard); the security team is judged as a rate.",
        "[[target]]",
        'tag = "fraud_opening"',
        "share = 0.9",
        'note = "fraud and theft openings reach the security team"',
    ]
    for case in cases:
        lines += ["", "[[case]]", f"id = {_value(case.id)}", f"tags = {_value(case.tags)}"]
        lines.append(f"source = {_value(case.source)}")
        if case.note:
            lines.append(f"note = {_value(case.note)}")
        if case.customer:
            lines.append(f"customer = {_value(case.customer)}")
        lines.append("turns = [")
        lines += [f"  {{ speaker = {_value(s)}, text = {_value(t)} }}," for s, t in case.turns]
        lines.append("]")
        lines.append("expect = [")
        lines += [f"  {_value(e)}," for e in case.expect]
        lines.append("]")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Build the suite and write it (``--check`` compares instead of writing)."""
    parser = argparse.ArgumentParser(prog="python -m bench suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="data folder (train files)")
    parser.add_argument("--out", type=Path, default=SUITE, help=f"suite file (default {SUITE})")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from a fresh build")
    args = parser.parse_args(argv)
    text = to_toml(build(read_data(args.data), args.seed), args.seed)
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'differs from a fresh build'}")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {text.count('[[case]]')} cases")
    return 0
