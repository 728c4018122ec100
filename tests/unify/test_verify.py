"""Damaged unified files: one line naming the file, the HDF5 path and the damage, exit 1.

Every case damages a copy of the tiny build the way a disk, a copy cut short or a hand
edit would, and runs the commands that read what was damaged: `unify info`, `unify leaks`
and `unify verify` (which read the whole file's structure, keys and image rows) and
`evalserver score` on a task whose ground truth the damage touches. Each must exit 1 with
one line (verify: one line a problem) and no traceback; nothing may answer as if the file
were sound (swapped keys used to report leaks, a negative image row to wrap around to
another image).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner, Result

from evalserver.cli import main as evalserver_main
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from tests.unify.damage import change_string_byte, flip_in_chunk, truncate
from tests.unify.reader_fixtures import featured_h5  # noqa: F401 (fixture)
from unify import checksums
from unify.cli import main as unify_main
from unify.errors import SchemaError
from unify.reader import UnifiedFile
from unify.schema import SCHEMA_VERSION
from unify.verify import verify_file

SCORED = ("vqa2", "gqa", "nlvr2", "flickr30k_retrieval")


def invoke(command: object, *args: str | Path) -> Result:
    result = CliRunner().invoke(command, [str(a) for a in args])  # type: ignore[arg-type]
    # Exit codes come from SystemExit; anything else escaped as a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {result.exception!r}"
    )
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def predictions(tiny_h5: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A valid (chance) submission per scored task, made from the undamaged file."""
    folder = tmp_path_factory.mktemp("predictions")
    out = {}
    for task in SCORED:
        out[task] = folder / f"{task}.json"
        out[task].write_bytes(chance_submission(load_groundtruth(tiny_h5, task)))
    return out


# ------------------------------------------------------------------------------ damage
def _edit(code: Callable[[h5py.File], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            code(f)

    return apply


def _swap_keys(f: h5py.File) -> None:
    key = f["images/key"]
    a, b = key[10], key[11]
    key[10], key[11] = b, a


def _offsets_decrease(f: h5py.File) -> None:
    offsets = f["tasks/vqa2/minval/answers/offsets"]
    offsets[5] = offsets[4] - 1


def _offsets_overrun(f: h5py.File) -> None:
    offsets = f["tasks/gqa/testdev/valid_answers/offsets"]
    offsets[-1] = offsets[-1] + 5


def _retype_image(f: h5py.File) -> None:
    image = f["tasks/nlvr2/test1/image"][()]
    del f["tasks/nlvr2/test1/image"]
    f["tasks/nlvr2/test1"].create_dataset("image", data=image.astype(np.float64))


def _raise_last_key(path: Path) -> None:
    """Change one digit of the last image key upwards: still sorted and unique, so only
    its checksum notices."""
    with h5py.File(path, "r") as f:
        key = f["images/key"]
        last = len(key) - 1
        value = key[last].decode()
    position = max(i for i, ch in enumerate(value) if ch.isdigit() and ch < "9")
    change_string_byte(path, "images/key", last, position, chr(ord(value[position]) + 1).encode())


@dataclass(frozen=True)
class Damage:
    name: str
    apply: Callable[[Path], None]
    where: str  # the HDF5 path the message names ("" when the file cannot be opened)
    says: str  # a regex the message matches
    score: str  # the task scored against the damaged file


CASES = [
    Damage("missing group", _edit(lambda f: f.__delitem__("links")), "/links", "missing", "vqa2"),
    Damage(
        "missing dataset",
        _edit(lambda f: f.__delitem__("tasks/gqa/testdev/question")),
        "/tasks/gqa/testdev/question",
        "missing dataset",
        "gqa",
    ),
    Damage(
        "missing root attribute",
        _edit(lambda f: f.attrs.__delitem__("fingerprint")),
        "/@fingerprint",
        "missing attribute",
        "nlvr2",
    ),
    Damage(
        "missing task attribute",
        _edit(lambda f: f["tasks/vqa2"].attrs.__delitem__("metric")),
        "/tasks/vqa2@metric",
        "missing attribute",
        "vqa2",
    ),
    Damage(
        "missing split attribute",
        _edit(lambda f: f["tasks/nlvr2/test1"].attrs.__delitem__("num_examples")),
        "/tasks/nlvr2/test1@num_examples",
        "missing attribute",
        "nlvr2",
    ),
    Damage(
        "bad JSON in a root attribute",
        _edit(lambda f: f.attrs.__setitem__("build_options", '{"tasks": [')),
        "/@build_options",
        "not valid JSON",
        "vqa2",
    ),
    Damage(
        "bad JSON in a split attribute",
        _edit(lambda f: f["tasks/flickr30k_retrieval/test"].attrs.__setitem__("split_arrays", "[")),
        "/tasks/flickr30k_retrieval/test@split_arrays",
        "not valid JSON",
        "flickr30k_retrieval",
    ),
    Damage(
        "two image keys swapped",
        _edit(_swap_keys),
        "/images/key",
        "not sorted: row 10 .* comes before row 11",
        "flickr30k_retrieval",
    ),
    Damage(
        "negative image row",
        _edit(lambda f: f["tasks/flickr30k_retrieval/test/image"].__setitem__(3, -1)),
        "/tasks/flickr30k_retrieval/test/image",
        r"outside /images \(0\.\.\d+\), e\.g\. row 3: -1",
        "flickr30k_retrieval",
    ),
    Damage(
        "image row past the end",
        _edit(lambda f: f["tasks/nlvr2/test1/image"].__setitem__(7, [0, 10**6])),
        "/tasks/nlvr2/test1/image",
        r"outside /images .* row 7: \[0, 1000000\]",
        "nlvr2",
    ),
    Damage(
        "offsets that decrease",
        _edit(_offsets_decrease),
        "/tasks/vqa2/minval/answers/offsets",
        "offsets decrease at row 4",
        "vqa2",
    ),
    Damage(
        "offsets past the values",
        _edit(_offsets_overrun),
        "/tasks/gqa/testdev/valid_answers/offsets",
        "beyond the .* values",
        "gqa",
    ),
    Damage(
        "num_examples that disagrees with the columns",
        _edit(lambda f: f["tasks/gqa/testdev"].attrs.__setitem__("num_examples", 7)),
        "/tasks/gqa/testdev",
        "num_examples=7 but 400 ids",
        "gqa",
    ),
    Damage(
        "a retyped column",
        _edit(_retype_image),
        "/tasks/nlvr2/test1/image",
        "expected int32",
        "nlvr2",
    ),
    Damage(
        "a flipped byte in a compressed chunk",
        lambda p: flip_in_chunk(p, "tasks/flickr30k_retrieval/test/image"),
        "/tasks/flickr30k_retrieval/test/image",
        "cannot be read",
        "flickr30k_retrieval",
    ),
    Damage(
        "a flipped byte among string references",
        lambda p: flip_in_chunk(p, "images/key", 0.02),
        "/images/key",
        "cannot be read|not sorted|differs from its checksum",
        "flickr30k_retrieval",
    ),
    Damage(
        "a changed byte in a string (sorted and unique still)",
        _raise_last_key,
        "/images/key",
        "differs from its checksum",
        "flickr30k_retrieval",
    ),
    Damage(
        "a file cut short",
        lambda p: truncate(p, 0.6),
        "",
        "cannot open as HDF5",
        "vqa2",
    ),
]


def _damaged(tiny_h5: Path, tmp_path: Path, damage: Damage) -> Path:
    path = tmp_path / "damaged.h5"
    shutil.copyfile(tiny_h5, path)
    damage.apply(path)
    return path


def _one_line(text: str, path: Path, damage: Damage) -> None:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert str(path) in lines[0] and damage.where in lines[0], lines[0]
    assert re.search(damage.says, lines[0]), lines[0]


@pytest.mark.parametrize("damage", CASES, ids=[d.name for d in CASES])
def test_every_command_refuses_a_damaged_file_in_one_line(
    damage: Damage, tiny_h5: Path, tmp_path: Path, predictions: dict[str, Path]
) -> None:
    path = _damaged(tiny_h5, tmp_path, damage)
    for command in ("info", "leaks"):
        result = invoke(unify_main, command, path)
        assert result.exit_code == 1, (command, result.output)
        _one_line(result.stderr, path, damage)
        assert result.stderr.startswith(f"error: {path}: ")
    result = invoke(
        evalserver_main, "score", predictions[damage.score], "--data", path, "--task", damage.score
    )
    assert result.exit_code == 1, result.output
    _one_line(result.stderr, path, damage)
    assert result.stderr.startswith(f"{path}: cannot read the ground truth of {damage.score}")
    # verify lists every problem, one per line, then its verdict.
    result = invoke(unify_main, "verify", path)
    assert result.exit_code == 1, result.output
    *problems, verdict = result.stdout.strip().splitlines()
    assert problems and all(line.startswith(f"{path}: /") for line in problems)
    assert any(damage.where in line and re.search(damage.says, line) for line in problems)
    assert verdict.startswith(f"{path}: damaged, {len(problems)} problem(s)")


STRING_FLIPS = [
    ("tasks/gqa/testdev/answer", "gqa"),
    ("tasks/vqa2/minval/answers/values", "vqa2"),
]


@pytest.mark.parametrize(("dataset", "task"), STRING_FLIPS, ids=[t for _, t in STRING_FLIPS])
def test_a_changed_answer_is_caught_by_its_checksum(
    dataset: str, task: str, tiny_h5: Path, tmp_path: Path, predictions: dict[str, Path]
) -> None:
    """A byte changed in the heap of a string column is still valid text: only the checksum
    tells, and a scorer that read it would score against the wrong answer."""
    path = tmp_path / "flipped.h5"
    shutil.copyfile(tiny_h5, path)
    change_string_byte(path, dataset, 0, 0, b"Z")
    result = invoke(evalserver_main, "score", predictions[task], "--data", path, "--task", task)
    assert result.exit_code == 1, result.output
    damage = Damage("", lambda p: None, f"/{dataset}", "differs from its checksum", task)
    _one_line(result.stderr, path, damage)
    result = invoke(unify_main, "verify", path, "--json")
    assert result.exit_code == 1
    record = json.loads(result.stdout)
    assert record["ok"] is False and record["checksums"] == "damaged"
    assert [p["path"] for p in record["problems"]] == [f"/{dataset}"]


def test_a_sound_build_verifies_clean(tiny_h5: Path) -> None:
    result = invoke(unify_main, "verify", tiny_h5)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == [
        f"{tiny_h5}: ok: schema {SCHEMA_VERSION}, {_datasets(tiny_h5)} datasets; "
        "every checksum matches"
    ]
    record = json.loads(invoke(unify_main, "verify", tiny_h5, "--json").stdout)
    assert record["ok"] is True and record["checksums"] == "match" and record["problems"] == []


def _datasets(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return len(json.loads(f.attrs[checksums.ROOT_ATTR])["datasets"])


def test_every_dataset_has_the_checksum_of_what_it_holds(tiny_h5: Path) -> None:
    """The build stamps values as it writes them; a read-back gives the same digest."""
    with h5py.File(tiny_h5, "r") as f:
        listed = json.loads(f.attrs[checksums.ROOT_ATTR])["datasets"]
        found: list[str] = []
        f.visititems(lambda n, o: found.append("/" + n) if isinstance(o, h5py.Dataset) else None)
        assert sorted(found) == listed
        for path in listed:
            assert f[path].attrs[checksums.ATTR] == checksums.digest_dataset(f[path]), path


def test_digest_covers_dtype_and_shape() -> None:
    ints = np.arange(6, dtype=np.int32)
    base = checksums.digest_values(ints, ints.dtype, ints.shape)
    assert checksums.digest_values(ints.astype(np.int64), np.dtype(np.int64), (6,)) != base
    assert checksums.digest_values(ints.reshape(3, 2), ints.dtype, (3, 2)) != base
    assert checksums.digest_values(ints.astype(">i4"), np.dtype(">i4"), (6,)) == base
    text = np.array(["a", "bc", ""], dtype=object)
    strings = checksums.digest_values(text, text.dtype, (3,))
    joined = np.array(["a\0bc", ""], dtype=object)
    assert checksums.digest_values(joined, joined.dtype, (2,)) != strings
    as_bytes = np.array([b"a", b"bc", b""], dtype=object)
    assert checksums.digest_values(as_bytes, as_bytes.dtype, (3,)) == strings


def test_a_file_built_before_checksums_is_checked_without_them(
    tiny_h5: Path, tmp_path: Path
) -> None:
    path = tmp_path / "old.h5"
    shutil.copyfile(tiny_h5, path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = "1.1"
        del f.attrs[checksums.ROOT_ATTR]
    result = invoke(unify_main, "verify", path)
    assert result.exit_code == 0, result.output
    assert "no checksums to compare (built before checksums)" in result.stdout
    assert invoke(unify_main, "info", path).exit_code == 0
    # The same file claiming 1.2 has lost its checksums: damaged.
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = "1.2"
        f["tasks/vqa2/minval/image"][0] = -1
    result = invoke(unify_main, "verify", path)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"{path}: /@checksums: missing attribute" in lines
    assert any("/tasks/vqa2/minval/image: 1 row(s) outside /images" in line for line in lines)


def test_verify_usage_and_unreadable_paths(tmp_path: Path) -> None:
    assert invoke(unify_main, "verify").exit_code == 2
    result = invoke(unify_main, "verify", tmp_path / "none.h5")
    assert result.exit_code == 1 and "none.h5" in result.stderr
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    result = invoke(unify_main, "verify", junk)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{junk}: /: cannot open as HDF5")


def test_the_reader_never_wraps_a_negative_image_row(tiny_h5: Path, tmp_path: Path) -> None:
    path = tmp_path / "wrap.h5"
    shutil.copyfile(tiny_h5, path)
    with h5py.File(path, "r+") as f:
        f["tasks/snli_ve/test/image"][2] = -1
    with UnifiedFile(path) as uf:
        # Read per example: example 2 is refused, its neighbours are fine.
        view = uf.split("snli_ve", "test", cache=False)
        assert view.example(1)["image"].startswith("flickr:")
        with pytest.raises(SchemaError, match=r"snli_ve/test/image: .* -1"):
            view.example(2)
        # Cached: the whole column is checked when it is loaded.
        with pytest.raises(SchemaError, match=r"snli_ve/test/image: .* row 2: -1"):
            uf.split("snli_ve", "test").example(0)
        with pytest.raises(SchemaError, match="row 2: -1"):
            list(uf.split("snli_ve", "test"))


def test_feature_import_keeps_the_checksums_true(featured_h5: Path) -> None:  # noqa: F811
    report = verify_file(featured_h5)
    assert report.ok, report.problems
    assert report.checksums == "match"
    with h5py.File(featured_h5, "r") as f:
        listed = json.loads(f.attrs[checksums.ROOT_ATTR])["datasets"]
    assert "/features/bottomup_coco/features" in listed


def test_feature_import_refuses_a_damaged_file(
    tiny_h5: Path, tiny_raw: Path, tmp_path: Path
) -> None:
    path = _damaged(tiny_h5, tmp_path, CASES[7])  # two image keys swapped
    before = path.read_bytes()
    tsv = tiny_raw / "features" / "coco.tsv"
    result = invoke(
        unify_main, "features", "import", path, tsv, "--name", "x", "--universe", "coco"
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {path}: /images/key: not sorted: row 10 "
        + result.stderr.split("row 10 ", 1)[1].strip()
    )
    assert path.read_bytes() == before


def test_a_damaged_feature_set_is_refused(featured_h5: Path, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "featured.h5"
    shutil.copyfile(featured_h5, path)
    with h5py.File(path, "r+") as f:
        group = f["features/bottomup_coco"]
        first = int(group["image"][0])
        group["row"][first] = 3  # the image now claims another image's regions
    with UnifiedFile(path) as uf, pytest.raises(SchemaError) as caught:
        uf.feature_set("bottomup_coco")
    assert str(caught.value) == (
        f"{path}: /features/bottomup_coco/row: does not point back at the rows of image"
    )
    # Region features are read straight from the file: only their checksum sees a flip
    # (near the chunk's start: the rest of a first chunk may lie past the dataset's rows).
    shutil.copyfile(featured_h5, path)
    flip_in_chunk(path, "features/bottomup_coco/features", 0.001)
    report = verify_file(path)
    assert [(p.path, p.what.split(":")[0]) for p in report.problems] == [
        ("/features/bottomup_coco/features", "content differs from its checksum")
    ]


def test_the_installed_command_prints_one_line(tiny_h5: Path, tmp_path: Path) -> None:
    """Outside click's test runner too: the real entry point, a fresh interpreter."""
    import subprocess
    import sys

    path = _damaged(tiny_h5, tmp_path, CASES[8])  # a negative image row
    proc = subprocess.run(
        [sys.executable, "-m", "unify.cli", "info", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: {path}: /tasks/flickr30k_retrieval/test/image: 1 row(s) outside /images "
        f"(0..3039), e.g. row 3: -1"
    ]


def _retype_every_bbox(f: h5py.File) -> None:
    """Consistently, checksums restamped: a file written that way, not a damaged one."""
    for split in f["tasks/refcoco"].values():
        boxes = split["bbox"][()]
        del split["bbox"]
        split.create_dataset("bbox", data=boxes.astype(np.float32))
        checksums.restamp(split["bbox"])
    checksums.seal(f)


def _label_past_the_candidates(f: h5py.File) -> None:
    label = f["tasks/visual7w/test/label"]
    label[0] = 9
    checksums.restamp(label)


@pytest.mark.parametrize(
    ("edit", "task", "says"),
    [
        (_retype_every_bbox, "refcoco", "refcoco/val/bbox is float32, not float64"),
        (_label_past_the_candidates, "visual7w", "label must index the candidates"),
    ],
    ids=["bbox float32 everywhere", "visual7w label past its candidates"],
)
def test_a_ground_truth_the_metric_refuses_is_one_line(
    edit: Callable[[h5py.File], None], task: str, says: str, tiny_h5: Path, tmp_path: Path
) -> None:
    """Files whose structure holds but whose values a scorer cannot use (the metric's own
    checks raise): one line, exit 1, not a traceback."""
    predictions = tmp_path / "p.json"
    predictions.write_bytes(chance_submission(load_groundtruth(tiny_h5, task)))
    path = tmp_path / "edited.h5"
    shutil.copyfile(tiny_h5, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    result = invoke(evalserver_main, "score", predictions, "--data", path, "--task", task)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: cannot read the ground truth")
    assert f"the ground truth is unusable: {says}" in lines[0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda o: o.__setitem__(1, o[2] + 1), "offsets decrease at row 1"),
        (lambda o: o.__setitem__(-1, o[-1] - 1), "offsets end at"),
    ],
)
def test_feature_offsets_are_checked_on_open(
    featured_h5: Path,  # noqa: F811
    tmp_path: Path,
    edit: Callable[[np.ndarray], None],
    message: str,
) -> None:
    """Commands that never load region features (info, leaks, score) still refuse feature
    offsets that go backwards or miss the boxes' end: the long fuzz run found them accepted."""
    path = tmp_path / "featured.h5"
    shutil.copyfile(featured_h5, path)
    with h5py.File(path, "r+") as f:
        offsets = f["features/bottomup_coco/offsets"][()]
        edit(offsets)
        f["features/bottomup_coco/offsets"][...] = offsets
    result = invoke(unify_main, "info", path)
    assert result.exit_code == 1
    assert "/features/bottomup_coco/offsets" in result.output and message in result.output
