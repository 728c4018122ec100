"""Text of the generated world, always grounded in a scene, so that answers, targets and
labels follow from what is in the picture (a model that reads both can learn them)."""

from __future__ import annotations

import random

from unify.sample.scenes import CATEGORY_NAMES, COLOURS, Obj, Scene

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
NEUTRAL_ACTIONS = ("is sleeping", "is for sale", "belongs to a child", "was bought yesterday")


def plural(category: str) -> str:
    return "people" if category == "person" else ("buses" if category == "bus" else category + "s")


def vqa_question(scene: Scene, rng: random.Random) -> tuple[str, str, str, str]:
    """(question, answer, answer_type, question_type)."""
    kind = rng.random()
    if kind < 0.35:
        cat = rng.choice(CATEGORY_NAMES)
        return (f"How many {plural(cat)} are there?", str(scene.count(cat)), "number", "how many")
    if kind < 0.7:
        obj = rng.choice(scene.objects)
        return f"What color is the {obj.category}?", obj.colour, "other", "what color is the"
    cat = rng.choice(CATEGORY_NAMES)
    answer = "yes" if scene.count(cat) else "no"
    return f"Is there a {cat} in the picture?", answer, "yes/no", "is there a"


def annotator_answers(answer: str, rng: random.Random, answer_type: str) -> list[str]:
    """Ten human answers: mostly right, with surface variants and some disagreement."""
    out = []
    for _ in range(10):
        r = rng.random()
        if r < 0.75:
            out.append(answer)
        elif r < 0.88:
            if answer_type == "number" and int(answer) < len(NUMBER_WORDS):
                out.append(NUMBER_WORDS[int(answer)])
            else:
                out.append(rng.choice((answer.capitalize(), answer + ".", f"the {answer}")))
        elif answer_type == "yes/no":
            out.append("no" if answer == "yes" else "yes")
        elif answer_type == "number":
            out.append(str(max(0, int(answer) + rng.choice((-1, 1)))))
        else:
            out.append(rng.choice(COLOURS))
    return out


def gqa_question(scene: Scene, rng: random.Random) -> dict[str, str | None]:
    """A GQA-style question with its types and global group."""
    obj = rng.choice(scene.objects)
    r = rng.random()
    if r < 0.4:
        return {
            "question": f"What color is the {obj.category}?",
            "answer": obj.colour,
            "fullAnswer": f"The {obj.category} is {obj.colour}.",
            "structural": "query",
            "semantic": "attr",
            "detailed": "queryAttr",
            "group_global": "color",
        }
    if r < 0.7:
        cat = rng.choice(CATEGORY_NAMES)
        answer = "yes" if scene.count(cat) else "no"
        article = "a" if answer == "yes" else "no"
        return {
            "question": f"Is there a {cat} in the image?",
            "answer": answer,
            "fullAnswer": f"{answer.capitalize()}, there is {article} {cat}.",
            "structural": "verify",
            "semantic": "obj",
            "detailed": "existC",
            "group_global": None,
        }
    side = obj.side(scene.width)
    return {
        "question": f"What is the {obj.colour} object on the {side}?",
        "answer": obj.category,
        "fullAnswer": f"The {obj.colour} object is a {obj.category}.",
        "structural": "query",
        "semantic": "cat",
        "detailed": "categoryThatC",
        "group_global": "thing",
    }


def vg_qa(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """Visual Genome style: free-form, answers capitalised with a final period."""
    question, answer, _, _ = vqa_question(scene, rng)
    if answer.isdigit():
        answer = NUMBER_WORDS[int(answer)] if int(answer) < len(NUMBER_WORDS) else answer
    return question, rng.choice((answer.capitalize() + ".", answer))


def describe(obj: Obj) -> str:
    return f"{'large ' if obj.large else ''}{obj.colour} {obj.category}"


def caption(scene: Scene, rng: random.Random) -> str:
    objs = rng.sample(scene.objects, k=min(len(scene.objects), rng.randint(1, 3)))
    parts = [f"a {describe(o)}" for o in objs]
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    template = rng.choice(("{} in the picture", "a photo of {}", "{} next to each other", "{}"))
    text = template.format(joined)
    return text[0].upper() + text[1:] + rng.choice((".", "", " ."))


def refexp(scene: Scene, target: int, rng: random.Random, flavour: str) -> str:
    """A referring expression that singles out ``scene.objects[target]``.

    ``unc``: short, may use location; ``plus``: no location words (RefCOCO+'s rule);
    ``umd``: longer, full sentences (RefCOCOg).
    """
    obj = scene.objects[target]
    same = [o for o in scene.objects if o.category == obj.category]
    same_colour = [o for o in same if o.colour == obj.colour]
    if flavour == "plus" or len(same) == 1:
        core = (
            f"{obj.colour} {obj.category}"
            if len(same_colour) <= 1 or flavour != "plus"
            else describe(obj)
        )
    else:
        core = f"{obj.category} on the {obj.side(scene.width)}"
        if len(same_colour) < len(same):
            core = f"{obj.colour} {core}"
    if flavour == "umd":
        return f"the {core} that is {rng.choice(('shown', 'visible', 'in the photo'))}"
    return rng.choice((core, f"the {core}"))


def pointing_question(scene: Scene, target: int) -> str:
    obj = scene.objects[target]
    return f"Which object is the {describe(obj)}?"


def dialogue(scene: Scene, target: int, rng: random.Random) -> list[tuple[str, str]]:
    """GuessWhat?!: yes/no questions about the hidden target, answered truthfully."""
    obj = scene.objects[target]
    turns = []
    for _ in range(rng.randint(2, 5)):
        r = rng.random()
        if r < 0.4:
            cat = rng.choice((obj.category, rng.choice(CATEGORY_NAMES)))
            turns.append((f"is it a {cat}?", "Yes" if cat == obj.category else "No"))
        elif r < 0.75:
            colour = rng.choice((obj.colour, rng.choice(COLOURS)))
            turns.append((f"is it {colour}?", "Yes" if colour == obj.colour else "No"))
        else:
            side = rng.choice(("left", "right"))
            turns.append(
                (f"is it on the {side}?", "Yes" if obj.side(scene.width) == side else "No")
            )
    return turns


def nlvr2_statement(left: Scene, right: Scene, rng: random.Random) -> tuple[str, bool]:
    """(statement, truth) about an image pair. True about half the time, as in NLVR2
    (balanced by construction), and only the images tell which: every wording is used for
    true and for false statements."""
    want_true = rng.random() < 0.5
    r = rng.random()
    if r < 0.4:
        side, scene = rng.choice((("left", left), ("right", right)))
        countable = [c for c in scene.categories() if scene.count(c) <= 3]
        if want_true and countable:
            cat = rng.choice(countable)
            n = scene.count(cat)
        else:
            cat = rng.choice(CATEGORY_NAMES)
            n = rng.choice([k for k in (1, 2, 3) if k != scene.count(cat)])
        return (
            f"The {side} image contains exactly {NUMBER_WORDS[n]} {plural(cat) if n > 1 else cat}.",
            scene.count(cat) == n,
        )
    if r < 0.7:
        shared = sorted(set(left.categories()) & set(right.categories()))
        cat = rng.choice(shared) if want_true and shared else rng.choice(CATEGORY_NAMES)
        return f"Both images contain at least one {cat}.", bool(
            left.count(cat) and right.count(cat)
        )
    objects = (*left.objects, *right.objects)
    if want_true:
        obj = rng.choice(objects)
        colour, cat = obj.colour, obj.category
    else:
        colour, cat = rng.choice(COLOURS), rng.choice(CATEGORY_NAMES)
    truth = any(o.colour == colour and o.category == cat for o in objects)
    return f"There is a {colour} {cat} in one of the images.", truth


def hypothesis(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """(hypothesis, gold label) about the premise image. Entailed and contradicted
    hypotheses share their wordings (an object that is, or is not, in the picture), so
    only the image separates them; neutral ones say what a picture cannot show."""
    r = rng.random()
    absent = [c for c in CATEGORY_NAMES if not scene.count(c)]
    if r < 0.34 or (r < 0.67 and absent):
        if r < 0.34:
            obj = rng.choice(scene.objects)
            colour, cat, label = obj.colour, obj.category, "entailment"
        else:
            colour, cat, label = rng.choice(COLOURS), rng.choice(absent), "contradiction"
        if rng.random() < 0.5:
            return f"There is a {colour} {cat}.", label
        return f"A {cat} is in the picture.", label
    obj = rng.choice(scene.objects)
    return f"The {obj.category} {rng.choice(NEUTRAL_ACTIONS)}.", "neutral"
