"""A word-level tokenizer built from the training text and saved with the checkpoint.

No download and no library vocabulary: the sample's language is small and closed, and a
real run's text is large enough that its frequent words make a usable vocabulary.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

PAD, UNK = "[PAD]", "[UNK]"
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks."""
    return _WORD.findall(text.lower())


@dataclass
class Tokenizer:
    """Word -> id; id 0 pads, id 1 is any word not seen often enough in training."""

    vocab: list[str]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.vocab[:2] != [PAD, UNK]:
            raise ValueError("a tokenizer vocabulary starts with [PAD], [UNK]")
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1, max_size: int = 30000) -> Tokenizer:
        """Most frequent words first, ties by text, so the same data gives the same ids."""
        counts = Counter(w for t in texts for w in words(t))
        kept = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls([PAD, UNK, *kept[: max(0, max_size - 2)]])

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, texts: list[str], max_len: int) -> np.ndarray:
        """int64 [len(texts), max_len], zero-padded, cut at ``max_len``."""
        out = np.zeros((len(texts), max_len), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.index.get(w, 1) for w in words(text)][:max_len]
            out[row, : len(ids)] = ids
        return out

    def to_json(self) -> list[str]:
        return list(self.vocab)


class PretrainedTokenizer:
    """The tokenizer of a pretrained text encoder (``--text-encoder NAME|PATH``), through
    ``transformers`` (the ``text`` extra); its padding id must be 0, as BERT's is."""

    def __init__(self, name: str) -> None:
        from transformers import AutoTokenizer

        self.name = name
        self.hf = AutoTokenizer.from_pretrained(name)
        if self.hf.pad_token_id != 0:
            raise ValueError(f"text encoder {name}: padding id {self.hf.pad_token_id}, not 0")

    def __len__(self) -> int:
        return len(self.hf)

    def encode(self, texts: list[str], max_len: int) -> np.ndarray:
        out = self.hf(
            texts, padding="max_length", truncation=True, max_length=max_len, return_tensors="np"
        )
        return np.asarray(out["input_ids"], dtype=np.int64)

    def to_json(self) -> list[str]:
        return []  # the encoder's own files are its vocabulary (the run names them)
