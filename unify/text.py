"""The VQA answer normaliser, written once for the converters and the scorers.

The official VQA evaluation (GT-Vision-Lab/VQA, 2021-03) compares answers only after two
passes, punctuation processing then digit/article processing. Both the answer vocabulary
of the converters (``unify``) and the VQA accuracy scorer (``evalserver.metrics``) must use
*exactly* the same rule, quirks included, or soft targets and scores drift apart. That is
why this module is neutral: it imports nothing from the rest of the project.

Quirks reproduced on purpose (see docs/metrics.md):
- a punctuation mark is deleted (not spaced) when it touches a space anywhere in the text,
  or when the text contains digit-comma-digit anywhere;
- the period rule only looks at the NEXT character (the official look-behind is mistyped)
  and removes at most 32 periods (a regex flag was passed as the count);
- ``\\d`` matches any Unicode decimal digit, as in Python 3 ``re``;
- number words ``none``/``zero``..``ten`` become digits *before* articles are dropped.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = [
    "ARTICLES",
    "CONTRACTIONS",
    "NUMBER_WORDS",
    "PUNCTUATION",
    "clean_whitespace",
    "normalize_answer",
    "process_digit_article",
    "process_punctuation",
]

#: Characters handled by the punctuation pass, in the official order. The order matters:
#: each replacement sees the output of the previous one.
PUNCTUATION: tuple[str, ...] = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
    ">", "<", "@", "`", ",", "?", "!",
)  # fmt: skip

NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip

ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

#: The official contraction table (data, with its oddities such as
#: "somebody'd" -> "somebodyd"). Keys are matched after lower-casing, so the
#: capitalised keys ("Im", "Ive", ...) can never match; kept for parity of the data.
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's",
    "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't",
    "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip

_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
# Official intent: a period not between digits. Its look-behind "(?!<=\d)" is a typo
# (a negative look-ahead for the literal "<=" plus a digit), so only the next
# character is effectively checked.
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_MAX_PERIODS_REMOVED = 32  # re.UNICODE (== 32) was passed as sub()'s count argument.


def clean_whitespace(text: str) -> str:
    """Newlines and tabs become spaces, then strip: step 1 of the official rule."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """Official punctuation pass (checks look at the input, edits apply to the output)."""
    out = text
    has_digit_comma_digit = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or has_digit_comma_digit:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD.sub("", out, _MAX_PERIODS_REMOVED)


def process_digit_article(text: str) -> str:
    """Official digit/article pass: lower-case, number words, articles, contractions."""
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(word)
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


@lru_cache(maxsize=1 << 18)
def normalize_answer(text: str) -> str:
    """Both official passes, in order. Cached: real answer sets repeat heavily."""
    return process_digit_article(process_punctuation(text))
