"""Which corruptions must be rejected: the judgement rules of the fuzz harness.

A corrupted input either MUST be rejected (exit 1 with a clean message; exit 0 is a
"silent acceptance") or MAY be accepted (exit 0 or a clean exit 1 are both fine). Never
fine, whatever the verdict: a traceback, a crash (signal, MemoryError, timeout), an unclear
error, or anything written on failure. The rules, documented in docs/testing.md:

1. A file the strict reference parser refuses (``codecs``: not UTF-8, not strict JSON,
   NaN/Infinity, a truncated gzip or pickle, a pickle global or cycle, nesting deeper than
   the reference goes) must be rejected. So must an empty file.
2. A value the product reads (a field with a rule below) must be rejected when it breaks
   its rule: the wrong type (an object where a string belongs, "false" where a boolean
   belongs, 1.0 where an integer id belongs), NUL or a lone surrogate in text, an empty id,
   an id out of [0, 2**63), a duplicate id, a size <= 0 or >= 2**31, a non-finite number or
   one beyond float32, a negative box width or height, a value outside its allowed set, a
   reference to an id that does not exist, a value that must equal its partner in another
   record (an annotation's image_id and its question's) and no longer does, a deleted
   required field, a list of the wrong length (VQA's 10 answers, a box's 4 numbers), a
   duplicated record that holds an id, a deleted record that another one refers to.
3. A value nobody reads (a field without a rule: licences, urls, tokens of the refer
   releases...) may take any value, except what rule 1 refuses.
4. Prediction files: every id exactly once, of the task's id type, no unknown id (any
   change to an id must be rejected), values as docs/metrics.md "Prediction formats" says.
5. Unified files: see ``unified_verdict``.

Rules never name tasks: raw rules are keyed by the release's FILE names (each converter's
``raw_files``; a test checks that every declared file has rules), prediction rules by
metric and format (the scorer registry), split names come from the TaskSpec.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fuzz.values import (
    BadUtf8,
    DupKey,
    NonFinite,
    PickleGlobal,
    RawToken,
    SelfRef,
    has_surrogate,
)

FLOAT32_MAX = 3.4028234663852886e38
INT64_LIMIT = 2**63
SIZE_LIMIT = 2**31
INT32_RANGE = (-(2**31), 2**31)


class _Deleted:
    def __repr__(self) -> str:
        return "<deleted>"


#: The "new value" of a deleted field or record.
DELETED = _Deleted()


@dataclass(frozen=True)
class Verdict:
    """``must_reject``: exit 0 would be a silent acceptance; ``why``: the rule that said so
    (or why acceptance is fine)."""

    must_reject: bool
    why: str

    @staticmethod
    def combine(verdicts: Sequence[Verdict]) -> Verdict:
        rejecting = [v for v in verdicts if v.must_reject]
        if rejecting:
            return rejecting[0]
        return verdicts[0] if verdicts else Verdict(False, "no change")


def reject(why: str) -> Verdict:
    return Verdict(True, why)


def either(why: str) -> Verdict:
    return Verdict(False, why)


Path = tuple[Any, ...]


# --------------------------------------------------------------------------- context


@dataclass
class Context:
    """What a rule may look at: the decoded documents of the seed folder (by file name),
    the file being corrupted, and the split names of the task."""

    docs: Callable[[str], Any]  # file name (or glob) -> decoded seed document, or None
    file: str
    split_names: tuple[str, ...] = ()
    doc: Any = None  # the seed document of ``file``


def values_at(doc: Any, pattern: Sequence[str]) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) of ``doc`` that ``pattern`` matches ("*": any key or index)."""
    stack: list[tuple[Path, Any, int]] = [((), doc, 0)]
    while stack:
        path, node, depth = stack.pop()
        if depth == len(pattern):
            yield path, node
            continue
        step = pattern[depth]
        if isinstance(node, dict):
            if step == "*":
                stack.extend(((*path, k), v, depth + 1) for k, v in node.items())
            elif step in node:
                stack.append(((*path, step), node[step], depth + 1))
        elif isinstance(node, list | tuple):
            if step == "*":
                stack.extend(((*path, i), v, depth + 1) for i, v in enumerate(node))
            elif isinstance(step, int) and -len(node) <= step < len(node):
                stack.append(((*path, step), node[step], depth + 1))


class _TooBig(Exception):
    pass


def canon(value: Any, budget: int = 20_000) -> Any:
    """A hashable, comparable form of ``value`` built with at most ``budget`` nodes (a
    reference bomb expands to billions: it gets a unique token instead)."""
    left = [budget]

    def walk(v: Any) -> Any:
        left[0] -= 1
        if left[0] < 0:
            raise _TooBig
        if isinstance(v, dict):
            return ("{", tuple((walk(k), walk(x)) for k, x in v.items()))
        if isinstance(v, list | tuple):
            return ("[", tuple(walk(x) for x in v))
        try:
            hash(v)
        except TypeError:
            return ("?", id(v))
        return (type(v).__name__, v)

    try:
        return walk(value)
    except (_TooBig, RecursionError):
        return ("too big", id(value))


_hashable = canon


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------- rules


def _type_problem(value: Any) -> str | None:
    """Special values no reader may accept anywhere they land."""
    if isinstance(value, SelfRef):
        return "a self-referencing object"
    if isinstance(value, PickleGlobal):
        return "a pickle global"
    if isinstance(value, BadUtf8):
        return "bytes that are not UTF-8"
    return None


@dataclass(frozen=True)
class Rule:
    """A field the product reads. ``required``: deleting it must be rejected;
    ``nullable``: JSON null is allowed."""

    required: bool = field(default=True, kw_only=True)
    nullable: bool = field(default=False, kw_only=True)

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        """Why ``new`` (replacing ``old`` at ``path``) breaks the rule; None if it does not."""
        raise NotImplementedError

    def judge(self, ctx: Context, path: Path, sub: Path, old: Any, new: Any) -> Verdict:
        """``sub``: the part of ``path`` below the rule's own pattern (non-empty only for
        rules that own a container, like Box and ListOf)."""
        if new is DELETED and not sub:
            return (
                reject("a required field was deleted")
                if self.required
                else either("an optional field was deleted")
            )
        if _same(old, new):
            return either("unchanged")
        if new is None and self.nullable and not sub:
            return either("null is allowed here")
        special = _type_problem(new)
        if special:
            return reject(special)
        why = self.problem(ctx, path, old, new)
        return reject(why) if why else either(f"still a valid {type(self).__name__}")

    def list_op(self, ctx: Context, path: Path, op: str, element: Any) -> Verdict | None:
        """A record deleted or duplicated in the list this rule owns (None: no opinion)."""
        return None


def _text_problem(value: Any, nonempty: bool, lenient: bool, nul: bool = False) -> str | None:
    if isinstance(value, str):
        if "\x00" in value and not nul:
            return "NUL in a text field"
        if has_surrogate(value):
            return "a lone surrogate in a text field"
        if nonempty and not value.strip():
            return "an empty name"
        return None
    if lenient and type(value) in (int, float) and not isinstance(value, bool):
        return None
    return f"a {_kind(value)} where a string belongs"


def _kind(value: Any) -> str:
    from tests.fuzz.values import kind_of

    return kind_of(value)


@dataclass(frozen=True)
class Text(Rule):
    """A string the product stores. ``lenient``: numbers are acceptable (cast to text);
    ``nul``: NUL is acceptable (a predicted answer is compared, never stored in HDF5)."""

    nonempty: bool = False
    lenient: bool = False
    nul: bool = False

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return _text_problem(new, self.nonempty, self.lenient, self.nul)


def _int_problem(value: Any, low: int = 0, high: int = INT64_LIMIT) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"a {_kind(value)} where an integer belongs"
    if not low <= value < high:
        return f"integer {value} outside [{low}, {high})"
    return None


@dataclass(frozen=True)
class Id(Rule):
    """An id of the release. ``kind`` int (in [0, 2**63)) or str (non-empty, no NUL or
    surrogate). ``unique`` within the file, or within the first ``scope`` path elements
    (a game's objects); ``fixed``: another record holds the same id (any change must be
    rejected); ``linked``: that record is outside this one (deleting this record orphans
    it); ``pinned_by`` (file glob, pattern): ids referred to there must not change;
    ``pinned_local``: the same, with a pattern relative to the scope's record."""

    kind: type = int
    unique: bool = True
    fixed: bool = False
    linked: bool = False
    scope: int = 0
    pinned_by: tuple[tuple[str, str], ...] = ()
    pinned_local: str | None = None

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        why = _int_problem(new) if self.kind is int else _text_problem(new, True, False)
        if why:
            return why
        if self.fixed:
            return f"changed ({old!r} -> {new!r}) though another record holds it"
        if self.unique and ctx.doc is not None:
            pattern = _pattern_of(ctx, path)
            if pattern is not None:
                scope_doc = _at(ctx.doc, path[: self.scope])
                others = {
                    _hashable(v)
                    for p, v in values_at(scope_doc, pattern[self.scope :])
                    if path[: self.scope] + p != path
                }
                if _hashable(new) in others:
                    return f"duplicate id {new!r}"
        if self.pinned(ctx, path, old):
            return f"id {old!r} changed though other records refer to it"
        return None

    def pinned(self, ctx: Context, path: Path, old: Any, within: Path | None = None) -> bool:
        """Do other records refer to ``old``? ``within``: only references outside that
        subtree count (it is being deleted with the id)."""
        for glob, pattern in self.pinned_by:
            doc = ctx.docs(glob)
            if doc is None:
                continue
            for spot, v in values_at(doc, _split(pattern)):
                inside = within is not None and doc is ctx.doc and spot[: len(within)] == within
                if _same(v, old) and not inside:
                    return True
        if self.pinned_local is not None and ctx.doc is not None:
            if within is not None and len(within) <= self.scope:
                return False  # the referring record goes too
            record = _at(ctx.doc, path[: self.scope])
            return any(_same(v, old) for _, v in values_at(record, _split(self.pinned_local)))
        return False


@dataclass(frozen=True)
class Same(Rule):
    """A value that must equal its partner elsewhere (the annotation's image_id and its
    question's): any change must be rejected."""

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return f"changed ({old!r} -> {_short(new)}) though it must equal its partner"


@dataclass(frozen=True)
class ImageId(Rule):
    """An integer image id: any value in [0, 2**63) is a valid id."""

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return _int_problem(new)


@dataclass(frozen=True)
class Ref(Rule):
    """A reference to an id: it must be an id of the right kind that exists, either in
    ``target`` (file glob, pattern) or, with ``local``, among the values at that pattern
    relative to the referring record (the parent of the field)."""

    kind: type = int
    target: tuple[str, str] | None = None
    local: str | None = None

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        why = _int_problem(new) if self.kind is int else _text_problem(new, True, False)
        if why:
            return why
        targets = self.targets(ctx, path)
        if targets is not None and _hashable(new) not in targets:
            return f"refers to {new!r}, which does not exist"
        return None

    def targets(self, ctx: Context, path: Path) -> set[Any] | None:
        if self.target is not None:
            doc = ctx.docs(self.target[0])
            if doc is None:
                return None
            return {_hashable(v) for _, v in values_at(doc, _split(self.target[1]))}
        if self.local is not None and ctx.doc is not None:
            record = _at(ctx.doc, _record_of(path))
            return {_hashable(v) for _, v in values_at(record, _split(self.local))}
        return None


@dataclass(frozen=True)
class Size(Rule):
    """A width or height: an integer in (0, 2**31)."""

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return _int_problem(new, 1, SIZE_LIMIT)


@dataclass(frozen=True)
class Integer(Rule):
    """Any integer of int64."""

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return _int_problem(new, -INT64_LIMIT, INT64_LIMIT)


@dataclass(frozen=True)
class Int(Rule):
    """An integer stored as int32 (category ids)."""

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return _int_problem(new, *INT32_RANGE)


def _number_problem(value: Any, minimum: float | None, limit: float) -> str | None:
    if isinstance(value, NonFinite):
        return f"{value.token} where a finite number belongs"
    if isinstance(value, RawToken):
        return f"the token {value.text!r:.30} where a finite number belongs"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"a {_kind(value)} where a number belongs"
    if value != value or abs(value) > limit:
        return f"{value!r:.30} is not finite or beyond {limit:.3g}"
    if minimum is not None and value < minimum:
        return f"{value!r} below {minimum}"
    return None


@dataclass(frozen=True)
class Number(Rule):
    """A finite number within float32 (``limit``), at least ``minimum``."""

    minimum: float | None = None
    limit: float = FLOAT32_MAX

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return _number_problem(new, self.minimum, self.limit)


@dataclass(frozen=True)
class Box(Rule):
    """[x, y, w, h]: four finite numbers within ``limit``, w and h >= 0."""

    limit: float = FLOAT32_MAX

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        if not isinstance(new, list) or len(new) != 4:
            return f"a box must be 4 numbers, got {_short(new)}"
        for i, v in enumerate(new):
            why = _number_problem(v, 0 if i >= 2 else None, self.limit)
            if why:
                return f"box[{i}]: {why}"
        return None

    def judge(self, ctx: Context, path: Path, sub: Path, old: Any, new: Any) -> Verdict:
        if not sub:
            return super().judge(ctx, path, sub, old, new)
        if len(sub) != 1:
            return reject("a box coordinate replaced by a container")
        box = list(old_box(ctx, path, sub))
        if new is DELETED:
            return reject("a box lost a coordinate")
        box[sub[0]] = new
        why = self.problem(ctx, path, None, box)
        return reject(why) if why else either("another valid box")

    def list_op(self, ctx: Context, path: Path, op: str, element: Any) -> Verdict | None:
        return reject(f"a box with a coordinate {op}d: not 4 numbers")


def old_box(ctx: Context, path: Path, sub: Path) -> list[Any]:
    return list(_at(ctx.doc, path[: len(path) - len(sub)]))


@dataclass(frozen=True)
class Bool(Rule):
    """A JSON boolean ("false" as a string must be rejected)."""

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return None if isinstance(new, bool) else f"a {_kind(new)} where a boolean belongs"


@dataclass(frozen=True)
class Enum(Rule):
    """One of ``values`` (``splits``: the TaskSpec's split names); ``any_case``: compared
    case-insensitively."""

    values: tuple[str, ...] = ()
    splits: bool = False
    any_case: bool = False

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        allowed = ctx.split_names if self.splits else self.values
        if isinstance(new, str) and (
            new in allowed or (self.any_case and new.lower() in {a.lower() for a in allowed})
        ):
            return None
        return f"{_short(new)} is not one of {', '.join(allowed)}"


@dataclass(frozen=True)
class Any_(Rule):
    """A field that must be present, whatever its value."""

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return None


@dataclass(frozen=True)
class Obj(Rule):
    """A container object that must be present and an object."""

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        return None if isinstance(new, dict) else f"a {_kind(new)} where an object belongs"


@dataclass(frozen=True)
class Records(Rule):
    """A list of records. ``length``: exactly that many (VQA's 10 answers); ``exact``:
    every record must be there exactly once (a prediction file: deleting or duplicating
    one must be rejected); ``min_length``: at least that many."""

    length: int | None = None
    exact: bool = False
    min_length: int = 0
    unique_elements: bool = False

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        if not isinstance(new, list):
            return f"a {_kind(new)} where a list belongs"
        if self.length is not None and len(new) != self.length:
            return f"{len(new)} entries where {self.length} belong"
        if self.exact and isinstance(old, list) and len(new) != len(old):
            return f"{len(new)} records for {len(old)} required"
        if len(new) < self.min_length:
            return f"{len(new)} entries where at least {self.min_length} belong"
        return None

    def list_op(self, ctx: Context, path: Path, op: str, element: Any) -> Verdict | None:
        if self.length is not None:
            return reject(f"an entry {op}d: not {self.length} entries")
        if self.exact:
            return reject(f"a record {op}d: every record must be there exactly once")
        if op == "delete" and self.min_length:
            old = _at(ctx.doc, path)
            if len(old) - 1 < self.min_length:
                return reject(f"fewer than {self.min_length} entries")
        if op == "duplicate" and self.unique_elements:
            return reject("an entry repeated in a list of distinct values")
        return None


@dataclass(frozen=True)
class ListOf(Records):
    """A list whose every element follows ``element`` (a ``Text``, a ``Ref``...)."""

    element: Rule = field(default_factory=Text)

    def problem(self, ctx: Context, path: Path, old: Any, new: Any) -> str | None:
        why = super().problem(ctx, path, old, new)
        if why:
            return why
        for v in new:
            special = _type_problem(v)
            inner = special or self.element.problem(ctx, (*path, 0), None, v)
            if inner:
                return f"an element: {inner}"
        if self.unique_elements and len({_hashable(v) for v in new}) != len(new):
            return "an entry repeated in a list of distinct values"
        return None

    def judge(self, ctx: Context, path: Path, sub: Path, old: Any, new: Any) -> Verdict:
        if not sub:
            return super().judge(ctx, path, sub, old, new)
        if len(sub) != 1:
            return either("inside an element")  # the element replaced by a container
        if new is DELETED:
            return self.list_op(ctx, path[:-1], "delete", None) or either("an element deleted")
        verdict = self.element.judge(ctx, path, (), old, new)
        if verdict.must_reject:
            return verdict
        if self.unique_elements:
            siblings = _at(ctx.doc, path[:-1])
            if any(_same(v, new) for i, v in enumerate(siblings) if i != sub[0]):
                return reject("an entry repeated in a list of distinct values")
        return verdict


def _short(value: Any) -> str:
    text = repr(canon(value, 200)) if isinstance(value, list | dict | tuple) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- file rules


def _split(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("/")) if pattern else ()


def _at(doc: Any, path: Path) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _record_of(path: Path) -> Path:
    return path[:-1]


def _matches(pattern: Sequence[str], path: Path) -> bool:
    return len(pattern) == len(path) and all(
        p == "*" or p == k for p, k in zip(pattern, path, strict=True)
    )


def _pattern_of(ctx: Context, path: Path) -> tuple[str, ...] | None:
    rules = rules_for_file(ctx.file)
    if rules is None:
        return None
    for pattern in rules.patterns:
        if _matches(pattern, path):
            return pattern
    return None


@dataclass(frozen=True)
class FileRules:
    """The rules of one release file (``names``: its file names, globs allowed).

    ``fields`` maps a path pattern ("questions/*/question_id"; "" is the top level) to its
    rule; ``keys`` maps a pattern of an object whose KEYS are ids (GQA's questions by id)
    to the rule of those keys.
    """

    names: tuple[str, ...]
    fields: Mapping[str, Rule]
    keys: Mapping[str, Rule] = field(default_factory=dict)

    @property
    def patterns(self) -> list[tuple[str, ...]]:
        return [_split(p) for p in self.fields]

    def leads_to_rule(self, path: Path) -> bool:
        """Does a rule's pattern start with (or equal) ``path``?"""
        return any(
            len(steps) >= len(path) and _matches(steps[: len(path)], path)
            for steps in self.patterns
        )

    def rule_at(self, path: Path) -> tuple[Rule, int] | None:
        """The rule of the longest pattern matching a prefix of ``path`` (and its length)."""
        best: tuple[Rule, int] | None = None
        for pattern, rule in self.fields.items():
            steps = _split(pattern)
            fits = len(steps) <= len(path) and _matches(steps, path[: len(steps)])
            if fits and (best is None or len(steps) > best[1]):
                best = (rule, len(steps))
        return best

    def keyed(self, path: Path) -> bool:
        """Is the object at ``path`` keyed by ids (its entries are records)?"""
        return any(_matches(_split(p), path) for p in self.keys)

    def required_below(self, path: Path) -> list[str]:
        """Patterns of required fields under ``path`` reached by object keys only (so
        removing or retyping the container at ``path`` removes them)."""
        out = []
        for pattern, rule in self.fields.items():
            steps = _split(pattern)
            if len(steps) <= len(path) or not rule.required:
                continue
            if not _matches(steps[: len(path)], path):
                continue
            below = steps[len(path) :]
            if "*" not in below:
                out.append(pattern)
        return out

    def rules_below(self, path: Path) -> list[tuple[tuple[str, ...], Rule]]:
        """(pattern relative to ``path``, rule) of every rule under ``path``."""
        out = []
        for pattern, rule in self.fields.items():
            steps = _split(pattern)
            if len(steps) > len(path) and _matches(steps[: len(path)], path):
                out.append((steps[len(path) :], rule))
        return out


def judge_value(ctx: Context, rules: FileRules | None, path: Path, old: Any, new: Any) -> Verdict:
    """A value replaced (or DELETED) at ``path`` of the document."""
    if rules is None:
        return either("a file without rules")
    if isinstance(new, DupKey):
        return judge_dup_key(ctx, rules, path, old, new)
    found = rules.rule_at(path)
    if found is not None and found[1] == len(path):
        verdict = found[0].judge(ctx, path, (), old, new)
        if not verdict.must_reject and isinstance(found[0], Records) and isinstance(new, list):
            why = elements_problem(rules, path, old if isinstance(old, list) else [], new)
            if why:
                return reject(why)
        return verdict
    if found is not None and isinstance(found[0], Box | ListOf):
        rule, depth = found
        return rule.judge(ctx, path, path[depth:], old, new)
    # a container above the rules (a record, a group of fields) or an unread field
    if path and isinstance(path[-1], int) and new is DELETED:
        return judge_list_op(ctx, rules, path[:-1], "delete", path[-1])
    if path and new is DELETED and rules.keyed(path[:-1]):
        return either("a record deleted (an entry of an object keyed by id)")
    required = rules.required_below(path)
    if required and not _same(old, new):
        if new is DELETED:
            return reject(f"an object holding required fields ({required[0]}) was deleted")
        if not isinstance(new, dict) or any(
            not list(values_at(new, _split(p)[len(path) :])) for p in required
        ):
            return reject(f"an object lost its required field ({required[0]})")
    special = _type_problem(new)
    if special and (found is not None or rules.rules_below(path)):
        return reject(special)
    if rules.rules_below(path) and isinstance(new, dict | list) and not _same(old, new):
        return _judge_children(ctx, rules, path, old, new)
    return either("a field the product does not read")


def _judge_children(ctx: Context, rules: FileRules, path: Path, old: Any, new: Any) -> Verdict:
    """A container replaced by another one: judge what changed inside."""
    return Verdict.combine([judge_change(ctx, rules, p, o, n) for p, o, n in diff(old, new, path)])


def judge_dup_key(ctx: Context, rules: FileRules, path: Path, old: Any, dup: DupKey) -> Verdict:
    """A key written twice in its object: a repeated id where keys are ids; otherwise the
    reader keeps one of the two values, so the second is judged as a replacement."""
    parent = path[:-1]
    for pattern, key_rule in rules.keys.items():
        if _matches(_split(pattern), parent) and isinstance(key_rule, Id) and key_rule.unique:
            return reject(f"the id {path[-1]!r} is given twice (a repeated key)")
    second = judge_value(ctx, rules, path, old, dup.second)
    first = judge_value(ctx, rules, path, old, dup.first)
    return Verdict.combine([second, first])


def judge_key(ctx: Context, rules: FileRules, path: Path, new_key: Any) -> Verdict:
    """The key at ``path`` renamed to ``new_key``."""
    parent, old_key = path[:-1], path[-1]
    for pattern, key_rule in rules.keys.items():
        if _matches(_split(pattern), parent):
            obj = _at(ctx.doc, parent)
            if new_key in obj and new_key != old_key:
                return reject(f"the id {new_key!r} is given twice")
            why = key_rule.problem(ctx, path, old_key, new_key)
            return reject(why) if why else either("another valid id")
    # an ordinary object: the old key is gone (judged as deleted), the new one unknown
    return judge_value(ctx, rules, path, _at(ctx.doc, path), DELETED)


def judge_list_op(ctx: Context, rules: FileRules, path: Path, op: str, index: int) -> Verdict:
    """Element ``index`` of the list at ``path`` deleted or duplicated."""
    found = rules.rule_at(path)
    element = _at(ctx.doc, (*path, index))
    if (found is not None and found[1] == len(path)) or (
        found is not None and isinstance(found[0], Box | ListOf)
    ):
        verdict = found[0].list_op(ctx, path, op, element)
        if verdict is not None:
            return verdict
    element_path = (*path, index)
    for rel, rule in rules.rules_below(element_path):
        if not isinstance(rule, Id):
            continue
        present = list(values_at(element, rel))
        if not present:
            continue
        if op == "duplicate" and rule.unique:
            return reject(f"a duplicated record repeats its id ({'/'.join(map(str, rel))})")
        if op == "delete" and (
            rule.linked
            or any(rule.pinned(ctx, element_path + p, v, within=element_path) for p, v in present)
        ):
            return reject("a record that another record refers to was deleted")
    return either(f"a record {op}d")


# --------------------------------------------------------------------------- diff


def diff(old: Any, new: Any, path: Path = ()) -> list[tuple[Path, Any, Any]]:
    """Where two decoded documents differ: (path, old, new), new = DELETED for a key that
    disappeared; lists of different lengths are one change at the list."""
    if _same(old, new):
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[Path, Any, Any]] = []
        for key in old:
            if key not in new:
                out.append(((*path, key), old[key], DELETED))
            else:
                out += diff(old[key], new[key], (*path, key))
        for key in new:
            if key not in old:
                out.append(((*path, key), DELETED, new[key]))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        if len(old) > 1 and _reordered(old, new):
            return [(path, old, new)]
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += diff(a, b, (*path, i))
        return out
    return [(path, old, new)]


def _reordered(old: list, new: list) -> bool:
    """The same entries in another order."""
    a, b = [repr(canon(v)) for v in old], [repr(canon(v)) for v in new]
    return a != b and sorted(a) == sorted(b)


def judge_document(ctx: Context, rules: FileRules | None, old: Any, new: Any) -> Verdict:
    """A reference-valid corrupted document against its seed: every change judged."""
    changes = diff(old, new)
    if not changes:
        return either("the content is unchanged")
    return Verdict.combine([judge_change(ctx, rules, p, a, b) for p, a, b in changes])


def judge_change(ctx: Context, rules: FileRules | None, path: Path, a: Any, b: Any) -> Verdict:
    """One change found by ``diff``."""
    if rules is None:
        return either("a file without rules")
    if a is DELETED:  # a new key: an unknown field, or a renamed id key
        return _renamed_key(ctx, rules, path) or either("an unknown field")
    if isinstance(a, list) and isinstance(b, list):
        if len(a) == len(b):  # reordered (diff reports equal-length lists whole only then)
            found = rules.rule_at(path)
            if found is not None and isinstance(found[0], Box):
                return judge_value(ctx, rules, path, a, b)
            return either("entries reordered")
        return _judge_resized(ctx, rules, path, a, b)
    return judge_value(ctx, rules, path, a, b)


def _renamed_key(ctx: Context, rules: FileRules, path: Path) -> Verdict | None:
    parent = path[:-1]
    for pattern, key_rule in rules.keys.items():
        if _matches(_split(pattern), parent):
            why = key_rule.problem(ctx, path, None, path[-1])
            return reject(why) if why else None
    return None


def _judge_resized(ctx: Context, rules: FileRules, path: Path, old: list, new: list) -> Verdict:
    found = rules.rule_at(path)
    if found is not None and found[1] == len(path):
        why = found[0].problem(ctx, path, old, new)
        if why:
            return reject(why)
        if isinstance(found[0], Records) and found[0].exact:
            return reject("records added or removed")
    elif found is not None and isinstance(found[0], Box | ListOf):
        return found[0].judge(ctx, path, path[found[1] :], old, new)
    why = elements_problem(rules, path, old, new)
    return reject(why) if why else either("records added or removed")


def elements_problem(rules: FileRules, path: Path, old: list, new: list) -> str | None:
    """A list replaced by one of another length: every element that is not one of the old
    ones must still hold its required fields (a record replaced by a list, by a string)."""
    for i, element in enumerate(new):
        if any(_same(element, o) for o in old[:50]):
            continue
        for pattern in rules.required_below((*path, i)):
            rel = _split(pattern)[len(path) + 1 :]
            if not list(values_at(element, rel)):
                return f"an element lacks its required field {pattern}"
        special = _type_problem(element)
        if special and rules.rules_below((*path, i)):
            return special
    return None


# --------------------------------------------------------------------------- the tables


def _vqa_questions(answered: bool) -> dict[str, Rule]:
    return {
        "": Obj(),
        "questions": Records(),
        "questions/*/question_id": Id(int, fixed=answered, linked=answered),
        "questions/*/image_id": Same() if answered else ImageId(),
        "questions/*/question": Text(),
    }


def _gqa_questions(answered: bool) -> dict[str, Rule]:
    fields: dict[str, Rule] = {
        "": Obj(),
        "*/imageId": Text(nonempty=True),
        "*/question": Text(),
        "*/isBalanced": Bool(required=False),
        "*/entailed": ListOf(required=False, nullable=True, element=Text(lenient=True)),
    }
    if answered:
        fields |= {
            "*/answer": Text(),
            "*/fullAnswer": Text(required=False, nullable=True),
            "*/types": Obj(),
            "*/types/structural": Text(),
            "*/types/semantic": Text(),
            "*/types/detailed": Text(),
            "*/groups": Obj(),
            "*/groups/global": Text(required=False, nullable=True),
            "*/groups/local": Text(required=False, nullable=True),
            "*/semantic": Records(),
            "*/semantic/*/operation": Any_(),
            "*/semantic/*/argument": Any_(),
        }
    return fields


def _karpathy(image_id: str, kind: type) -> dict[str, Rule]:
    """Karpathy's caption files ("dataset" is only a guard against swapped files: not
    judged)."""
    return {
        "": Obj(),
        "images": Records(),
        f"images/*/{image_id}": Id(kind),
        "images/*/split": Enum(("train", "val", "test", "restval")),
        "images/*/sentences": Records(),
        "images/*/sentences/*/sentid": Id(int),
        "images/*/sentences/*/raw": Text(),
        "images/*/sentences/*/tokens": ListOf(),
    }


_COCO_IMAGES: dict[str, Rule] = {
    "": Obj(),
    "images": Records(),
    "images/*/id": Id(int),
    "images/*/width": Size(required=False, nullable=True),
    "images/*/height": Size(required=False, nullable=True),
    "images/*/flickr_url": Text(required=False, nullable=True),
}

_REFS = "refs(*).p"
_V7W = "dataset_v7w_pointing.json"

RAW_RULES: tuple[FileRules, ...] = (
    FileRules(
        (
            "v2_OpenEnded_mscoco_train2014_questions.json",
            "v2_OpenEnded_mscoco_val2014_questions.json",
        ),
        _vqa_questions(answered=True),
    ),
    FileRules(
        (
            "v2_OpenEnded_mscoco_test2015_questions.json",
            "v2_OpenEnded_mscoco_test-dev2015_questions.json",
        ),
        _vqa_questions(answered=False),
    ),
    FileRules(
        ("v2_mscoco_train2014_annotations.json", "v2_mscoco_val2014_annotations.json"),
        {
            "": Obj(),
            "annotations": Records(),
            "annotations/*/question_id": Id(int, fixed=True, linked=True),
            "annotations/*/image_id": Same(),
            "annotations/*/question_type": Text(),
            "annotations/*/answer_type": Text(),
            "annotations/*/multiple_choice_answer": Text(),
            "annotations/*/answers": Records(length=10),
            "annotations/*/answers/*/answer": Text(),
        },
    ),
    FileRules(
        (
            "train_balanced_questions.json",
            "val_balanced_questions.json",
            "testdev_balanced_questions.json",
            "val_all_questions.json",
            "testdev_all_questions.json",
        ),
        _gqa_questions(answered=True),
        keys={"": Id(str)},
    ),
    FileRules(
        ("submission_all_questions.json",), _gqa_questions(answered=False), keys={"": Id(str)}
    ),
    # Only the entries of the scored split's questions are read: values may be anything.
    FileRules(("val_choices.json", "testdev_choices.json"), {"": Obj()}),
    FileRules(
        ("question_answers.json",),
        {
            "": Records(),
            "*/id": Same(required=False),
            "*/qas": Records(),
            "*/qas/*/qa_id": Id(int),
            "*/qas/*/image_id": Same(),
            "*/qas/*/question": Text(),
            "*/qas/*/answer": Text(),
        },
    ),
    FileRules(
        ("image_data.json",),
        {
            "": Records(),
            "*/image_id": Id(int),
            "*/width": Size(required=False, nullable=True),
            "*/height": Size(required=False, nullable=True),
            "*/coco_id": ImageId(required=False, nullable=True),
            "*/flickr_id": ImageId(required=False, nullable=True),
        },
    ),
    FileRules(("dataset_coco.json",), _karpathy("cocoid", int)),
    FileRules(("dataset_flickr30k.json",), _karpathy("filename", str)),
    FileRules(
        (
            "captions_train2014.json",
            "captions_val2014.json",
            "instances_train2014.json",
            "instances_val2014.json",
        ),
        _COCO_IMAGES,
    ),
    FileRules(
        ("instances.json",),
        {
            **_COCO_IMAGES,
            "images/*/id": Id(int, pinned_by=((_REFS, "*/image_id"),)),
            "images/*/width": Size(),
            "images/*/height": Size(),
            "annotations": Records(),
            "annotations/*/id": Id(int, pinned_by=((_REFS, "*/ann_id"),)),
            "annotations/*/image_id": Ref(target=("instances.json", "images/*/id")),
            "annotations/*/category_id": Int(),
            "annotations/*/bbox": Box(),
        },
    ),
    FileRules(
        (_REFS,),
        {
            "": Records(),
            "*/ref_id": Id(int),
            "*/ann_id": Ref(target=("instances.json", "annotations/*/id")),
            "*/image_id": Same(),
            "*/category_id": Int(),
            "*/split": Enum(splits=True),
            "*/sentences": Records(),
            "*/sentences/*/sent_id": Id(int),
            "*/sentences/*/sent": Text(),
            "*/sentences/*/raw": Text(),
        },
    ),
    FileRules(
        (_V7W,),
        {
            "": Obj(),
            "images": Records(),
            "images/*/image_id": Id(int, fixed=True),
            "images/*/split": Enum(splits=True),
            "images/*/qa_pairs": Records(),
            "images/*/qa_pairs/*/qa_id": Id(int),
            "images/*/qa_pairs/*/image_id": Same(required=False),
            "images/*/qa_pairs/*/question": Text(),
            "images/*/qa_pairs/*/type": Text(),
            "images/*/qa_pairs/*/answer": Ref(target=(_V7W, "boxes/*/box_id")),
            "images/*/qa_pairs/*/multiple_choices": ListOf(
                length=3, element=Ref(target=(_V7W, "boxes/*/box_id"))
            ),
            "boxes": Records(),
            "boxes/*/box_id": Id(
                int,
                pinned_by=(
                    (_V7W, "images/*/qa_pairs/*/answer"),
                    (_V7W, "images/*/qa_pairs/*/multiple_choices/*"),
                ),
            ),
            "boxes/*/x": Number(),
            "boxes/*/y": Number(),
            "boxes/*/width": Number(minimum=0),
            "boxes/*/height": Number(minimum=0),
        },
    ),
    FileRules(
        ("guesswhat.*.jsonl.gz",),
        {
            "": Records(),
            "*/id": Id(int),
            "*/status": Enum(("success", "failure", "incomplete")),
            "*/image": Obj(),
            "*/image/id": ImageId(),
            "*/image/width": Size(),
            "*/image/height": Size(),
            "*/image/flickr_url": Text(required=False, nullable=True),
            "*/object_id": Ref(local="objects/*/id"),
            "*/objects": Records(min_length=1),
            "*/objects/*/id": Id(int, scope=1, pinned_local="object_id"),
            "*/objects/*/bbox": Box(),
            "*/objects/*/category_id": Int(),
            "*/objects/*/category": Text(),
            "*/qas": Records(),
            "*/qas/*/id": Id(int, unique=False),
            "*/qas/*/question": Text(),
            "*/qas/*/answer": Text(),
        },
    ),
    FileRules(
        ("train.json", "dev.json", "test1.json", "test2.json"),
        {
            "": Records(),
            "*/identifier": Id(str),
            "*/sentence": Text(),
            "*/label": Enum(("True", "False")),
        },
    ),
    FileRules(
        ("snli_ve_*.jsonl",),
        {
            "": Records(),
            "*/pairID": Id(str),
            "*/Flikr30kID": Text(nonempty=True),
            "*/sentence1": Text(),
            "*/sentence2": Text(),
            "*/captionID": Text(),
            "*/gold_label": Enum(("entailment", "neutral", "contradiction", "-")),
        },
    ),
)


def rules_for_file(name: str) -> FileRules | None:
    """The rules of a raw file (by name) or of a prediction format (``pred:<metric>:...``)."""
    if name.startswith("pred:"):
        return prediction_rules(name)
    for rules in RAW_RULES:
        if any(fnmatch.fnmatchcase(name, glob) for glob in rules.names):
            return rules
    return None


# --------------------------------------------------------------------------- predictions


def _prediction_value_rules() -> dict[str, Rule]:
    """The value rule of each metric's prediction records (docs/metrics.md, "Prediction
    formats"), by metric; ``targets.py`` checks that every scorer has one."""
    answer = Text(nul=True)
    choice = Id(int, unique=False)  # a box / object id: must be a candidate
    return {
        "vqa": answer,
        "vgqa": answer,
        "gqa": answer,
        "refexp": Box(limit=float("inf")),
        "pointing": choice,
        "guesswhat": choice,
        "retrieval": ListOf(min_length=10, unique_elements=True, element=Integer()),
        "nlvr2": Enum(("False", "True"), any_case=True),
        "snli_ve": Enum(("contradiction", "neutral", "entailment"), any_case=True),
    }


PREDICTION_VALUES = _prediction_value_rules()


def prediction_rules(name: str) -> FileRules:
    """``pred:<metric>:<kind>:<id kind>:<id field>:<value field>``: every record exactly
    once, ids of the task's kind that must not change, the metric's value rule."""
    _, metric, kind, id_kind, id_field, value_field = name.split(":")
    id_rule = Id(int if id_kind == "int" else str, fixed=True)
    value = PREDICTION_VALUES[metric]
    if kind == "csv":
        return FileRules(
            (name,),
            {
                "": Records(exact=True),
                "*": ListOf(length=2, element=Any_()),
                "*/0": id_rule,
                "*/1": value,
            },
        )
    return FileRules(
        (name,),
        {"": Records(exact=True), f"*/{id_field}": id_rule, f"*/{value_field}": value},
    )


# --------------------------------------------------------------------------- unified files

#: Objects a unified file cannot do without (docs/schema.md): opening it must refuse their
#: absence. Patterns over HDF5 paths; "*" is one path element.
UNIFIED_REQUIRED = (
    "images",
    "images/key",
    "links",
    "tasks",
    "tasks/*",
    "tasks/*/*/id",
    "tasks/*/*/image",
    "tasks/*/*/*/offsets",
)
UNIFIED_REQUIRED_ATTRS = {"": ("schema_version",), "tasks/*/*": ("role", "num_examples")}


def h5_matches(pattern: str, path: str) -> bool:
    return _matches(_split(pattern), tuple(path.strip("/").split("/")))


def unified_verdict(damage: str, command: str, detail: Mapping[str, Any]) -> Verdict:
    """May ``command`` (info, leaks, verify, score) accept a unified file with ``damage``?

    - Damage that makes the file unreadable or breaks its structure (truncated, empty, not
      HDF5, a required object or attribute gone, a wrong schema version, a column of the
      wrong length or dtype, an image index out of range, offsets that are not monotone or
      do not end at the values' length, a role that is not a role, bad JSON in a JSON
      attribute) must be refused by every command: the reader checks structure on open.
    - Unsorted or repeated image keys break the binary search ``leaks`` relies on: leaks
      and verify must refuse them.
    - Any change of content (a flipped byte in a dataset, a value rewritten, a dataset or
      attribute removed, invalid UTF-8 in a string) must be refused by ``verify`` (it
      compares the checksums written at build time); the other commands may not notice.
    - A flipped byte anywhere else, trailing junk, an unknown extra object: anything goes
      (but never a traceback).
    """
    structural = {
        "truncate": "a truncated HDF5 file",
        "empty": "an empty file",
        "not_hdf5": "not an HDF5 file",
        "schema_version": "a schema version this reader cannot read",
        "bad_json_attr": "a JSON attribute that is not JSON",
        "bad_role": "a role that is not train, eval or extra",
        "num_examples": "num_examples that disagrees with the columns",
        "index_out_of_range": "an image index outside /images",
        "offsets_not_monotone": "ragged offsets that go backwards",
        "offsets_end": "ragged offsets that do not end at the values' length",
        "shorter_column": "a column shorter than num_examples",
        "column_dtype": "a column of the wrong dtype",
    }
    if damage in structural:
        return reject(structural[damage])
    if damage == "delete_object":
        path = str(detail["path"])
        if any(h5_matches(p, path) for p in UNIFIED_REQUIRED):
            return reject(f"a required object ({path}) is gone")
        if command == "verify":
            return reject(f"{path} is gone (its checksum was recorded)")
        return either(f"{path} is gone; {command} need not read it")
    if damage == "delete_attr":
        owner, name = str(detail["owner"]).strip("/"), str(detail["attr"])
        for pattern, names in UNIFIED_REQUIRED_ATTRS.items():
            if name in names and (owner == pattern or h5_matches(pattern, owner)):
                return reject(f"the required attribute {name} of /{owner} is gone")
        if command == "verify":
            return reject(f"the attribute {name} of /{owner} is gone")
        return either("an attribute this command need not read")
    if damage in ("swap_image_keys", "repeat_image_key"):
        if command in ("leaks", "verify"):
            return reject("/images/key is no longer sorted and unique")
        return either(f"{command} does not search image keys")
    if damage in ("flip_dataset_byte", "rewrite_value", "bad_utf8_string", "nan_value"):
        if command == "verify":
            return reject("content differs from the checksums recorded at build time")
        return either("content damage only verify must see")
    return either("damage that may go unnoticed")
