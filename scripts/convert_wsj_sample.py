"""Convert the NLTK WSJ sample (gold PTB tags, 45 tags) to spaCy's binary format,
split by document. The split is fixed:

    train  wsj_0001 - wsj_0159   (3,396 sentences, 81,793 tokens)
    dev    wsj_0160 - wsj_0179   (  273 sentences,  6,327 tokens)
    test   wsj_0180 - wsj_0199   (  245 sentences,  5,964 tokens)

(the split that ptb_wsj_sample/SOURCE.md suggests; the sample holds wsj_0001 to
wsj_0199). Each WSJ document becomes one Doc with its sentence boundaries and
tags in Token.tag_; train with `gold_preproc = true` to get sentences. The
tokens keep their PTB forms (-LRB-, ``, ''); every token is followed by a
space, since the sample has no original spacing.

    python scripts/convert_wsj_sample.py ../shared/data/ptb_wsj_sample corpus

writes corpus/wsj_sample-{train,dev,test}.spacy. The inputs are read as UTF-8
(a leading byte-order mark is removed; lines end at "\n" only). A blank line is
empty or only ASCII spaces and tabs; a malformed line, including one holding
only other whitespace such as U+0085, raises an error naming the file and line
number. The three files are written beside their destinations and renamed into
place only when all three are complete, so an interrupted run leaves the
previous outputs as they were.
"""
from contextlib import ExitStack
from pathlib import Path
from typing import Dict, List, Tuple

import spacy
import typer
from spacy.tokens import Doc, DocBin

from spacy_rnn.data import CorpusFormatError, read_corpus_lines
from spacy_rnn.files import atomic_output

# Inclusive ranges of WSJ document numbers.
SPLITS = {"train": (1, 159), "dev": (160, 179), "test": (180, 199)}

Sentence = List[Tuple[str, str]]


def read_sentences(path: Path) -> List[Sentence]:
    """`token<TAB>TAG` lines, a blank line after each sentence."""
    sentences: List[Sentence] = []
    current: Sentence = []
    for line_no, line in read_corpus_lines(path):
        if not line:
            if current:
                sentences.append(current)
                current = []
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not all(fields) or any(f != f.strip() for f in fields):
            raise CorpusFormatError(path, line_no, "'token<TAB>TAG'", repr(line))
        current.append((fields[0], fields[1]))
    if current:
        sentences.append(current)
    return sentences


def read_doc_index(path: Path, n_sentences: int) -> List[Tuple[str, int, int]]:
    """`doc_id first_sentence n_sentences` rows; they must tile all sentences in order."""
    rows = []
    expected_first = 0
    for line_no, line in read_corpus_lines(path):
        if line_no == 1:
            if line.split("\t") != ["doc_id", "first_sentence", "n_sentences"]:
                raise CorpusFormatError(path, line_no, "the header 'doc_id first_sentence n_sentences'", repr(line))
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0].startswith("wsj_") or not (fields[1].isdigit() and fields[2].isdigit()):
            raise CorpusFormatError(path, line_no, "'wsj_NNNN<TAB>first<TAB>count'", repr(line))
        first, count = int(fields[1]), int(fields[2])
        if first != expected_first:
            raise CorpusFormatError(path, line_no, f"first_sentence {expected_first}", str(first))
        rows.append((fields[0], first, count))
        expected_first = first + count
    if expected_first != n_sentences:
        raise ValueError(f"{path}: the index covers {expected_first} sentences, the corpus has {n_sentences}")
    return rows


def split_of(doc_id: str) -> str:
    number = int(doc_id[len("wsj_") :])
    for name, (low, high) in SPLITS.items():
        if low <= number <= high:
            return name
    raise ValueError(f"{doc_id} is in no split {SPLITS}")


def main(
    data_dir: Path = typer.Argument(..., help="The ptb_wsj_sample folder"),
    output_dir: Path = typer.Argument(..., help="Where wsj_sample-{train,dev,test}.spacy go"),
):
    sentences = read_sentences(data_dir / "wsj_sample.tsv")
    index = read_doc_index(data_dir / "wsj_sample.docs.tsv", len(sentences))
    nlp = spacy.blank("en")
    bins: Dict[str, DocBin] = {name: DocBin(store_user_data=True) for name in SPLITS}
    counts = {name: [0, 0, 0] for name in SPLITS}  # docs, sentences, tokens
    for doc_id, first, n_sents in index:
        sents = sentences[first : first + n_sents]
        words = [word for sent in sents for word, _ in sent]
        tags = [tag for sent in sents for _, tag in sent]
        sent_starts = [i == 0 for sent in sents for i in range(len(sent))]
        doc = Doc(nlp.vocab, words=words, tags=tags, sent_starts=sent_starts)
        doc.user_data["doc_id"] = doc_id
        name = split_of(doc_id)
        bins[name].add(doc)
        counts[name][0] += 1
        counts[name][1] += n_sents
        counts[name][2] += len(words)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / f"wsj_sample-{name}.spacy" for name in bins}
    # All three are written first; they are renamed into place when the block ends without an error.
    with ExitStack() as stack:
        for name, doc_bin in bins.items():
            doc_bin.to_disk(stack.enter_context(atomic_output(paths[name])))
    for name, path in paths.items():
        n_docs, n_sents, n_tokens = counts[name]
        low, high = SPLITS[name]
        typer.echo(f"{path}: wsj_{low:04d}-wsj_{high:04d}, {n_docs} docs, {n_sents} sentences, {n_tokens} tokens")


if __name__ == "__main__":
    typer.run(main)
