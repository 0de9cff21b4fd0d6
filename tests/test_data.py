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

from .conftest import run_script_in_process

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
    """The converter in a new process, as a user runs it."""
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def run_in_process(*args):
    return run_script_in_process(SCRIPT, *args)


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
    result = run_in_process(bad, tmp_path / "out", "--format", "uner", "--on-invalid", "reject")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {bad}:12: expected B-LOC or O (I-LOC must follow B-LOC or I-LOC), found I-LOC after B-PER"]
    malformed = write(tmp_path, "malformed.txt", "EU NNP B-ORG\n")
    result = run_in_process(malformed, tmp_path / "out", "--format", "conll2003", "--on-invalid", "repair")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {malformed}:1: expected 4 space-separated columns")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# --- Issue 11: nothing lost, nothing silently changed -------------------------

BOM = "\ufeff"
# Characters that str.strip(), str.split() and str.splitlines() treat as
# whitespace or line breaks, but that the corpus formats do not use.
UNICODE_SEPARATORS = ["\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\xa0"]


def load_script(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, SCRIPT.parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summary(sents):
    return [(s.words, s.tags, s.first_line, s.sent_id, s.doc_start) for s in sents]


@pytest.mark.parametrize(
    "reader,text",
    [
        (read_conll2003, CONLL),  # starts with -DOCSTART-
        (read_conll2003, CONLL.split("\n", 2)[2]),  # starts with the word EU
        (read_uner, UNER),  # starts with a comment
        (read_uner, UNER.split("\n", 3)[3]),  # starts with a token line
    ],
)
def test_bom_at_file_start_is_removed(tmp_path, reader, text):
    plain = list(reader(write(tmp_path, "plain.txt", text)))
    with_bom = list(reader(write(tmp_path, "bom.txt", BOM + text)))
    assert summary(with_bom) == summary(plain)
    assert all(BOM not in word for s in with_bom for word in s.words)
    vocab = spacy.blank("en").vocab
    docs = [list(sentences_to_docs(vocab, sents)) for sents in (plain, with_bom)]
    assert [d.to_json()["ents"] for d in docs[0]] == [d.to_json()["ents"] for d in docs[1]]
    assert [d.text for d in docs[0]] == [d.text for d in docs[1]]


@pytest.mark.parametrize("reader", [read_conll2003, read_uner])
def test_bom_inside_the_file_is_an_error(tmp_path, reader):
    text = CONLL if reader is read_conll2003 else UNER
    lines = text.split("\n")
    lines[3] = BOM + lines[3]  # e.g. two files concatenated
    path = write(tmp_path, "cat.txt", "\n".join(lines))
    with pytest.raises(CorpusFormatError, match=r"cat\.txt:4: expected .*byte-order mark"):
        list(reader(path))


def test_script_bom(tmp_path):
    path = write(tmp_path, "train.txt", BOM + CONLL)
    result = run_in_process(path, tmp_path / "out", "--format", "conll2003", "--on-invalid", "reject")
    assert result.returncode == 0, result.stderr
    assert "documents: 2  Docs written: 2  sentences: 3  tokens: 8" in result.stdout
    docs = list(DocBin().from_disk(tmp_path / "out" / "train.spacy").get_docs(spacy.blank("en").vocab))
    assert docs[0][0].text == "EU"


def test_latin1_names_file_line_and_encoding(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("a DT B-NP O\nM\xfcnchen NNP B-NP B-LOC\n".encode("latin1"))
    with pytest.raises(CorpusFormatError) as excinfo:
        list(read_conll2003(path))
    message = str(excinfo.value)
    assert message.startswith(f"{path}:2: expected UTF-8 text, found ")
    assert "b'\\xfc' at column 2" in message
    assert excinfo.value.line_no == 2
    result = run_in_process(path, tmp_path / "out", "--format", "conll2003", "--on-invalid", "repair")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {path}:2: expected UTF-8 text")
    assert "UTF-8" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("sep", UNICODE_SEPARATORS)
@pytest.mark.parametrize("reader", [read_conll2003, read_uner])
def test_line_of_only_a_unicode_separator_is_an_error(tmp_path, reader, sep):
    if reader is read_conll2003:
        text = f"EU NNP B-NP B-ORG\n{sep}\nrejects VBZ B-VP O\n"
    else:
        text = f"1\tEU\tB-ORG\t-\t-\n{sep}\n2\trejects\tO\t-\t-\n"
    path = write(tmp_path, "sep.txt", text)
    with pytest.raises(CorpusFormatError) as excinfo:
        list(reader(path))  # not two sentences
    assert str(excinfo.value).startswith(f"{path}:2: expected a blank line (empty, or only spaces and tabs) or ")
    assert repr(sep) in str(excinfo.value)


@pytest.mark.parametrize("reader", [read_conll2003, read_uner])
def test_blank_line_of_spaces_and_tabs_ends_a_sentence(tmp_path, reader):
    if reader is read_conll2003:
        text = "EU NNP B-NP B-ORG\n \t \nrejects VBZ B-VP O\n"
    else:
        text = "1\tEU\tB-ORG\t-\t-\n\t \n1\trejects\tO\t-\t-\n"
    assert [s.words for s in reader(write(tmp_path, "b.txt", text))] == [["EU"], ["rejects"]]


@pytest.mark.parametrize("sep", UNICODE_SEPARATORS)
def test_unicode_separator_inside_a_token_stays_in_the_token(tmp_path, sep):
    conll = write(tmp_path, "c.txt", f"EU NNP B-NP B-ORG\nre{sep}jects VBZ B-VP O\n")
    uner = write(tmp_path, "u.iob2", f"1\tEU\tB-ORG\t-\t-\n2\tre{sep}jects\tO\t-\t-\n")
    for sents in (list(read_conll2003(conll)), list(read_uner(uner))):
        assert [s.words for s in sents] == [["EU", f"re{sep}jects"]]
        (doc,) = sentences_to_docs(spacy.blank("en").vocab, sents)
        assert [t.text for t in doc] == ["EU", f"re{sep}jects"]
    result = run_in_process(conll, tmp_path / "out", "--format", "conll2003", "--on-invalid", "reject")
    assert result.returncode == 0, result.stderr
    (doc,) = DocBin().from_disk(tmp_path / "out" / "c.spacy").get_docs(spacy.blank("en").vocab)
    assert [t.text for t in doc] == ["EU", f"re{sep}jects"]


@pytest.mark.parametrize(
    "reader,text,found",
    [
        (read_conll2003, "EU  NNP\n", "found 3 columns: 'EU  NNP'"),
        (read_conll2003, "EU\tNNP\tB-NP\tB-ORG\n", "found 1 columns: 'EU\\tNNP\\tB-NP\\tB-ORG'"),
        (read_uner, "1\tA\tO\t-\n", "found 4 columns: '1\\tA\\tO\\t-'"),
        (read_uner, "1 A\tO\t-\t-\n", "found 4 columns: '1 A\\tO\\t-\\t-'"),
    ],
)
def test_column_error_shows_the_line_as_it_is(tmp_path, reader, text, found):
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(CorpusFormatError) as excinfo:
        list(reader(path))
    assert str(excinfo.value).endswith(found)


def half_write_then_crash(monkeypatch, fail_on_call=1):
    calls = []
    original = DocBin.to_disk

    def to_disk(self, path):
        calls.append(path)
        if len(calls) < fail_on_call:
            return original(self, path)
        data = self.to_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(DocBin, "to_disk", to_disk)


def test_convert_ner_crash_keeps_previous_output(tmp_path, monkeypatch):
    convert = load_script("convert_ner")
    path = write(tmp_path, "train.txt", CONLL)
    out = tmp_path / "out"
    args = dict(format=convert.Format.conll2003, on_invalid=convert.OnInvalid.reject, n_sents=10)
    convert.main(path, out, **args)
    before = (out / "train.spacy").read_bytes()
    write(tmp_path, "train.txt", CONLL.replace("EU NNP", "UN NNP"))
    half_write_then_crash(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        convert.main(path, out, **args)
    assert (out / "train.spacy").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["train.spacy"]  # no temporary left behind


def write_wsj(folder, first_word="A", bom=""):
    folder.mkdir(exist_ok=True)
    (folder / "wsj_sample.tsv").write_text(f"{bom}{first_word}\tDT\ncat\tNN\n\nIt\tPRP\n\nGo\tVB\n\n", encoding="utf8")
    (folder / "wsj_sample.docs.tsv").write_text(
        f"{bom}doc_id\tfirst_sentence\tn_sentences\nwsj_0001\t0\t2\nwsj_0170\t2\t1\n", encoding="utf8"
    )


def test_convert_wsj_bom_and_separators(tmp_path):
    convert = load_script("convert_wsj_sample")
    write_wsj(tmp_path, bom=BOM)
    convert.main(tmp_path, tmp_path / "out")
    (doc,) = DocBin().from_disk(tmp_path / "out" / "wsj_sample-train.spacy").get_docs(spacy.blank("en").vocab)
    assert [t.text for t in doc] == ["A", "cat", "It"]
    (tmp_path / "wsj_sample.tsv").write_text("A\tDT\n\x85\ncat\tNN\n", encoding="utf8")
    with pytest.raises(CorpusFormatError, match=r"wsj_sample\.tsv:2: expected a blank line"):
        convert.read_sentences(tmp_path / "wsj_sample.tsv")
    (tmp_path / "wsj_sample.tsv").write_bytes("A\tDT\ncaf\xe9\tNN\n".encode("latin1"))
    with pytest.raises(CorpusFormatError, match=r"wsj_sample\.tsv:2: expected UTF-8 text"):
        convert.read_sentences(tmp_path / "wsj_sample.tsv")
    (tmp_path / "wsj_sample.tsv").write_text("A\xa0b\tDT\nc\x85d\tNN\n", encoding="utf8")
    assert convert.read_sentences(tmp_path / "wsj_sample.tsv") == [[("A\xa0b", "DT"), ("c\x85d", "NN")]]


def test_convert_wsj_crash_keeps_all_previous_outputs(tmp_path, monkeypatch):
    convert = load_script("convert_wsj_sample")
    write_wsj(tmp_path)
    out = tmp_path / "out"
    convert.main(tmp_path, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(before) == 3
    write_wsj(tmp_path, first_word="The")
    half_write_then_crash(monkeypatch, fail_on_call=2)  # train written, dev crashes
    with pytest.raises(OSError, match="disk full"):
        convert.main(tmp_path, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # all old, none new, no temporaries


def test_benchmark_report_crash_keeps_previous_json(tmp_path, monkeypatch):
    import json

    benchmark = load_script("benchmark_tagger")
    output = tmp_path / "metrics" / "bench.json"
    benchmark.report(output, {"systems": {"a": 1}}, lambda data: "| a |")
    before = output.read_text()
    assert json.loads(before) == {"systems": {"a": 1}, "table": "| a |"}
    original = Path.write_text

    def write_text(self, text, *args, **kwargs):
        original(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(OSError, match="disk full"):
        benchmark.report(output, {"systems": {"b": 2}}, lambda data: "| b |")
    monkeypatch.undo()
    assert output.read_text() == before
    assert [p.name for p in output.parent.iterdir()] == ["bench.json"]


def test_benchmark_speed_ratios_are_paired_round_by_round():
    """Two pipelines timed in the same rounds: the ratio is the median of the per-round ratios
    (2, 1, 3 -> 2), not the ratio of the median speeds (4 / 3), which drift would distort."""
    benchmark = load_script("benchmark_tagger")
    row = {"words_per_second": 4.0, "words_per_second_rounds": [2.0, 4.0, 9.0]}
    base = {"words_per_second": 3.0, "words_per_second_rounds": [1.0, 4.0, 3.0]}
    assert benchmark.speed_ratio(row, base, "words_per_second") == "2.00x"
    assert benchmark.speed_ratio({"words_per_second": 4.0}, base, "words_per_second") == "1.33x"  # older files


def test_benchmark_seed_rows_are_averaged_with_their_config():
    """rnn_x_seed1/_seed2 beside rnn_x: one mean per config, over the seed-0 row and its seeds;
    a _seed row whose config row is absent, and rows without seeds, get none."""
    benchmark = load_script("benchmark_tagger")
    row = lambda dev, test: {"dev": {"token_acc": dev}, "test": {"token_acc": test}}  # noqa: E731
    results = {"rnn_x": row(0.90, 0.80), "rnn_x_seed1": row(0.93, 0.83), "rnn_x_seed2": row(0.96, 0.86),
               "rnn_y": row(0.5, 0.5), "rnn_z_seed1": row(0.1, 0.1)}
    (names, dev, test), = benchmark.seed_means(results).values()
    assert names == ["rnn_x", "rnn_x_seed1", "rnn_x_seed2"]
    assert dev == pytest.approx(0.93) and test == pytest.approx(0.83)
    # int8 rows of the seeds: their own mean beside NAME_int8, never in the float rows' mean
    results.update({"rnn_x_int8": row(0.2, 0.2), "rnn_x_seed1_int8": row(0.4, 0.4), "rnn_y_seed1_int8": row(0.3, 0.3)})
    means = benchmark.seed_means(results)
    assert list(means) == ["rnn_x", "rnn_x_int8"]
    assert means["rnn_x"][0] == ["rnn_x", "rnn_x_seed1", "rnn_x_seed2"]
    assert means["rnn_x_int8"][0] == ["rnn_x_int8", "rnn_x_seed1_int8"] and means["rnn_x_int8"][1] == pytest.approx(0.3)
