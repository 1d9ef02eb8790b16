"""Words a user types as an IWAN query, on the command line (``--words``) or in `semret serve`:
``"winter, cold"`` (each of strength 1) or ``"WINTER:0.8, COLD:0.5"`` (strengths in (0, 1], as the
norms' forward strengths and a classifier's probabilities are)."""

from __future__ import annotations

from semret.errors import SemretError


def parse_words(text: str, option: str = "words") -> dict[str, float]:
    """``text`` as {word: strength}; ``option`` names where it was typed, in the errors."""
    weighted: dict[str, float] = {}
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        word, separator, strength = item.rpartition(":")
        if not separator:
            word, strength = item, "1"
        word = word.strip()
        if not word:
            raise SemretError(f"{option}: {item!r} has no word before its strength")
        try:
            value = float(strength)
        except ValueError:
            raise SemretError(f"{option}: the strength {strength.strip()!r} of {word} is not a number") from None
        if not 0 < value <= 1:
            raise SemretError(f"{option}: the strength of {word} must be in (0, 1], got {value}")
        weighted[word] = value
    if not weighted:
        raise SemretError(f"{option}: type at least one word, e.g. winter, cold")
    return weighted
