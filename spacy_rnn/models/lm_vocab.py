"""The closed word vocabulary of the language model (no torch, no spaCy), so
that the rnn_lm component and the torch-side training share one mapping."""
import re
from typing import Dict, Iterable, List, Optional, Sequence

UNK = "<unk>"
EOS = "<eos>"
UNK_ID = 0
EOS_ID = 1
_NUMBER = re.compile(r"^[+-]?[\d.,:/\\-]*\d[\d.,:/\\-]*%?$")


class Vocabulary:
    """Word <-> id. Id 0 is `<unk>` and id 1 is `<eos>`, then the words.

    A word is looked up as it is, then normalized: lowercased (if
    `lowercase`) and, if it looks like a number ("3", "1,000", "4.5%",
    "1/2"), replaced by `number_token`, the way Mikolov's PTB text was made
    (lower case, numbers as N). Whatever is still not found is `<unk>`.
    """

    def __init__(self, words: Sequence[str], *, lowercase: bool = True, number_token: Optional[str] = "N") -> None:
        words = list(words)
        if words[:2] != [UNK, EOS]:
            raise ValueError(f"a vocabulary starts with {UNK!r}, {EOS!r}; got {words[:2]}")
        if len(set(words)) != len(words):
            raise ValueError("the vocabulary has duplicate words")
        self.words = words
        self.index = {word: i for i, word in enumerate(words)}
        self.lowercase = lowercase
        self.number_token = number_token

    @classmethod
    def from_counts(
        cls, counts: Dict[str, int], *, max_size: int, min_freq: int = 1, lowercase: bool = True,
        number_token: Optional[str] = "N",
    ) -> "Vocabulary":
        """The (max_size - 2) most frequent words seen at least min_freq times
        (ties in alphabetical order), after `<unk>` and `<eos>`."""
        candidates = [(w, c) for w, c in counts.items() if c >= min_freq and w not in (UNK, EOS)]
        candidates.sort(key=lambda wc: (-wc[1], wc[0]))
        return cls(
            [UNK, EOS] + [w for w, _ in candidates[: max(max_size - 2, 0)]],
            lowercase=lowercase,
            number_token=number_token,
        )

    @classmethod
    def from_dict(cls, data: Dict) -> "Vocabulary":
        return cls(data["words"], lowercase=data["lowercase"], number_token=data["number_token"])

    def to_dict(self) -> Dict:
        return {"words": self.words, "lowercase": self.lowercase, "number_token": self.number_token}

    def __len__(self) -> int:
        return len(self.words)

    def normalize(self, word: str) -> str:
        if word in (UNK, EOS, self.number_token):
            return word
        if self.number_token is not None and _NUMBER.match(word):
            return self.number_token
        return word.lower() if self.lowercase else word

    def lookup(self, word: str) -> int:
        found = self.index.get(word)
        if found is None:
            found = self.index.get(self.normalize(word), UNK_ID)
        return found

    def encode(self, words: Iterable[str]) -> List[int]:
        return [self.lookup(word) for word in words]
