"""How guessable a secret chosen by a person is: the patterns both passwords and webhook
signature secrets are refused for (auth and workflows apply them; each adds its own rules)."""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise


def _codes(value: str | bytes) -> list[int]:
    return list(value) if isinstance(value, bytes) else [ord(char) for char in value]


def is_pattern(value: str | bytes) -> bool:
    """A short unit repeated (`abababab`, `passpasspa`) or one straight run (`12345678`).

    Works on text or on bytes (a decoded key); the unit repeats at least twice.
    """
    codes = _codes(value)
    size = len(codes)
    for unit in range(1, size // 2 + 1):
        if all(codes[i] == codes[i % unit] for i in range(unit, size)):
            return True
    steps = {b - a for a, b in pairwise(codes)}
    return size >= 3 and len(steps) == 1 and steps <= {-1, 1}


def entropy_bits(value: str | bytes) -> float:
    """Shannon entropy of the symbols' frequencies times the length: an upper bound on what the
    value can hold, low for anything made of few distinct symbols (`aaaaaaaaaaaaaaab`)."""
    codes = _codes(value)
    size = len(codes)
    return max(0.0, -sum(n * math.log2(n / size) for n in Counter(codes).values()))
