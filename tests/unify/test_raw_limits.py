"""Resource bounds of the raw parsers (``unify build --max-*``): nesting depth on every JSON
path and in pickles, inflated bytes of gzip files, line length, pickle expansion. Each
refusal is one line naming the file and the option that raises the limit; nothing written.
"""

from __future__ import annotations

import gzip
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unify import leakage_trees as trees
from tests.unify.refusals import accept, edit_json, edit_jsonl, refuse
from unify.cli import main
from unify.rawio import DepthGuard
from unify.sample.refer_format import ref_record, write_instances

DEEP = "@deep@"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def deepen(path: Path, depth: int) -> None:
    """Replace the string DEEP in a (gzip) JSON text by ``depth`` nested arrays (too deep
    for the ``json`` module to write)."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    data = data.replace(json.dumps(DEEP).encode(), b"[" * depth + b"1" + b"]" * depth)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def limit_line(line: str, path: Path, detail: str, option: str, value: object) -> None:
    assert line == (
        f"error: {path}: refused: {detail} (limit {option} {value}; raise it if the file is "
        "genuine)"
    ), line


# ------------------------------------------------------------------------------ JSON depth


@pytest.fixture
def gqa(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.gqa(raw, [("01", "1"), ("2", "2")], [("3", "3")], [("4", "4"), ("5", "n5")])
    return raw


def test_streamed_json_deeper_than_the_default(gqa: Path) -> None:
    """The streaming parser's memory grows with the square of the depth: scanned first."""
    path = gqa / "gqa" / "train_balanced_questions.json"
    edit_json(path, lambda d: d["2"].update(annotations=DEEP))
    deepen(path, 1100)
    limit_line(refuse(gqa, "gqa"), path, "nested deeper than 1024 levels", "--max-depth", 1024)


def test_streamed_json_deeper_than_the_option(gqa: Path) -> None:
    path = gqa / "gqa" / "testdev_balanced_questions.json"
    accept(gqa, "gqa", "--max-depth", "6")  # the release's own records nest 5 levels
    edit_json(path, lambda d: d["4"].update(annotations={"a": nested(4)}))
    limit_line(
        refuse(gqa, "gqa", "--max-depth", "6"),
        path,
        "nested deeper than 6 levels",
        "--max-depth",
        6,
    )


@pytest.fixture
def vqa(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.vqa2(raw, [(1, 100), (2, 101)], [(3, 102), (4, 102), (5, 103)])
    return raw


def test_whole_file_json_deeper_than_its_parser_allows(vqa: Path) -> None:
    path = vqa / "vqa2" / "v2_OpenEnded_mscoco_val2014_questions.json"
    edit_json(path, lambda d: d.update(info=DEEP))
    deepen(path, 1030)
    limit_line(refuse(vqa, "vqa2"), path, "nested deeper than 1024 levels", "--max-depth", 1024)


def test_whole_file_json_deeper_than_the_option(vqa: Path) -> None:
    path = vqa / "vqa2" / "v2_OpenEnded_mscoco_train2014_questions.json"
    accept(vqa, "vqa2", "--max-depth", "5")  # annotations nest 5 levels
    edit_json(path, lambda d: d.update(info={"a": nested(5)}))
    limit_line(
        refuse(vqa, "vqa2", "--max-depth", "5"),
        path,
        "nested deeper than 5 levels",
        "--max-depth",
        5,
    )


@pytest.fixture
def nlvr(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.nlvr2(raw, ["train-1-0-0", "train-1-1-0"], ["dev-2-0-0"], ["test1-3-0-0"])
    return raw


def test_json_line_deeper_than_its_parser_allows(nlvr: Path) -> None:
    path = nlvr / "nlvr2" / "dev.json"
    edit_jsonl(path, 1, lambda r: r.update(validation=DEEP))
    deepen(path, 1030)
    limit_line(
        refuse(nlvr, "nlvr2"), path, "nested deeper than 1024 levels (line 1)", "--max-depth", 1024
    )


def test_json_line_deeper_than_the_option(nlvr: Path) -> None:
    path = nlvr / "nlvr2" / "train.json"
    accept(nlvr, "nlvr2", "--max-depth", "2")
    edit_jsonl(path, 2, lambda r: r.update(validation={"a": {"b": 1}}))
    limit_line(
        refuse(nlvr, "nlvr2", "--max-depth", "2"),
        path,
        "nested deeper than 2 levels (line 2)",
        "--max-depth",
        2,
    )


# ---------------------------------------------------------------------- gzip and JSON lines


@pytest.fixture
def gw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    trees.guesswhat(raw, [(1, 100, None)], [(2, 101, None)], [(3, 102, None)])
    return raw


def test_gzip_that_inflates_past_the_limit(gw: Path) -> None:
    path = gw / "guesswhat" / "guesswhat.train.jsonl.gz"
    game = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(game + b"\n" * (3 << 20)))  # 3 MiB of blank lines: 3 KiB
    assert path.stat().st_size < 10_000
    accept(gw, "guesswhat")
    limit_line(
        refuse(gw, "guesswhat", "--max-decompressed-bytes", "1M"),
        path,
        f"inflates to more than {1 << 20} bytes",
        "--max-decompressed-bytes",
        1 << 20,
    )


def test_gzip_line_that_never_ends(gw: Path) -> None:
    """A gzip file of one endless line is refused before the line is held whole."""
    path = gw / "guesswhat" / "guesswhat.test.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "' + b"a" * (5 << 20)))
    line = refuse(gw, "guesswhat", "--max-line-bytes", "2M")
    limit_line(line, path, f"line 1 is longer than {2 << 20} bytes", "--max-line-bytes", 2 << 20)


def test_json_line_longer_than_the_limit(nlvr: Path) -> None:
    path = nlvr / "nlvr2" / "dev.json"
    edit_jsonl(path, 1, lambda r: r.update(sentence="x" * 2000))
    accept(nlvr, "nlvr2")
    line = refuse(nlvr, "nlvr2", "--max-line-bytes", "1K")
    limit_line(line, path, "line 1 is longer than 1024 bytes", "--max-line-bytes", 1024)


# --------------------------------------------------------------------------------- pickles


def _refer(tmp_path: Path, refs: Any) -> Path:
    raw = tmp_path / "raw"
    write_instances(
        raw / "refcoco",
        [{"id": 100, "width": 640, "height": 480}],
        [{"id": 11, "image_id": 100, "category_id": 1, "bbox": [1, 2, 3, 4]}],
    )
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # the pickler recurses: deep test data needs room
    try:
        data = pickle.dumps(refs, protocol=2)
    finally:
        sys.setrecursionlimit(limit)
    (raw / "refcoco" / "refs(unc).p").write_bytes(data)
    return raw


def _ref(ref_id: int = 0, sent: Any = "man") -> dict[str, Any]:
    return ref_record(
        {
            "ref_id": ref_id,
            "ann_id": 11,
            "image_id": 100,
            "category_id": 1,
            "split": "train",
            "sentences": [{"sent_id": ref_id, "sent": sent}],
        }
    )


def test_pickle_of_shared_references(tmp_path: Path) -> None:
    """One ref referenced 20,000 times: a 40 KB pickle that stands for 20,000 refs."""
    raw = _refer(tmp_path, [_ref()] * 20_000)
    path = raw / "refcoco" / "refs(unc).p"
    line = refuse(raw, "refcoco")
    assert line.startswith(f"error: {path}: refused: its shared references expand to more than ")
    assert line.endswith("(limit --max-pickle-expansion 4; raise it if the file is genuine)")


def test_pickle_expansion_option(tmp_path: Path) -> None:
    raw = _refer(tmp_path, [_ref(0), _ref(1)])
    accept(raw, "refcoco")
    line = refuse(raw, "refcoco", "--max-pickle-expansion", "0.01")
    assert "(limit --max-pickle-expansion 0.01;" in line


def test_pickle_deeper_than_the_limit(tmp_path: Path) -> None:
    ref = _ref()
    ref["file_name"] = nested(1100)
    raw = _refer(tmp_path, [ref])
    path = raw / "refcoco" / "refs(unc).p"
    line = refuse(raw, "refcoco")
    limit_line(
        line, path, "nested deeper than 1024 levels (or it refers to itself)", "--max-depth", 1024
    )
    # instances.json nests 5 levels (segmentation polygons), the refs 5 (tokens).
    accept(_refer(tmp_path / "b", [_ref()]), "refcoco", "--max-depth", "5")
    deeper = _ref()
    deeper["file_name"] = nested(4)
    raw = _refer(tmp_path / "c", [deeper])
    line = refuse(raw, "refcoco", "--max-depth", "5")
    assert line.startswith(
        f"error: {raw / 'refcoco' / 'refs(unc).p'}: refused: nested deeper than 5"
    )


# --------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "args",
    [
        ("--max-depth", "0"),
        ("--max-depth", "1025"),
        ("--max-line-bytes", "lots"),
        ("--max-decompressed-bytes", "0"),
        ("--max-pickle-expansion", "0"),
    ],
)
def test_limit_options_are_checked(tmp_path: Path, args: tuple[str, str]) -> None:
    result = CliRunner().invoke(
        main, ["build", "nlvr2", "--raw", str(tmp_path), "--out", str(tmp_path / "o.h5"), *args]
    )
    assert result.exit_code == 2, result.stderr
    assert f"Invalid value for '{args[0]}'" in result.stderr


# ---------------------------------------------------------------------- the depth scanner

JSON = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ ax'),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\a', max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(value=JSON, step=st.integers(1, 23), margin=st.integers(-1, 1))
def test_depth_scan_is_exact(value: Any, step: int, margin: int) -> None:
    """Fed in chunks of any size, the scan refuses exactly the texts deeper than its limit,
    whatever brackets, quotes and backslashes the strings hold."""
    text = json.dumps(value).encode()
    limit = max(1, _depth(value) + margin)
    guard = DepthGuard(limit)
    ok = all(guard.feed(text[i : i + step]) for i in range(0, len(text), step))
    assert ok == (_depth(value) <= limit)
