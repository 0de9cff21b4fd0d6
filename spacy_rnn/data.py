"""Corpus conversion: read NER corpora in IOB2 column formats and build Docs.

Readers are strict on purpose. A malformed line raises `CorpusFormatError`
naming the file, the line number, what was expected and what was found, so
that nothing is dropped or changed without a message. Tags that are well
formed but break the BIO scheme (an `I-X` that does not continue an `X`
entity) are handled by `check_bio`, which either repairs or rejects them.

Lines (`read_corpus_lines`, used by every corpus reader): files are UTF-8; a
byte-order mark at the start of the file is removed, one anywhere else is an
error. Lines end at "\n" only. A blank line (a sentence boundary) is one that
is empty or holds only ASCII spaces and tabs. A line that holds only other
whitespace (U+0085, U+00A0, U+2028, U+2029, \x0b, \x0c, \x1c-\x1e...) is
malformed, not blank: it raises CorpusFormatError rather than splitting a
sentence silently. Columns are split on the format's ASCII separator (a space
or a tab), never on other whitespace, so such characters inside a token stay
in the token.

No torch here: this module is used by the conversion scripts.
"""
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple, Union

from spacy.tokens import Doc
from spacy.training.iob_utils import biluo_tags_to_spans, iob_to_biluo
from spacy.vocab import Vocab

from .files import BOM, TextDecodeError, read_text_lines

PathLike = Union[str, Path]

# O, or B-/I- followed by a non-empty type without whitespace.
_NER_TAG = re.compile(r"^(O|[BI]-\S+)$")
DOCSTART = "-DOCSTART-"
# The whole -DOCSTART- line as CoNLL-2003 writes it.
_CONLL_DOCSTART_COLUMNS = [DOCSTART, "-X-", "-X-", "O"]
USER_DATA_KEY = "spacy_rnn.source"


class CorpusFormatError(ValueError):
    """A corpus line that does not have the expected form.

    path (str): The file that was read.
    line_no (int): The 1-based line number of the offending line.
    expected (str): What the reader expected at that line.
    found (str): What it found instead.
    """

    def __init__(self, path: PathLike, line_no: int, expected: str, found: str):
        self.path = str(path)
        self.line_no = line_no
        self.expected = expected
        self.found = found
        super().__init__(f"{self.path}:{line_no}: expected {expected}, found {found}")


class InvalidBIOError(CorpusFormatError):
    """An `I-X` tag that does not continue an `X` entity (with repair=False)."""


@dataclass
class TaggedSentence:
    """One sentence of a column corpus.

    words (List[str]): The tokens.
    tags (List[str]): One IOB2 tag per token (`O`, `B-X` or `I-X`).
    path (str): The file the sentence was read from.
    first_line (int): The 1-based line number of the first token line. Token
        lines of a sentence are consecutive, so token i is on line first_line + i.
    sent_id (Optional[str]): The `# sent_id` comment, if the format has one.
    doc_start (bool): Whether a document boundary (`-DOCSTART-` or
        `# newdoc`) comes right before this sentence.
    """

    words: List[str]
    tags: List[str]
    path: str
    first_line: int
    sent_id: Optional[str] = None
    doc_start: bool = False

    def line_of(self, i: int) -> int:
        """The line number of token i."""
        return self.first_line + i


_BLANK = " \t"


def decoded_lines(path: PathLike, encoding: str = "utf-8") -> Iterator[Tuple[int, str]]:
    """(line_no, line) of a text file (spacy_rnn.files.read_text_lines); a
    line that is not in the encoding raises CorpusFormatError naming it."""
    lines = read_text_lines(path, encoding=encoding)
    while True:
        try:
            line_no, line = next(lines)
        except StopIteration:
            return
        except TextDecodeError as err:
            name = encoding.upper()
            raise CorpusFormatError(path, err.line_no, f"{name} text", f"bytes that are not {name} ({err.detail} as {name})") from None
        yield line_no, line


def read_corpus_lines(path: PathLike) -> Iterator[Tuple[int, str]]:
    """Yield (line_no, line) of a UTF-8 corpus file, through
    `spacy_rnn.files.read_text_lines` (byte-order mark removed, lines split on
    "\n" only, without the line ending). A blank line (empty or only ASCII
    spaces and tabs) is yielded as "". Raises CorpusFormatError naming the
    line for bytes that are not UTF-8, for a byte-order mark after the start
    of the file, and for a line that holds only whitespace other than ASCII
    spaces and tabs (e.g. U+0085 or U+2028), which is not a blank line.

    path (str / Path): The file to read.
    YIELDS (Tuple[int, str]): The 1-based line number and the line.
    """
    for line_no, line in decoded_lines(path):
        if not line.strip(_BLANK):
            yield line_no, ""
            continue
        if line.startswith(BOM):
            raise CorpusFormatError(
                path, line_no, "no byte-order mark after the start of the file (were files concatenated?)", repr(_clip(line))
            )
        if not line.strip():
            raise CorpusFormatError(
                path, line_no, "a blank line (empty, or only spaces and tabs) or a token line",
                f"a line of other whitespace only: {line!r}",
            )
        yield line_no, line


def _check_tag(path: PathLike, line_no: int, tag: str) -> None:
    if not _NER_TAG.match(tag):
        raise CorpusFormatError(path, line_no, "a NER tag O, B-X or I-X", repr(tag))


def _check_columns(path: PathLike, line_no: int, line: str, columns: List[str], n: int, layout: str, sep: str) -> None:
    if len(columns) != n:
        raise CorpusFormatError(
            path, line_no, f"{n} {sep}-separated columns ({layout}) or a blank line", f"{len(columns)} columns: {_clip(line)!r}"
        )
    for i, value in enumerate(columns):
        if not value:
            raise CorpusFormatError(path, line_no, f"a non-empty value in column {i + 1} ({layout})", "an empty column")


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def read_conll2003(path: PathLike) -> Iterator[TaggedSentence]:
    """Read a CoNLL-2003 file: `word POS chunk NER` per line, space-separated.

    Blank lines separate sentences; a `-DOCSTART- -X- -X- O` line between
    sentences starts a new document. The POS and chunk columns are not kept.
    Raises CorpusFormatError on a line with another number of columns, an
    empty column, a NER tag that is not O/B-X/I-X, or a misplaced -DOCSTART-.

    path (str / Path): The file to read.
    YIELDS (TaggedSentence): The sentences, in file order.
    """
    path = str(path)
    words: List[str] = []
    tags: List[str] = []
    first_line = 0
    doc_start = False
    for line_no, line in read_corpus_lines(path):
        if not line:
            if words:
                yield TaggedSentence(words, tags, path, first_line, doc_start=doc_start)
                words, tags, doc_start = [], [], False
            continue
        columns = line.split(" ")
        if columns[0] == DOCSTART:
            if columns != _CONLL_DOCSTART_COLUMNS:
                raise CorpusFormatError(path, line_no, "'-DOCSTART- -X- -X- O'", repr(_clip(line)))
            if words:
                raise CorpusFormatError(path, line_no, "a blank line before -DOCSTART-", "-DOCSTART- inside a sentence")
            doc_start = True
            continue
        _check_columns(path, line_no, line, columns, 4, "word POS chunk NER", "space")
        _check_tag(path, line_no, columns[3])
        if not words:
            first_line = line_no
        words.append(columns[0])
        tags.append(columns[3])
    if words:
        yield TaggedSentence(words, tags, path, first_line, doc_start=doc_start)


def read_uner(path: PathLike) -> Iterator[TaggedSentence]:
    """Read a Universal NER file: `index token NER misc annotator`, tab-separated.

    Comment lines start with `# ` and come before a sentence's tokens:
    `# sent_id = ...` is kept, `# newdoc ...` starts a new document, others
    (`# text = ...`) are skipped. Blank lines separate sentences. Raises
    CorpusFormatError on a line with another number of columns, an empty
    column, an index that does not count 1, 2, 3... within the sentence, a
    NER tag that is not O/B-X/I-X, or a comment between token lines.

    path (str / Path): The file to read.
    YIELDS (TaggedSentence): The sentences, in file order.
    """
    path = str(path)
    words: List[str] = []
    tags: List[str] = []
    first_line = 0
    sent_id: Optional[str] = None
    doc_start = False
    for line_no, line in read_corpus_lines(path):
        if not line:
            if words:
                yield TaggedSentence(words, tags, path, first_line, sent_id=sent_id, doc_start=doc_start)
                words, tags, sent_id, doc_start = [], [], None, False
            continue
        if line.startswith("# "):
            if words:
                raise CorpusFormatError(path, line_no, "a token line or a blank line", f"a comment {_clip(line)!r}")
            if line.startswith("# newdoc"):
                doc_start = True
            elif line.startswith("# sent_id"):
                key, eq, value = line[2:].partition("=")
                if not eq or key.strip() != "sent_id":
                    raise CorpusFormatError(path, line_no, "'# sent_id = ID'", repr(_clip(line)))
                sent_id = value.strip(_BLANK)
            continue
        columns = line.split("\t")
        _check_columns(path, line_no, line, columns, 5, "index token NER misc annotator", "tab")
        expected_index = str(len(words) + 1)
        if columns[0] != expected_index:
            raise CorpusFormatError(path, line_no, f"token index {expected_index}", repr(_clip(columns[0])))
        _check_tag(path, line_no, columns[2])
        if not words:
            first_line = line_no
        words.append(columns[1])
        tags.append(columns[2])
    if words:
        yield TaggedSentence(words, tags, path, first_line, sent_id=sent_id, doc_start=doc_start)


def check_bio(sentence: TaggedSentence, repair: bool) -> Tuple[List[str], List[str]]:
    """Check that every `I-X` continues an `X` entity.

    An `I-X` at the start of the sentence, after `O`, or after `B-Y`/`I-Y`
    with Y != X is invalid. With repair=True it becomes `B-X` (so following
    `I-X` tags continue the repaired entity) and a message with its location
    is returned; with repair=False InvalidBIOError is raised at the first one.
    The sentence itself is not changed.

    sentence (TaggedSentence): The sentence to check.
    repair (bool): Repair invalid tags instead of raising.
    RETURNS (Tuple[List[str], List[str]]): The (possibly repaired) tags and
        one "path:line: ..." message per repaired tag.
    """
    tags = list(sentence.tags)
    problems: List[str] = []
    prev = "O"
    for i, tag in enumerate(tags):
        line_no = sentence.line_of(i)
        _check_tag(sentence.path, line_no, tag)
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            where = "at sentence start" if i == 0 else f"after {prev}"
            if not repair:
                raise InvalidBIOError(
                    sentence.path, line_no, f"B-{tag[2:]} or O (I-{tag[2:]} must follow B-{tag[2:]} or I-{tag[2:]})", f"{tag} {where}"
                )
            tags[i] = tag = "B-" + tag[2:]
            problems.append(f"{sentence.path}:{line_no}: I-{tag[2:]} {where}, repaired to {tag}")
        prev = tag
    return tags, problems


def sentences_to_docs(vocab: Vocab, sentences: Iterable[TaggedSentence], n_sents: int = 10) -> Iterator[Doc]:
    """Group sentences into Docs with sentence starts and entities.

    A Doc holds up to n_sents sentences and never crosses a document boundary
    (a sentence with doc_start=True begins a new Doc). Tokens are separated by
    single spaces. Tags must be valid BIO: run `check_bio` with repair=True
    first to repair them; otherwise InvalidBIOError is raised. Each Doc's
    `user_data["spacy_rnn.source"]` records the path, first lines and sent_ids
    of its sentences, so a Doc can be traced back to the corpus.

    vocab (Vocab): The vocab for the Docs.
    sentences (Iterable[TaggedSentence]): The sentences, in order.
    n_sents (int): The maximum number of sentences per Doc.
    YIELDS (Doc): The Docs.
    """
    if n_sents < 1:
        raise ValueError(f"n_sents must be at least 1, got {n_sents}")
    batch: List[TaggedSentence] = []
    for sentence in sentences:
        if batch and (sentence.doc_start or len(batch) >= n_sents):
            yield _make_doc(vocab, batch)
            batch = []
        batch.append(sentence)
    if batch:
        yield _make_doc(vocab, batch)


def _make_doc(vocab: Vocab, sentences: List[TaggedSentence]) -> Doc:
    words: List[str] = []
    sent_starts: List[bool] = []
    biluo: List[str] = []
    for sentence in sentences:
        if len(sentence.words) != len(sentence.tags):
            raise CorpusFormatError(
                sentence.path, sentence.first_line, f"{len(sentence.words)} tags, one per word", f"{len(sentence.tags)} tags"
            )
        tags, _ = check_bio(sentence, repair=False)
        words.extend(sentence.words)
        sent_starts.extend([True] + [False] * (len(sentence.words) - 1))
        # Per sentence, so that no entity can run across a sentence boundary.
        biluo.extend(iob_to_biluo(tags))
    spaces = [True] * len(words)
    if spaces:
        spaces[-1] = False
    doc = Doc(vocab, words=words, spaces=spaces, sent_starts=sent_starts)
    # Setting doc.ents marks every other token as O (not missing).
    doc.ents = biluo_tags_to_spans(doc, biluo)
    doc.user_data[USER_DATA_KEY] = {
        "path": sentences[0].path,
        "first_lines": [s.first_line for s in sentences],
        "sent_ids": [s.sent_id for s in sentences],
    }
    return doc


def repair_sentences(
    sentences: Iterable[TaggedSentence], repair: bool, problems: List[str]
) -> Iterator[TaggedSentence]:
    """Run `check_bio` on each sentence and yield sentences with checked tags.

    sentences (Iterable[TaggedSentence]): The sentences to check.
    repair (bool): Repair invalid `I-X` tags to `B-X` instead of raising InvalidBIOError.
    problems (List[str]): Messages about repaired tags are appended here.
    YIELDS (TaggedSentence): The sentences, with repaired tags where needed.
    """
    for sentence in sentences:
        tags, found = check_bio(sentence, repair=repair)
        problems.extend(found)
        yield replace(sentence, tags=tags) if found else sentence
