"""The converters, derived from the task declarations (``unify.tasks``).

Build order is the canonical order of the TaskSpecs (vqa2 before vgqa: vgqa reuses vqa2's
vocabulary); each converter is imported on demand from its spec's ``converter`` path.
"""

from __future__ import annotations

from unify.converters.base import BuildContext, Converter, RawFile
from unify.tasks import all_tasks


def registry() -> dict[str, Converter]:
    """Fresh converter instances by task name (no shared mutable state between builds)."""
    return {name: spec.make_converter() for name, spec in all_tasks().items()}


__all__ = ["BuildContext", "Converter", "RawFile", "registry"]
