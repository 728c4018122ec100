"""Writer of the refer toolkit's files: ``refs(unc).p`` / ``refs(umd).p`` and ``instances.json``.

The refs file is a protocol-2 pickle written by Python 2 (``cPickle.dump(refs, f, 2)``):
a list of dicts. Python 3's pickler cannot reproduce it (it writes ``bytes`` through a
``_codecs.encode`` global, which a safe loader must refuse), so this module emits the
opcodes itself, the way Python 2's cPickle did:

- ``PROTO 2``, then containers as ``EMPTY_LIST``/``EMPTY_DICT`` + ``BINPUT`` and their items
  in batches of 1,000 (``APPEND``/``SETITEM`` for a batch of one, else ``MARK`` ...
  ``APPENDS``/``SETITEMS``); tuples as ``TUPLE1-3``/``MARK TUPLE``; ``STOP``.
- ints as ``BININT1``/``BININT2``/``BININT`` within 32 bits, the text ``INT`` opcode for the
  rest of a 64-bit Python 2 int, ``LONG1`` beyond; floats ``BINFLOAT``; ``NEWTRUE``/
  ``NEWFALSE``; ``NONE``.
- text: ``py2_strings=False`` writes ``str`` as ``BINUNICODE`` (what Python 2 wrote for
  ``unicode`` and Python 3 writes for ``str``); ``py2_strings=True`` writes it UTF-8 encoded
  as a Python 2 byte string (``SHORT_BINSTRING`` under 256 bytes, else ``BINSTRING``), as
  the release's ``str`` values were. ``bytes`` values are always written as byte strings.
  Non-ASCII byte strings make Python 3's default load fail, which is what the converter's
  ``encoding="bytes"`` + UTF-8 fallback is for.
- memo: every container and string gets a ``BINPUT``/``LONG_BINPUT``; dict keys (the
  interned literals of the script that wrote the release) are memoised by value, so a
  repeated key is a ``BINGET``/``LONG_BINGET`` as in the release. Other values are never
  fetched back, so memory stays bounded by the distinct keys.

``write_refs`` streams: refs may be any iterable (a generator for a full-size file).
``instances.json`` is COCO's 2014 instances format restricted to the referred images,
written by the shared COCO writer (``unify.sample.coco_format``).

``write_sample`` is the sample generator of all three refer tasks (each TaskSpec names it);
``SAMPLE_RELEASES`` says, per task, which refs file, image partition and wording it has.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, TypedDict

from unify.errors import DataError
from unify.sample import language as lang
from unify.sample.coco_format import (
    category,
    coco_image,
    instance_annotation,
    write_coco_instances,
)
from unify.sample.jsonfile import atomic_binary
from unify.sample.scenes import CATEGORIES, CATEGORY_ID
from unify.sample.world import World, count
from unify.tasks import TaskSpec

BATCH = 1000  # Python 2's cPickle batch size for APPENDS / SETITEMS

PROTO, STOP, MARK = b"\x80", b".", b"("
EMPTY_LIST, EMPTY_DICT, EMPTY_TUPLE = b"]", b"}", b")"
APPEND, APPENDS, SETITEM, SETITEMS = b"a", b"e", b"s", b"u"
TUPLE, TUPLE_N = b"t", {1: b"\x85", 2: b"\x86", 3: b"\x87"}
BINPUT, LONG_BINPUT, BINGET, LONG_BINGET = b"q", b"r", b"h", b"j"
BININT1, BININT2, BININT, INT, LONG1 = b"K", b"M", b"J", b"I", b"\x8a"
BINFLOAT, NONE, NEWTRUE, NEWFALSE = b"G", b"N", b"\x88", b"\x89"
SHORT_BINSTRING, BINSTRING, BINUNICODE = b"U", b"T", b"X"


class RefSentence(TypedDict, total=False):
    sent_id: int
    sent: str
    raw: str  # default: sent
    tokens: list[str]  # default: sent split on spaces


class Ref(TypedDict, total=False):
    ref_id: int
    ann_id: int
    image_id: int
    category_id: int
    split: str
    sentences: list[RefSentence]
    file_name: str  # default: COCO_train2014_<image_id:012>_<ref_id>.jpg


class CocoImage(TypedDict, total=False):
    id: int
    width: int
    height: int
    file_name: str
    flickr_url: str
    coco_url: str


class CocoAnnotation(TypedDict, total=False):
    id: int
    image_id: int
    category_id: int
    bbox: list[float]
    area: float
    iscrowd: int
    segmentation: list[list[float]]


class Py2Pickler:
    """Emit Python 2 cPickle protocol-2 opcodes for plain data to a binary stream."""

    def __init__(self, out: IO[bytes], py2_strings: bool = False) -> None:
        self.out = out
        self.py2_strings = py2_strings
        self._memo_size = 0
        self._key_memo: dict[tuple[type, Any], int] = {}

    def dump(self, obj: Any) -> None:
        """One whole pickle of ``obj``."""
        self.out.write(PROTO + b"\x02")
        self.save(obj)
        self.out.write(STOP)

    def dump_list(self, items: Iterable[Any]) -> None:
        """One whole pickle of a list given as an iterable (streamed, batch by batch)."""
        self.out.write(PROTO + b"\x02" + EMPTY_LIST)
        self._put()
        self._batches(iter(items), APPEND, APPENDS, self.save)
        self.out.write(STOP)

    def save(self, obj: Any) -> None:
        kind = type(obj)
        if kind is str:
            self._text(obj)
        elif kind is bool:
            self.out.write(NEWTRUE if obj else NEWFALSE)
        elif kind is int:
            self._int(obj)
        elif kind is float:
            self.out.write(BINFLOAT + struct.pack(">d", obj))
        elif obj is None:
            self.out.write(NONE)
        elif kind is bytes:
            self._bytes(obj)
        elif kind is list:
            self.out.write(EMPTY_LIST)
            self._put()
            self._batches(iter(obj), APPEND, APPENDS, self.save)
        elif kind is dict:
            self.out.write(EMPTY_DICT)
            self._put()
            self._batches(iter(obj.items()), SETITEM, SETITEMS, self._item)
        elif kind is tuple:
            self._tuple(obj)
        else:
            raise TypeError(f"cannot write a {kind.__name__} into a plain-data pickle")

    def _item(self, pair: tuple[Any, Any]) -> None:
        key, value = pair
        memo_key = (type(key), key)
        if type(key) in (str, bytes) and memo_key in self._key_memo:
            self._get(self._key_memo[memo_key])
        else:
            self.save(key)
            if type(key) in (str, bytes):
                self._key_memo[memo_key] = self._memo_size - 1
        self.save(value)

    def _batches(self, items: Iterator[Any], one: bytes, many: bytes, save: Any) -> None:
        while batch := list(islice(items, BATCH)):
            if len(batch) == 1:
                save(batch[0])
                self.out.write(one)
                continue
            self.out.write(MARK)
            for item in batch:
                save(item)
            self.out.write(many)

    def _tuple(self, obj: tuple[Any, ...]) -> None:
        if not obj:
            self.out.write(EMPTY_TUPLE)
            return
        if len(obj) <= 3:
            for item in obj:
                self.save(item)
            self.out.write(TUPLE_N[len(obj)])
        else:
            self.out.write(MARK)
            for item in obj:
                self.save(item)
            self.out.write(TUPLE)
        self._put()

    def _int(self, value: int) -> None:
        if 0 <= value < 0x100:
            self.out.write(BININT1 + bytes((value,)))
        elif 0 <= value < 0x10000:
            self.out.write(BININT2 + struct.pack("<H", value))
        elif -(2**31) <= value < 2**31:
            self.out.write(BININT + struct.pack("<i", value))
        elif -(2**63) <= value < 2**63:  # a Python 2 int, but wider than BININT
            self.out.write(INT + str(value).encode("ascii") + b"\n")
        else:  # a Python 2 long
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out.write(LONG1 + bytes((len(data),)) + data)

    def _text(self, value: str) -> None:
        data = value.encode("utf-8")
        if self.py2_strings:
            self._bytes(data)
            return
        self.out.write(BINUNICODE + struct.pack("<I", len(data)) + data)
        self._put()

    def _bytes(self, data: bytes) -> None:
        if len(data) < 256:
            self.out.write(SHORT_BINSTRING + bytes((len(data),)) + data)
        else:
            self.out.write(BINSTRING + struct.pack("<i", len(data)) + data)
        self._put()

    def _put(self) -> None:
        index = self._memo_size
        self._memo_size += 1
        if index < 256:
            self.out.write(BINPUT + bytes((index,)))
        else:
            self.out.write(LONG_BINPUT + struct.pack("<I", index))

    def _get(self, index: int) -> None:
        if index < 256:
            self.out.write(BINGET + bytes((index,)))
        else:
            self.out.write(LONG_BINGET + struct.pack("<I", index))


def dumps_py2(obj: Any, py2_strings: bool = False) -> bytes:
    """``obj`` as Python 2 would have pickled it with protocol 2 (for tests and small data)."""
    import io

    buffer = io.BytesIO()
    Py2Pickler(buffer, py2_strings).dump(obj)
    return buffer.getvalue()


def ref_record(ref: Ref) -> dict[str, Any]:
    """A ref in the release's layout, keys in the order Python 2 iterated (and pickled) them."""
    sentences = [
        {
            "tokens": s.get("tokens", s["sent"].split()),
            "raw": s.get("raw", s["sent"]),
            "sent_id": s["sent_id"],
            "sent": s["sent"],
        }
        for s in ref["sentences"]
    ]
    return {
        "image_id": ref["image_id"],
        "split": ref["split"],
        "sentences": sentences,
        "file_name": ref.get(
            "file_name", f"COCO_train2014_{ref['image_id']:012d}_{ref['ref_id']}.jpg"
        ),
        "category_id": ref["category_id"],
        "ann_id": ref["ann_id"],
        "sent_ids": [s["sent_id"] for s in ref["sentences"]],
        "ref_id": ref["ref_id"],
    }


def write_refs(
    task_dir: Path, file_name: str, refs: Iterable[Ref], *, py2_strings: bool = False
) -> Path:
    """Write ``refs(unc).p`` / ``refs(umd).p`` (streamed, atomic: temp file + rename)."""
    path = task_dir / file_name
    with atomic_binary(path) as f:
        Py2Pickler(f, py2_strings).dump_list(ref_record(r) for r in refs)
    return path


DEFAULT_CATEGORIES = (
    category(1, "person", "person"),
    category(2, "bicycle", "vehicle"),
    category(3, "car", "vehicle"),
    category(18, "dog", "animal"),
)


def write_instances(
    task_dir: Path,
    images: Iterable[CocoImage],
    annotations: Iterable[CocoAnnotation],
    categories: Iterable[dict[str, Any]] | None = None,
) -> Path:
    """Write ``instances.json``: COCO 2014 instances restricted to the referred images
    (the shared COCO writer; images and annotations are streamed)."""
    image_records = (
        coco_image(
            img["id"],
            img["width"],
            img["height"],
            "train2014",
            flickr_url=img.get("flickr_url"),
        )
        | ({"file_name": img["file_name"]} if "file_name" in img else {})
        | ({"coco_url": img["coco_url"]} if "coco_url" in img else {})
        for img in images
    )
    annotation_records = (
        instance_annotation(
            ann["id"],
            ann["image_id"],
            ann["category_id"],
            ann["bbox"],
            segmentation=ann.get("segmentation"),
            area=ann.get("area"),
            iscrowd=ann.get("iscrowd", 0),
        )
        for ann in annotations
    )
    return write_coco_instances(
        task_dir / "instances.json",
        image_records,
        annotation_records,
        DEFAULT_CATEGORIES if categories is None else categories,
    )


def write_refer(
    task_dir: Path,
    refs_file: str,
    refs: Iterable[Ref],
    images: Iterable[CocoImage],
    annotations: Iterable[CocoAnnotation],
    *,
    categories: Iterable[dict[str, Any]] | None = None,
    py2_strings: bool = False,
) -> list[Path]:
    """A whole refer dataset folder: the refs pickle and its instances.json."""
    return [
        write_refs(task_dir, refs_file, refs, py2_strings=py2_strings),
        write_instances(task_dir, images, annotations, categories),
    ]


# ---------------------------------------------------------------------------- the sample
@dataclass(frozen=True)
class ReferRelease:
    """What tells one refer release's sample apart from the others'."""

    refs_file: str  # the refer toolkit's file name
    #: The partition of its images: "unc" (the world's ``refcoco_images``; RefCOCO and
    #: RefCOCO+ share it, and its split of the images, as in the releases) or "umd"
    #: (``refcocog_images``). Its eval splits are the TaskSpec's.
    partition: str
    language: str  # the wording of its expressions (``language.refexp``'s flavour)


SAMPLE_RELEASES = {
    "refcoco": ReferRelease("refs(unc).p", "unc", "unc"),
    "refcoco_plus": ReferRelease("refs(unc).p", "unc", "plus"),
    "refcocog": ReferRelease("refs(umd).p", "umd", "umd"),
}


@dataclass(frozen=True)
class ReferSample:
    """The refer tasks' numbers in the sample world (their images are the world's)."""

    refs_per_image: float


SAMPLE_SCALES = {
    "tiny": ReferSample(refs_per_image=2),
    "small": ReferSample(refs_per_image=3),
    "full": ReferSample(refs_per_image=2.5),
}


def write_sample(w: World, task_dir: Path, spec: TaskSpec) -> list[Path]:
    """One refer release: refs on its partition's images (about 40% of the images in the
    spec's eval splits, the rest train) and the instances of those images."""
    release = SAMPLE_RELEASES.get(spec.name)
    if release is None:
        raise DataError(
            f"the refer sample has no release named {spec.name!r} "
            f"(known: {', '.join(SAMPLE_RELEASES)})"
        )
    s = w.sized(SAMPLE_SCALES, spec.name)
    images = w.refcocog_images if release.partition == "umd" else w.refcoco_images
    rng0 = w.rng(release.partition, "splits")
    eval_splits = spec.eval_splits
    split_of = {}
    for cid in images:
        r = rng0.random()
        split_of[cid] = eval_splits[int(r / 0.4 * len(eval_splits))] if r < 0.4 else "train"
    ids = {"sent": 0, "ref": 0}

    def refs() -> Iterator[Ref]:
        for cid in images:
            rng = w.rng(spec.name, cid)
            scene = w.scene(w.coco_uid(cid))
            for _ in range(count(rng, s.refs_per_image)):
                target = rng.randrange(len(scene.objects))
                sentences: list[RefSentence] = []
                for _ in range(rng.randint(1, 3)):
                    sentences.append(
                        {
                            "sent_id": ids["sent"],
                            "sent": lang.refexp(scene, target, rng, release.language),
                        }
                    )
                    ids["sent"] += 1
                ids["ref"] += 1
                yield {
                    "ref_id": ids["ref"],
                    "ann_id": cid * 100 + target,
                    "image_id": cid,
                    "category_id": CATEGORY_ID[scene.objects[target].category],
                    "split": split_of[cid],
                    "sentences": sentences,
                }

    def coco_images() -> Iterator[CocoImage]:
        for cid in images:
            scene = w.scene(w.coco_uid(cid))
            yield {
                "id": cid,
                "width": scene.width,
                "height": scene.height,
                "flickr_url": w.flickr_url(cid),
            }

    def annotations() -> Iterator[CocoAnnotation]:
        for cid in images:
            for j, obj in enumerate(w.scene(w.coco_uid(cid)).objects):
                yield {
                    "id": cid * 100 + j,
                    "image_id": cid,
                    "category_id": CATEGORY_ID[obj.category],
                    "bbox": list(obj.box),
                }

    cats = [category(cid, name, sup) for cid, name, sup in CATEGORIES]
    return write_refer(
        task_dir, release.refs_file, refs(), coco_images(), annotations(), categories=cats
    )
