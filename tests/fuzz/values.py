"""Values a corruption puts into a decoded document that plain JSON/pickle values cannot say.

Each codec writes them its own way (``codecs``): a JSON file gets the raw token, a pickle
gets the float, the byte string or the opcodes. They are frozen dataclasses so that a case
is hashable, printable and reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NonFinite:
    """NaN or an infinity: the JSON token ``NaN``/``Infinity``/``-Infinity`` (not strict
    JSON), a float in a pickle or an NPZ."""

    token: str  # "NaN", "Infinity" or "-Infinity"

    @property
    def value(self) -> float:
        return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}[self.token])


@dataclass(frozen=True)
class RawToken:
    """Bytes spliced verbatim into a JSON document (``1e400``, a bare word...)."""

    text: bytes


@dataclass(frozen=True)
class BadUtf8:
    """A string whose bytes are not UTF-8: a JSON string with raw bytes, a Python-2 byte
    string (SHORT_BINSTRING) in a pickle, a CSV field."""

    data: bytes


@dataclass(frozen=True)
class Deep:
    """``depth`` nested arrays (lists) with nothing inside."""

    depth: int


@dataclass(frozen=True)
class RefBomb:
    """A pickle list of ``fan`` references to the level below, ``levels`` deep: a few
    hundred bytes that expand to ``fan ** levels`` leaves when copied or serialised."""

    levels: int
    fan: int

    def build(self) -> Any:
        node: Any = ["x"]
        for _ in range(self.levels):
            node = [node] * self.fan
        return node


@dataclass(frozen=True)
class SelfRef:
    """A pickle list that contains itself."""


@dataclass(frozen=True)
class PickleGlobal:
    """A pickle GLOBAL + REDUCE that would call ``open(marker, "w")`` if ever executed:
    the marker file appearing is proof that a pickle ran code."""

    marker: str


@dataclass(frozen=True)
class DupKey:
    """The value of a key that the object repeats: written ``"k": first, "k": second``
    (a reader that keeps the last one sees ``second``)."""

    first: Any
    second: Any


#: Every special kind, for ``kind_of``.
SPECIALS = (NonFinite, RawToken, BadUtf8, Deep, RefBomb, SelfRef, PickleGlobal, DupKey)


def kind_of(value: Any) -> str:
    """A coarse type name used by the judgement rules."""
    if isinstance(value, SPECIALS):
        return type(value).__name__
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def contains_special(value: Any) -> bool:
    if isinstance(value, SPECIALS):
        return True
    if isinstance(value, dict):
        return any(contains_special(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_special(v) for v in value)
    return False
