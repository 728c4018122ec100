"""Round-robin and stop-and-go on scripted validation curves: exact schedules."""

from __future__ import annotations

from baselines.schedule import StopAndGo, StopAndGoConfig


def schedule(sg: StopAndGo, iterations: range) -> list[list[str]]:
    return [sg.active(i) for i in iterations]


def test_round_robin_visits_every_task_in_order() -> None:
    sg = StopAndGo(["a", "b", "c"])
    assert schedule(sg, range(3)) == [["a", "b", "c"]] * 3


def test_stop_after_patience_then_every_fourth_then_resume_on_drop() -> None:
    sg = StopAndGo(["a", "b"])  # defaults: patience 1, +0.1 %, -0.5 %, every 4th
    curve_a = [50.0, 60.0, 60.03, 60.05]  # +0.05 % and +0.08 % over 60: no improvement
    for v in curve_a[:3]:
        sg.update("a", v)
        sg.update("b", v)
    assert not sg.states["a"].stopped  # one evaluation without improvement is tolerated
    sg.update("a", curve_a[3])
    sg.update("b", 70.0)
    assert sg.states["a"].stopped and not sg.states["b"].stopped
    assert sg.states["a"].best == 60.0
    assert schedule(sg, range(8, 14)) == [
        ["a", "b"],
        ["b"],
        ["b"],
        ["b"],
        ["a", "b"],
        ["b"],
    ]
    sg.update("a", 59.8)  # -0.33 %: still stopped
    assert sg.states["a"].stopped
    sg.update("a", 59.6)  # -0.67 % below the best: resumes
    assert not sg.states["a"].stopped
    assert schedule(sg, range(1, 3)) == [["a", "b"], ["a", "b"]]


def test_configurable_and_off() -> None:
    sg = StopAndGo(["a"], StopAndGoConfig(patience=0, stopped_every=2))
    sg.update("a", 10.0)
    sg.update("a", 10.0)
    assert sg.states["a"].stopped
    assert schedule(sg, range(4)) == [["a"], [], ["a"], []]
    off = StopAndGo(["a"], StopAndGoConfig(enabled=False, patience=0))
    for _ in range(3):
        off.update("a", 1.0)
    assert schedule(off, range(2)) == [["a"], ["a"]]


def test_state_round_trips() -> None:
    sg = StopAndGo(["a", "b"], StopAndGoConfig(patience=0))
    sg.update("a", 1.0)
    sg.update("a", 1.0)
    again = StopAndGo(["a", "b"], StopAndGoConfig(patience=0))
    again.load_state_dict(sg.state_dict())
    assert schedule(again, range(5)) == schedule(sg, range(5))
