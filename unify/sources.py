"""Where each official raw file comes from: the download sources, declared once.

A source is one thing to fetch (an archive or a single file) and the members of it that
vl12 reads, each placed at its raw-layout path (``<folder>/<release file name>``, see
docs/raw-layout.md). Which tasks need a source is never written here: it is derived from
the converters' declared ``raw_files`` (:func:`tasks_of`, :func:`sources_for`), so one
archive that holds the files of several tasks (Karpathy's caption archive serves both
retrieval tasks) is fetched once, and a task added to ``unify.tasks`` finds its sources
by its files.

Every URL is the one the dataset's own documentation gives; ``page`` cites that page. No
release publishes sha256 sums, so ``sha256`` and ``size`` are ``None`` until someone
checks them: ``unify download`` records what it fetched (``<raw>/.vl12/downloads.json``)
and prints it, and ``unify doctor`` compares later reads against that record. SNLI-VE has
no download of its own: it is ``built`` from its parts (SNLI 1.0 and the Flickr30k split
lists, ``unify.snli_ve_build``). A source that needs a licence or a sign-in would have no
URL and ``steps`` saying exactly what to do (none of the twelve does today).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

from unify.tasks import UNIVERSES, TaskSpec, all_tasks

__all__ = [
    "FEATURE_SOURCES",
    "SOURCES",
    "Member",
    "ReadAs",
    "Source",
    "raw_paths",
    "source_of",
    "sources_for",
    "tasks_of",
]

#: ``built``: made by ``builder`` from the files of ``parts`` (SNLI-VE).
ArchiveKind = Literal["zip", "tar.gz", "file", "built"]
#: How ``unify doctor`` reads a file through, with the reader the converter uses:
#: ``json`` whole (orjson), ``json-stream`` streamed object items (ijson, bounded memory),
#: ``jsonl`` JSON Lines (gzip or not), ``pickle`` the restricted unpickler, ``text`` a
#: plain list (only hashed).
ReadAs = Literal["json", "json-stream", "jsonl", "pickle", "text"]


@dataclass(frozen=True)
class Member:
    """One file of a source, and where it goes in the raw folder."""

    #: Its path inside the archive ("" for a source of kind ``file``: the download itself).
    inside: str
    #: Its raw-layout path: ``<task folder>/<release file name>``.
    dest: str
    read_as: ReadAs
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Source:
    """One download (or one manual step) and the raw files it provides."""

    name: str
    page: str  # the dataset's own page that documents ``url`` (or the manual step)
    url: str | None  # None: manual only (``steps`` say how)
    kind: ArchiveKind
    members: tuple[Member, ...]
    sha256: str | None = None
    size: int | None = None
    steps: tuple[str, ...] = field(default=())
    #: For kind ``built``: the sources of its inputs (their members' ``dest`` are paths
    #: under ``<raw>/.vl12/``, removed once the build succeeded) and the builder,
    #: ``"module:function"`` called with the input paths by dest and the output paths by
    #: dest, imported on demand.
    parts: tuple[Source, ...] = field(default=())
    builder: str | None = None

    @property
    def filename(self) -> str:
        """The file name of the download (what ``--from DIR`` looks for)."""
        if self.url is None:
            return ""
        return posixpath.basename(self.url.split("?", 1)[0])

    @property
    def manual(self) -> bool:
        return self.url is None and self.builder is None


def _zip(name: str, page: str, url: str, members: Iterable[Member]) -> Source:
    return Source(name, page, url, "zip", tuple(members))


def _file(name: str, page: str, url: str, dest: str, read_as: ReadAs) -> Source:
    return Source(name, page, url, "file", (Member("", dest, read_as),))


_VQA_PAGE = "https://visualqa.org/download.html"
_VQA_URL = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa/{}.zip"
_GQA_PAGE = "https://cs.stanford.edu/people/dorarad/gqa/download.html"
_VG_PAGE = "https://homes.cs.washington.edu/~ranjay/visualgenome/api.html"
_VG_URL = "https://homes.cs.washington.edu/~ranjay/visualgenome/data/dataset/{}.zip"
_KARPATHY_PAGE = "https://cs.stanford.edu/people/karpathy/deepimagesent/"
_COCO_PAGE = "https://cocodataset.org/#download"
_REFER_PAGE = "https://github.com/lichengunc/refer#download"
_REFER_URL = "https://bvisionweb1.cs.unc.edu/licheng/referit/data/{}.zip"
_V7W_PAGE = (
    "https://github.com/yukezhu/visual7w-toolkit (datasets/visual7w-pointing/download_dataset.sh)"
)
_GUESSWHAT_PAGE = "https://github.com/GuessWhatGame/guesswhat#download"
_NLVR2_PAGE = "https://github.com/lil-lab/nlvr/tree/master/nlvr2"
_NLVR2_URL = "https://raw.githubusercontent.com/lil-lab/nlvr/master/nlvr2/data/{}"
_SNLI_VE_PAGE = "https://github.com/necla-ml/SNLI-VE"

_GQA_FILES = (
    "train_balanced_questions.json",
    "val_balanced_questions.json",
    "testdev_balanced_questions.json",
    "val_all_questions.json",
    "testdev_all_questions.json",
    "submission_all_questions.json",
)

#: Every declared source. Order is display order only.
SOURCES: tuple[Source, ...] = (
    *(
        _zip(
            f"vqa2-{what.lower()}-{split.lower()}",
            _VQA_PAGE,
            _VQA_URL.format(f"v2_{what}_{split}_mscoco"),
            (
                Member(
                    (
                        f"v2_OpenEnded_mscoco_{subset}_questions.json"
                        if what == "Questions"
                        else f"v2_mscoco_{subset}_annotations.json"
                    ),
                    f"vqa2/{'v2_OpenEnded_mscoco_' if what == 'Questions' else 'v2_mscoco_'}"
                    f"{subset}_{what.lower()}.json",
                    "json",
                )
                for subset in subsets
            ),
        )
        for what, split, subsets in (
            ("Questions", "Train", ("train2014",)),
            ("Questions", "Val", ("val2014",)),
            ("Questions", "Test", ("test2015", "test-dev2015")),
            ("Annotations", "Train", ("train2014",)),
            ("Annotations", "Val", ("val2014",)),
        )
    ),
    _zip(
        "gqa-questions",
        _GQA_PAGE,
        "https://downloads.cs.stanford.edu/nlp/data/gqa/questions1.2.zip",
        (Member(name, f"gqa/{name}", "json-stream") for name in _GQA_FILES),
    ),
    *(
        _zip(
            f"vg-{stem.replace('_', '-')}",
            _VG_PAGE,
            _VG_URL.format(f"{stem}.json"),
            (Member(f"{stem}.json", f"vgqa/{stem}.json", "json"),),
        )
        for stem in ("question_answers", "image_data")
    ),
    _zip(
        "karpathy-captions",
        _KARPATHY_PAGE,
        "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip",
        (
            Member("dataset_coco.json", "coco_retrieval/dataset_coco.json", "json"),
            Member("dataset_flickr30k.json", "flickr30k_retrieval/dataset_flickr30k.json", "json"),
        ),
    ),
    _zip(
        "coco-annotations-2014",
        _COCO_PAGE,
        "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
        (
            Member(
                f"annotations/{kind}_{subset}.json", f"coco_retrieval/{kind}_{subset}.json", "json"
            )
            for kind in ("captions", "instances")
            for subset in ("train2014", "val2014")
        ),
    ),
    *(
        _zip(
            f"refer-{archive}",
            _REFER_PAGE,
            _REFER_URL.format(archive),
            (
                Member(f"{archive}/{refs}", f"{folder}/{refs}", "pickle"),
                Member(f"{archive}/instances.json", f"{folder}/instances.json", "json"),
            ),
        )
        for archive, folder, refs in (
            ("refcoco", "refcoco", "refs(unc).p"),
            ("refcoco+", "refcoco_plus", "refs(unc).p"),
            ("refcocog", "refcocog", "refs(umd).p"),
        )
    ),
    _zip(
        "visual7w-pointing",
        _V7W_PAGE,
        "http://ai.stanford.edu/~yukez/papers/resources/dataset_v7w_pointing.zip",
        (Member("dataset_v7w_pointing.json", "visual7w/dataset_v7w_pointing.json", "json"),),
    ),
    *(
        _file(
            f"guesswhat-{split}",
            _GUESSWHAT_PAGE,
            f"https://florian-strub.com/guesswhat.{split}.jsonl.gz",
            f"guesswhat/guesswhat.{split}.jsonl.gz",
            "jsonl",
        )
        for split in ("train", "valid", "test")
    ),
    *(
        _file(
            f"nlvr2-{split}",
            _NLVR2_PAGE,
            _NLVR2_URL.format(f"{split}.json"),
            f"nlvr2/{split}.json",
            "jsonl",
        )
        for split in ("train", "dev", "test1", "test2")
    ),
    Source(
        "snli-ve",
        _SNLI_VE_PAGE,
        None,
        "built",
        tuple(
            Member(f"snli_ve_{split}.jsonl", f"snli_ve/snli_ve_{split}.jsonl", "jsonl")
            for split in ("train", "dev", "test")
        ),
        parts=(
            _zip(
                "snli-1.0",
                "https://nlp.stanford.edu/projects/snli/ (and the SNLI-VE README)",
                "https://nlp.stanford.edu/projects/snli/snli_1.0.zip",
                (
                    Member(
                        f"snli_1.0/snli_1.0_{s}.jsonl", f".vl12/snli_ve/snli_1.0_{s}.jsonl", "jsonl"
                    )
                    for s in ("train", "dev", "test")
                ),
            ),
            *(
                _file(
                    f"snli-ve-{stem.replace('_', '-')}",
                    _SNLI_VE_PAGE,
                    f"https://raw.githubusercontent.com/necla-ml/SNLI-VE/master/data/{stem}.lst",
                    f".vl12/snli_ve/{stem}.lst",
                    "text",
                )
                for stem in ("flickr30k_train_val", "flickr30k_test")
            ),
        ),
        builder="unify.snli_ve_build:build",
        steps=(
            "SNLI-VE has no direct download: `unify download snli_ve` builds it from SNLI "
            "1.0 and the Flickr30k split lists as its authors' generator does.",
            "If a part cannot be fetched: download SNLI 1.0 "
            "(https://nlp.stanford.edu/projects/snli/snli_1.0.zip) and the lists "
            "flickr30k_train_val.lst and flickr30k_test.lst from "
            "https://github.com/necla-ml/SNLI-VE into one folder, then run "
            "`unify download snli_ve --raw <raw> --from <folder>`.",
            "Or build it with the authors' snli_ve_generator.py (its README) and copy "
            "snli_ve_train.jsonl, snli_ve_dev.jsonl and snli_ve_test.jsonl into "
            "<raw>/snli_ve/ (or pass their folder as --from).",
            "Check the result with `unify doctor snli_ve --raw <raw>`.",
        ),
    ),
)


#: Optional region features, by image universe, placed where ``unify features import``
#: reads them (``<raw>/features/<universe>.tsv``). Only COCO's bottom-up-attention TSV is
#: published as a file; 12-in-1 itself shipped LMDBs of its own extraction.
FEATURE_SOURCES: Mapping[str, Source] = MappingProxyType(
    {
        "coco": _zip(
            "features-coco",
            "https://github.com/peteanderson80/bottom-up-attention#pretrained-features",
            "https://imagecaption.blob.core.windows.net/imagecaption/trainval_36.zip",
            (
                Member(
                    "trainval_36/trainval_resnet101_faster_rcnn_genome_36.tsv",
                    "features/coco.tsv",
                    "text",
                ),
            ),
        ),
    }
)
assert set(FEATURE_SOURCES) <= set(UNIVERSES)


def raw_paths(spec: TaskSpec) -> dict[str, bool]:
    """The raw-layout paths a task reads (every folder name it answers to), and whether
    each is required: from the converter's declared ``raw_files``."""
    conv = spec.converter_class()
    return {
        f"{folder}/{rf.name}": rf.required
        for folder in (spec.name, *spec.aliases)
        for rf in conv.raw_files
    }


@cache
def _path_index() -> Mapping[str, tuple[tuple[str, bool], ...]]:
    index: dict[str, list[tuple[str, bool]]] = {}
    for spec in all_tasks().values():
        for path, required in raw_paths(spec).items():
            index.setdefault(path, []).append((spec.name, required))
    return {k: tuple(v) for k, v in index.items()}


def tasks_of(source: Source) -> tuple[str, ...]:
    """The tasks that read any member of ``source`` (derived, never declared)."""
    index = _path_index()
    names = {task for m in source.members for task, _ in index.get(m.dest, ())}
    return tuple(t for t in all_tasks() if t in names)


def sources_for(
    tasks: Iterable[str], optional: bool = False, sources: tuple[Source, ...] = SOURCES
) -> tuple[Source, ...]:
    """The sources that provide the required files of ``tasks`` (and, with ``optional``,
    their optional files too), each once, in declaration order."""
    wanted = set(tasks)
    index = _path_index()
    chosen = []
    for source in sources:
        for member in source.members:
            if any(
                task in wanted and (required or optional)
                for task, required in index.get(member.dest, ())
            ):
                chosen.append(source)
                break
    return tuple(chosen)


def source_of(dest: str, sources: tuple[Source, ...] = SOURCES) -> tuple[Source, Member] | None:
    """The source and member that provide the raw-layout path ``dest``, if any."""
    for source in sources:
        for member in source.members:
            if member.dest == dest:
                return source, member
    return None


def describe(source: Source) -> dict[str, Any]:
    """A JSON-ready record of a source (``unify download --list --json``, docs)."""
    return {
        "name": source.name,
        "page": source.page,
        "url": source.url,
        "kind": source.kind,
        "sha256": source.sha256,
        "size": source.size,
        "tasks": list(tasks_of(source)),
        "members": [
            {"inside": m.inside, "dest": m.dest, "sha256": m.sha256, "size": m.size}
            for m in source.members
        ],
        "steps": list(source.steps),
    }
