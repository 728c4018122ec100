"""The generated world: its planted overlaps exist, cleaning removes them, nothing empties."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from unify.build import BuildOptions, resolve_tasks, run_build
from unify.cli import main
from unify.reader import UnifiedFile
from unify.sample.world import World, generate


@pytest.fixture(scope="module")
def raw_no_clean(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "raw.h5"
    run_build(tiny_raw, out, BuildOptions(tasks=resolve_tasks((), True), all=True, clean=False))
    return out


def _pairs(path: Path) -> dict[tuple[str, str], set[str]]:
    with UnifiedFile(path) as uf:
        report = uf.build_report["leakage"]
    return {(p["train_task"], p["eval_task"]): set(p["link_types"]) for p in report["pairs"]}


def test_planted_overlaps_are_found_through_each_link_type(raw_no_clean: Path) -> None:
    pairs = _pairs(raw_no_clean)
    # RefCOCO evaluation images are COCO train2014 images that VQA v2 trains on.
    assert "same_key" in pairs[("vqa2", "refcoco")]
    # Karpathy val/test images are val2014 images in VQA v2 trainval.
    assert "same_key" in pairs[("vqa2", "coco_retrieval")]
    # VG training images that are COCO images evaluated on elsewhere.
    assert any("vg_coco_id" in types for (train, _), types in pairs.items() if train == "vgqa")
    # COCO images whose flickr_url is a Flickr30k evaluation photo.
    assert any(
        "coco_flickr_url" in types
        for (train, ev), types in pairs.items()
        if ev in ("flickr30k_retrieval", "snli_ve")
    )
    # SNLI-VE (Entities split) and Flickr30k retrieval (Karpathy split) share photos.
    assert "same_key" in pairs[("snli_ve", "flickr30k_retrieval")]
    assert "same_key" in pairs[("flickr30k_retrieval", "snli_ve")]
    # GQA's val leftovers (trainval) sit on the VG-only photos VG-QA evaluates on.
    assert "same_key" in pairs[("gqa", "vgqa")]
    # RefCOCO and RefCOCO+ share the UNC partition of their images: no leak between them.
    assert ("refcoco", "refcoco_plus") not in pairs
    result = CliRunner().invoke(main, ["leaks", str(raw_no_clean)])
    assert result.exit_code == 3


def test_cleaning_removes_them_and_leaves_every_split_non_empty(tiny_h5: Path) -> None:
    with UnifiedFile(tiny_h5) as uf:
        report = uf.build_report["leakage"]
        assert report["emptied_training_splits"] == []
        assert report["leaking_training_examples"] > 1000
        for task in uf.tasks:
            for split in uf.splits(task):
                assert uf.split(task, split).num_examples > 0, (task, split)
            if task != "nlvr2":  # NLVR2 has its own universe: nothing to remove
                assert "mteval" in uf.splits(task), task
    assert CliRunner().invoke(main, ["leaks", str(tiny_h5)]).exit_code == 0


def test_scenes_are_shared_by_every_key_of_a_photo() -> None:
    w = World("tiny", seed=0, feature_dim=8)
    vg_id, coco_id = next(iter(w.vg_coco.items()))
    assert w.vg_uid(vg_id) == w.coco_uid(coco_id)
    coco_id, photo = next(iter(w.coco_as_flickr.items()))
    assert w.coco_uid(coco_id) == f"flickr{photo}"
    assert w.scene(w.coco_uid(coco_id)) == w.scene(f"flickr{photo}")


def test_another_seed_gives_another_world(tmp_path: Path) -> None:
    generate(tmp_path / "a", seed=1, features=False)
    generate(tmp_path / "b", seed=2, features=False)
    name = Path("vqa2") / "v2_OpenEnded_mscoco_train2014_questions.json"
    assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()
    assert not (tmp_path / "a" / "features").exists()
