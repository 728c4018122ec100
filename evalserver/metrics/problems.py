"""What is wrong with a prediction file, said for people: ``Problem``, ``ProblemLog`` and
``ValidationError``.

A participant who uploads a broken file must learn everything that is wrong with it in one
go, each problem named by its line or record and its example id, never by a stack trace.
These three types are shared by the readers of uploads (``upload``, ``npzread``), the
parsers (``predictions``) and the scorers' validators; ``predictions`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_PROBLEMS", "Problem", "ProblemLog", "ValidationError"]

#: Problems listed in full; the rest are only counted.
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a prediction file, located by line/record and example id."""

    message: str
    location: str | None = None  # "line 12", "record 3", "scores"
    id: str | None = None  # the example id, as text
    id_field: str | None = None  # "question_id", "identifier", ...

    def __str__(self) -> str:
        where = [w for w in (self.location, self._id_text()) if w]
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def _id_text(self) -> str | None:
        if self.id is None:
            return None
        return f"{self.id_field} {self.id}" if self.id_field else self.id


class ValidationError(Exception):
    """A prediction file cannot be scored; ``problems`` lists why (at most ``MAX_PROBLEMS``).

    ``total`` counts every problem found, listed or not, so a message can say "and 12,000
    more" instead of flooding the participant.
    """

    def __init__(self, problems: Sequence[Problem], total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        super().__init__(self._summary())

    @classmethod
    def one(cls, message: str, location: str | None = None) -> ValidationError:
        """The file as a whole cannot be read: one problem."""
        return cls([Problem(message, location)])

    def _summary(self) -> str:
        lines = [f"the prediction file has {self.total} problem(s):"]
        lines += [f"  {p}" for p in self.problems]
        hidden = self.total - len(self.problems)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
        return "\n".join(lines)


class ProblemLog:
    """Collects problems up to a cap while counting all of them."""

    def __init__(self, cap: int = MAX_PROBLEMS) -> None:
        self.cap = cap
        self.problems: list[Problem] = []
        self.total = 0

    def __bool__(self) -> bool:
        return self.total > 0

    def room(self) -> int:
        """How many more problems would be listed (callers build only that many messages)."""
        return max(0, self.cap - len(self.problems))

    def add(
        self,
        message: str,
        location: str | None = None,
        id: Any = None,
        id_field: str | None = None,
    ) -> None:
        self.total += 1
        if len(self.problems) < self.cap:
            text = None if id is None else str(id)
            self.problems.append(Problem(message, location, text, id_field))

    def skip(self, count: int) -> None:
        """Count problems that were found in bulk but are not listed."""
        self.total += max(0, count)

    def extend(self, problems: Sequence[Problem]) -> None:
        for problem in problems:
            self.total += 1
            if len(self.problems) < self.cap:
                self.problems.append(problem)

    def listing(self) -> list[Problem]:
        """The listed problems, plus one closing entry counting those not listed."""
        hidden = self.total - len(self.problems)
        tail = [Problem(f"... and {hidden} more problem(s) not listed")] if hidden > 0 else []
        return [*self.problems, *tail]

    def raise_if_any(self) -> None:
        if self.total:
            raise ValidationError(self.problems, self.total)
