"""guesswhat: all games and successful games, labelled; object ids checked per game."""

from __future__ import annotations

import json

import numpy as np

from evalserver.metrics import guesswhat
from evalserver.metrics import predictions as P

GT = guesswhat.GuessWhatGroundTruth(
    game_ids=np.array([1, 2, 3, 4]),
    object_ids=np.array([100, 200, 300, 400]),
    status=["success", "failure", "success", "incomplete"],
    object_offsets=np.array([0, 2, 4, 6, 8]),
    candidate_ids=np.array([100, 101, 200, 201, 300, 301, 400, 401]),
)


def preds(pairs: list[tuple[int, int]]) -> P.ChoicePredictions:
    return P.parse_guesswhat(
        json.dumps([{"game_id": g, "object_id": o} for g, o in pairs]).encode()
    )


def test_all_games_and_successful_games() -> None:
    result = guesswhat.score(GT, preds([(1, 100), (2, 200), (3, 301), (4, 401)]))
    assert result.metrics == {"accuracy": 50.0, "accuracy_success": 50.0}
    assert result.primary == "accuracy"
    assert "successful" not in result.details["labels"]["accuracy"]
    assert result.details["per_status"]["failure"] == {"accuracy": 100.0, "count": 1}
    result = guesswhat.score(GT, preds([(1, 100), (2, 201), (3, 300), (4, 401)]))
    assert result.metrics == {"accuracy": 50.0, "accuracy_success": 100.0}


def test_object_must_belong_to_the_game() -> None:
    problems = [str(p) for p in guesswhat.validate(GT, preds([(1, 200), (2, 200), (3, 300)]))]
    assert problems == [
        "game_id 4: no prediction for this game_id",
        "record 1, game_id 1: object_id 200 is not one of the game's objects",
    ]


def test_without_object_lists_any_id_is_accepted() -> None:
    gt = guesswhat.GuessWhatGroundTruth(np.array([1]), np.array([5]), ["failure"])
    result = guesswhat.score(gt, preds([(1, 6)]))
    assert result.metrics == {"accuracy": 0.0}  # no successful game: that metric is absent
