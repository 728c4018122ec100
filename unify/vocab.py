"""Answer vocabularies: the label sets of the vocabulary-based QA heads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Vocabulary:
    """An ordered answer list; the row index is the label a model predicts."""

    name: str
    answers: list[str]
    min_count: int
    counted_from: list[str]
    normalized: bool
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {answer: i for i, answer in enumerate(self.answers)}

    def __len__(self) -> int:
        return len(self.answers)

    def label(self, answer: str) -> int:
        """The label of an answer, -1 when it is not in the vocabulary."""
        return self.index.get(answer, -1)

    @classmethod
    def from_counts(
        cls,
        name: str,
        counts: Counter[str],
        min_count: int,
        counted_from: list[str],
        normalized: bool,
    ) -> Vocabulary:
        """Keep answers seen at least ``min_count`` times; most frequent first, ties by text.

        The order is fixed by the data alone so that two builds of the same release give
        the same labels (checkpoints stay usable across rebuilds).
        """
        kept = [a for a, c in counts.items() if c >= min_count and a != ""]
        kept.sort(key=lambda a: (-counts[a], a))
        return cls(name, kept, min_count, counted_from, normalized)


def count_answers(answers: Iterable[str]) -> Counter[str]:
    return Counter(answers)
