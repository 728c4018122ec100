"""Hidden splits: organiser files, private builds, public copies (``unify publish``).

Built from the tiny sample, which writes the organisers' answers of the hidden splits
(vqa2 test2015, gqa submission) under ``organiser/``.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from evalserver.cli import main as evalserver_main
from evalserver.metrics import SCORERS, GroundTruth, load_groundtruth, score_file
from unify import checksums
from unify.build import BuildOptions, published_fingerprint, recompute_fingerprint, run_build
from unify.cli import main
from unify.converters import registry
from unify.errors import DataError
from unify.hidden import ORGANISER
from unify.publish import publish
from unify.reader import UnifiedFile
from unify.tasks import Split, TaskSpec, all_tasks
from unify.verify import verify_file

TASKS = ("vqa2", "gqa", "nlvr2")
#: Every hidden split the TaskSpecs declare, as (task, split).
DECLARED = [(s.name, h) for s in all_tasks().values() for h in s.hidden if s.name in TASKS]
VQA_ANNOTATIONS = "v2_mscoco_test2015_annotations.json"
GQA_SUBMISSION = "submission_all_questions.json"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _build(raw: Path, out: Path, organiser: Path | None = None, **kw: Any) -> Path:
    tasks = kw.pop("tasks", TASKS)
    run_build(raw, out, BuildOptions(tasks=tasks, organiser=organiser, **kw))
    return out


@pytest.fixture(scope="module")
def public_build(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The public release alone: hidden splits without answers."""
    return _build(tiny_raw, tmp_path_factory.mktemp("hidden") / "public_build.h5")


@pytest.fixture(scope="module")
def private(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private build: the organisers' answers of the hidden splits included."""
    out = tmp_path_factory.mktemp("hidden") / "private.h5"
    return _build(tiny_raw, out, tiny_raw / ORGANISER)


@pytest.fixture(scope="module")
def public_copy(private: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hidden") / "public.h5"
    publish(private, out)
    return out


def _columns(path: Path, task: str, split: str) -> list[str]:
    with UnifiedFile(path) as uf:
        return list(uf.split(task, split).group)


# ------------------------------------------------------------------------ the TaskSpecs
def test_taskspecs_declare_the_releases_hidden_splits() -> None:
    hidden = {s.name: s.hidden for s in all_tasks().values() if s.hidden}
    assert hidden == {"vqa2": ("test-dev", "test"), "gqa": ("submission",)}
    for spec in all_tasks().values():
        for split in spec.hidden:
            assert spec.role(split) == "eval" and split != spec.val_split


def test_hidden_splits_are_documented_and_listed() -> None:
    code, text, _ = run("tasks", "--json")
    assert code == 0
    records = {r["name"]: r for r in json.loads(text)}
    assert {name: r["hidden"] for name, r in records.items()} == {
        s.name: list(s.hidden) for s in all_tasks().values()
    }
    tasks_md = (Path(__file__).parents[2] / "docs" / "tasks.md").read_text()
    assert "- hidden splits (answers held by the organisers): `test-dev`, `test`" in tasks_md


def test_tasks_with_hidden_splits_can_take_their_answers() -> None:
    for spec in all_tasks().values():
        converter = registry()[spec.name]
        if spec.hidden:
            assert converter.answer_columns and converter.organiser_files, spec.name
        # Answer columns are never what identifies or shows an example.
        assert not {"id", "image"} & set(converter.answer_columns), spec.name


def test_list_names_hidden_splits_and_organiser_files() -> None:
    code, text, _ = run("list")
    assert code == 0
    assert "test (eval, hidden), test-dev (eval, hidden)" in text
    assert f"[organiser] vqa2/{VQA_ANNOTATIONS}  (--organiser DIR: " in text
    assert f"[organiser] gqa/{GQA_SUBMISSION}  (--organiser DIR: " in text


@pytest.mark.parametrize(
    "hidden,problem",
    [(("nope",), "hidden split 'nope' is not a split"), (("train",), "not an evaluation")],
)
def test_a_taskspec_hides_only_its_evaluation_splits(hidden: tuple[str, ...], problem: str) -> None:
    spec = all_tasks()["nlvr2"]
    fields = {k: getattr(spec, k) for k in spec.__dataclass_fields__}
    fields["hidden"] = hidden
    fields["splits"] = (Split("train", "train"), *spec.splits[1:])
    with pytest.raises(ValueError, match=problem):
        TaskSpec(**fields)


# ------------------------------------------------------------------------------ builds
@pytest.mark.parametrize("task,split", DECLARED)
def test_build_without_organiser_files_has_no_answers(
    public_build: Path, task: str, split: str
) -> None:
    answers = registry()[task].answer_columns
    with UnifiedFile(public_build) as uf:
        view = uf.split(task, split)
        assert view.hidden and not view.answers_present
        assert view.num_examples > 0
        assert not set(answers) & set(view.group)
        assert json.loads(view.group.attrs["answer_columns"]) == []
        assert uf.build_report["hidden"][task][split] == "absent"
        assert not uf.is_public_copy and uf.benchmark_fingerprint == uf.fingerprint


@pytest.mark.parametrize("task,split", DECLARED)
def test_private_build_holds_the_answers(
    private: Path, public_build: Path, task: str, split: str
) -> None:
    with UnifiedFile(private) as uf, UnifiedFile(public_build) as pub:
        view = uf.split(task, split)
        assert view.hidden and view.answers_present
        public_view = pub.split(task, split)
        # The same questions in the same order, with the answer columns added.
        assert view.column("id").tolist() == public_view.column("id").tolist()
        assert view.image_keys().tolist() == public_view.image_keys().tolist()
        declared = json.loads(view.group.attrs["answer_columns"])
        assert declared and set(view.group) == set(public_view.group) | set(declared)
        # As the task's public evaluation split (choices files aside).
        other = uf.split(task, all_tasks()[task].val_split)
        assert set(view.group) == set(other.group) - {"valid_answers", "plausible_answers"}


def test_private_build_verifies(private: Path) -> None:
    report = verify_file(private)
    assert report.ok, report.problems


def test_other_splits_are_marked_not_hidden(private: Path) -> None:
    with UnifiedFile(private) as uf:
        for task in uf.tasks:
            for split in uf.splits(task):
                view = uf.split(task, split)
                if (task, split) not in DECLARED:
                    assert not view.hidden and view.answers_present, (task, split)
                    assert view.group.attrs["answers"] == "present"


def test_organiser_files_enter_sources_and_fingerprint(private: Path, public_build: Path) -> None:
    with UnifiedFile(private) as uf, UnifiedFile(public_build) as pub:
        organiser = {s["path"] for s in uf.sources} - {s["path"] for s in pub.sources}
        assert organiser == {
            f"{ORGANISER}/vqa2/{VQA_ANNOTATIONS}",
            f"{ORGANISER}/gqa/{GQA_SUBMISSION}",
        }
        assert uf.fingerprint != pub.fingerprint
        assert recompute_fingerprint(uf) == uf.fingerprint
        assert uf.build_options == pub.build_options


def test_organiser_folder_anywhere_gives_one_fingerprint(
    tiny_raw: Path, private: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "answers"
    shutil.copytree(tiny_raw / ORGANISER, elsewhere)
    again = _build(tiny_raw, tmp_path / "again.h5", elsewhere)
    with UnifiedFile(again) as a, UnifiedFile(private) as b:
        assert a.fingerprint == b.fingerprint


# ------------------------------------------------------------------------------ scoring
def _perfect_vqa(gt: GroundTruth) -> tuple[Any, Any]:
    offsets, answers = gt.answer_offsets, gt.answers
    best = [
        Counter(answers[offsets[i] : offsets[i + 1]]).most_common(1)[0][0]
        for i in range(len(offsets) - 1)
    ]
    return gt.question_ids, best


PERFECT: dict[str, Callable[[GroundTruth], tuple[Any, Any]]] = {
    "vqa": _perfect_vqa,
    "gqa": lambda gt: (gt.ids[: gt.num_balanced], gt.answers[: gt.num_balanced]),
}


@pytest.mark.parametrize("task,split", DECLARED)
def test_hidden_split_of_a_private_build_scores_100(private: Path, task: str, split: str) -> None:
    gt = load_groundtruth(private, task, split)
    with UnifiedFile(private) as uf:
        assert gt.fingerprint == uf.fingerprint
        assert len(gt.data.answers) >= uf.split(task, split).num_examples
    ids, values = PERFECT[gt.metric](gt)
    result = score_file(task, gt, SCORERS[gt.metric].write(ids, values))
    spec = all_tasks()[task]
    assert result.metrics[spec.primary] == 100.0


@pytest.mark.parametrize("task,split", DECLARED)
def test_hidden_split_without_answers_cannot_be_scored(
    public_build: Path, public_copy: Path, private: Path, task: str, split: str
) -> None:
    with pytest.raises(DataError) as built:
        load_groundtruth(public_build, task, split)
    assert str(built.value) == (
        f"{public_build}: the answers of {task}/{split} are not in this file (it was built "
        "without organiser files: build with `unify build --organiser DIR`)"
    )
    with pytest.raises(DataError) as copied:
        load_groundtruth(public_copy, task, split)
    with UnifiedFile(private) as uf:
        fp = uf.fingerprint
    assert str(copied.value) == (
        f"{public_copy}: the answers of {task}/{split} are not in this file (it is a public "
        f"copy (unify publish) of the build with fingerprint {fp[:12]}: score against that "
        "private build)"
    )


def test_evalserver_score_of_a_public_copy_exits_1(public_copy: Path, tmp_path: Path) -> None:
    predictions = tmp_path / "p.json"
    predictions.write_text("[]")
    args = ["score", "--data", str(public_copy), "--task", "vqa2", "--phase", "test"]
    result = CliRunner().invoke(evalserver_main, [*args, str(predictions)])
    assert result.exit_code == 1
    assert "the answers of vqa2/test are not in this file (it is a public copy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_public_copy_scores_visible_splits_with_the_private_fingerprint(
    public_copy: Path, private: Path
) -> None:
    from_copy = load_groundtruth(public_copy, "vqa2", "minval")
    from_private = load_groundtruth(private, "vqa2", "minval")
    assert from_copy.fingerprint == from_private.fingerprint
    assert from_copy.data.question_ids.tolist() == from_private.data.question_ids.tolist()


# ---------------------------------------------------------------------- mismatched ids
def _raw_copy(tiny_raw: Path, tmp_path: Path, task: str) -> tuple[Path, Path]:
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw / task, raw / task)
    organiser = tmp_path / "organiser"
    shutil.copytree(tiny_raw / ORGANISER / task, organiser / task)
    return raw, organiser


def _edit_vqa(path: Path, edit: Callable[[list[dict[str, Any]]], None]) -> None:
    doc = orjson.loads(path.read_bytes())
    edit(doc["annotations"])
    path.write_bytes(orjson.dumps(doc))


def test_vqa_organiser_file_missing_an_answer(tiny_raw: Path, tmp_path: Path) -> None:
    raw, organiser = _raw_copy(tiny_raw, tmp_path, "vqa2")
    path = organiser / "vqa2" / VQA_ANNOTATIONS
    dropped: list[int] = []
    _edit_vqa(path, lambda anns: dropped.append(anns.pop(3)["question_id"]))
    code, _, err = run(
        "build",
        "vqa2",
        "--raw",
        str(raw),
        "--organiser",
        str(organiser),
        "--out",
        str(tmp_path / "u.h5"),
    )
    assert code == 1 and not (tmp_path / "u.h5").exists()
    assert err.strip() == (
        f"error: {path}: organiser file does not match the public questions: 1 public "
        f"question(s) of vqa2/test and vqa2/test-dev have no answer in it (first: {dropped})"
    )


def test_vqa_organiser_file_with_unknown_ids(tiny_raw: Path, tmp_path: Path) -> None:
    raw, organiser = _raw_copy(tiny_raw, tmp_path, "vqa2")
    path = organiser / "vqa2" / VQA_ANNOTATIONS

    def add(anns: list[dict[str, Any]]) -> None:
        for qid in (10**12 + 2, 10**12 + 1):
            anns.append(dict(anns[0], question_id=qid))

    _edit_vqa(path, add)
    with pytest.raises(DataError) as err:
        _build(raw, tmp_path / "u.h5", organiser, tasks=("vqa2",))
    assert str(err.value).endswith(
        "2 id(s) in it are not public questions of vqa2/test and vqa2/test-dev "
        f"(first: {[10**12 + 1, 10**12 + 2]})"
    )
    assert str(err.value).startswith(f"{path}: organiser file does not match")


def test_vqa_organiser_annotation_breaking_a_field_rule(tiny_raw: Path, tmp_path: Path) -> None:
    raw, organiser = _raw_copy(tiny_raw, tmp_path, "vqa2")
    path = organiser / "vqa2" / VQA_ANNOTATIONS
    qid: list[int] = []

    def bad(anns: list[dict[str, Any]]) -> None:
        anns[0]["answers"] = anns[0]["answers"][:9]
        qid.append(anns[0]["question_id"])

    _edit_vqa(path, bad)
    with pytest.raises(DataError, match=rf"{path}: record {qid[0]}: field 'answers': 9 items"):
        _build(raw, tmp_path / "u.h5", organiser, tasks=("vqa2",))


def _edit_gqa(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = orjson.loads(path.read_bytes())
    edit(doc)
    path.write_bytes(orjson.dumps(doc))


def test_gqa_organiser_file_mismatches(tiny_raw: Path, tmp_path: Path) -> None:
    raw, organiser = _raw_copy(tiny_raw, tmp_path, "gqa")
    path = organiser / "gqa" / GQA_SUBMISSION
    original = path.read_bytes()
    first = next(iter(orjson.loads(original)))
    _edit_gqa(path, lambda d: d.pop(first))
    with pytest.raises(DataError, match=rf"have no answer in it \(first: \['{first}'\]\)"):
        _build(raw, tmp_path / "u.h5", organiser, tasks=("gqa",))
    path.write_bytes(original)
    _edit_gqa(path, lambda d: d.update({"99999999": d[first]}))
    with pytest.raises(
        DataError,
        match=r"1 id\(s\) in it are not public questions of "
        r"gqa/submission \(first: \['99999999'\]\)",
    ):
        _build(raw, tmp_path / "u.h5", organiser, tasks=("gqa",))
    path.write_bytes(original)
    _edit_gqa(path, lambda d: d[first].update(question="Another question?"))
    with pytest.raises(DataError, match=rf"record {first}: field 'question': differs"):
        _build(raw, tmp_path / "u.h5", organiser, tasks=("gqa",))
    path.write_bytes(original)
    _edit_gqa(path, lambda d: d[first].pop("answer"))
    with pytest.raises(DataError, match=rf"record {first}: field 'answer': missing"):
        _build(raw, tmp_path / "u.h5", organiser, tasks=("gqa",))


def test_organiser_folder_without_organiser_files(tiny_raw: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(
        "build",
        "vqa2",
        "--raw",
        str(tiny_raw),
        "--organiser",
        str(empty),
        "--out",
        str(tmp_path / "u.h5"),
    )
    assert code == 1
    assert f"organiser folder {empty} holds no organiser file of the tasks built" in err
    assert str(empty / "vqa2" / VQA_ANNOTATIONS) in err


def test_organiser_answers_need_the_public_questions(tiny_raw: Path, tmp_path: Path) -> None:
    raw, organiser = _raw_copy(tiny_raw, tmp_path, "vqa2")
    (raw / "vqa2" / "v2_OpenEnded_mscoco_test2015_questions.json").unlink()
    with pytest.raises(DataError, match=r"no v2_OpenEnded_mscoco_test2015_questions\.json"):
        _build(raw, tmp_path / "u.h5", organiser, tasks=("vqa2",))


def test_smoke_build_checks_only_the_public_questions(tiny_raw: Path, tmp_path: Path) -> None:
    raw, organiser = _raw_copy(tiny_raw, tmp_path, "vqa2")
    out = _build(raw, tmp_path / "u.h5", organiser, tasks=("vqa2",), max_examples=7)
    with UnifiedFile(out) as uf:
        assert uf.split("vqa2", "test").num_examples == 7
        assert uf.split("vqa2", "test").answers_present


# ------------------------------------------------------------------------------ publish
def _walk(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Every object's attributes, and every dataset's values (with dtype and chunks)."""
    attrs: dict[str, dict[str, Any]] = {}
    data: dict[str, Any] = {}
    with h5py.File(path) as f:
        attrs["/"] = {k: _plain(v) for k, v in f.attrs.items()}

        def visit(name: str, obj: Any) -> None:
            attrs["/" + name] = {k: _plain(v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                data["/" + name] = (
                    obj.dtype.str,
                    obj.shape,
                    obj.chunks,
                    obj.compression,
                    obj[()].tolist(),
                )

        f.visititems(visit)
    return attrs, data


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def test_publish_removes_the_answers_and_nothing_else(private: Path, public_copy: Path) -> None:
    private_attrs, private_data = _walk(private)
    public_attrs, public_data = _walk(public_copy)
    with UnifiedFile(private) as uf:
        withheld = {
            f"/tasks/{task}/{split}/{column}"
            for task, split in DECLARED
            for column in json.loads(uf.split(task, split).group.attrs["answer_columns"])
        }
        fp = uf.fingerprint
    assert withheld
    removed = {p for p in private_attrs if p not in public_attrs}
    assert {p for p in removed if not any(p.startswith(w + "/") for w in withheld)} == withheld
    assert set(public_attrs) <= set(private_attrs)
    assert set(public_data) == {p for p in private_data if p not in removed}
    for path, value in public_data.items():
        assert value == private_data[path], path
    for path, attrs in public_attrs.items():
        expected = dict(private_attrs[path])
        if path == "/":
            expected["published_from"] = fp
            expected["fingerprint"] = published_fingerprint(fp)
            listed = json.loads(expected[checksums.ROOT_ATTR])
            listed["datasets"] = [d for d in listed["datasets"] if d in public_data]
            assert json.loads(attrs.pop(checksums.ROOT_ATTR)) == listed
            expected.pop(checksums.ROOT_ATTR)
        if path in {f"/tasks/{t}/{s}" for t, s in DECLARED}:
            expected["answers"] = "absent"
        assert attrs == expected, path


def test_public_copy_has_the_columns_of_a_build_without_organiser_files(
    public_copy: Path, public_build: Path
) -> None:
    with UnifiedFile(public_copy) as a, UnifiedFile(public_build) as b:
        assert a.tasks == b.tasks
        for task in a.tasks:
            assert a.splits(task) == b.splits(task)
            for split in a.splits(task):
                assert list(a.split(task, split).group) == list(b.split(task, split).group)


def test_public_copy_verifies_and_names_its_private_build(public_copy: Path, private: Path) -> None:
    report = verify_file(public_copy)
    assert report.ok and report.checksums == "match", report.problems
    with UnifiedFile(public_copy) as pub, UnifiedFile(private) as uf:
        assert pub.is_public_copy and not uf.is_public_copy
        assert pub.benchmark_fingerprint == uf.fingerprint == uf.benchmark_fingerprint
        assert pub.fingerprint == published_fingerprint(uf.fingerprint) != uf.fingerprint
        assert recompute_fingerprint(pub) == pub.fingerprint
    code, text, _ = run("verify", str(public_copy))
    assert code == 0 and ": ok: " in text


def test_publish_cli(private: Path, tmp_path: Path) -> None:
    out = tmp_path / "pub.h5"
    code, _, err = run("publish", str(private), "--out", str(out))
    assert code == 0, err
    assert "vqa2/test: withheld question_type, answer_type, multiple_choice_answer" in err
    assert not list(tmp_path.glob(".*.tmp"))
    code, _, err = run("publish", str(private), "--out", str(out))
    assert code == 2 and "--force" in err
    assert run("publish", str(private), "--out", str(out), "--force")[0] == 0
    code, _, err = run("publish", str(out), "--out", str(tmp_path / "again.h5"))
    assert code == 1 and "is already a public copy" in err
    assert not (tmp_path / "again.h5").exists()
    code, _, err = run("publish", str(private), "--out", str(private), "--force")
    assert code == 2 and "is PRIVATE itself" in err


def test_publish_without_hidden_splits_copies(tiny_raw: Path, tmp_path: Path) -> None:
    build = _build(tiny_raw, tmp_path / "nlvr2.h5", tasks=("nlvr2",))
    report = publish(build, tmp_path / "pub.h5")
    assert report.withheld == {}
    private_attrs, private_data = _walk(build)
    public_attrs, public_data = _walk(tmp_path / "pub.h5")
    assert public_data == private_data
    assert set(public_attrs["/"]) - set(private_attrs["/"]) == {"published_from"}


def test_info_says_what_is_hidden(public_copy: Path, private: Path) -> None:
    code, text, _ = run("info", str(public_copy), "--json")
    summary = json.loads(text)
    with UnifiedFile(private) as uf:
        assert summary["published_from"] == uf.fingerprint
    test = summary["tasks"]["vqa2"]["splits"]["test"]
    assert (test["hidden"], test["answers_present"]) == (True, False)
    minval = summary["tasks"]["vqa2"]["splits"]["minval"]
    assert (minval["hidden"], minval["answers_present"]) == (False, True)
    code, text, _ = run("info", str(public_copy))
    assert code == 0
    assert "public copy (unify publish) of the private build" in text
    assert "vqa2                  test          eval          200  absent (hidden)" in text
    code, text, _ = run("info", str(private))
    assert "vqa2                  test          eval          200  present (hidden)" in text
    assert json.loads(run("info", str(private), "--json")[1])["published_from"] is None


def test_leaks_on_a_public_copy(public_copy: Path, private: Path) -> None:
    _, text, _ = run("leaks", str(public_copy))
    assert "hidden splits, evaluation splits like the others" in text
    assert "vqa2/test, vqa2/test-dev" in text
    outcomes = [run("leaks", str(p), "--json") for p in (private, public_copy)]
    assert outcomes[0][0] == outcomes[1][0]
    reports = [json.loads(text) for _, text, _ in outcomes]
    assert [r.pop("file") for r in reports] == [str(private), str(public_copy)]
    assert reports[0] == reports[1]
    hidden = ["vqa2/test", "vqa2/test-dev", "gqa/submission"]
    assert reports[0]["hidden_evaluation_splits"] == hidden
    with h5py.File(private) as f:
        built = json.loads(f["leakage"].attrs["report"])
    assert built["hidden_evaluation_splits"] == reports[0]["hidden_evaluation_splits"]


# --------------------------------------------------------------------------------- --hide
def test_hide_more_splits(tiny_raw: Path, tmp_path: Path, private: Path) -> None:
    out = tmp_path / "hide.h5"
    code, _, err = run(
        "build",
        *TASKS,
        "--raw",
        str(tiny_raw),
        "--organiser",
        str(tiny_raw / ORGANISER),
        "--hide",
        "nlvr2:test1",
        "--out",
        str(out),
        "--quiet",
    )
    assert code == 0, err
    with UnifiedFile(out) as uf, UnifiedFile(private) as other:
        view = uf.split("nlvr2", "test1")
        assert view.hidden and view.answers_present
        assert uf.build_options["hide"] == ["nlvr2:test1"]
        assert uf.fingerprint != other.fingerprint
    publish(out, tmp_path / "pub.h5")
    assert "label" not in _columns(tmp_path / "pub.h5", "nlvr2", "test1")
    assert "label" in _columns(tmp_path / "pub.h5", "nlvr2", "dev")
    with pytest.raises(DataError, match="the answers of nlvr2/test1 are not in this file"):
        load_groundtruth(tmp_path / "pub.h5", "nlvr2", "test1")


@pytest.mark.parametrize(
    "value,message",
    [
        ("nlvr2", "expected TASK:SPLIT"),
        ("nlvr2:train", "nlvr2 has no evaluation split 'train'"),
        ("nlvr2:dev", "model-selection split"),
        ("snli_ve:test", "task 'snli_ve' is not in this build"),
        ("coco_retrieval:test", "cannot be withheld from its inputs"),
    ],
)
def test_hide_refuses(tiny_raw: Path, tmp_path: Path, value: str, message: str) -> None:
    code, _, err = run(
        "build",
        "nlvr2",
        "coco_retrieval",
        "--raw",
        str(tiny_raw),
        "--hide",
        value,
        "--out",
        str(tmp_path / "u.h5"),
    )
    assert code == 2 and message in err, err


# ------------------------------------------------------------------------- older files
def test_files_before_hidden_splits_read_as_nothing_hidden(
    public_build: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.h5"
    shutil.copyfile(public_build, old)
    with h5py.File(old, "r+") as f:
        for task in f["tasks"]:
            for split in f["tasks"][task].values():
                for name in ("hidden", "answers", "answer_columns"):
                    if name in split.attrs:
                        del split.attrs[name]
    with UnifiedFile(old) as uf:
        assert not uf.split("vqa2", "test").hidden
        assert not uf.split("vqa2", "test").answers_present  # no `answers` column
        assert uf.split("vqa2", "minval").answers_present
        assert uf.split("nlvr2", "test1").answers_present


# ------------------------------------------------------------------- learnability probes
@pytest.mark.slow
def test_probe_scores_on_the_hidden_test_split(tmp_path: Path) -> None:
    """The small sample's private build: the VQA probe learns from trainval and is scored
    on the hidden test split, as well as on minval (the organisers' answers follow the
    same world)."""
    from unify.features import import_features
    from unify.sample.probes import RegionStore, run_probe
    from unify.sample.world import generate

    raw = tmp_path / "raw"
    generate(raw, scale="small", seed=0, tasks=[all_tasks()["vqa2"]])
    out = _build(raw, tmp_path / "small.h5", raw / ORGANISER, tasks=("vqa2",))
    import_features(out, [raw / "features" / "coco.tsv"], "bottomup_coco", "coco")
    with UnifiedFile(out) as uf:
        store = RegionStore(uf, "bottomup_coco")
        test = run_probe(uf, "vqa2", "trainval", "test", store)
        minval = run_probe(uf, "vqa2", "trainval", "minval", store)
    assert test.examples >= 500
    assert test.score >= test.chance + 20 and test.blind is not None
    assert test.score >= test.blind + 10
    assert abs(test.score - minval.score) < 10, (test, minval)


def test_a_damaged_private_build_is_not_published(private: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.h5"
    shutil.copyfile(private, damaged)
    with h5py.File(damaged, "r+") as f:
        f["tasks/vqa2/minval/question"][0] = "A question nobody asked?"
    code, _, err = run("publish", str(damaged), "--out", str(tmp_path / "pub.h5"))
    assert code == 1, err
    assert err.startswith(f"error: {damaged}: damaged, not published: /tasks/vqa2/minval/question")
    assert not (tmp_path / "pub.h5").exists() and not list(tmp_path.glob(".*.tmp"))


def test_publish_path_problems(private: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.h5"
    code, _, err = run("publish", str(missing), "--out", str(tmp_path / "pub.h5"))
    assert code == 1 and str(missing) in err and len(err.strip().splitlines()) == 1
    folder = tmp_path / "folder"
    folder.mkdir()
    code, _, err = run("publish", str(private), "--out", str(folder), "--force")
    assert code == 1 and str(folder) in err
    code, _, err = run("publish", str(private))
    assert code == 2 and "--out" in err
