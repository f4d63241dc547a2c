"""Which numbers "have WhatsApp" in the emulator: a stable hash rule, explicit overrides, one opt-in quirk."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_greenapi.emulator._keys import reject_unknown_keys

_NOT_EXISTS_WORDS = frozenset({"false", "0", "no", "n"})
_EXISTS_WORDS = frozenset({"true", "1", "yes", "y"})


def normalise_number(value: object) -> str:
    """Digits of a number written as ``+7 900 123-45-67``, ``79001234567@c.us`` or an integer.

    A ``<digits>@lid`` id is kept whole: it names an account, not a phone number.
    """
    text = str(value).strip().removesuffix("@c.us")
    if text.endswith("@lid") and text[:-4].isascii() and text[:-4].isdigit():
        return text
    digits = "".join(ch for ch in text if ch not in "+ -()")
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"{value!r} is not a phone number of digits")
    return digits


def stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` alone: the same on every run, machine and Python version."""
    digest = hashlib.sha256(text.encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fake_lid(digits: str) -> str:
    """A deterministic 15-digit ``@lid`` chat id standing for the account behind ``digits``."""
    digest = hashlib.sha256(b"lid:" + digits.encode("ascii")).digest()
    return f"{10**14 + int.from_bytes(digest[:8], 'big') % (9 * 10**14)}@lid"


@dataclass(frozen=True)
class NumbersRule:
    """Decides ``existsWhatsapp`` for a number.

    Explicit lists win; then the US/Canada quirk when enabled (``1`` + extra zeros, 12+ digits, answers
    true as the real API does); otherwise a number exists when the SHA-256 of its digits falls in the first
    ``exists_share`` of the hash space (about 70 % of numbers by default). The lists take any collection
    of numbers (``"+7 900 123-45-67"``, ``"79001234567@c.us"``) and are kept as frozensets of digits.
    """

    exists: Collection[str] = frozenset()
    not_exists: Collection[str] = frozenset()
    exists_share: float = 0.7
    us_extra_zeros: bool = False

    def __post_init__(self) -> None:
        exists = frozenset(normalise_number(number) for number in self.exists)
        not_exists = frozenset(normalise_number(number) for number in self.not_exists)
        both = exists & not_exists
        if both:
            raise ValueError(f"numbers listed as both existing and not existing: {sorted(both)[:5]}")
        if not 0.0 <= self.exists_share <= 1.0:
            raise ValueError(f"exists_share must be between 0 and 1 (got {self.exists_share!r})")
        object.__setattr__(self, "exists", exists)
        object.__setattr__(self, "not_exists", not_exists)

    def has_whatsapp(self, number: str) -> bool:
        """The answer for a number's digits, or for a whole ``<digits>@lid`` id."""
        if number in self.exists:
            return True
        if number in self.not_exists:
            return False
        if self.us_extra_zeros and len(number) >= 12 and number.startswith("10") and number.isdigit():
            return True
        return stable_fraction(number) < self.exists_share

    def with_file(self, path: str | Path) -> NumbersRule:
        """This rule plus the overrides of a text file: one number a line, ``NUMBER[,true|false]``.

        A bare number exists; blank lines and ``#`` comments are skipped.
        """
        exists, not_exists = set(self.exists), set(self.not_exists)
        for line_number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            number, _, verdict = (part.strip() for part in line.partition(","))
            verdict = verdict.lower() or "true"
            if verdict not in _EXISTS_WORDS | _NOT_EXISTS_WORDS:
                raise ValueError(f"{path}:{line_number}: expected NUMBER[,true|false], got {raw!r}")
            target, other = (exists, not_exists) if verdict in _EXISTS_WORDS else (not_exists, exists)
            digits = normalise_number(number)
            target.add(digits)
            other.discard(digits)
        return NumbersRule(frozenset(exists), frozenset(not_exists), self.exists_share, self.us_extra_zeros)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: Path | None = None) -> NumbersRule:
        """The ``numbers`` object of the config file; ``file`` is read relative to ``base_dir``."""
        reject_unknown_keys(data, {"exists", "not_exists", "exists_share", "us_extra_zeros", "file"}, "numbers")
        rule = cls(
            exists=_as_frozenset(data.get("exists", ())),
            not_exists=_as_frozenset(data.get("not_exists", ())),
            exists_share=float(data.get("exists_share", 0.7)),
            us_extra_zeros=bool(data.get("us_extra_zeros", False)),
        )
        if data.get("file"):
            file = Path(data["file"])
            rule = rule.with_file(file if file.is_absolute() or base_dir is None else base_dir / file)
        return rule


def _as_frozenset(numbers: Iterable[object]) -> frozenset[str]:
    return frozenset(str(number) for number in numbers)
