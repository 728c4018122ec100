"""Cross-dataset split leakage: identity groups of images and the cleaning policy.

The 12 datasets share photos: RefCOCO evaluation images are COCO train2014 images (so VQA v2
and COCO-retrieval training images), Visual Genome / GQA / Visual7W images are largely COCO
images, SNLI-VE and Flickr30k retrieval split the same Flickr photos differently, and COCO
images are Flickr photos. A multi-task model trained on the raw splits has seen test images
of other tasks. Here identity comes only from links in the raw files (/links), images that
denote one photo form an identity group (connected components, union-find), and every
training example whose image shares a group with any evaluation image is removed into the
task's ``mteval`` split (12-in-1's rule, strictly applied, within a task too).

The same analysis runs at build time (on the converters' tables) and on a finished file
(``unify leaks``), so anyone can check splits they built themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

SAME_KEY = "same_key"


@dataclass
class IdentityGroups:
    """Connected components over image keys; ``group[i]`` is node i's component id.

    A component's id is the smallest node index in it, so ids are deterministic.
    """

    keys: list[str]
    group: np.ndarray
    joined_by_type: dict[str, int]
    link_types: dict[int, set[str]]

    @property
    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}


def identity_groups(keys: Sequence[str], links: Iterable[tuple[str, str, str]]) -> IdentityGroups:
    """Union-find over ``keys`` (extended by link endpoints) and (type, key_a, key_b) links."""
    nodes = list(keys)
    index = {k: i for i, k in enumerate(nodes)}
    parent = list(range(len(nodes)))

    def node(key: str) -> int:
        i = index.get(key)
        if i is None:
            i = index[key] = len(nodes)
            nodes.append(key)
            parent.append(i)
        return i

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    joined: dict[str, int] = {}
    edges: list[tuple[int, str]] = []
    for link_type, key_a, key_b in links:
        a, b = find(node(key_a)), find(node(key_b))
        joined.setdefault(link_type, 0)
        edges.append((index[key_a], link_type))
        if a != b:
            parent[max(a, b)] = min(a, b)
            joined[link_type] += 1
    group = np.fromiter((find(i) for i in range(len(nodes))), dtype=np.int64, count=len(nodes))
    link_types: dict[int, set[str]] = {}
    for i, link_type in edges:
        link_types.setdefault(int(group[i]), set()).add(link_type)
    return IdentityGroups(nodes, group, dict(sorted(joined.items())), link_types)


@dataclass(frozen=True)
class SplitImages:
    """The image node indices of one split's examples ([N] or [N, 2])."""

    task: str
    split: str
    role: str
    images: np.ndarray


@dataclass(frozen=True)
class LeakagePolicy:
    """Which splits are cleaned against which (default: 12-in-1's rule, strictly)."""

    keep_train: frozenset[str] = frozenset()  # tasks whose training splits stay untouched
    ignore_eval: frozenset[str] = frozenset()  # tasks whose evaluation images are ignored

    def as_record(self) -> dict[str, Any]:
        return {
            "rule": "drop training examples whose image shares an identity group with any "
            "evaluation image of any task (within a task too)",
            "keep_train": sorted(self.keep_train),
            "ignore_eval": sorted(self.ignore_eval),
        }


@dataclass
class LeakageAnalysis:
    """Per training split: which examples leak; per (train task, eval task) pair: counts."""

    leaking: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    eval_images: int = 0
    eval_groups: int = 0

    @property
    def total_leaking(self) -> int:
        return int(sum(int(m.sum()) for m in self.leaking.values()))


def analyse(
    splits: Sequence[SplitImages], groups: IdentityGroups, policy: LeakagePolicy = LeakagePolicy()
) -> LeakageAnalysis:
    """Find training examples whose images share a group with an evaluation image."""
    group = groups.group
    eval_tasks = sorted(
        {s.task for s in splits if s.role == "eval" and s.task not in policy.ignore_eval}
    )
    bit = {task: 1 << i for i, task in enumerate(eval_tasks)}
    # Bitmask of the evaluation tasks touching each group, and evaluation image nodes per task.
    touch = np.zeros(len(group), dtype=np.int64)
    eval_nodes: dict[str, np.ndarray] = {}
    for s in splits:
        if s.role != "eval" or s.task not in bit:
            continue
        nodes = np.unique(s.images.reshape(-1))
        eval_nodes[s.task] = np.union1d(eval_nodes.get(s.task, nodes), nodes)
        np.bitwise_or.at(touch, group[nodes], bit[s.task])
    result = LeakageAnalysis()
    all_eval = (
        np.unique(np.concatenate(list(eval_nodes.values())))
        if eval_nodes
        else np.zeros(0, np.int64)
    )
    result.eval_images = len(all_eval)
    result.eval_groups = len(np.unique(group[all_eval]))
    for s in splits:
        if s.role != "train" or s.task in policy.keep_train:
            continue
        masks = touch[group[s.images]]
        mask_any = masks if masks.ndim == 1 else np.bitwise_or.reduce(masks, axis=1)
        result.leaking[(s.task, s.split)] = mask_any != 0
        for eval_task in eval_tasks:
            hit = (mask_any & bit[eval_task]) != 0
            if not hit.any():
                continue
            nodes = np.unique(s.images[hit].reshape(-1))
            nodes = nodes[(touch[group[nodes]] & bit[eval_task]) != 0]
            types: set[str] = set()
            for g in np.unique(group[nodes]).tolist():
                types |= groups.link_types.get(g, set())
            if np.isin(nodes, eval_nodes[eval_task]).any():
                types.add(SAME_KEY)
            result.pairs.append(
                {
                    "train_task": s.task,
                    "train_split": s.split,
                    "eval_task": eval_task,
                    "images": len(nodes),
                    "examples": int(hit.sum()),
                    "link_types": sorted(types),
                }
            )
    return result


def _node_indices(column: Any, index: dict[str, int]) -> np.ndarray:
    """Image keys (or pairs of keys) of a converter's split as node indices."""
    if len(column) and isinstance(column[0], tuple):
        flat = [index[k] for pair in column for k in pair]
        return np.asarray(flat, dtype=np.int64).reshape(len(column), -1)
    return np.fromiter((index[k] for k in column), dtype=np.int64, count=len(column))


@dataclass
class CleaningResult:
    groups: IdentityGroups
    report: dict[str, Any]


def clean_tables(
    tables: Sequence[Any],
    image_keys: Sequence[str],
    links: Iterable[tuple[str, str, str]],
    policy: LeakagePolicy,
    apply: bool,
) -> CleaningResult:
    """Analyse the build's tables; with ``apply``, move leaking training examples to mteval.

    A training split that cleaning empties is kept (empty) and named in the report's
    ``emptied_training_splits``, so nobody trains on nothing without being told.
    """
    from unify.table import SplitTable  # local: keep this module usable on files alone

    groups = identity_groups(image_keys, links)
    index = groups.index
    images = [
        SplitImages(t.name, s.name, s.role, _node_indices(s.columns["image"], index))
        for t in tables
        for s in t.splits
    ]
    analysis = analyse(images, groups, policy)
    removed: dict[str, dict[str, int]] = {}
    emptied: list[str] = []
    if apply:
        for table in tables:
            new_splits: list[SplitTable] = []
            gone: list[dict[str, Any]] = []
            for split in table.splits:
                mask = analysis.leaking.get((table.name, split.name))
                if mask is None or not mask.any():
                    new_splits.append(split)
                    continue
                keep, drop = np.flatnonzero(~mask), np.flatnonzero(mask)
                # replace() keeps split-level arrays (retrieval candidates) and attributes.
                new_splits.append(replace(split, columns=split.take(keep)))
                gone.append(split.take(drop))
                removed.setdefault(table.name, {})[split.name] = len(drop)
                if len(keep) == 0:
                    emptied.append(f"{table.name}/{split.name}")
            if gone:
                columns = gone[0] if len(gone) == 1 else _concat(gone)
                new_splits.append(SplitTable("mteval", "extra", columns))
            table.splits[:] = new_splits
    report = {
        "cleaned": apply,
        "policy": policy.as_record(),
        "identity_groups": len(np.unique(groups.group)),
        "keys": len(groups.keys),
        "keys_joined_by_link_type": groups.joined_by_type,
        "evaluation_images": analysis.eval_images,
        "evaluation_groups": analysis.eval_groups,
        "leaking_training_examples": analysis.total_leaking,
        "pairs": analysis.pairs,
        "removed": removed,
        "emptied_training_splits": emptied,
    }
    return CleaningResult(groups, report)


def _concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    from unify.table import Ragged

    out: dict[str, Any] = {}
    for name, first in parts[0].items():
        if isinstance(first, Ragged):
            offsets = [np.asarray([0], dtype=np.int64)]
            base = 0
            for p in parts:
                offsets.append(p[name].offsets[1:] + base)
                base += int(p[name].offsets[-1])
            values = {
                k: (
                    np.concatenate([p[name].values[k] for p in parts])
                    if isinstance(v, np.ndarray)
                    else [x for p in parts for x in p[name].values[k]]
                )
                for k, v in first.values.items()
            }
            out[name] = Ragged(np.concatenate(offsets), values)
        elif isinstance(first, np.ndarray):
            out[name] = np.concatenate([p[name] for p in parts])
        else:
            out[name] = [x for p in parts for x in p[name]]
    return out


def write_leakage(f: Any, image_count: int, result: CleaningResult) -> None:
    """/images/group and the /leakage report (called by the writer with the open file)."""
    from unify.schema import IMAGES, LEAKAGE
    from unify.writer import write_numbers, write_strings

    write_numbers(f[IMAGES], "group", result.groups.group[:image_count].astype(np.int32))
    g = f.create_group(LEAKAGE)
    import json

    g.attrs["report"] = json.dumps(result.report, sort_keys=True)
    pairs = result.report["pairs"]
    for name in ("train_task", "train_split", "eval_task"):
        write_strings(g, name, [p[name] for p in pairs])
    write_numbers(g, "images", np.asarray([p["images"] for p in pairs], dtype=np.int64))
    write_numbers(g, "examples", np.asarray([p["examples"] for p in pairs], dtype=np.int64))
    write_strings(g, "link_types", [",".join(p["link_types"]) for p in pairs])


def read_id_list(path: Any) -> list[str]:
    """Bare integer image ids from a ``.npy`` array or a text file with one id per line."""
    from pathlib import Path

    from unify.errors import DataError, MalformedFileError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"id list {path} does not exist")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise MalformedFileError(path, f"not a plain numeric .npy array ({exc})") from None
        if arr.dtype.kind not in "iu" and not (
            arr.dtype.kind == "f" and np.all(arr == np.round(arr))
        ):
            raise MalformedFileError(path, f"expected integer ids, got dtype {arr.dtype}")
        return [str(int(v)) for v in arr.reshape(-1)]
    ids = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        value = line.strip()
        if not value:
            continue
        if not value.isdigit():
            raise MalformedFileError(path, f"line {lineno}: {value!r} is not an integer image id")
        ids.append(str(int(value)))
    return ids


def check_file(
    uf: Any, against: Sequence[tuple[str, list[str]]] = (), policy: LeakagePolicy = LeakagePolicy()
) -> dict[str, Any]:
    """Recompute identity groups and leaks of a unified file from /images, /links and roles.

    ``against``: extra evaluation image sets, as (name, image keys), e.g. 12-in-1's
    ``coco_test_ids.npy``. Independent of how (or whether) the file was cleaned.
    """
    keys = list(uf.image_keys)
    index = {k: i for i, k in enumerate(keys)}
    extra_keys = [k for _, ks in against for k in ks if k not in index]
    links = uf.links()
    groups = identity_groups(
        keys + sorted(set(extra_keys)),
        zip(links["type"], links["key_a"], links["key_b"], strict=True),
    )
    node = groups.index
    images = []
    for task in uf.tasks:
        for split in uf.splits(task):
            view = uf.split(task, split)
            images.append(
                SplitImages(task, split, view.role, view.column("image").astype(np.int64))
            )
    for name, ks in against:
        images.append(
            SplitImages(
                name, "ids", "eval", np.asarray(sorted({node[k] for k in ks}), dtype=np.int64)
            )
        )
    analysis = analyse(images, groups, policy)
    return {
        "file": str(uf.path),
        "cleaned_at_build": bool(uf.build_options.get("clean", False)),
        "identity_groups": len(np.unique(groups.group[: len(keys)])),
        "keys_joined_by_link_type": groups.joined_by_type,
        "evaluation_images": analysis.eval_images,
        "leaking_training_examples": analysis.total_leaking,
        "pairs": analysis.pairs,
    }
