"""Non-neural learnability probes for a unified file built from the generated sample.

The generated world (``unify.sample.world``) claims that every task is *learnable*:
answers, targets and labels follow from what is in the picture, and the region features
encode it. These probes check that claim the way a sceptical user would. They see only
what a model sees (the training split of the unified file, its region features and its
text; never the generator's scenes, projection matrix or seed), learn in closed form with
numpy, and are scored on an evaluation split against an explicitly defined chance level.
They are deliberately simple, so that a failure points at the data, not at an optimiser.

- ``vqa_probe`` (vqa2, gqa, vgqa) and ``classification_probe`` (nlvr2, snli_ve): one
  ridge regression per distinct question / statement text, from pooled moments of the
  image's region features to the answer or class; accuracy vs. 100 / number of labels.
- ``retrieval_probe`` (coco_retrieval, flickr30k_retrieval): a ridge map from a caption's
  words (and adjacent word pairs) to its image's pooled moments; the split's candidate
  images are ranked by cosine similarity; R@5 vs. the R@5 of a random ranking.
- ``pointing_probe`` (refcoco, refcoco_plus, refcocog, visual7w, guesswhat): contrastive
  word prototypes of target regions; the candidate region with the highest summed
  prototype score is chosen; accuracy vs. the mean of 1 / number of candidates.

Why moments: a region feature is (close to) a linear image of the region's attributes, so
the *sum* of an image's region features is linear in attribute counts ("how many cats"),
and the sum of their outer products is linear in co-occurrences of attributes *within one
region* ("what colour is the cat", which needs colour and category bound to one object).
One ridge per text lets the text choose which linear read-out of the image answers it.

The per-text probes also report a *blind* twin: the same probe with the image replaced by
a constant, i.e. the most frequent training answer of each text. The gap between the two
is what the features contribute; a generator whose labels follow from the text alone
passes a chance test but not a blind one.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from unify.reader import UnifiedFile
from unify.schema import FEATURES

#: Ridge penalty on standardised inputs; the probes are insensitive to it within 10-1000.
RIDGE_LAMBDA = 100.0
#: Retrieval's penalty (its inputs are sparse word indicators, not dense moments).
RETRIEVAL_LAMBDA = 10.0
RECALL_AT = 5
#: Principal components of the region features whose second moments are pooled.
MOMENT_COMPONENTS = 16

_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric words (punctuation and case carry no meaning here)."""
    return _TOKEN.findall(text.lower())


def text_key(text: str) -> str:
    """A text's identity for the per-text probes: its words, in order."""
    return " ".join(tokens(text))


@dataclass(frozen=True)
class ProbeResult:
    """One probe's score on one evaluation split, with the chance level it must beat."""

    task: str
    split: str
    metric: str
    score: float  # percent
    chance: float  # percent, of a guess that ignores both text and image
    examples: int
    blind: float | None = None  # percent, the same probe without the image (text only)

    @property
    def margin(self) -> float:
        """Points above chance."""
        return self.score - self.chance

    def __str__(self) -> str:
        blind = "" if self.blind is None else f", text-only {self.blind:.1f}"
        return (
            f"{self.task}/{self.split}: {self.metric} {self.score:.1f} vs chance "
            f"{self.chance:.1f}{blind} ({self.margin:+.1f} points, {self.examples} examples)"
        )


class RegionStore:
    """All regions of one ``/features/<name>`` set, read once (one HDF5 read per array,
    not three per image), with the pooling and box matching the probes share."""

    def __init__(self, uf: UnifiedFile, name: str) -> None:
        if name not in uf.feature_names():
            raise KeyError(
                f"no features {name!r} in {uf.path} "
                f"(features: {', '.join(uf.feature_names()) or 'none'})"
            )
        group = uf.h5[FEATURES][name]
        self.name = name
        self.row = group["row"][:]
        self.offsets = group["offsets"][:]
        self.boxes = group["boxes"][:].astype(np.float64)
        self.features = group["features"][:].astype(np.float64)
        self.dim = int(self.features.shape[1])

    def has(self, images: np.ndarray) -> np.ndarray:
        """Which /images rows (any shape) have regions in this set."""
        return self.row[np.asarray(images)] >= 0

    def regions(self, image: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes x1, y1, x2, y2 [n, 4], features [n, dim]) of one /images row."""
        row = int(self.row[image])
        if row < 0:
            raise KeyError(f"/images row {image} has no {self.name} features")
        start, end = int(self.offsets[row]), int(self.offsets[row + 1])
        return self.boxes[start:end], self.features[start:end]

    def match(self, image: int, xywh: np.ndarray, tol: float = 0.5) -> np.ndarray:
        """Region index of each annotation box (x, y, w, h), -1 where no region's box
        (x1, y1, x2, y2, as the TSV stores it) is within ``tol`` pixels."""
        boxes, _ = self.regions(image)
        want = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
        want = np.concatenate([want[:, :2], want[:, :2] + want[:, 2:]], axis=1)
        dist = np.abs(boxes[None, :, :] - want[:, None, :]).max(-1)
        best = dist.argmin(1)
        return np.where(dist[np.arange(len(want)), best] <= tol, best, -1)


@dataclass(frozen=True)
class Moments:
    """Pooling of an image's regions into one vector: the sum of the region features, and
    the upper triangle of the sum of outer products of their top principal components.

    The principal components are fitted on the regions of training images only; keeping
    a few of them keeps the second moment small (16 components: 136 numbers instead of
    528 for 32-dimensional features) and drops the directions that are mostly noise.
    """

    store: RegionStore
    mean: np.ndarray  # [dim]
    basis: np.ndarray  # [dim, components]

    @classmethod
    def fit(
        cls, store: RegionStore, images: np.ndarray, components: int = MOMENT_COMPONENTS
    ) -> Moments:
        feats = np.concatenate([store.regions(int(i))[1] for i in np.unique(images)])
        mean = feats.mean(0)
        centred = feats - mean
        _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        return cls(store, mean, vectors[:, ::-1][:, : min(components, store.dim)])

    @property
    def size(self) -> int:
        k = self.basis.shape[1]
        return self.store.dim + k * (k + 1) // 2

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Moments of each /images row of ``images`` ([N] -> [N, size]; each image once)."""
        unique, inverse = np.unique(np.asarray(images), return_inverse=True)
        upper = np.triu_indices(self.basis.shape[1])
        pooled = np.empty((len(unique), self.size))
        for j, image in enumerate(unique):
            _, feats = self.store.regions(int(image))
            proj = (feats - self.mean) @ self.basis
            pooled[j, : self.store.dim] = feats.sum(0)
            pooled[j, self.store.dim :] = (proj.T @ proj)[upper]
        return pooled[inverse.reshape(-1)]


# -------------------------------------------------------------------------------- ridge
@dataclass(frozen=True)
class Ridge:
    """Closed-form ridge regression on standardised inputs, with an unpenalised bias."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, lam: float) -> Ridge:
        mean = x.mean(0)
        scale = x.std(0) + 1e-6
        xs = (x - mean) / scale
        bias = y.mean(0)
        n, d = xs.shape
        if n < d:  # the dual form: the same weights from an n x n system
            kernel = xs @ xs.T + lam * np.eye(n)
            weights = xs.T @ np.linalg.solve(kernel, y - bias)
        else:
            weights = np.linalg.solve(xs.T @ xs + lam * np.eye(d), xs.T @ (y - bias))
        return cls(mean, scale, weights, bias)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights + self.bias


def keyed_ridge(
    keys_train: Sequence[str],
    x_train: np.ndarray,
    y_train: np.ndarray,
    keys_eval: Sequence[str],
    x_eval: np.ndarray,
    lam: float = RIDGE_LAMBDA,
) -> np.ndarray:
    """Predictions of one ridge per distinct text key (the text picks the read-out, the
    image fills it in); a key never seen in training uses one ridge fitted on all keys."""
    train_rows: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys_train):
        train_rows[key].append(i)
    eval_rows: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys_eval):
        eval_rows[key].append(i)
    fallback: Ridge | None = None
    pred = np.zeros((len(keys_eval), y_train.shape[1]))
    for key, rows in eval_rows.items():
        seen = train_rows.get(key)
        if seen:
            model = Ridge.fit(x_train[seen], y_train[seen], lam)
        else:
            fallback = fallback or Ridge.fit(x_train, y_train, lam)
            model = fallback
        pred[rows] = model.predict(x_eval[rows])
    return pred


def _accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return 100.0 * float(np.mean(pred.argmax(1) == gold))


def _keyed_scores(
    keys: tuple[list[str], list[str]],
    x: tuple[np.ndarray, np.ndarray],
    y_train: np.ndarray,
    gold: np.ndarray,
) -> tuple[float, float]:
    """(accuracy with the image, accuracy of the blind twin) of the per-text ridge."""
    score = _accuracy(keyed_ridge(keys[0], x[0], y_train, keys[1], x[1]), gold)
    const = (np.zeros((len(keys[0]), 1)), np.zeros((len(keys[1]), 1)))
    blind = _accuracy(keyed_ridge(keys[0], const[0], y_train, keys[1], const[1]), gold)
    return score, blind


# ---------------------------------------------------------------------------------- vqa
def _vqa_data(
    uf: UnifiedFile, task: str, split: str, store: RegionStore, num_labels: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(text keys, images, soft targets [N, num_labels], gold label or -1) of the
    examples whose image has features."""
    view = uf.split(task, split)
    images = view.column("image")
    keep = store.has(images)
    y = np.zeros((len(view), num_labels))
    if "targets" in view.fields:  # VQA v2: soft scores from the 10 annotator answers
        targets = view.ragged("targets")
        rows = np.repeat(np.arange(len(view)), np.diff(targets.offsets))
        y[rows, targets.values["labels"]] = targets.values["scores"]
        gold = np.where(y.max(1) > 0, y.argmax(1), -1)
    else:
        gold = view.column("label").astype(np.int64)
        y[np.flatnonzero(gold >= 0), gold[gold >= 0]] = 1.0
    keys = [text_key(q) for q, k in zip(view.column("question"), keep, strict=True) if k]
    return keys, images[keep], y[keep], gold[keep]


def vqa_probe(
    uf: UnifiedFile, task: str, train: str, evaluate: str, store: RegionStore
) -> ProbeResult:
    """Accuracy of the per-question ridge on a vocabulary-answer task.

    Gold is the answer's vocabulary label (VQA v2: the label of highest soft score; an
    answer outside the vocabulary counts as wrong). Chance: 100 / vocabulary size, the
    expected accuracy of a uniform guess over the label set.
    """
    num_labels = len(uf.vocab(str(uf.task_attrs(task)["label_set"])))
    keys_t, images_t, y_t, gold_t = _vqa_data(uf, task, train, store, num_labels)
    answered = gold_t >= 0
    keys_t = [k for k, a in zip(keys_t, answered, strict=True) if a]
    keys_e, images_e, _, gold_e = _vqa_data(uf, task, evaluate, store, num_labels)
    moments = Moments.fit(store, images_t)
    x = (moments(images_t[answered]), moments(images_e))
    score, blind = _keyed_scores((keys_t, keys_e), x, y_t[answered], gold_e)
    return ProbeResult(task, evaluate, "accuracy", score, 100.0 / num_labels, len(gold_e), blind)


# ------------------------------------------------------------------------ classification
def _pair_moments(moments: Moments, images: np.ndarray) -> np.ndarray:
    """Moments of an example's image(s). For a pair: each image's first moment (the text
    says which image it counts in) and the summed second moments ("in one of the images")."""
    if images.ndim == 1:
        return moments(images)
    left, right = moments(images[:, 0]), moments(images[:, 1])
    d = moments.store.dim
    return np.concatenate([left[:, :d], right[:, :d], left[:, d:] + right[:, d:]], axis=1)


def classification_probe(
    uf: UnifiedFile,
    task: str,
    train: str,
    evaluate: str,
    store: RegionStore,
    text_field: str,
) -> ProbeResult:
    """Accuracy of the per-statement ridge on a task with class labels (``label_set`` a
    JSON list: nlvr2, snli_ve). Chance: 100 / number of classes (a uniform guess)."""
    num = len(json.loads(str(uf.task_attrs(task)["label_set"])))
    data = []
    for split in (train, evaluate):
        view = uf.split(task, split)
        images = view.column("image")
        keep = store.has(images) if images.ndim == 1 else store.has(images).all(1)
        keys = [text_key(t) for t, k in zip(view.column(text_field), keep, strict=True) if k]
        data.append((keys, images[keep], view.column("label")[keep]))
    (keys_t, images_t, gold_t), (keys_e, images_e, gold_e) = data
    moments = Moments.fit(store, images_t)
    x_t, x_e = _pair_moments(moments, images_t), _pair_moments(moments, images_e)
    y_t = np.eye(num)[gold_t.astype(np.int64)]
    score, blind = _keyed_scores((keys_t, keys_e), (x_t, x_e), y_t, gold_e.astype(np.int64))
    return ProbeResult(task, evaluate, "accuracy", score, 100.0 / num, len(gold_e), blind)


# ----------------------------------------------------------------------------- retrieval
def _caption_terms(text: str) -> list[str]:
    """Words and adjacent word pairs: a pair ("red cat") binds a colour to its object."""
    words = tokens(text)
    return words + [f"{a}_{b}" for a, b in pairwise(words)]


def _indicators(texts: Sequence[str], vocab: dict[str, int]) -> np.ndarray:
    x = np.zeros((len(texts), len(vocab)))
    for i, text in enumerate(texts):
        cols = [vocab[t] for t in _caption_terms(text) if t in vocab]
        x[i, cols] = 1.0
    return x


def retrieval_probe(
    uf: UnifiedFile, task: str, train: str, evaluate: str, store: RegionStore
) -> ProbeResult:
    """Caption-to-image R@5 of a ridge map from caption terms to standardised image moments,
    ranking the evaluation split's ``candidates`` by cosine similarity.

    Chance: the R@5 of a random ranking, 5 / number of candidates.
    """
    view = uf.split(task, train)
    captions = view.column("caption")
    vocab: dict[str, int] = {}
    for text in captions:
        for term in _caption_terms(text):
            vocab.setdefault(term, len(vocab))
    images = view.column("image")
    moments = Moments.fit(store, images)
    z = moments(images)
    mean, scale = z.mean(0), z.std(0) + 1e-6
    model = Ridge.fit(_indicators(captions, vocab), (z - mean) / scale, RETRIEVAL_LAMBDA)

    ev = uf.split(task, evaluate)
    candidates = ev.column("candidates")
    position = {int(image): i for i, image in enumerate(candidates)}
    gold = np.asarray([position[int(i)] for i in ev.column("image")])
    query = model.predict(_indicators(ev.column("caption"), vocab))
    cand = (moments(candidates) - mean) / scale
    query /= np.linalg.norm(query, axis=1, keepdims=True) + 1e-12
    cand /= np.linalg.norm(cand, axis=1, keepdims=True) + 1e-12
    sim = query @ cand.T
    rank = (sim > sim[np.arange(len(gold)), gold][:, None]).sum(1)  # candidates above gold
    score = 100.0 * float(np.mean(rank < RECALL_AT))
    chance = 100.0 * min(1.0, RECALL_AT / len(candidates))
    return ProbeResult(task, evaluate, f"R@{RECALL_AT}", score, chance, len(gold))


# ------------------------------------------------------------------------------ pointing
@dataclass(frozen=True)
class PointingExample:
    """One refer-style example: the words of its text, its candidate boxes, the gold."""

    image: int
    words: list[str]
    boxes: np.ndarray  # candidates, x, y, w, h
    gold: int


def _dialogue_words(questions: Sequence[str], answers: Sequence[str]) -> list[str]:
    """GuessWhat: a question's words tagged with its answer ("no:cat" is not "yes:cat")."""
    return [f"{a.lower()}:{w}" for q, a in zip(questions, answers, strict=True) for w in tokens(q)]


def _pointing_examples(uf: UnifiedFile, task: str, split: str) -> list[PointingExample]:
    """Text, candidate boxes and gold index of a refer-style split, whichever layout the
    task has (refer: ``regions`` + ``ann_id``; Visual7W: ``candidate_boxes`` + ``label``;
    GuessWhat: ``objects`` + ``dialogue`` + ``label``)."""
    view = uf.split(task, split)
    fields = set(view.fields)
    images = view.column("image")
    out = []
    if "regions" in fields:
        regions, ann = view.ragged("regions"), view.column("ann_id")
        for i, text in enumerate(view.column("sentence")):
            row = regions.row(i)
            gold = int(np.flatnonzero(row["ann_ids"] == ann[i])[0])
            out.append(PointingExample(int(images[i]), tokens(text), row["boxes"], gold))
    elif "candidate_boxes" in fields:
        boxes, label = view.column("candidate_boxes"), view.column("label")
        for i, text in enumerate(view.column("question")):
            out.append(PointingExample(int(images[i]), tokens(text), boxes[i], int(label[i])))
    elif "objects" in fields:
        objects, dialogue, label = (
            view.ragged("objects"),
            view.ragged("dialogue"),
            view.column("label"),
        )
        for i in range(len(view)):
            turns = dialogue.row(i)
            words = _dialogue_words(turns["questions"], turns["answers"])
            out.append(
                PointingExample(int(images[i]), words, objects.row(i)["boxes"], int(label[i]))
            )
    else:
        raise ValueError(f"{task}/{split} has no candidate regions the pointing probe knows")
    return out


def word_prototypes(
    examples: Sequence[PointingExample], store: RegionStore
) -> dict[str, np.ndarray]:
    """For each word, the mean over training examples that use it of (target region's
    feature - mean feature of the example's candidates): what the word's referent looks
    like *compared with its distractors*, so words every example uses ("the") cancel."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = defaultdict(int)
    for ex in examples:
        match = store.match(ex.image, ex.boxes)
        if match[ex.gold] < 0:
            continue  # the target has no region in this feature set
        _, feats = store.regions(ex.image)
        diff = feats[match[ex.gold]] - feats[match[match >= 0]].mean(0)
        for word in set(ex.words):
            sums[word] = sums.get(word, np.zeros(store.dim)) + diff
            counts[word] += 1
    return {word: total / counts[word] for word, total in sums.items()}


def pointing_probe(
    uf: UnifiedFile, task: str, train: str, evaluate: str, store: RegionStore
) -> ProbeResult:
    """Accuracy of picking the candidate whose region scores highest against the summed
    prototypes of the text's words (a candidate with no matching region never wins).

    Chance: the mean over examples of 1 / number of candidates (a uniform pick).
    """
    prototypes = word_prototypes(_pointing_examples(uf, task, train), store)
    correct, chance = 0, 0.0
    evaluation = _pointing_examples(uf, task, evaluate)
    for ex in evaluation:
        query = np.zeros(store.dim)
        for word in set(ex.words) & prototypes.keys():
            query += prototypes[word]
        match = store.match(ex.image, ex.boxes)
        _, feats = store.regions(ex.image)
        scores = np.where(match >= 0, feats[np.maximum(match, 0)] @ query, -np.inf)
        correct += int(scores.argmax() == ex.gold)
        chance += 1.0 / len(ex.boxes)
    n = len(evaluation)
    return ProbeResult(task, evaluate, "accuracy", 100.0 * correct / n, 100.0 * chance / n, n)


#: The text field the classification probe reads, per task.
STATEMENT_FIELD = {"nlvr2": "sentence", "snli_ve": "hypothesis"}


def run_probe(
    uf: UnifiedFile, task: str, train: str, evaluate: str, store: RegionStore
) -> ProbeResult:
    """The learnability probe of ``task``, trained on ``train`` and scored on ``evaluate``."""
    if task in STATEMENT_FIELD:
        return classification_probe(uf, task, train, evaluate, store, STATEMENT_FIELD[task])
    group = str(uf.task_attrs(task)["task_group"])
    if group == "vqa":
        return vqa_probe(uf, task, train, evaluate, store)
    if group == "retrieval":
        return retrieval_probe(uf, task, train, evaluate, store)
    if group in ("refer", "verification"):  # verification here: GuessWhat's guesser
        return pointing_probe(uf, task, train, evaluate, store)
    raise ValueError(f"no learnability probe for task {task!r} (group {group!r})")
