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

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from unify.schema import MTEVAL_SPLIT

SAME_KEY = "same_key"


@dataclass
class IdentityGroups:
    """Connected components over image keys; ``group[i]`` is node i's component id.

    A component's id is the smallest node index in it, so ids are deterministic.
    ``link_types`` holds every link type of a group; ``adjacency`` the links themselves
    (node -> [(neighbour, type)]), to name the links a particular leak went through.
    """

    keys: list[str]
    group: np.ndarray
    joined_by_type: dict[str, int]
    link_types: dict[int, set[str]]
    adjacency: dict[int, list[tuple[int, str]]] = field(default_factory=dict)

    @property
    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}

    def path_types(self, start: int, targets: Container[int]) -> set[str]:
        """The link types on the shortest link paths from node ``start`` to ``targets``.

        ``{"same_key"}`` when ``start`` is itself a target; empty when no target is in its
        group. A group can hold links that play no part in a given leak (a VG record's
        coco_id next to the COCO record's flickr_url), so naming every type of the group
        would blame the wrong bridge; every shortest path counts, so the answer does not
        depend on link order. Groups are a few photos each: a plain BFS is cheap.
        """
        if start in targets:
            return {SAME_KEY}
        depth = {start: 0}
        parents: dict[int, list[tuple[int, str]]] = {}
        frontier = [start]
        found: list[int] = []
        while frontier and not found:
            layer: list[int] = []
            for u in frontier:
                for v, link_type in self.adjacency.get(u, ()):
                    if v not in depth:
                        depth[v] = depth[u] + 1
                        parents[v] = [(u, link_type)]
                        layer.append(v)
                    elif depth[v] == depth[u] + 1:
                        parents[v].append((u, link_type))
            found = [v for v in layer if v in targets]
            frontier = layer
        types: set[str] = set()
        seen: set[int] = set()
        stack = found
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            for u, link_type in parents.get(v, ()):
                types.add(link_type)
                stack.append(u)
        return types


def identity_groups(keys: Sequence[str], links: Iterable[tuple[str, str, str]]) -> IdentityGroups:
    """Union-find over ``keys`` (extended by link endpoints) and (type, key_a, key_b) links.

    ``keys`` come first, so their node index is their position (their /images row) and a
    group that holds any of them is named by one. ``joined_by_type`` counts, per link type,
    the links that merged two components (a link inside a group joins nothing), in the
    order given (/links is sorted, so the counts are deterministic).
    """
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
    adjacency: dict[int, list[tuple[int, str]]] = {}
    for link_type, key_a, key_b in links:
        i, j = node(key_a), node(key_b)
        adjacency.setdefault(i, []).append((j, link_type))
        adjacency.setdefault(j, []).append((i, link_type))
        a, b = find(i), find(j)
        joined.setdefault(link_type, 0)
        if a != b:
            parent[max(a, b)] = min(a, b)
            joined[link_type] += 1
    group = np.fromiter((find(i) for i in range(len(nodes))), dtype=np.int64, count=len(nodes))
    link_types: dict[int, set[str]] = {}
    for i, edges in adjacency.items():
        for _, link_type in edges:
            link_types.setdefault(int(group[i]), set()).add(link_type)
    return IdentityGroups(nodes, group, dict(sorted(joined.items())), link_types, adjacency)


@dataclass(frozen=True)
class SplitImages:
    """The image node indices of one split's examples ([N] or [N, 2])."""

    task: str
    split: str
    role: str
    images: np.ndarray


@dataclass(frozen=True)
class LeakagePolicy:
    """Which splits are cleaned against which (default: 12-in-1's rule, strictly).

    The default cleans every training split against every evaluation split; the two
    escapes exist for people who knowingly reproduce another setup (e.g. 12-in-1's never
    cleaned NLVR2: ``keep_train={"nlvr2"}``). The policy is recorded in the file.
    """

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
    """Find training examples whose images share a group with an evaluation image.

    Per (training split, evaluation task) pair: the examples and the distinct training
    images involved (only the leaking image of a pair), and the link types the leak went
    through (``same_key`` when a training image is itself one of the task's evaluation
    images). ``touch[g, t]`` says whether identity group ``g`` holds an evaluation image
    of task ``t``: a boolean matrix rather than a bit mask, so any number of evaluation
    sets (tasks plus ``--against`` lists) works.
    """
    group = groups.group
    eval_tasks = sorted(
        {s.task for s in splits if s.role == "eval" and s.task not in policy.ignore_eval}
    )
    column = {task: t for t, task in enumerate(eval_tasks)}
    touch = np.zeros((len(group), len(eval_tasks)), dtype=bool)
    eval_nodes: dict[str, np.ndarray] = {}
    for s in splits:
        if s.role != "eval" or s.task not in column:
            continue
        nodes = np.unique(np.asarray(s.images, dtype=np.int64).reshape(-1))
        eval_nodes[s.task] = np.union1d(eval_nodes.get(s.task, nodes), nodes)
        touch[group[nodes], column[s.task]] = True
    result = LeakageAnalysis()
    all_eval = (
        np.unique(np.concatenate(list(eval_nodes.values())))
        if eval_nodes
        else np.zeros(0, np.int64)
    )
    result.eval_images = len(all_eval)
    result.eval_groups = len(np.unique(group[all_eval]))
    targets: dict[str, set[int]] = {}  # evaluation nodes per task, as sets for the BFS
    for s in splits:
        if s.role != "train" or s.task in policy.keep_train:
            continue
        images = np.asarray(s.images, dtype=np.int64)
        hits = touch[group[images]]  # [N, T], or [N, 2, T] for image pairs
        if hits.ndim == 3:
            hits = hits.any(axis=1)
        result.leaking[(s.task, s.split)] = hits.any(axis=1)
        for eval_task in eval_tasks:
            t = column[eval_task]
            hit = hits[:, t]
            if not hit.any():
                continue
            # The training images (either image of a pair) that share a group with it.
            nodes = np.unique(images[hit].reshape(-1))
            nodes = nodes[touch[group[nodes], t]]
            if eval_task not in targets:
                targets[eval_task] = set(eval_nodes[eval_task].tolist())
            types: set[str] = set()
            for n in nodes.tolist():
                types |= groups.path_types(n, targets[eval_task])
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
    """The identity groups (for /images/group) and the /leakage report of one build."""

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
    Image split arrays (retrieval ``candidates``: "the split's images") follow their
    examples: the removed images leave the training split's array for mteval's, otherwise
    a trainer drawing negatives from the candidates would still see evaluation images.
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
            gone: list[SplitTable] = []
            for split in table.splits:
                mask = analysis.leaking.get((table.name, split.name))
                if mask is None or not mask.any():
                    new_splits.append(split)
                    continue
                keep, drop = np.flatnonzero(~mask), np.flatnonzero(mask)
                kept, dropped = _split_arrays(split, keep, drop)
                # replace() keeps the split's attributes and non-image arrays.
                new_splits.append(replace(split, columns=split.take(keep), arrays=kept))
                gone.append(
                    SplitTable(
                        MTEVAL_SPLIT,
                        "extra",
                        split.take(drop),
                        arrays=dropped,
                        image_arrays=frozenset(dropped) & split.image_arrays,
                    )
                )
                removed.setdefault(table.name, {})[split.name] = len(drop)
                if len(keep) == 0:
                    emptied.append(f"{table.name}/{split.name}")
            if gone:
                new_splits.append(gone[0] if len(gone) == 1 else _concat_splits(gone))
            table.splits[:] = new_splits
    report = {
        "cleaned": apply,
        "policy": policy.as_record(),
        # Over /images rows, as /images/group and `unify leaks` count them (link endpoints
        # that no task uses join groups but are no images of the file).
        "identity_groups": len(np.unique(groups.group[: len(image_keys)])),
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


def _flat_keys(column: Any) -> set[str]:
    """The image keys of a column of keys or of key pairs."""
    return {k for item in column for k in (item if isinstance(item, tuple) else (item,))}


def _split_arrays(
    split: Any, keep: np.ndarray, drop: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the cleaned split's arrays, mteval's arrays): image arrays lose the removed images.

    An image is removed when its examples left and none stayed (a pair can take a clean
    image along); the order of the release is kept. Other arrays stay with the split.
    """
    if not split.arrays:
        return {}, {}
    from unify.table import take_column

    image = split.columns["image"]
    kept_keys = _flat_keys(take_column(image, keep))
    gone_keys = _flat_keys(take_column(image, drop)) - kept_keys
    kept: dict[str, Any] = {}
    dropped: dict[str, Any] = {}
    for name, values in split.arrays.items():
        if name not in split.image_arrays:
            kept[name] = values
            continue
        kept[name] = [k for k in values if k not in gone_keys]
        dropped[name] = [k for k in values if k in gone_keys]
    return kept, dropped


def _concat_splits(parts: list[Any]) -> Any:
    """One mteval from the removed rows of several training splits."""
    from unify.table import SplitTable

    arrays = {
        name: [k for p in parts for k in p.arrays.get(name, [])]
        for name in dict.fromkeys(n for p in parts for n in p.arrays)
    }
    image_arrays = frozenset().union(*(p.image_arrays for p in parts))
    return SplitTable(
        MTEVAL_SPLIT,
        "extra",
        _concat([p.columns for p in parts]),
        arrays=arrays,
        image_arrays=image_arrays,
    )


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
    """Bare integer image ids from a ``.npy`` array or a text file with one id per line.

    Lists such as 12-in-1's ``coco_test_ids.npy`` come from elsewhere, so every way they
    can be wrong (not a numeric array, text that is no id, negative ids, no ids at all)
    is one clear error naming the file, never a traceback or a silently empty check.
    """
    from pathlib import Path

    from unify.errors import DataError, MalformedFileError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"id list {path} does not exist")
    if path.suffix.lower() == ".npy":
        ids = _npy_ids(path)
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM is no part of an id
        except UnicodeDecodeError as exc:
            raise MalformedFileError(
                path,
                f"not a text file of image ids (byte {exc.start} is not UTF-8); "
                "a numpy array must be named .npy",
            ) from None
        ids = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            value = line.strip()
            if not value:
                continue
            if not (value.isascii() and value.isdigit()):
                raise MalformedFileError(
                    path, f"line {lineno}: {value[:40]!r} is not a bare integer image id"
                )
            ids.append(str(int(value)))
    if not ids:
        raise MalformedFileError(path, "no image ids in the file")
    return ids


def _npy_ids(path: Any) -> list[str]:
    """Integer ids of a .npy array (integers, integral floats, or digit strings)."""
    from unify.errors import MalformedFileError

    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        detail = " ".join(str(exc).split())  # numpy's messages may span lines
        raise MalformedFileError(path, f"not a plain numeric .npy array ({detail})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise MalformedFileError(path, "an .npz archive, not one .npy array")
    flat = arr.reshape(-1)
    kind = arr.dtype.kind
    if kind in "US":
        values = [v.decode("ascii", "replace") if isinstance(v, bytes) else str(v) for v in flat]
        bad = next((v for v in values if not (v.isascii() and v.isdigit())), None)
        if bad is not None:
            raise MalformedFileError(path, f"{bad[:40]!r} is not a bare integer image id")
        return [str(int(v)) for v in values]
    if kind == "f" and np.all(np.isfinite(flat)) and np.all(flat == np.round(flat)):
        flat = flat.astype(np.int64)
    elif kind not in "iu":
        raise MalformedFileError(path, f"expected integer ids, got dtype {arr.dtype}")
    if len(flat) and flat.min() < 0:
        raise MalformedFileError(path, f"negative image id {int(flat.min())}")
    return [str(int(v)) for v in flat.tolist()]


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
    hidden = []
    for task in uf.tasks:
        for split in uf.splits(task):
            view = uf.split(task, split).check()  # image rows inside /images, offsets
            images.append(
                SplitImages(task, split, view.role, view.column("image").astype(np.int64))
            )
            if view.hidden:
                hidden.append(f"{task}/{split}")
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
        # Their answers may be withheld (a public copy), their images never are.
        "hidden_evaluation_splits": hidden,
    }
