"""docs/reader.md against the reader: example keys per task group, and the adapter table."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT
from tests.unify import reader_fixtures
from unify import tasks
from unify.reader import UnifiedFile
from unify.targets import ADAPTERS

DOC = ROOT / "docs" / "reader.md"
featured_h5 = reader_fixtures.featured_h5  # the shared session fixture


def _keys_lines() -> dict[str, list[str]]:
    found = re.findall(r"^Keys \(`(\w+)`\): (.+)$", DOC.read_text(), flags=re.M)
    return {task: re.findall(r"`(\w+)`", keys) for task, keys in found}


def test_documented_keys_are_the_reader_s_for_every_task_group(featured_h5: Path) -> None:
    documented = _keys_lines()
    assert {tasks.get(t).group for t in documented} == set(tasks.GROUPS)
    with UnifiedFile(featured_h5) as uf:
        for task, keys in documented.items():
            split = tasks.get(task).train_splits[0]
            example = uf.split(task, split, "auto", targets=True).example(0)
            assert keys == list(example), task


def test_adapter_table_lists_each_adapter_with_its_tasks() -> None:
    text = DOC.read_text().split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, flags=re.M)
    assert [name for name, _ in rows] == list(ADAPTERS)
    for name, listed in rows:
        users = [s.name for s in tasks.all_tasks().values() if s.target_adapter == name]
        assert [t.strip() for t in listed.split(",")] == users, name
