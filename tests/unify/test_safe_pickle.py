"""The restricted unpickler: plain data only, no globals, Python-2 byte strings as UTF-8."""

from __future__ import annotations

import collections
import pickle
import pickletools
from pathlib import Path

import pytest

from unify.errors import LimitError, MalformedFileError
from unify.rawio import RawLimits
from unify.safe_pickle import UnsafePickleError, load_plain, loads_plain
from unify.sample.refer_format import dumps_py2

DATA = [{"ref_id": 0, "split": "testA", "box": [1.5, 2.0], "ok": True, "none": None, "t": (1, 2)}]


def _write(tmp_path: Path, data: bytes, name: str = "refs(unc).p") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_python3_pickles_of_plain_data_load_unchanged(tmp_path: Path, protocol: int) -> None:
    loaded = load_plain(_write(tmp_path, pickle.dumps(DATA, protocol=protocol)))
    assert loaded.value == DATA
    assert loaded.value[0]["t"] == (1, 2) and type(loaded.value[0]["t"]) is tuple
    assert loaded.decoding == "default"


def test_ascii_python2_byte_strings_load_with_the_default_decoding() -> None:
    data = dumps_py2(DATA, py2_strings=True)
    opcodes = {op.name for op, _, _ in pickletools.genops(data)}
    assert "SHORT_BINSTRING" in opcodes and "BINUNICODE" not in opcodes
    loaded = loads_plain(data, "refs(unc).p")
    assert loaded.decoding == "default"
    assert loaded.value == DATA
    assert all(type(k) is str for k in loaded.value[0])


def test_non_ascii_python2_byte_strings_are_decoded_as_utf8_not_latin1() -> None:
    data = dumps_py2([{"sent": "café à gauche", "tokens": ["café", "à"], "sent_id": 3}], True)
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)  # what a plain Python 3 load does with this file
    loaded = loads_plain(data, "refs(unc).p")
    assert loaded.decoding == "bytes-utf8"
    assert loaded.value == [{"sent": "café à gauche", "tokens": ["café", "à"], "sent_id": 3}]
    assert "cafÃ©" not in repr(loaded.value)  # what latin1 would have produced


def test_protocol0_python2_string_opcodes() -> None:
    # Python 2's cPickle.dump(obj, f) default (protocol 0): S'...' with escaped UTF-8 bytes.
    data = b"(lp0\n(dp1\nS'sent'\np2\nS'na\\xc3\\xafve'\np3\nsS'id'\np4\nI7\nsa."
    loaded = loads_plain(data, "x.p")
    assert loaded.value == [{"sent": "naïve", "id": 7}]
    assert loaded.decoding == "bytes-utf8"


def test_a_global_is_refused_and_never_called(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    path = _write(tmp_path, payload)
    with pytest.raises(UnsafePickleError, match=r"refs\(unc\)\.p: refused .*global os\.system"):
        load_plain(path)
    assert not marker.exists()


def test_a_class_instance_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, pickle.dumps([collections.OrderedDict(a=1)], protocol=2))
    with pytest.raises(UnsafePickleError, match=r"global collections\.OrderedDict"):
        load_plain(path)


def test_persistent_ids_and_non_plain_containers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafePickleError, match="persistent id"):
        loads_plain(b"\x80\x02]q\x00(K\x01P7\nq\x01e.", "p.p")  # protocol-0 PERSID inside
    with pytest.raises(UnsafePickleError, match=r"\[0\]\['x'\] is a set"):
        loads_plain(pickle.dumps([{"x": {1, 2}}], protocol=4), "p.p")


def test_truncated_and_empty_pickles_are_malformed_files(tmp_path: Path) -> None:
    data = dumps_py2(DATA, py2_strings=True)
    path = _write(tmp_path, data[: len(data) // 2])
    with pytest.raises(MalformedFileError, match=r"refs\(unc\)\.p: malformed file at byte \d+"):
        load_plain(path)
    with pytest.raises(MalformedFileError, match="truncated or empty"):
        load_plain(_write(tmp_path, b"", "empty.p"))
    with pytest.raises(MalformedFileError, match=r"bad\.p: malformed file"):
        load_plain(_write(tmp_path, b"not a pickle at all", "bad.p"))


def test_byte_strings_that_are_not_utf8_are_named() -> None:
    data = b"\x80\x02]q\x00}q\x01U\x04sentq\x02U\x02\xff\xfeq\x03sa."
    with pytest.raises(MalformedFileError, match=r"x\.p: .*\[0\]\['sent'\] is not UTF-8"):
        loads_plain(data, "x.p")


def test_keys_that_collide_once_decoded_and_self_references() -> None:
    with pytest.raises(MalformedFileError, match="key 'a' twice"):
        loads_plain(pickle.dumps({b"a": 1, "a": 2, "l": [b"x"]}, protocol=3), "k.p")
    looped: list = []
    looped.append(looped)
    with pytest.raises(MalformedFileError, match="refers to itself"):
        loads_plain(pickle.dumps(looped, protocol=2), "loop.p")


def test_bytes_values_of_python3_pickles_become_text() -> None:
    loaded = loads_plain(pickle.dumps({"raw": b"THE LADY"}, protocol=3), "p.p")
    assert loaded.value == {"raw": "THE LADY"} and loaded.decoding == "default"


def _shared(levels: int, width: int) -> list:
    """A list of ``width`` references to one list of ``width`` references to ... (``levels``
    deep): a pickle of a few kB that stands for ``width ** levels`` strings."""
    value: list = ["x"] * width
    for _ in range(levels - 1):
        value = [value] * width
    return value


def test_shared_references_are_counted_not_expanded() -> None:
    """The issue's bomb: under 10 kB of pickle, 10**12 elements once expanded. Refused by
    counting references level by level (it used to be serialised whole, GBs, and killed)."""
    data = pickle.dumps(_shared(4, 1000), protocol=2)
    assert len(data) < 10_000
    with pytest.raises(LimitError, match=r"--max-pickle-expansion 4\b") as err:
        loads_plain(data, "bomb.p")
    assert "its shared references expand to more than" in str(err.value)
    assert "bomb.p: refused" in str(err.value)


def test_sharing_within_the_budget_loads_and_the_budget_is_an_option() -> None:
    row = ["the", "man"]
    data = pickle.dumps([{"tokens": row}, {"tokens": row}], protocol=2)
    assert loads_plain(data, "p.p").value == [{"tokens": row}, {"tokens": row}]
    with pytest.raises(LimitError):
        loads_plain(data, "p.p", RawLimits(max_pickle_expansion=0.05))


def test_depth_is_bounded_by_the_option() -> None:
    deep: list = []
    for _ in range(20):
        deep = [deep]
    data = pickle.dumps(deep, protocol=2)
    assert loads_plain(data, "d.p", RawLimits(max_depth=21)).value == deep
    with pytest.raises(LimitError, match=r"nested deeper than 20 levels .*--max-depth 20"):
        loads_plain(data, "d.p", RawLimits(max_depth=20))


def test_a_cycle_is_named_as_such_within_any_limit() -> None:
    cyclic: dict = {"a": []}
    cyclic["a"].append(cyclic)
    data = pickle.dumps([cyclic], protocol=2)
    with pytest.raises(MalformedFileError, match="refers to itself"):
        loads_plain(data, "c.p", RawLimits(max_pickle_expansion=1000))
