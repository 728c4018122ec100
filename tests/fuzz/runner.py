"""Drive a target's strategy with hypothesis and collect what every case gave.

Tests run a few derandomised examples per target and fail listing every bad case;
``benchmarks/bench_fuzz.py`` runs thousands with a seed. Shrinking is off: a failing case
is printed whole (what was corrupted, where, the command line) and the bench keeps the
first corrupted input of each bad outcome to reproduce it by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz.oracle import Command, Outcome

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    """One case: the target, the corruption, the verdict, the command and the outcome."""

    target: str
    corruption: str
    verdict: str
    must_reject: bool
    command: Command
    outcome: Outcome
    case: Any = None  # the drawn case (bytes of the corrupted file, or the HDF5 damage)

    def describe(self) -> str:
        verdict = "must be rejected" if self.must_reject else "may be accepted"
        return (
            f"{self.target}: {self.corruption}\n"
            f"    judged: {verdict} ({self.verdict})\n"
            f"    command: {self.command.shell()}\n"
            f"    outcome: {self.outcome.kind}: {self.outcome.detail}"
        )


def explore(
    strategy: st.SearchStrategy[T],
    run_one: Callable[[T], Result],
    examples: int,
    seed: int | None = None,
) -> list[Result]:
    """Run ``run_one`` on ``examples`` cases drawn from ``strategy``: derandomised (the
    same cases on every run) unless a ``seed`` is given. Never raises for a bad outcome."""
    results: list[Result] = []

    @settings(
        max_examples=examples,
        derandomize=seed is None,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(strategy)
    def go(case: T) -> None:
        results.append(run_one(case))

    if seed is not None:
        go = hypothesis.seed(seed)(go)
    go()
    return results


def bad(results: list[Result]) -> list[Result]:
    return [r for r in results if r.outcome.bad]


def report(results: list[Result], limit: int = 20) -> str:
    """The bad cases of a run, for an assertion message."""
    found = bad(results)
    lines = [f"{len(found)} of {len(results)} cases went wrong:"]
    lines += [r.describe() for r in found[:limit]]
    if len(found) > limit:
        lines.append(f"... and {len(found) - limit} more")
    return "\n".join(lines)
