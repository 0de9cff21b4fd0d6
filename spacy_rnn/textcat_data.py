"""Text classification corpora: read TREC and SST-2 strictly and build Docs
with `doc.cats`.

Each reader yields `LabelledText(path, line_no, text, label)`. A malformed
line raises `CorpusFormatError` (spacy_rnn.data) naming the file, the line,
what was expected and what was found; nothing is skipped or changed
silently. The texts are already tokenized (PTB style), so a Doc's words are
the text split on single spaces.

- TREC (`train_5500.label`, Latin-1): `COARSE:fine question`; the label is
  the coarse class (6 classes). TREC has no dev set: `split_dev` holds out a
  fixed, seeded, stratified share of train, keeping repeated questions on one
  side.
- SST-2 (`stsa.binary.*`, UTF-8): `0|1 sentence`. The optional phrase file
  (`train_phrases_glue.tsv`: `phrase \\tlabel`) writes `(`, `)`, `/`, `*` where
  the sentence files write `-lrb-`, `-rrb-`, `\\/`, `\\*`; `read_sst2_phrases`
  maps its phrases to the sentence files' convention, so that training and
  evaluation texts (including the held-out test set) agree.

No torch here: this module is used by the conversion script.
"""
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple, Union

from spacy.tokens import Doc
from spacy.vocab import Vocab

from .data import USER_DATA_KEY, CorpusFormatError, _clip, decoded_lines
from .files import BOM

PathLike = Union[str, Path]

_TREC_LINE = re.compile(r"^([A-Z]+):(\S+) (.*\S.*)$")
_SST2_LINE = re.compile(r"^([01]) (.*\S.*)$")
_PHRASE_TO_SENTENCE_FILES = (("(", "-lrb-"), (")", "-rrb-"), ("/", "\\/"), ("*", "\\*"))
SST2_LABELS = {"0": "NEGATIVE", "1": "POSITIVE"}


@dataclass(frozen=True)
class LabelledText:
    path: str
    line_no: int
    text: str
    label: str


def _lines(path: PathLike, encoding: str) -> Iterator[Tuple[int, str]]:
    for line_no, line in decoded_lines(path, encoding):
        if line_no > 1 and line.startswith(BOM):
            raise CorpusFormatError(path, line_no, "no byte-order mark after the start of the file", repr(_clip(line)))
        yield line_no, line


def _words(text: str) -> List[str]:
    return [word for word in text.split(" ") if word]


def read_trec(path: PathLike) -> Iterator[LabelledText]:
    """TREC question classification (Li & Roth 2002), coarse labels; the file is Latin-1."""
    for line_no, line in _lines(path, "latin-1"):
        match = _TREC_LINE.match(line)
        if match is None:
            raise CorpusFormatError(path, line_no, "'COARSE:fine question text' (e.g. 'DESC:manner How ...')", repr(_clip(line)))
        yield LabelledText(str(path), line_no, " ".join(_words(match.group(3))), match.group(1))


def read_sst2(path: PathLike) -> Iterator[LabelledText]:
    """SST-2 sentences (Kim 2014's stsa.binary.* files): '0 text' or '1 text'."""
    for line_no, line in _lines(path, "utf-8"):
        match = _SST2_LINE.match(line)
        if match is None:
            raise CorpusFormatError(path, line_no, "'0 sentence' or '1 sentence'", repr(_clip(line)))
        yield LabelledText(str(path), line_no, " ".join(_words(match.group(2))), SST2_LABELS[match.group(1)])


def read_sst2_phrases(path: PathLike) -> Iterator[LabelledText]:
    """SST-2 training phrases (GLUE train): 'phrase \\t0|1', mapped to the sentence files' convention."""
    for line_no, line in _lines(path, "utf-8"):
        text, tab, label = line.rpartition("\t")
        if not tab or label not in SST2_LABELS or not text.strip():
            raise CorpusFormatError(path, line_no, "'phrase<TAB>0' or 'phrase<TAB>1'", repr(_clip(line)))
        words = _words(text.strip())
        for literal, escaped in _PHRASE_TO_SENTENCE_FILES:
            words = [word.replace(literal, escaped) for word in words]
        yield LabelledText(str(path), line_no, " ".join(words), SST2_LABELS[label])


def split_dev(records: Sequence[LabelledText], fraction: float, seed: int) -> Tuple[List[LabelledText], List[LabelledText]]:
    """(train, dev): for each label, a seeded random `fraction` of its distinct
    texts goes to dev. All copies of a repeated text go to the side of its
    first occurrence, so no dev text is also a training text. Input order is
    kept on both sides."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the dev fraction must be between 0 and 1, got {fraction}")
    first_label: Dict[str, str] = {}
    texts_by_label: Dict[str, List[str]] = defaultdict(list)
    for record in records:
        if record.text not in first_label:
            first_label[record.text] = record.label
            texts_by_label[record.label].append(record.text)
    rng = random.Random(seed)
    dev_texts = set()
    for label in sorted(texts_by_label):
        texts = list(texts_by_label[label])
        rng.shuffle(texts)
        dev_texts.update(texts[: round(fraction * len(texts))])
    train = [r for r in records if r.text not in dev_texts]
    dev = [r for r in records if r.text in dev_texts]
    return train, dev


def records_to_docs(vocab: Vocab, records: Iterable[LabelledText], labels: Sequence[str]) -> Iterator[Doc]:
    """One Doc per text, words split on spaces, `doc.cats` one-hot over `labels`
    (exclusive classes); the source file and line in `doc.user_data`."""
    labels = list(labels)
    for record in records:
        if record.label not in labels:
            raise CorpusFormatError(record.path, record.line_no, f"a label of {labels}", repr(record.label))
        doc = Doc(vocab, words=record.text.split(" "))
        doc.cats = {label: float(label == record.label) for label in labels}
        doc.user_data[USER_DATA_KEY] = f"{record.path}:{record.line_no}"
        yield doc
