"""Refuse secrets an attacker could guess: the examples' placeholders and low-entropy strings.

A webhook secret, a callback token or the codec token is the only thing between the internet and the
orders (README, "Threat model"), so start-up refuses one that is a known placeholder or visibly not
random. The checks are cheap heuristics, not a proof of randomness: `secrets.token_urlsafe(24)` always
passes, `change-me-to-a-long-random-string`, `aaaaaaaaaaaaaaaa` and `abcdefghijklmnop` never do.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

MIN_LENGTH = 16
# Pieces of the placeholders in .env.example, docs and tutorials: a value holding one was not generated.
PLACEHOLDER_MARKERS = (
    "change-me",
    "changeme",
    "change_me",
    "replace",
    "example",
    "placeholder",
    "your-",
    "your_",
    "xxxxxx",
    "todo",
    "dummy",
    "password",
    "letmein",
    "qwerty",
)
MIN_DISTINCT_CHARACTERS = 8
MIN_BITS_PER_CHARACTER = 3.0
GENERATE = 'generate one with `python -c "import secrets; print(secrets.token_urlsafe(24))"`'


def secret_problem(value: str) -> str | None:
    """Why `value` is not acceptable as a secret, in words that do not repeat it; None when it is."""
    if len(value) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    lowered = value.lower()
    if any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        return "is a placeholder from an example"
    counts = Counter(value)
    bits = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    steps = [abs(ord(b) - ord(a)) for a, b in itertools.pairwise(value)]
    runs = sum(step <= 1 for step in steps)  # "aaaa", "abcd", "4321"
    if len(counts) < MIN_DISTINCT_CHARACTERS or bits < MIN_BITS_PER_CHARACTER or runs * 2 > len(steps):
        return "is too predictable (repeated or sequential characters)"
    return None


def require_strong(variable: str, value: str, *, remedy: str = GENERATE) -> None:
    """Raise ValueError naming the variable (never the value) when the secret is weak."""
    problem = secret_problem(value)
    if problem is not None:
        raise ValueError(f"{variable} {problem}; {remedy}")
