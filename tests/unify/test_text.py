"""The VQA normaliser's quirks, worked by hand from the official rule (docs/metrics.md)."""

from __future__ import annotations

import pytest

from unify.text import normalize_answer, process_digit_article, process_punctuation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Yes.", "yes"),
        ("t-shirt", "t shirt"),  # '-' touching no space becomes a space
        ("t - shirt", "t shirt"),  # touching a space: deleted, split() drops the gaps
        ("10,000", "10000"),  # digit-comma-digit: every punctuation mark is deleted
        ("two", "2"),
        ("none", "0"),
        ("a dog", "dog"),
        ("the two dogs", "2 dogs"),
        ("dont", "don't"),
        ("whats up", "what's up"),
        ("3.5", "3.5"),  # a period followed by a digit stays
        ("u.s.", "us"),
        ("Im", "im"),  # capitalised table keys never match after lower-casing
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_at_most_32_periods_are_removed() -> None:
    assert process_punctuation("." * 33) == "."
    assert process_punctuation("." * 32) == ""


def test_period_rule_only_looks_ahead() -> None:
    # The mistyped look-behind means "5." at the end loses its period but ".5" keeps it.
    assert process_punctuation("5.") == "5"
    assert process_punctuation("a.5") == "a.5"


def test_non_ascii_digits_count_as_digits() -> None:
    # Arabic-Indic digits: "\d" matches them, so the comma rule applies and the period stays.
    assert process_punctuation("١,٢") == "١٢"
    assert process_punctuation("x.٣") == "x.٣"


def test_number_words_map_before_articles_are_dropped() -> None:
    assert process_digit_article("A One") == "1"
    assert process_digit_article("an   ten") == "10"
