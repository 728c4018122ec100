"""The fuzz harness's own tests: the oracle recognises every bad outcome, the codecs write
what they say, the rules cover every declared file and metric and judge known cases the
documented way (docs/testing.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalserver.metrics import SCORERS, get_scorer
from tests.fuzz import oracle
from tests.fuzz.codecs import CODECS, Invalid, JsonCodec, PickleCodec, codec_for_raw
from tests.fuzz.corrupt import MARKER
from tests.fuzz.rules import (
    DELETED,
    PREDICTION_VALUES,
    judge_dup_key,
    judge_list_op,
    judge_value,
    rules_for_file,
    values_at,
)
from tests.fuzz.seeds import PredictionSeed, RawSeeds
from tests.fuzz.targets import RawFuzz, RawTarget, declared_raw_files
from tests.fuzz.values import BadUtf8, Deep, DupKey, PickleGlobal, RefBomb, SelfRef
from unify.tasks import all_tasks

FAKE = "tests.fuzz.fake_cli"


# --------------------------------------------------------------------------- oracle


def _fake(tmp_path: Path, behaviour: str, mode: str = "fork", must_reject: bool = False):
    target = tmp_path / "input.json"
    target.write_text("{}")
    command = oracle.Command(
        FAKE, ("act", behaviour, str(target)), tmp_path, nameable=(target.name,)
    )
    return oracle.run(command, must_reject, mode, timeout=10)


@pytest.mark.parametrize(
    ("behaviour", "must_reject", "kind"),
    [
        ("ok", False, "ok"),
        ("ok", True, "silent_acceptance"),
        ("clean", True, "clean_error"),
        ("nameless", True, "unclear_error"),
        ("long", True, "unclear_error"),
        ("usage", True, "unclear_error"),
        ("diag", True, "unclear_error"),
        ("raise", True, "traceback"),
        ("memory", True, "crash"),
        ("segv", True, "crash"),
        ("write_then_fail", True, "written"),
    ],
)
def test_oracle_classifies(tmp_path: Path, behaviour: str, must_reject: bool, kind: str) -> None:
    outcome = _fake(tmp_path, behaviour, must_reject=must_reject)
    assert outcome.kind == kind, outcome


def test_oracle_kills_a_command_that_runs_too_long(tmp_path: Path) -> None:
    target = tmp_path / "input.json"
    target.write_text("{}")
    command = oracle.Command(FAKE, ("act", "sleep", str(target)), tmp_path, (target.name,))
    outcome = oracle.run(command, True, "fork", timeout=1)
    assert (outcome.kind, outcome.detail.split(":")[0]) == ("crash", "timeout")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [("ok", "ok"), ("clean", "clean_error"), ("raise", "traceback"), ("segv", "crash")],
)
def test_oracle_subprocess_mode(tmp_path: Path, behaviour: str, kind: str) -> None:
    assert _fake(tmp_path, behaviour, mode="subprocess").kind == kind


# --------------------------------------------------------------------------- codecs


def _raw_files(raw_seeds: RawSeeds):
    for task, file in declared_raw_files():
        for source in raw_seeds.sources_of(task, file):
            folder = raw_seeds.folder(source, task)
            assert folder is not None
            description = next(
                rf.description
                for rf in all_tasks()[task].make_converter().raw_files
                if rf.name == file
            )
            yield task, file, source, folder / file, codec_for_raw(file, description)


def test_codecs_round_trip_every_seed(raw_seeds: RawSeeds) -> None:
    """Decoding a seed and encoding it back gives the same document."""
    for task, file, source, path, codec in _raw_files(raw_seeds):
        data = path.read_bytes()
        doc = codec.decode(data)
        assert codec.reference(codec.encode(doc)) == codec.reference(data), (task, file, source)


def test_special_values() -> None:
    json_codec, pickle_codec = JsonCodec(), PickleCodec()
    with pytest.raises(Invalid, match="nested"):
        json_codec.reference(json_codec.encode({"a": Deep(5_000)}))
    with pytest.raises(Invalid, match="UTF-8"):
        json_codec.reference(json_codec.encode(["ok", BadUtf8(b"\xff")]))
    assert json_codec.reference(json_codec.encode({"a": DupKey(1, 2)})) == {"a": 2}
    with pytest.raises(Invalid, match="UTF-8"):
        pickle_codec.reference(pickle_codec.encode([{"sent": BadUtf8(b"caf\xe9")}]))
    with pytest.raises(Invalid, match="itself"):
        pickle_codec.reference(pickle_codec.encode([SelfRef()]))
    bomb = pickle_codec.encode({"junk": RefBomb(40, 8)})  # 8**40 leaves once expanded
    assert len(bomb) < 10_000
    assert isinstance(pickle_codec.reference(bomb)["junk"], list)
    assert pickle_codec.reference(pickle_codec.encode([Deep(3)])) == [[[[]]]]


def test_a_pickle_global_is_refused_without_running(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = PickleCodec().encode([{"a": PickleGlobal(MARKER)}])
    with pytest.raises(Invalid, match="global"):
        PickleCodec().reference(data)
    assert not (tmp_path / MARKER).exists()


# --------------------------------------------------------------------------- rules


def test_every_declared_raw_file_has_rules() -> None:
    missing = [f"{t}/{f}" for t, f in declared_raw_files() if rules_for_file(f) is None]
    assert not missing, f"add rules for these files to tests/fuzz/rules.py: {missing}"


def test_rules_name_fields_the_seeds_hold(raw_seeds: RawSeeds) -> None:
    """A required field's pattern must match something in some seed of its file (a
    renamed field would otherwise leave a rule that never fires)."""
    matched: dict[tuple[str, str], bool] = {}
    for _, file, _, path, codec in _raw_files(raw_seeds):
        rules = rules_for_file(file)
        assert rules is not None
        doc = codec.decode(path.read_bytes())
        for pattern, rule in rules.fields.items():
            if not rule.required:
                continue
            key = (rules.names[0], pattern)
            steps = tuple(pattern.split("/")) if pattern else ()
            matched[key] = matched.get(key, False) or bool(next(values_at(doc, steps), None))
    stale = [f"{name}: {pattern}" for (name, pattern), ok in matched.items() if not ok]
    assert not stale, f"rules matching nothing in any seed: {stale}"


def test_every_metric_has_prediction_rules() -> None:
    assert set(PREDICTION_VALUES) == set(SCORERS)
    kinds = {fmt.kind for scorer in SCORERS.values() for fmt in scorer.formats}
    assert kinds <= set(CODECS)


def test_prediction_seeds_cover_every_task_and_format(
    prediction_seed_list: list[PredictionSeed],
) -> None:
    have = {(s.task, s.format_name) for s in prediction_seed_list}
    want = {(t, f.name) for t in all_tasks() for f in get_scorer(t).formats}
    assert have == want


def _model(raw_seeds: RawSeeds, task: str, file: str):
    return RawFuzz(raw_seeds, RawTarget(task, file, raw_seeds.sources_of(task, file)[0])).model


def test_judgements_on_vqa(raw_seeds: RawSeeds) -> None:
    model = _model(raw_seeds, "vqa2", "v2_OpenEnded_mscoco_train2014_questions.json")
    ctx, rules = model.context(), model.rules
    q = ("questions", 0)
    assert judge_value(ctx, rules, (*q, "question"), "Q?", "Q\x00?").must_reject
    assert judge_value(ctx, rules, (*q, "question"), "Q?", "Q\ud800?").must_reject
    assert judge_value(ctx, rules, (*q, "question"), "Q?", {"text": "Q?"}).must_reject
    assert not judge_value(ctx, rules, (*q, "question"), "Q?", "Another?").must_reject
    assert not judge_value(ctx, rules, ("info", "year"), 2017, DELETED).must_reject
    assert not judge_value(ctx, rules, ("info", "year"), 2017, "\x00").must_reject
    other = model.doc["questions"][1]["question_id"]
    assert judge_value(ctx, rules, (*q, "question_id"), 1, other).must_reject  # a duplicate
    assert judge_value(ctx, rules, (*q, "question_id"), 1, 1.0).must_reject
    assert judge_value(ctx, rules, (*q, "image_id"), 100, 101).must_reject  # its annotation's
    assert judge_list_op(ctx, rules, ("questions",), "delete", 0).must_reject  # orphans one
    annotations = _model(raw_seeds, "vqa2", "v2_mscoco_train2014_annotations.json")
    a_ctx, a_rules = annotations.context(), annotations.rules
    answers = ("annotations", 0, "answers")
    assert judge_list_op(a_ctx, a_rules, answers, "duplicate", 3).must_reject  # 11 answers
    assert judge_list_op(a_ctx, a_rules, answers, "delete", 3).must_reject  # 9 answers
    assert judge_list_op(a_ctx, a_rules, ("annotations",), "delete", 0).must_reject


def test_judgements_on_gqa_and_refer(raw_seeds: RawSeeds) -> None:
    gqa = _model(raw_seeds, "gqa", "train_balanced_questions.json")
    ctx, rules = gqa.context(), gqa.rules
    key = next(iter(gqa.doc))
    assert not judge_value(ctx, rules, (key,), gqa.doc[key], DELETED).must_reject
    assert judge_value(ctx, rules, (key, "isBalanced"), True, "false").must_reject
    assert judge_value(ctx, rules, (key, "types"), {}, DELETED).must_reject
    assert judge_dup_key(ctx, rules, (key,), gqa.doc[key], DupKey(1, 2)).must_reject
    refs = _model(raw_seeds, "refcoco", "refs(unc).p")
    r_ctx, r_rules = refs.context(), refs.rules
    assert not judge_value(r_ctx, r_rules, (0, "junk"), DELETED, RefBomb(30, 8)).must_reject
    assert judge_value(r_ctx, r_rules, (0, "sentences"), [], RefBomb(30, 8).build()).must_reject
    assert judge_value(r_ctx, r_rules, (0, "split"), "train", "testC").must_reject
    assert not judge_value(r_ctx, r_rules, (0, "split"), "train", "val").must_reject
    assert judge_value(r_ctx, r_rules, (0, "ann_id"), 1001, 999_999).must_reject  # dangling
    instances = _model(raw_seeds, "refcoco", "instances.json")
    i_ctx, i_rules = instances.context(), instances.rules
    box = ("annotations", 0, "bbox")
    assert judge_value(i_ctx, i_rules, (*box, 2), 3.0, -3.0).must_reject
    assert judge_value(i_ctx, i_rules, (*box, 0), 1.0, 1e39).must_reject  # beyond float32
    assert not judge_value(i_ctx, i_rules, (*box, 0), 1.0, -5.0).must_reject
    assert judge_value(i_ctx, i_rules, ("images", 0, "width"), 640, 0).must_reject
