"""The generated world: one set of photos from which every task's sample is drawn.

``generate(out, scale, seed)`` writes ``out/<task>/<release files>`` for every task whose
``TaskSpec.sample`` names a sample generator, and ``out/features/<universe>.tsv``
(bottom-up-attention format), through the same format writers the tests round-trip, so
``unify build --all`` and ``unify features import`` read it with no special case anywhere.

This module holds only what tasks share: the photo pools, how they overlap, the scenes, the
captions of a photo and the seeded rngs. Each task's generator, with its own numbers
(examples per image, pools only it draws from), lives next to the task's format writer
(``unify/sample/<task>_format.py``), so adding a dataset touches its own sample module.

The photos overlap the way the real releases do (datasets.md, "Image identity"):
- RefCOCO-family images are COCO train2014 images, many also used by VQA v2 train; their
  evaluation splits therefore leak into VQA v2 and COCO-retrieval training;
- Karpathy's val/test images are val2014 images that VQA v2 trains on (trainval);
- Visual Genome images are partly COCO images (image_data.json coco_id) and partly Flickr
  photos (flickr_id); GQA and Visual7W use VG ids and evaluate on VG-only photos that
  VG-QA's pinned val covers too;
- some COCO images' flickr_url names a Flickr30k photo, and SNLI-VE splits the Flickr30k
  photos its own way (Entities-style), so it and Flickr30k retrieval share photos across
  train and eval.
The pools are laid out so that cleaning has real work at every scale and still leaves every
training split non-empty.

Everything is streamed: the scene of a photo is a pure function of (seed, photo uid), and
the writers take generators, so the full scale never holds a dataset in memory.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from unify.errors import DataError
from unify.hidden import ORGANISER
from unify.sample import language as lang
from unify.sample.coco_format import flickr_static_url
from unify.sample.features_format import RegionRow, write_tsv
from unify.sample.scenes import FeatureProjector, Scene, make_scene
from unify.tasks import TaskSpec, all_tasks

SCALES = ("tiny", "small", "full")

#: A task's sample generator (named by ``TaskSpec.sample``): writes the task's release files
#: into its raw folder (``out/<task>``) and returns their paths. The spec lets one generator
#: serve several tasks (the three refer releases).
SampleWriter = Callable[["World", Path, TaskSpec], list[Path]]

#: Images of a universe for the feature TSVs: (the TSV's image_id, the photo's scene uid).
FeatureImages = Mapping[str, Iterable[tuple[str, str]]]

T = TypeVar("T")


@dataclass(frozen=True)
class WorldScale:
    """Pool sizes (images) of one scale: the numbers that decide how tasks overlap.

    Examples per image and the pools a single task draws on its own are that task's, in its
    sample module's ``SAMPLE_SCALES``.
    """

    coco_train: int
    coco_val: int
    coco_test: int
    restval: int
    karpathy_val: int
    karpathy_test: int
    flickr_train: int
    flickr_val: int
    flickr_test: int
    entities_eval: int  # SNLI-VE dev and test photos each
    coco_flickr_links: int
    refcoco_images: int  # UNC's images (RefCOCO and RefCOCO+)
    refcocog_images: int  # UMD's images (RefCOCOg)
    vg_eval: int  # VG-only photos evaluated on (GQA val/testdev, VG-QA val, Visual7W val/test)
    vg_train: int  # VG-only photos trained on
    vg_coco: int  # VG images that are COCO train2014 images
    vg_flickr: int  # VG images that are Flickr30k photos
    gqa_val_images: int  # the first VG eval photos
    gqa_testdev_images: int  # the next ones
    v7w_eval_images: int  # then Visual7W's val and test each
    guesswhat_eval_images: int  # valid and test each, val2014 images


WORLD_SCALES: dict[str, WorldScale] = {
    # The smallest world in which every split of every task is non-empty after cleaning
    # (the fixed hold-outs need >= 3,000 minval questions and >= 5,000 VG-QA val pairs).
    "tiny": WorldScale(
        coco_train=500,
        coco_val=520,
        coco_test=40,
        restval=100,
        karpathy_val=30,
        karpathy_test=30,
        flickr_train=200,
        flickr_val=40,
        flickr_test=40,
        entities_eval=40,
        coco_flickr_links=30,
        refcoco_images=120,
        refcocog_images=120,
        vg_eval=520,
        vg_train=150,
        vg_coco=150,
        vg_flickr=20,
        gqa_val_images=400,
        gqa_testdev_images=40,
        v7w_eval_images=30,
        guesswhat_eval_images=30,
    ),
    # Tens of thousands per dataset: the baseline trains on it on a CPU in minutes.
    "small": WorldScale(
        coco_train=4000,
        coco_val=2000,
        coco_test=300,
        restval=600,
        karpathy_val=200,
        karpathy_test=200,
        flickr_train=3000,
        flickr_val=200,
        flickr_test=200,
        entities_eval=200,
        coco_flickr_links=200,
        refcoco_images=1500,
        refcocog_images=1500,
        vg_eval=1500,
        vg_train=2000,
        vg_coco=2000,
        vg_flickr=200,
        gqa_val_images=800,
        gqa_testdev_images=200,
        v7w_eval_images=300,
        guesswhat_eval_images=300,
    ),
    # The real sizes of datasets.md (approximately).
    "full": WorldScale(
        coco_train=82783,
        coco_val=40504,
        coco_test=81434,
        restval=30504,
        karpathy_val=5000,
        karpathy_test=5000,
        flickr_train=29000,
        flickr_val=1014,
        flickr_test=1000,
        entities_eval=1000,
        coco_flickr_links=2000,
        refcoco_images=19994,
        refcocog_images=25799,
        vg_eval=12000,
        vg_train=30000,
        vg_coco=51000,
        vg_flickr=15077,
        gqa_val_images=10000,
        gqa_testdev_images=398,
        v7w_eval_images=5000,
        guesswhat_eval_images=10000,
    ),
}


def count(rng: random.Random, mean: float) -> int:
    """An integer count with the given mean (floor, plus one with the fractional chance)."""
    base = int(mean)
    return base + (rng.random() < mean - base)


class World:
    """The photo pools and their scenes; every dataset is drawn from these."""

    def __init__(self, scale: str, seed: int, feature_dim: int) -> None:
        if scale not in WORLD_SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
        self.scale = scale
        self.sizes = s = WORLD_SCALES[scale]
        self.seed = seed
        self.projector = FeatureProjector(seed, feature_dim)
        # One rng draws every shared pool, in this order: reordering the draws changes the
        # world (and every file of the sample).
        rng = random.Random(seed)
        coco = rng.sample(range(1, 600_000), s.coco_train + s.coco_val + s.coco_test)
        self.coco_train = sorted(coco[: s.coco_train])
        self.coco_val = sorted(coco[s.coco_train : s.coco_train + s.coco_val])
        self.coco_test = sorted(coco[s.coco_train + s.coco_val :])
        n_flickr = s.flickr_train + s.flickr_val + s.flickr_test
        self.flickr = rng.sample(range(1_000_000_000, 9_999_999_999), n_flickr)
        self.flickr_split = {p: "train" for p in self.flickr[: s.flickr_train]}
        self.flickr_split |= {p: "val" for p in self.flickr[s.flickr_train : -s.flickr_test]}
        self.flickr_split |= {p: "test" for p in self.flickr[-s.flickr_test :]}
        # SNLI-VE's Entities-style split: another partition of the same photos.
        shuffled = sorted(self.flickr, key=lambda p: random.Random(f"{seed}/e{p}").random())
        self.entities_split = {p: "train" for p in shuffled}
        for p in shuffled[: s.entities_eval]:
            self.entities_split[p] = "dev"
        for p in shuffled[s.entities_eval : 2 * s.entities_eval]:
            self.entities_split[p] = "test"
        # COCO train images that are Flickr30k photos (their flickr_url says so).
        self.coco_as_flickr = dict(
            zip(
                rng.sample(self.coco_train, s.coco_flickr_links),
                rng.sample(self.flickr, s.coco_flickr_links),
                strict=True,
            )
        )
        # Visual Genome: VG-only eval and train pools, COCO train images, Flickr30k photos.
        n_vg = s.vg_eval + s.vg_train + s.vg_coco + s.vg_flickr
        vg_ids = rng.sample(range(1, 2_500_000), n_vg)
        self.vg_eval = vg_ids[: s.vg_eval]
        self.vg_train = vg_ids[s.vg_eval : s.vg_eval + s.vg_train]
        vg_coco_ids = vg_ids[s.vg_eval + s.vg_train : s.vg_eval + s.vg_train + s.vg_coco]
        vg_flickr_ids = vg_ids[s.vg_eval + s.vg_train + s.vg_coco :]
        self.vg_coco = dict(zip(vg_coco_ids, rng.sample(self.coco_train, s.vg_coco), strict=True))
        self.vg_flickr = dict(zip(vg_flickr_ids, rng.sample(self.flickr, s.vg_flickr), strict=True))
        self.vg_all = self.vg_eval + self.vg_train + vg_coco_ids + vg_flickr_ids
        # The VG eval photos, cut between the tasks that evaluate on them (VG-QA's pinned
        # val covers them all): GQA's val, then its testdev, then Visual7W's val + test
        # (the last ones of the pool when it is too small for all three).
        cut = s.gqa_val_images + s.gqa_testdev_images
        self.gqa_val = self.vg_eval[: s.gqa_val_images]
        self.gqa_testdev = self.vg_eval[s.gqa_val_images : cut]
        each = s.v7w_eval_images
        fits = len(self.vg_eval) >= cut + 2 * each
        start = cut if fits else max(0, len(self.vg_eval) - 2 * each)
        self.v7w_val = self.vg_eval[start : start + each]
        self.v7w_test = self.vg_eval[start + each : start + 2 * each]
        # Karpathy's val, test and restval come from val2014 (which VQA v2 trains on, but
        # for its minval); GuessWhat's valid and test too.
        pool = self.coco_val[:]
        rng.shuffle(pool)
        self.karpathy = {c: "train" for c in self.coco_train}
        for name, n in (("val", s.karpathy_val), ("test", s.karpathy_test), ("restval", s.restval)):
            for c in pool[:n]:
                self.karpathy[c] = name
            pool = pool[n:]
        self.guesswhat_eval = rng.sample(self.coco_val, 2 * s.guesswhat_eval_images)
        # The refer releases' images (COCO train2014): UNC's for RefCOCO and RefCOCO+,
        # UMD's for RefCOCOg.
        self.refcoco_images = rng.sample(self.coco_train, s.refcoco_images)
        self.refcocog_images = rng.sample(self.coco_train, s.refcocog_images)

    # -- identity -------------------------------------------------------------------------
    def coco_uid(self, coco_id: int) -> str:
        photo = self.coco_as_flickr.get(coco_id)
        return f"flickr{photo}" if photo is not None else f"coco{coco_id}"

    def vg_uid(self, vg_id: int) -> str:
        if vg_id in self.vg_coco:
            return self.coco_uid(self.vg_coco[vg_id])
        if vg_id in self.vg_flickr:
            return f"flickr{self.vg_flickr[vg_id]}"
        return f"vg{vg_id}"

    def scene(self, uid: str, min_objects: int = 2) -> Scene:
        return make_scene(self.seed, uid, min_objects=min_objects)

    def rng(self, *parts: object) -> random.Random:
        """A fresh rng seeded by the world seed and ``parts`` (e.g. ``("vqa2", coco_id)``):
        every draw is keyed, so no task's output depends on another's or on the order."""
        return random.Random("/".join(map(str, (self.seed, *parts))))

    def flickr_url(self, coco_id: int) -> str:
        photo = self.coco_as_flickr.get(coco_id)
        return flickr_static_url(photo if photo is not None else coco_id)

    def captions(self, uid: str, n: int = 5) -> list[str]:
        """The captions of a photo: the same under every task that shows them (COCO and
        Flickr30k retrieval, SNLI-VE premises)."""
        rng = self.rng("cap", uid)
        scene = self.scene(uid)
        return [lang.caption(scene, rng) for _ in range(n)]

    def sized(self, table: Mapping[str, T], task: str) -> T:
        """A task's numbers for this world's scale, from its per-scale table."""
        try:
            return table[self.scale]
        except KeyError:
            raise DataError(
                f"the sample of {task} has no numbers for scale {self.scale!r}"
            ) from None

    def feature_images(self) -> dict[str, list[tuple[str, str]]]:
        """The images of the shared universes (COCO, VG, Flickr30k) for the feature TSVs."""
        return {
            "coco": [
                (str(c), self.coco_uid(c)) for c in self.coco_train + self.coco_val + self.coco_test
            ],
            "vg": [(str(v), self.vg_uid(v)) for v in self.vg_all],
            "flickr": [(str(p), f"flickr{p}") for p in self.flickr],
        }


# ------------------------------------------------------------------------- generators
def organiser_dir(task_dir: Path) -> Path:
    """Where a task's sample writes the organisers' answers of its hidden splits:
    ``<out>/organiser/<task>/``, laid out like the raw folder so that ``unify build
    --organiser <out>/organiser`` reads it (``unify build --raw <out>`` ignores it)."""
    return task_dir.parent / ORGANISER / task_dir.name


def sample_writer(spec: TaskSpec) -> SampleWriter | None:
    """The task's sample generator (``TaskSpec.sample``, "module:function"), imported on
    demand; ``None`` when the spec names none."""
    if spec.sample is None:
        return None
    module_name, sep, attr = spec.sample.partition(":")
    if not (sep and module_name and attr):
        raise DataError(f"task {spec.name}: sample {spec.sample!r} is not 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise DataError(f"task {spec.name}: sample {spec.sample!r} cannot be imported: {e}") from e
    writer = getattr(module, attr, None)
    if not callable(writer):
        raise DataError(f"task {spec.name}: sample {spec.sample!r} is not a function")
    return writer


def unsampled_tasks(tasks: Iterable[TaskSpec] | None = None) -> tuple[str, ...]:
    """Tasks that ``generate`` does not write: their spec names no sample generator."""
    specs = all_tasks().values() if tasks is None else tasks
    return tuple(spec.name for spec in specs if spec.sample is None)


def _features(w: World, out: Path, modules: Iterable[ModuleType]) -> list[Path]:
    """One bottom-up TSV per universe, for every image the datasets use.

    The shared universes come from the world; a universe that one task owns (NLVR2's image
    pairs) comes from the ``feature_images(world)`` function of that task's sample module.
    """
    d = out / "features"
    universes: dict[str, Iterable[tuple[str, str]]] = dict(w.feature_images())
    for module in modules:
        own = getattr(module, "feature_images", None)
        for universe, items in (own(w) if own is not None else {}).items():
            if universe in universes:
                raise DataError(f"{module.__name__}: universe {universe!r} has its TSV already")
            universes[universe] = items

    def rows(items: Iterable[tuple[str, str]]) -> Iterator[RegionRow]:
        for image_id, uid in items:
            scene = w.scene(uid)
            boxes, feats = w.projector.regions(scene, uid, w.seed)
            yield RegionRow(image_id, scene.width, scene.height, boxes, feats)

    return [write_tsv(d / f"{name}.tsv", rows(items)) for name, items in universes.items()]


def generate(
    out: Path,
    scale: str = "tiny",
    seed: int = 0,
    feature_dim: int = 32,
    features: bool = True,
    tasks: Iterable[TaskSpec] | None = None,
) -> list[Path]:
    """Write each task's raw folder ``out/<task>`` (and the region-feature TSVs).

    ``tasks`` defaults to every declared task (``unify.tasks.all_tasks()``), written in
    that order; one whose spec names no sample generator is skipped (``unsampled_tasks``
    names them). Every generator is resolved before anything is written.
    """
    specs = tuple(all_tasks().values() if tasks is None else tasks)
    writers = [(spec, writer) for spec in specs if (writer := sample_writer(spec)) is not None]
    w = World(scale, seed, feature_dim)
    files: list[Path] = []
    for spec, write in writers:
        files += write(w, out / spec.name, spec)
    if features:
        modules = dict.fromkeys(str(spec.sample).partition(":")[0] for spec, _ in writers)
        files += _features(w, out, [importlib.import_module(m) for m in modules])
    return files
