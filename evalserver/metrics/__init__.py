"""The official scorers of the 12 tasks: one module per metric, a registry keyed by metric.

Each scorer is a pure function of (ground truth, parsed predictions) -> ``Result``; the
ground truth comes from the unified HDF5 file (``groundtruth``), predictions from the
participant's file (``predictions``). Nothing here knows about the web server, database
or queue. The server's API validates an upload once and saves the validated form; its
worker loads it and scores it (``validated``, docs/metrics.md "Using them"):

    gt = load_groundtruth("vl12.h5", "vqa2")                # default phase: minval
    validated = validate_file("vqa2", gt, "submission.json.gz")  # limits=Limits(...)
    validated.ok, validated.listing()                       # every problem, capped
    validated.save("sub.npz"); validated = load_validated("sub.npz")
    result = score_validated(gt, validated)
    result.metrics["overall"], result.version, result.phase, result.fingerprint
    result.per_example["score"], result.example_ids         # per question, gt order

Tasks are declared once in ``unify.tasks``; a task reaches its scorer through its
``TaskSpec.metric`` (``get_scorer``), so nothing in this package lists tasks.
"""

from __future__ import annotations

from evalserver.metrics.groundtruth import GROUNDTRUTH, GroundTruth, load_groundtruth
from evalserver.metrics.limits import Limits
from evalserver.metrics.predictions import Problem, ProblemLog, ValidationError
from evalserver.metrics.registry import (
    SCORERS,
    Scorer,
    get_scorer,
    tasks_of_metric,
    variant_names,
)
from evalserver.metrics.result import Result
from evalserver.metrics.validated import (
    Validated,
    check_file,
    load_validated,
    score_file,
    score_validated,
    validate_file,
)

__all__ = [
    "GROUNDTRUTH",
    "SCORERS",
    "GroundTruth",
    "Limits",
    "Problem",
    "ProblemLog",
    "Result",
    "Scorer",
    "Validated",
    "ValidationError",
    "check_file",
    "get_scorer",
    "load_groundtruth",
    "load_validated",
    "score_file",
    "score_validated",
    "tasks_of_metric",
    "validate_file",
    "variant_names",
]
