"""Label sets and the contact-reason taxonomy.

These names are a contract: the model pack, the routing policy, the HTTP API
and outside evaluation all rely on them. Pure data, no I/O.

Every intent the intent head can emit belongs to exactly one contact-reason
category. CLINC150 ``banking``/``credit_cards`` intents that mean the same as a
Banking77 or Bitext intent are merged into that name, and so are Bitext intents
that mean the same as a Banking77 one (see ``INTENT_ALIASES``).
"""

from __future__ import annotations

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

EMOTION_LABELS: tuple[str, ...] = (
    "anger",
    "frustration",
    "confusion",
    "anxiety",
    "sadness",
    "gratitude",
    "joy",
    "neutral",
)

OUT_OF_SCOPE = "out_of_scope"

# Conversation acts the act head learns (from SGD dialogue acts and need statements).
ACT_LABELS: tuple[str, ...] = ("reason", "inform", "question", "affirm", "deny", "thanks_or_closing")
# Acts decided by transcript normalisation, not by the model: a turn that is only
# a greeting, a turn that only asks the other side to repeat itself ("sorry, say that
# again?"; weightless like a non-lexical turn), a turn that only asks to wait or checks
# the line ("hold on, let me grab my card"; never contact-reason evidence), and a turn
# with no lexical content (tags, fillers, digits).
RULE_ACTS: tuple[str, ...] = ("greeting", "repeat_request", "hold", "non_lexical")
CONVERSATION_ACTS: tuple[str, ...] = ACT_LABELS + RULE_ACTS

# GoEmotions label -> contact-centre emotion. Labels absent here (curiosity,
# desire, realization, surprise) map to nothing; examples carrying only those
# are dropped from training.
GOEMOTIONS_MAP: dict[str, str] = {
    "anger": "anger",
    "disgust": "anger",
    "annoyance": "frustration",
    "disappointment": "frustration",
    "disapproval": "frustration",
    "confusion": "confusion",
    "fear": "anxiety",
    "nervousness": "anxiety",
    "sadness": "sadness",
    "grief": "sadness",
    "remorse": "sadness",
    "embarrassment": "sadness",
    "gratitude": "gratitude",
    "relief": "gratitude",
    "joy": "joy",
    "amusement": "joy",
    "excitement": "joy",
    "love": "joy",
    "optimism": "joy",
    "pride": "joy",
    "admiration": "joy",
    "approval": "joy",
    "caring": "joy",
    "neutral": "neutral",
}

# Intents of one source that mean the same as an intent of another, merged into that name when the
# training data is read (``export.data``): one meaning, one label, one category. Banking77's names
# are kept (the pack's reference benchmark); each pair was judged by its training utterances. Close
# but kept apart: CLINC's ``damaged_card`` (a replacement request, routed with the card replacements)
# and ``card_not_working`` (a fault to diagnose); Bitext's ``recover_password`` (an account's
# password) and Banking77's ``passcode_forgotten`` (the app's passcode).
INTENT_ALIASES: dict[str, str] = {
    # CLINC150 banking / credit_cards
    "report_lost_card": "lost_or_stolen_card",
    "card_declined": "declined_card_payment",
    "pin_change": "change_pin",
    "replacement_card_duration": "card_delivery_estimate",
    "expiration_date": "card_about_to_expire",
    # Bitext customer service (merged since pack 2.5.0)
    "delete_account": "terminate_account",
    "edit_account": "edit_personal_details",
    "get_refund": "request_refund",
}

# What a validation message suggests for an intent name that is not one (``routing.errors.did_you_mean``):
# a merged intent's old name, and names people reach for first whose closest spelling means
# something else ("close_account" is nearest to "create_account").
INTENT_SUGGESTIONS: dict[str, str] = {
    **INTENT_ALIASES,
    "close_account": "terminate_account",
    "cancel_account": "terminate_account",
}

CATEGORIES: tuple[str, ...] = (
    "cards",
    "payments_and_transfers",
    "top_ups_and_cash",
    "billing_and_fees",
    "refunds",
    "orders_and_delivery",
    "account_access_and_security",
    "account_changes",
    "cancellation",
    "complaint",
    "feedback",
    "human_agent_request",
    "fraud",
    "credit_and_rewards",
    "general_information",
    "appointments",
    "out_of_scope",
)

_CATEGORY_INTENTS: dict[str, tuple[str, ...]] = {
    "cards": (
        "card_arrival",
        "card_linking",
        "card_delivery_estimate",
        "card_not_working",
        "contactless_not_working",
        "getting_virtual_card",
        "card_acceptance",
        "get_physical_card",
        "visa_or_mastercard",
        "disposable_card_limits",
        "card_swallowed",
        "getting_spare_card",
        "order_physical_card",
        "virtual_card_not_working",
        "get_disposable_virtual_card",
        "activate_my_card",
        "card_about_to_expire",
        "apple_pay_or_google_pay",
        "declined_card_payment",
        "pending_card_payment",
        "reverted_card_payment?",
        "damaged_card",
        "new_card",
        "lost_or_stolen_card",
    ),
    "payments_and_transfers": (
        "cancel_transfer",
        "transfer_not_received_by_recipient",
        "declined_transfer",
        "pending_transfer",
        "transfer_timing",
        "beneficiary_not_allowed",
        "receiving_money",
        "failed_transfer",
        "transfer_into_account",
        "balance_not_updated_after_bank_transfer",
        "check_payment_methods",
        "payment_issue",
        "transfer",
        "pay_bill",
        "routing",
        "order_checks",
    ),
    "top_ups_and_cash": (
        "automatic_top_up",
        "top_up_by_bank_transfer_charge",
        "pending_top_up",
        "top_up_limits",
        "top_up_reverted",
        "topping_up_by_card",
        "verify_top_up",
        "top_up_by_cash_or_cheque",
        "top_up_failed",
        "top_up_by_card_charge",
        "pending_cash_withdrawal",
        "wrong_amount_of_cash_received",
        "declined_cash_withdrawal",
        "atm_support",
        "balance_not_updated_after_cheque_or_cash_deposit",
    ),
    "billing_and_fees": (
        "exchange_rate",
        "card_payment_wrong_exchange_rate",
        "extra_charge_on_statement",
        "card_payment_fee_charged",
        "transaction_charged_twice",
        "transfer_fee_charged",
        "wrong_exchange_rate_for_cash_withdrawal",
        "exchange_charge",
        "cash_withdrawal_charge",
        "exchange_via_app",
        "check_invoice",
        "get_invoice",
        "check_cancellation_fee",
        "bill_due",
        "bill_balance",
        "min_payment",
        "interest_rate",
        "international_fees",
        "balance",
        "transactions",
        "spending_history",
    ),
    "refunds": (
        "request_refund",
        "Refund_not_showing_up",
        "track_refund",
        "check_refund_policy",
    ),
    "orders_and_delivery": (
        "cancel_order",
        "change_order",
        "place_order",
        "track_order",
        "delivery_options",
        "delivery_period",
        "change_shipping_address",
        "set_up_shipping_address",
    ),
    "account_access_and_security": (
        "pin_blocked",
        "passcode_forgotten",
        "lost_or_stolen_phone",
        "change_pin",
        "why_verify_identity",
        "unable_to_verify_identity",
        "verify_my_identity",
        "verify_source_of_funds",
        "recover_password",
        "registration_problems",
        "account_blocked",
        "freeze_account",
    ),
    "account_changes": (
        "edit_personal_details",
        "switch_account",
        "create_account",
        "newsletter_subscription",
    ),
    "cancellation": ("terminate_account",),
    "complaint": ("complaint",),
    "feedback": ("review",),
    "human_agent_request": ("contact_human_agent", "contact_customer_service"),
    "fraud": (
        "card_payment_not_recognised",
        "direct_debit_payment_not_recognised",
        "cash_withdrawal_not_recognised",
        "compromised_card",
        "report_fraud",
    ),
    "credit_and_rewards": (
        "improve_credit_score",
        "credit_limit_change",
        "apr",
        "redeem_rewards",
        "credit_limit",
        "rewards_balance",
        "application_status",
        "credit_score",
    ),
    "general_information": (
        "age_limit",
        "fiat_currency_support",
        "supported_cards_and_currencies",
        "country_support",
    ),
    # From SGD's appointment dialogues (salons, doctors, dentists): "can I book an appointment".
    "appointments": ("book_appointment",),
    "out_of_scope": (OUT_OF_SCOPE,),
}

INTENT_CATEGORY: dict[str, str] = {
    intent: category for category, intents in _CATEGORY_INTENTS.items() for intent in intents
}

# Fixed order of the intent head's outputs.
INTENT_LABELS: tuple[str, ...] = tuple(
    intent for category in CATEGORIES for intent in _CATEGORY_INTENTS[category]
)


def category_of(intent: str) -> str:
    """Return the contact-reason category of ``intent``.

    Unknown intents (for example from a customer's own pack) fall into
    ``out_of_scope`` rather than raising, so routing always has a category.
    """
    return INTENT_CATEGORY.get(intent, OUT_OF_SCOPE)
