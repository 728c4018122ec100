"""The multi-task schedule: round-robin over tasks, with 12-in-1's dynamic stop-and-go.

Every iteration visits the tasks in a fixed order and each active task contributes one
batch (its own batch size). A task whose validation metric has stopped improving is
*stopped*: it then trains only every ``stopped_every``-th iteration, until its metric drops
back (``resume_drop`` below its best), when it trains every iteration again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StopAndGoConfig:
    """Defaults of the 12-in-1 code: patience 1, 0.1 % gain, 0.5 % drop, every 4th."""

    enabled: bool = True
    patience: int = 1  # evaluations without improvement tolerated; one more stops the task
    improve: float = 0.001  # relative gain over the best that counts as improvement
    resume_drop: float = 0.005  # relative drop below the best that resumes a stopped task
    stopped_every: int = 4  # a stopped task trains on iterations divisible by this


@dataclass
class TaskState:
    best: float = -math.inf
    bad: int = 0
    stopped: bool = False


@dataclass
class StopAndGo:
    tasks: list[str]
    cfg: StopAndGoConfig = field(default_factory=StopAndGoConfig)
    states: dict[str, TaskState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for t in self.tasks:
            self.states.setdefault(t, TaskState())

    def trains(self, task: str, iteration: int) -> bool:
        if not self.cfg.enabled or not self.states[task].stopped:
            return True
        return iteration % self.cfg.stopped_every == 0

    def active(self, iteration: int) -> list[str]:
        """The tasks of one round-robin iteration, in order."""
        return [t for t in self.tasks if self.trains(t, iteration)]

    def update(self, task: str, metric: float) -> None:
        """One validation result (higher is better)."""
        s, c = self.states[task], self.cfg
        if s.best == -math.inf or metric > s.best + abs(s.best) * c.improve:
            s.best, s.bad = metric, 0
        else:
            s.bad += 1
        if s.stopped:
            if metric < s.best - abs(s.best) * c.resume_drop:
                s.stopped, s.bad = False, 0
        elif s.bad > c.patience:
            s.stopped, s.bad = True, 0

    def state_dict(self) -> dict[str, Any]:
        return {t: asdict(s) for t, s in self.states.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.states = {t: TaskState(**s) for t, s in state.items()}
