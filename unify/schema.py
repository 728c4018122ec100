"""Names and constants of the unified HDF5 file; docs/schema.md is the prose contract."""

from __future__ import annotations

from typing import Final, Literal

SCHEMA_VERSION: Final = "1.3"
SCHEMA_MAJOR: Final = 1

Role = Literal["train", "eval", "extra"]
ROLES: Final = ("train", "eval", "extra")
TASK_GROUPS: Final = ("vqa", "retrieval", "refer", "verification")

IMAGES: Final = "images"
LINKS: Final = "links"
TASKS: Final = "tasks"
VOCAB: Final = "vocab"
FEATURES: Final = "features"
LEAKAGE: Final = "leakage"

#: A ragged field is a group holding this dataset plus value datasets.
OFFSETS: Final = "offsets"

#: Rows per chunk. Numbers are gzip-compressed; variable-length strings are not
#: (HDF5 filters would only compress the heap pointers, and every random read would
#: decompress a whole chunk for nothing).
NUMERIC_CHUNK_ROWS: Final = 65536
STRING_CHUNK_ROWS: Final = 16384
GZIP_LEVEL: Final = 4

#: Role of a split by its canonical name; everything not listed is evaluation.
TRAIN_SPLITS: Final = frozenset({"train", "trainval"})
MTEVAL_SPLIT: Final = "mteval"


def default_role(split: str) -> Role:
    """The canonical table's rule: train/trainval train, mteval extra, the rest eval."""
    if split in TRAIN_SPLITS:
        return "train"
    if split == MTEVAL_SPLIT:
        return "extra"
    return "eval"
