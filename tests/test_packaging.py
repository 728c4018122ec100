"""torch: a range in the published extra, the exact CPU build only in constraints.txt.

A published package that pins torch exactly forces that build on every user; the project's
own installs (README, .ci/run) reach the exact build through ``-c constraints.txt``. The pin
must lie inside the range, or those installs would fail to resolve.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _extras() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = {"": project["dependencies"], **project["optional-dependencies"]}
    return {extra: [Requirement(r) for r in lines] for extra, lines in reqs.items()}


def _constraints() -> dict[str, Requirement]:
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {r.name: r for r in reqs}


def test_no_exact_pin_in_the_published_requirements() -> None:
    for extra, reqs in _extras().items():
        for req in reqs:
            assert not any(s.operator in ("==", "===") for s in req.specifier), (extra, str(req))


def test_torch_has_a_range_that_holds_the_pinned_build() -> None:
    (torch,) = [r for r in _extras()["baseline"] if r.name == "torch"]
    lower = [s for s in torch.specifier if s.operator in (">=", ">")]
    upper = [s for s in torch.specifier if s.operator in ("<", "<=")]
    assert lower and upper, f"torch needs a bounded range, not {torch}"
    (pin,) = list(_constraints()["torch"].specifier)
    assert pin.operator == "=="
    assert torch.specifier.contains(pin.version)
    assert torch.specifier.contains(f"{pin.version}+cpu")
