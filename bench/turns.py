"""Generated contact-centre turns for the benchmarks (not training data).

Deterministic (seeded) combinations of openers, contact reasons, details,
feelings and closers, in the register of chat and speech-to-text turns. They
exist to give the benchmarks realistic lengths (8-64 tokens) and vocabulary;
nothing here is labelled or used for training.
"""

from __future__ import annotations

import random

OPENERS = [
    "hi",
    "hello there",
    "hey",
    "good morning",
    "yes hi so",
    "ok so basically",
    "um hello I'm calling because",
    "hi again,",
    "",
]
REASONS = [
    "I was charged twice for my subscription this month",
    "my card got declined at the supermarket",
    "I want to cancel my account",
    "I still haven't received my new card",
    "the transfer I made on Monday hasn't arrived",
    "I forgot my password and can't log in",
    "there's a payment on my statement I don't recognise",
    "I need to change the address on my account",
    "my refund is not showing up yet",
    "the app keeps crashing when I try to top up",
    "I'd like to know the fees for sending money abroad",
    "someone might have stolen my card details",
    "I want to speak to a real person",
    "how do I increase my credit limit",
    "can you tell me when my bill is due",
    "my direct debit failed and now there's a late fee",
]
DETAILS = [
    "it was about forty pounds",
    "this is the third time this week",
    "I already tried restarting the app",
    "the order number is ending in 4471",
    "I called yesterday and nobody got back to me",
    "it says pending since Friday",
    "I'm travelling at the moment",
    "the chat bot just keeps sending me the same link",
    "my wife has the same problem on her account",
    "I followed every step in the help article",
]
FEELINGS = [
    "honestly I'm really frustrated",
    "this is ridiculous",
    "I'm a bit worried about it",
    "I'm confused about what to do",
    "I'm about to close my account over this",
    "thanks for your help",
    "that's great, thank you so much",
    "I'm not happy at all",
    "",
]
CLOSERS = ["", "can you help?", "what can you do?", "please sort it out today", "thanks", "any idea?"]


def generate(count: int = 600, seed: int = 7) -> list[str]:
    """``count`` turns; the same ``seed`` always gives the same list."""
    rng = random.Random(seed)
    turns = []
    for _ in range(count):
        if rng.random() < 0.12:  # short turns: just the reason, as many chat openers are
            turns.append(rng.choice(REASONS).capitalize())
            continue
        parts = [rng.choice(OPENERS), rng.choice(REASONS)]
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            parts.append(rng.choice(DETAILS))
        parts += [rng.choice(FEELINGS), rng.choice(CLOSERS)]
        text = ", ".join(part for part in parts if part).replace(",,", ",")
        turns.append(text[0].upper() + text[1:])
    return turns
