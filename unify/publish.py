"""`unify publish`: the public copy of a private build, for participants.

A private build holds the answers of its hidden splits (``unify.hidden``); the public copy
holds everything else unchanged, so that predictions made on it are exactly what the
server scores against the private file: every group, dataset and attribute is copied as it
is (HDF5 object copies: same values, dtypes, chunks, filters and checksums), except the
answer columns of hidden splits, which are never written (deleting them after a copy
would leave their bytes in the file). The root records the private build's fingerprint
(``published_from``) and gets its own (``unify.build.published_fingerprint``); the split
attribute ``answers`` of a hidden split becomes "absent" and ``/@checksums`` no longer
lists the left-out datasets, so ``unify verify`` passes on the copy (it is run on the
copy before the copy replaces OUT: damage in the private build is never published).

Publishing a public copy again is an error (it has nothing more to withhold, and a copy
of a copy would hide which build it comes from). A private build without hidden splits
publishes to a copy that differs only in those root attributes: scripts need not know
which tasks a build holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from unify import checksums
from unify.build import published_fingerprint
from unify.errors import DataError
from unify.hidden import ABSENT, ANSWER_COLUMNS_ATTR, ANSWERS_ATTR, PUBLISHED_FROM
from unify.reader import UnifiedFile
from unify.schema import TASKS
from unify.structure import READ_ERRORS, detail
from unify.verify import verify_file
from unify.writer import atomic_output


@dataclass
class PublishReport:
    """What a publication withheld, for the command's summary."""

    private: Path
    public: Path
    published_from: str
    fingerprint: str
    #: "task/split" -> the answer columns left out (empty: the private build had none).
    withheld: dict[str, list[str]] = field(default_factory=dict)


def _withheld(uf: UnifiedFile) -> dict[str, list[str]]:
    """The hidden splits of ``uf`` and the answer columns each holds."""
    out: dict[str, list[str]] = {}
    for task in uf.tasks:
        for split in uf.splits(task):
            view = uf.split(task, split)
            if not view.hidden:
                continue
            raw = uf.h5[TASKS][task][split].attrs.get(ANSWER_COLUMNS_ATTR, "[]")
            try:
                columns = json.loads(raw)
            except ValueError:
                columns = None
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise DataError(
                    f"{uf.path}: /{TASKS}/{task}/{split}@{ANSWER_COLUMNS_ATTR} is not a list "
                    "of column names: the file is damaged (see `unify verify`)"
                )
            out[f"{task}/{split}"] = [c for c in columns if c in view.group]
    return out


def publish(private: Path, out: Path) -> PublishReport:
    """Write the public copy of ``private`` to ``out`` (atomically)."""
    private, out = Path(private), Path(out)
    with UnifiedFile(private, checksums=True) as uf:
        if uf.is_public_copy:
            raise DataError(
                f"{private}: is already a public copy (of the build with fingerprint "
                f"{uf.benchmark_fingerprint[:12]}): publish the private build instead"
            )
        if not uf.fingerprint:
            raise DataError(
                f"{private}: has no fingerprint (built before vl12 recorded one), so a "
                "public copy could not name it: rebuild it with this vl12"
            )
        withheld = _withheld(uf)
        private_fingerprint = uf.fingerprint
    report = PublishReport(
        private, out, private_fingerprint, published_fingerprint(private_fingerprint), withheld
    )
    with atomic_output(out) as tmp:
        try:
            with (
                h5py.File(private, "r") as src,
                h5py.File(tmp, "w", libver=("v110", "latest")) as dst,
            ):
                _copy(src, dst, withheld)
                dst.attrs[PUBLISHED_FROM] = report.published_from
                dst.attrs["fingerprint"] = report.fingerprint
        except READ_ERRORS as exc:
            raise DataError(f"{private}: cannot be copied, it is damaged ({detail(exc)})") from None
        # The copy is checked in full before it replaces OUT: an object copy moves stored
        # bytes as they are, so damage in PRIVATE would reach participants unnoticed.
        checked = verify_file(tmp)
        if not checked.ok:
            first = checked.problems[0]
            raise DataError(
                f"{private}: damaged, not published: {first.path}: {first.what} "
                f"({len(checked.problems)} problem(s); see `unify verify {private}`)"
            )
    return report


def _copy(src: h5py.File, dst: h5py.File, withheld: dict[str, list[str]]) -> None:
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for name in src:
        if name != TASKS:
            src.copy(src[name], dst, name=name)
    left_out: list[str] = []
    tasks = dst.create_group(TASKS, track_order=True)
    _copy_attrs(src[TASKS], tasks)
    for task, group in src[TASKS].items():
        task_out = tasks.create_group(task, track_order=True)
        _copy_attrs(group, task_out)
        for split, split_group in group.items():
            columns = withheld.get(f"{task}/{split}")
            if columns is None:
                src.copy(split_group, task_out, name=split)
                continue
            split_out = task_out.create_group(split, track_order=True)
            _copy_attrs(split_group, split_out)
            split_out.attrs[ANSWERS_ATTR] = ABSENT
            for member, item in split_group.items():
                if member in columns:
                    left_out.append(item.name)
                else:
                    src.copy(item, split_out, name=member)
    if checksums.ROOT_ATTR in src.attrs:
        record = json.loads(src.attrs[checksums.ROOT_ATTR])
        gone = set(left_out)
        below = tuple(f"{name}/" for name in left_out)
        record["datasets"] = [
            path
            for path in record.get("datasets", [])
            if path not in gone and not (below and path.startswith(below))
        ]
        dst.attrs[checksums.ROOT_ATTR] = json.dumps(record)


def _copy_attrs(src: h5py.Group, dst: h5py.Group) -> None:
    for key, value in src.attrs.items():
        dst.attrs[key] = value
