import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_rnn.data import (
    CorpusFormatError,
    InvalidBIOError,
    TaggedSentence,
    check_bio,
    read_conll2003,
    read_uner,
    repair_sentences,
    sentences_to_docs,
)

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "convert_ner.py"

CONLL = """\
-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""

UNER = """\
# newdoc id = doc1
# sent_id = doc1-0001
# text = Al-Zaman : forces
1\tAl\tB-ORG\t-\tstephen
2\t-\tI-ORG\t-\tstephen
3\tZaman\tI-ORG\t-\tstephen
4\t:\tO\t-\t-

# sent_id = doc1-0002
# text = Shaikh Abdullah
1\tShaikh\tB-PER\t-\tstephen
2\tAbdullah\tI-PER\t-\tstephen
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    return path


def sentence(tags, first_line=5, path="x.txt"):
    return TaggedSentence([f"w{i}" for i in range(len(tags))], list(tags), path, first_line)


def test_read_conll2003_docstart(tmp_path):
    path = write(tmp_path, "c.txt", CONLL)
    sents = list(read_conll2003(path))
    assert [s.words for s in sents] == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"]]
    assert sents[0].tags == ["B-ORG", "O", "B-MISC", "O"]
    assert [s.first_line for s in sents] == [3, 8, 13]
    assert [s.doc_start for s in sents] == [True, False, True]
    assert all(s.path == str(path) for s in sents)


def test_read_conll2003_no_trailing_blank_line(tmp_path):
    path = write(tmp_path, "c.txt", "a DT B-NP O\nb NN I-NP B-LOC")
    (sent,) = read_conll2003(path)
    assert sent.tags == ["O", "B-LOC"]
    assert not sent.doc_start


@pytest.mark.parametrize(
    "text,line_no,expected",
    [
        ("EU NNP B-NP B-ORG\nrejects VBZ B-VP\n", 2, "expected 4 space-separated columns"),
        ("EU NNP B-NP B-ORG\n\nrejects\tVBZ\tB-VP\tO\n", 3, "found 1 columns"),
        ("EU NNP B-NP B-ORG extra\n", 1, "found 5 columns"),
        ("EU NNP  B-ORG\n", 1, "expected a non-empty value in column 3"),
        ("EU NNP B-NP B-ORG\nrejects VBZ B-VP X-ORG\n", 2, "a NER tag O, B-X or I-X, found 'X-ORG'"),
        ("EU NNP B-NP B-\n", 1, "found 'B-'"),
        ("-DOCSTART- -X- -X- B-ORG\n", 1, "expected '-DOCSTART- -X- -X- O'"),
        ("EU NNP B-NP B-ORG\n-DOCSTART- -X- -X- O\n", 2, "a blank line before -DOCSTART-"),
    ],
)
def test_read_conll2003_errors(tmp_path, text, line_no, expected):
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(CorpusFormatError) as excinfo:
        list(read_conll2003(path))
    message = str(excinfo.value)
    assert message.startswith(f"{path}:{line_no}: expected ")
    assert expected in message
    assert excinfo.value.line_no == line_no


def test_read_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("a DT B-NP O\nM\xfcnchen NNP B-NP B-LOC\n".encode("latin1"))
    with pytest.raises(CorpusFormatError, match=r"latin1\.txt:2: expected UTF-8 text"):
        list(read_conll2003(path))


def test_read_uner_comments(tmp_path):
    path = write(tmp_path, "u.iob2", UNER)
    sents = list(read_uner(path))
    assert [s.words for s in sents] == [["Al", "-", "Zaman", ":"], ["Shaikh", "Abdullah"]]
    assert [s.tags for s in sents] == [["B-ORG", "I-ORG", "I-ORG", "O"], ["B-PER", "I-PER"]]
    assert [s.sent_id for s in sents] == ["doc1-0001", "doc1-0002"]
    assert [s.doc_start for s in sents] == [True, False]
    assert [s.first_line for s in sents] == [4, 11]


@pytest.mark.parametrize(
    "text,line_no,expected",
    [
        ("1\tA\tO\t-\t-\n3\tB\tO\t-\t-\n", 2, "expected token index 2, found '3'"),
        ("1\tA\tO\t-\t-\n\n2\tB\tO\t-\t-\n", 3, "expected token index 1, found '2'"),
        ("1\tA\tO\t-\t-\n1-2\tBC\tO\t-\t-\n", 2, "expected token index 2, found '1-2'"),
        ("1\tA\tO\t-\n", 1, "expected 5 tab-separated columns"),
        ("1 A O - -\n", 1, "found 1 columns"),
        ("1\tA\tB-PER\t-\t-\n2\tB\tI_PER\t-\t-\n", 2, "found 'I_PER'"),
        ("1\tA\tO\t-\t-\n# text = A\n", 2, "expected a token line or a blank line"),
        ("#\tA\tO\t-\t-\n", 1, "expected token index 1, found '#'"),
    ],
)
def test_read_uner_errors(tmp_path, text, line_no, expected):
    path = write(tmp_path, "bad.iob2", text)
    with pytest.raises(CorpusFormatError) as excinfo:
        list(read_uner(path))
    message = str(excinfo.value)
    assert message.startswith(f"{path}:{line_no}: expected ")
    assert expected in message


@pytest.mark.parametrize(
    "tags,repaired,problems",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC"], []),
        (["O", "I-PER", "I-PER"], ["O", "B-PER", "I-PER"], ["x.txt:6: I-PER after O, repaired to B-PER"]),
        (["I-LOC", "O"], ["B-LOC", "O"], ["x.txt:5: I-LOC at sentence start, repaired to B-LOC"]),
        (["B-ORG", "I-LOC"], ["B-ORG", "B-LOC"], ["x.txt:6: I-LOC after B-ORG, repaired to B-LOC"]),
        (
            ["B-ORG", "I-ORG", "I-LOC", "O", "I-LOC"],
            ["B-ORG", "I-ORG", "B-LOC", "O", "B-LOC"],
            ["x.txt:7: I-LOC after I-ORG, repaired to B-LOC", "x.txt:9: I-LOC after O, repaired to B-LOC"],
        ),
    ],
)
def test_check_bio_repair(tags, repaired, problems):
    sent = sentence(tags)
    assert check_bio(sent, repair=True) == (repaired, problems)
    assert sent.tags == tags  # the sentence itself is left alone


def test_check_bio_reject():
    assert check_bio(sentence(["B-PER", "I-PER", "O"]), repair=False) == (["B-PER", "I-PER", "O"], [])
    with pytest.raises(InvalidBIOError) as excinfo:
        check_bio(sentence(["O", "B-PER", "O", "I-PER"]), repair=False)
    assert isinstance(excinfo.value, CorpusFormatError)
    assert str(excinfo.value).startswith("x.txt:8: expected B-PER or O")
    assert "found I-PER after O" in str(excinfo.value)


def test_sentences_to_docs_entities_and_sent_starts(tmp_path):
    nlp = spacy.blank("en")
    sents = list(read_conll2003(write(tmp_path, "c.txt", CONLL)))
    docs = list(sentences_to_docs(nlp.vocab, sents, n_sents=10))
    # The second -DOCSTART- starts a new Doc.
    assert [doc.text for doc in docs] == ["EU rejects German call Peter Blackburn", "BRUSSELS 1996-08-22"]
    assert [t.is_sent_start for t in docs[0]] == [True, False, False, False, True, False]
    assert [(e.text, e.label_) for e in docs[0].ents] == [("EU", "ORG"), ("German", "MISC"), ("Peter Blackburn", "PER")]
    assert [(e.start, e.end) for e in docs[0].ents] == [(0, 1), (2, 3), (4, 6)]
    assert [t.ent_iob_ for t in docs[0]] == ["B", "O", "B", "O", "B", "I"]  # O, not missing
    assert [t.whitespace_ for t in docs[1]] == [" ", ""]
    assert docs[0].user_data["spacy_rnn.source"]["first_lines"] == [3, 8]


def test_sentences_to_docs_n_sents():
    nlp = spacy.blank("en")
    sents = [sentence(["O"]) for _ in range(5)]
    sents[3].doc_start = True
    docs = list(sentences_to_docs(nlp.vocab, sents, n_sents=2))
    assert [len(list(doc.sents)) for doc in docs] == [2, 1, 2]
    with pytest.raises(ValueError):
        list(sentences_to_docs(nlp.vocab, sents, n_sents=0))


def test_sentences_to_docs_needs_valid_bio():
    nlp = spacy.blank("en")
    sents = [sentence(["O", "I-PER"])]
    with pytest.raises(InvalidBIOError, match=r"x\.txt:6:"):
        list(sentences_to_docs(nlp.vocab, sents))
    problems = []
    (doc,) = sentences_to_docs(nlp.vocab, repair_sentences(sents, True, problems))
    assert [(e.text, e.label_) for e in doc.ents] == [("w1", "PER")]
    assert problems == ["x.txt:6: I-PER after O, repaired to B-PER"]


def test_docbin_round_trip(tmp_path):
    nlp = spacy.blank("en")
    sents = list(read_uner(write(tmp_path, "u.iob2", UNER)))
    docs = list(sentences_to_docs(nlp.vocab, sents, n_sents=1))
    DocBin(docs=docs, store_user_data=True).to_disk(tmp_path / "u.spacy")
    loaded = list(DocBin().from_disk(tmp_path / "u.spacy").get_docs(nlp.vocab))
    assert [[t.text for t in doc] for doc in loaded] == [s.words for s in sents]
    for doc, sent in zip(loaded, sents):
        tags = [t.ent_iob_ if t.ent_iob_ == "O" else f"{t.ent_iob_}-{t.ent_type_}" for t in doc]
        assert tags == sent.tags
        assert doc[0].is_sent_start
        assert list(doc.user_data["spacy_rnn.source"]["sent_ids"]) == [sent.sent_id]


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_script_converts_and_repairs(tmp_path):
    text = CONLL.replace("Blackburn NNP I-NP I-PER", "Blackburn NNP I-NP I-PER\nsaid VBD B-VP I-MISC")
    path = write(tmp_path, "train.txt", text)
    result = run_script(path, tmp_path / "out", "--format", "conll2003", "--on-invalid", "repair", "--n-sents", "1")
    assert result.returncode == 0, result.stderr
    assert "sentences: 3  tokens: 9  entities: 5" in result.stdout
    assert f"{path}:10: I-MISC after I-PER, repaired to B-MISC" in result.stdout
    docs = list(DocBin().from_disk(tmp_path / "out" / "train.spacy").get_docs(spacy.blank("en").vocab))
    assert len(docs) == 3
    assert [e.label_ for e in docs[1].ents] == ["PER", "MISC"]


def test_script_rejects(tmp_path):
    bad = write(tmp_path, "bad.iob2", UNER.replace("2\tAbdullah\tI-PER", "2\tAbdullah\tI-LOC"))
    result = run_script(bad, tmp_path / "out", "--format", "uner", "--on-invalid", "reject")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {bad}:12: expected B-LOC or O (I-LOC must follow B-LOC or I-LOC), found I-LOC after B-PER"]
    malformed = write(tmp_path, "malformed.txt", "EU NNP B-ORG\n")
    result = run_script(malformed, tmp_path / "out", "--format", "conll2003", "--on-invalid", "repair")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {malformed}:1: expected 4 space-separated columns")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
