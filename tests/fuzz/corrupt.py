"""Hypothesis strategies that corrupt a valid file into a ``Corruption`` with its verdict.

Three families, for every text or pickle format:

- ``value``: walk the decoded document to a site (preferring paths that lead to a field
  with a rule) and replace, delete or duplicate what is there: wrong types, NUL and lone
  surrogates, huge, negative, fractional, NaN and infinite numbers, booleans as strings,
  invalid UTF-8, deep nesting, a sibling record's value (a duplicate id), a repeated or
  renamed key, an appended or removed element; in pickles also reference bombs, cycles
  and globals.
- ``bytes``: truncate, flip bits, insert NUL or junk, append junk, empty the file, add a
  BOM, CRLF line ends; for JSON Lines drop, repeat or blank lines; for gzip files the
  damage goes to the compressed bytes or to the content.
- ``special``: the whole document nested deeply, a gzip bomb (``.gz`` files), a pickle
  whose top level is a global.

The verdict (``rules``): a structured change is judged by the rules of the site (list
operations and keys by what they do to ids and records); a byte change by the strict
reference parser and, when it still parses, by the rules of every value that changed.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.codecs import GzipCodec, Invalid, JsonlCodec, PickleCodec
from tests.fuzz.rules import (
    DELETED,
    Context,
    FileRules,
    Verdict,
    either,
    judge_document,
    judge_dup_key,
    judge_key,
    judge_list_op,
    judge_value,
    reject,
)
from tests.fuzz.values import (
    BadUtf8,
    Deep,
    DupKey,
    NonFinite,
    PickleGlobal,
    RawToken,
    RefBomb,
    SelfRef,
)

#: The file a pickle global would create in the case's folder (the child's cwd).
MARKER = "pickle-ran-code.marker"
GiB = 1 << 30
#: The blank-line gzip bomb's size: enough to be an empty file thousands of times over.
WHITESPACE_BOMB = 32 << 20


@dataclass(frozen=True)
class Corruption:
    """One corrupted file: what was done, where, the new value, the verdict, the bytes."""

    op: str
    where: str
    detail: str
    verdict: Verdict
    data: bytes = field(repr=False, compare=False)
    heavy: bool = False  # a bomb: seconds to run

    def describe(self) -> str:
        return f"{self.op} at {self.where}: {self.detail}"


@dataclass
class FileModel:
    """A valid file to corrupt, with what its verdicts need."""

    name: str
    data: bytes
    codec: Any
    rules: FileRules | None
    docs: Callable[[str], Any] = lambda _: None  # sibling documents (by name glob)
    split_names: tuple[str, ...] = ()

    @cached_property
    def doc(self) -> Any:
        return self.codec.decode(self.data)

    @property
    def inner(self) -> Any:
        return self.codec.inner if isinstance(self.codec, GzipCodec) else self.codec

    @property
    def is_gzip(self) -> bool:
        return isinstance(self.codec, GzipCodec)

    @property
    def is_pickle(self) -> bool:
        return isinstance(self.inner, PickleCodec)

    @property
    def is_lines(self) -> bool:
        return isinstance(self.inner, JsonlCodec) or self.inner.name == "csv"

    def context(self) -> Context:
        return Context(self.docs, self.name, self.split_names, self.doc)


# --------------------------------------------------------------------------- paths


def where(path: tuple[Any, ...]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out.lstrip(".") or "<top level>"


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def replaced(doc: Any, path: tuple[Any, ...], op: Callable[[Any], Any]) -> Any:
    """A copy of ``doc`` (only the containers on ``path`` are copied) whose value at
    ``path`` is replaced by ``op(value)``."""
    if not path:
        return op(doc)
    head, rest = path[0], path[1:]
    container = list(doc) if isinstance(doc, list | tuple) else dict(doc)
    container[head] = replaced(doc[head], rest, op)
    return container


def set_at(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value

    def put(parent: Any) -> Any:
        parent[path[-1]] = value
        return parent

    return replaced(doc, path[:-1], lambda p: put(_copy(p)))


def _copy(container: Any) -> Any:
    return list(container) if isinstance(container, list | tuple) else dict(container)


def delete_at(doc: Any, path: tuple[Any, ...]) -> Any:
    def drop(parent: Any) -> Any:
        parent = _copy(parent)
        del parent[path[-1]]
        return parent

    return replaced(doc, path[:-1], drop)


@st.composite
def sites(draw: st.DrawFn, model: FileModel) -> tuple[Any, ...]:
    """A path into the document. The simplest draw (all zeros, what hypothesis tries
    first) walks down the first fields with a rule to a leaf."""
    path: tuple[Any, ...] = ()
    node = model.doc
    for _ in range(16):
        if isinstance(node, dict):
            keys: list[Any] = list(node)
        elif isinstance(node, list | tuple):
            keys = list(range(len(node)))
        else:
            break
        if not keys or draw(st.integers(0, 4)) == 4:
            break
        rules = model.rules
        ruled = [k for k in keys if rules is not None and rules.leads_to_rule((*path, k))]
        pool = ruled if ruled and draw(st.integers(0, 3)) < 3 else keys
        key = pool[draw(st.integers(0, len(pool) - 1))]
        path += (key,)
        node = node[key]
    return path


# --------------------------------------------------------------------------- values


def _sibling(doc: Any, path: tuple[Any, ...], pick: int) -> Any:
    """The value at the same place in another record of the nearest enclosing list."""
    for depth in range(len(path) - 1, -1, -1):
        if isinstance(path[depth], int):
            records = at(doc, path[:depth])
            if len(records) < 2:
                continue
            other = [i for i in range(len(records)) if i != path[depth]][pick % (len(records) - 1)]
            try:
                return at(doc, (*path[:depth], other, *path[depth + 1 :]))
            except (KeyError, IndexError, TypeError):
                return None
    return None


@st.composite
def new_value(draw: st.DrawFn, model: FileModel, path: tuple[Any, ...], old: Any) -> Any:
    """A replacement for ``old``: most are wrong in some way, a few are harmless (the
    type-specific ones come first: the simplest draw picks one)."""
    generic: list[tuple[str, Callable[[], Any]]] = [
        ("null", lambda: None),
        ("true", lambda: True),
        ("zero", lambda: 0),
        ("minus one", lambda: -1),
        ("fraction", lambda: 1.5),
        ("empty string", lambda: ""),
        ('"false"', lambda: "false"),
        ("empty list", lambda: []),
        ("empty object", lambda: {}),
        ("its JSON text", lambda: _json_text(old)),
        ("wrapped in a list", lambda: [old]),
        ("wrapped in an object", lambda: {"value": old}),
        ("deep nesting", lambda: Deep(draw(st.sampled_from([2_000, 50_000, 500_000])))),
        ("NaN", lambda: NonFinite(draw(st.sampled_from(["NaN", "Infinity", "-Infinity"])))),
        ("1e400", lambda: RawToken(b"1e400")),
        ("invalid UTF-8", lambda: BadUtf8(b"\xff\xfe")),
        ("a sibling's value", lambda: _sibling(model.doc, path, draw(st.integers(0, 50)))),
    ]
    candidates: list[tuple[str, Callable[[], Any]]] = []
    if isinstance(old, str):
        pos = draw(st.integers(0, len(old)))
        candidates += [
            ("NUL inside", lambda: old[:pos] + "\x00" + old[pos:]),
            ("trailing NUL", lambda: old + "\x00"),
            ("lone surrogate", lambda: old[:pos] + "\ud800" + old[pos:]),
            ("long string", lambda: "x" * 100_000),
            ("spaces around", lambda: f" {old} "),
            ("upper case", lambda: old.upper()),
            ("truncated UTF-8", lambda: BadUtf8(old.encode("utf-8", "surrogatepass") + b"\xc3")),
        ]
    elif isinstance(old, bool):
        candidates += [
            ("boolean as string", lambda: str(old).lower()),
            ("boolean as String", lambda: str(not old)),
            ("negated", lambda: not old),
            ("one", lambda: 1),
        ]
    elif isinstance(old, int):
        candidates += [
            ("negated", lambda: -old if old else -7),
            ("plus one", lambda: old + 1),
            ("2**63", lambda: 2**63),
            ("2**70", lambda: 2**70),
            ("-2**70", lambda: -(2**70)),
            ("as float", lambda: float(old)),
            ("plus a half", lambda: old + 0.5),
            ("1e39", lambda: 1e39),
            ("2**31", lambda: 2**31),
            ("as string", lambda: str(old)),
        ]
    elif isinstance(old, float):
        candidates += [
            ("negated", lambda: -old if old else -7.5),
            ("1e39", lambda: 1e39),
            ("-1e39", lambda: -1e39),
            ("denormal", lambda: 5e-324),
            ("1e308", lambda: 1e308),
            ("as string", lambda: repr(old)),
        ]
    elif isinstance(old, list):
        candidates += [
            ("reversed", lambda: old[::-1]),
            ("junk element appended", lambda: [*old, "x"]),
            ("object appended", lambda: [*old, {"junk": 1}]),
        ]
    if model.is_pickle:
        candidates += [
            ("reference bomb", lambda: RefBomb(draw(st.integers(6, 40)), 8)),
            ("self reference", lambda: SelfRef()),
            ("pickle global", lambda: PickleGlobal(MARKER)),
            ("tuple", lambda: tuple(old) if isinstance(old, list) else (old,)),
        ]
    candidates += generic
    name, make = candidates[draw(st.integers(0, len(candidates) - 1))]
    return name, make()


def _json_text(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) > 40:
        return repr(value[:37] + "...")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _encode_and_judge(
    model: FileModel, new_doc: Any, structural: Callable[[], Verdict] | None
) -> tuple[bytes, Verdict]:
    """Encode the corrupted document; the reference parser first, then the rules:
    ``structural`` for list and key operations, else every changed value."""
    data = model.codec.encode(new_doc)
    if not data.strip(b" \t\r\n") and not isinstance(model.codec, GzipCodec):
        return data, reject("an empty file")
    try:
        decoded = model.codec.reference(data)
    except Invalid as exc:
        return data, reject(f"the reference parser refuses it ({exc})")
    if structural is not None:
        return data, structural()
    return data, judge_document(model.context(), model.rules, model.doc, decoded)


@st.composite
def value_corruption(draw: st.DrawFn, model: FileModel) -> Corruption:
    path = draw(sites(model))
    old = at(model.doc, path)
    ctx = model.context()
    ops = ["replace"] * 6
    if path:
        ops += ["delete"] * 2
    if isinstance(old, list) and old:
        ops += ["duplicate element"] * 2 + ["delete last"]
    if isinstance(old, dict) and old:
        ops += ["repeat a key", "rename a key"]
    op = draw(st.sampled_from(ops))
    rules = model.rules
    if op == "replace":
        name, value = draw(new_value(model, path, old))
        data, verdict = _encode_and_judge(model, set_at(model.doc, path, value), None)
        return Corruption(f"value:{name}", where(path), _short(value), verdict, data)
    if op == "delete":
        parent, last = path[:-1], path[-1]
        judge = (
            (lambda: judge_list_op(ctx, rules, parent, "delete", last))
            if isinstance(last, int) and rules is not None
            else (lambda: judge_value(ctx, rules, path, old, DELETED))
        )
        data, verdict = _encode_and_judge(model, delete_at(model.doc, path), judge)
        return Corruption("value:delete", where(path), "deleted", verdict, data)
    if op == "delete last":
        last = len(old) - 1
        judge = (
            (lambda: judge_list_op(ctx, rules, path, "delete", last))
            if rules is not None
            else (lambda: either("a file without rules"))
        )
        data, verdict = _encode_and_judge(model, delete_at(model.doc, (*path, last)), judge)
        return Corruption("value:delete", where((*path, last)), "deleted", verdict, data)
    if op == "duplicate element":
        k = draw(st.integers(0, len(old) - 1))
        new_doc = replaced(model.doc, path, lambda lst: [*lst[: k + 1], lst[k], *lst[k + 1 :]])
        judge = (
            (lambda: judge_list_op(ctx, rules, path, "duplicate", k))
            if rules is not None
            else (lambda: either("a file without rules"))
        )
        data, verdict = _encode_and_judge(model, new_doc, judge)
        return Corruption("value:duplicate element", where((*path, k)), "repeated", verdict, data)
    keys = list(old)
    key = keys[draw(st.integers(0, len(keys) - 1))]
    if op == "repeat a key":
        name, second = draw(new_value(model, (*path, key), old[key]))
        dup = DupKey(old[key], second)
        data, verdict = _encode_and_judge(
            model,
            set_at(model.doc, (*path, key), dup),
            (lambda: judge_dup_key(ctx, rules, (*path, key), old[key], dup))
            if rules is not None
            else (lambda: either("a file without rules")),
        )
        return Corruption(
            "value:repeated key", where((*path, key)), f"second value {name}", verdict, data
        )
    others = [k for k in keys if k != key]
    choices = [f"{key}\x00", "", f"{key}\ud800", f" {key}", *(others[:1])]
    new_key = choices[draw(st.integers(0, len(choices) - 1))]

    def rename(obj: Any) -> Any:
        out = {}
        for k, v in obj.items():
            if k == key:
                out[new_key] = v if new_key not in obj else DupKey(obj[new_key], v)
            elif k != new_key:
                out[k] = v
        return out

    data, verdict = _encode_and_judge(
        model,
        replaced(model.doc, path, rename),
        (lambda: judge_key(ctx, rules, (*path, key), new_key))
        if rules is not None
        else (lambda: either("a file without rules")),
    )
    return Corruption("value:renamed key", where((*path, key)), _short(new_key), verdict, data)


# --------------------------------------------------------------------------- bytes


@st.composite
def byte_damage(draw: st.DrawFn, data: bytes, lines: bool) -> tuple[str, str, bytes]:
    """(op, where, damaged bytes)."""
    n = len(data)
    ops = ["truncate", "flip", "insert NUL", "insert junk", "append junk", "empty", "BOM", "CRLF"]
    if lines:
        ops += ["drop a line", "repeat a line", "blank lines"]
    op = draw(st.sampled_from(ops))
    pos = draw(st.integers(0, max(0, n - 1)))
    if op == "truncate":
        return op, f"byte {pos}", data[:pos]
    if op == "flip":
        out = bytearray(data)
        spots = draw(st.lists(st.integers(0, max(0, n - 1)), min_size=1, max_size=4))
        for spot in spots:
            out[spot] ^= draw(st.integers(1, 255))
        return op, f"bytes {sorted(set(spots))[:4]}", bytes(out)
    if op == "insert NUL":
        return op, f"byte {pos}", data[:pos] + b"\x00" + data[pos:]
    if op == "insert junk":
        junk = draw(st.sampled_from([b"\xff", b"}", b"]", b",", b'"', b"garbage", b"\xed\xa0\x80"]))
        return op, f"byte {pos}: {junk!r}", data[:pos] + junk + data[pos:]
    if op == "append junk":
        junk = draw(st.sampled_from([b"\n{", b"xyz", b"\x00", b"\n\n[1]", b"}"]))
        return op, f"end: {junk!r}", data + junk
    if op == "empty":
        return op, "whole file", b""
    if op == "BOM":
        return op, "start", b"\xef\xbb\xbf" + data
    if op == "CRLF":
        return op, "line ends", data.replace(b"\n", b"\r\n")
    body = data.split(b"\n")
    k = draw(st.integers(0, max(0, len(body) - 1)))
    if op == "drop a line":
        return op, f"line {k + 1}", b"\n".join(body[:k] + body[k + 1 :])
    if op == "repeat a line":
        return op, f"line {k + 1}", b"\n".join([*body[: k + 1], body[k], *body[k + 1 :]])
    return op, f"line {k + 1}", b"\n".join([*body[:k], b"", b"  ", *body[k:]])


def judge_bytes(model: FileModel, data: bytes) -> Verdict:
    """A byte-damaged file: refused by the reference parser, or judged value by value."""
    if not data.strip(b" \t\r\n\x00"):
        return reject("an empty file")
    try:
        decoded = model.codec.reference(data)
    except Invalid as exc:
        return reject(f"the reference parser refuses it ({exc})")
    lines_changed = (
        model.is_lines
        and isinstance(decoded, list)
        and isinstance(model.doc, list)
        and len(decoded) != len(model.doc)
    )
    if lines_changed and model.rules is not None:
        rule = model.rules.rule_at(())
        if rule is not None and rule[1] == 0:
            why = rule[0].problem(model.context(), (), model.doc, decoded)
            if why:
                return reject(why)
        verdict = _line_changes(model, decoded)
        if verdict is not None:
            return verdict
    return judge_document(model.context(), model.rules, model.doc, decoded)


def _line_changes(model: FileModel, decoded: list[Any]) -> Verdict | None:
    """Lines dropped or repeated: judged as deleted or duplicated records."""
    ctx = model.context()
    old = model.doc
    if len(decoded) == len(old) - 1:
        for i in range(len(old)):
            if old[:i] + old[i + 1 :] == decoded:
                return judge_list_op(ctx, model.rules, (), "delete", i)  # type: ignore[arg-type]
    if len(decoded) == len(old) + 1:
        for i in range(len(old)):
            if [*old[: i + 1], old[i], *old[i + 1 :]] == decoded:
                return judge_list_op(ctx, model.rules, (), "duplicate", i)  # type: ignore[arg-type]
    return None


@st.composite
def byte_corruption(draw: st.DrawFn, model: FileModel) -> Corruption:
    if isinstance(model.codec, GzipCodec) and draw(st.booleans()):
        op, spot, damaged = draw(byte_damage(model.data, False))
        return Corruption(
            f"bytes:{op} (compressed)", spot, "", judge_bytes(model, damaged), damaged
        )
    plain = gzip.decompress(model.data) if isinstance(model.codec, GzipCodec) else model.data
    op, spot, damaged = draw(byte_damage(plain, model.is_lines))
    if isinstance(model.codec, GzipCodec):
        damaged = gzip.compress(damaged, mtime=0)
    return Corruption(f"bytes:{op}", spot, "", judge_bytes(model, damaged), damaged)


# --------------------------------------------------------------------------- special


@cache
def gzip_bomb(size: int, content: bytes) -> bytes:
    """``size`` bytes of ``content`` repeated, as gzip members of 16 MiB each (a few KiB
    compressed per member)."""
    block = 16 << 20
    member = gzip.compress((content * (block // len(content) + 1))[:block], compresslevel=9)
    return member * max(1, size // block)


def bomb_ops(model: FileModel) -> list[str]:
    """The heavy corruptions that apply to ``model`` (gzip bombs)."""
    return ["gzip bomb: whitespace", "gzip bomb: one long line"] if model.is_gzip else []


@st.composite
def special_corruption(
    draw: st.DrawFn, model: FileModel, bomb_size: int, bombs: str = "also"
) -> Corruption:
    """``bombs``: "no" (none of the heavy ones), "only" (nothing else), "also"."""
    ops = [] if bombs == "only" else ["deep top level"]
    if model.is_pickle and bombs != "only":
        ops += ["pickle global at the top"]
    if bombs != "no":
        ops += bomb_ops(model)
    op = draw(st.sampled_from(ops))
    if op == "deep top level":
        depth = draw(st.sampled_from([5_000, 200_000]))
        if model.is_pickle:
            data = model.codec.encode(Deep(depth))
        else:
            plain = b"[" * depth + model.inner.encode(model.doc).rstrip(b"\n") + b"]" * depth
            data = gzip.compress(plain, mtime=0) if isinstance(model.codec, GzipCodec) else plain
        return Corruption(
            f"special:{op}", "<top level>", f"depth {depth}", reject("nested too deeply"), data
        )
    if op == "pickle global at the top":
        data = model.codec.encode(PickleGlobal(MARKER))
        return Corruption(
            f"special:{op}", "<top level>", "open(marker)", reject("a pickle global"), data
        )
    whitespace = op.endswith("whitespace")
    # blank lines cost a parser time per line, not memory: a smaller bomb says as much
    size = min(bomb_size, WHITESPACE_BOMB) if whitespace else bomb_size
    data = gzip_bomb(size, b" \n" if whitespace else b"a")
    why = (
        "decompresses to nothing but whitespace (an empty file)"
        if op.endswith("whitespace")
        else "decompresses to one line longer than any bound"
    )
    return Corruption(
        f"special:{op}", "whole file", f"{size / GiB:.2f} GiB", reject(why), data, heavy=True
    )


def file_corruptions(
    model: FileModel, bomb_size: int = 3 * GiB, bombs: str = "also"
) -> st.SearchStrategy[Corruption]:
    """Every kind of corruption of one file, weighted toward structured changes;
    ``bombs="only"``: the heavy ones alone (none for a file that is not gzipped)."""
    if bombs == "only":
        return special_corruption(model, bomb_size, "only")
    return st.sampled_from(["value"] * 6 + ["bytes"] * 3 + ["special"]).flatmap(
        lambda family: (
            value_corruption(model)
            if family == "value"
            else byte_corruption(model)
            if family == "bytes"
            else special_corruption(model, bomb_size, bombs)
        )
    )
