"""The TREC / SST-2 readers and scripts/convert_textcat.py, on well-formed and malformed input."""
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_rnn.data import CorpusFormatError
from spacy_rnn.textcat_data import (
    LabelledText,
    read_sst2,
    read_sst2_phrases,
    read_trec,
    records_to_docs,
    split_dev,
)

from .conftest import run_script_in_process

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "convert_textcat.py"
TREC = b"DESC:manner How did serfdom develop ?\nHUM:ind Who was the sister\xf0city mayor ?\nNUM:date When did it end ?\n"


def write(tmp_path, name, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_read_trec_coarse_labels_latin1(tmp_path):
    records = list(read_trec(write(tmp_path, "t.label", TREC)))
    assert [r.label for r in records] == ["DESC", "HUM", "NUM"]
    assert records[1].text == "Who was the sister\u00f0city mayor ?" and records[1].line_no == 2


@pytest.mark.parametrize(
    "line,expected",
    [(b"DESC How ?", "COARSE:fine"), (b"desc:manner How ?", "COARSE:fine"), (b"DESC:manner ", "COARSE:fine"), (b"", "COARSE:fine")],
)
def test_read_trec_malformed_line_names_file_and_line(tmp_path, line, expected):
    path = write(tmp_path, "t.label", TREC + line + b"\nNUM:date When ?\n")
    with pytest.raises(CorpusFormatError, match=rf"t\.label:4: expected .*{expected}") as err:
        list(read_trec(path))
    assert err.value.line_no == 4


def test_read_sst2_and_errors(tmp_path):
    path = write(tmp_path, "s.train", "1 a stirring , funny film\n0 cold -lrb- and dull -rrb-\n".encode())
    assert [(r.label, r.text) for r in read_sst2(path)] == [("POSITIVE", "a stirring , funny film"), ("NEGATIVE", "cold -lrb- and dull -rrb-")]
    bad = write(tmp_path, "s.dev", b"1 fine\n2 not a label\n")
    with pytest.raises(CorpusFormatError, match=r"s\.dev:2: expected '0 sentence' or '1 sentence'"):
        list(read_sst2(bad))
    undecodable = write(tmp_path, "u.dev", b"1 fine\n0 caf\xe9\n")
    with pytest.raises(CorpusFormatError, match=r"u\.dev:2: expected UTF-8 text"):
        list(read_sst2(undecodable))


def test_phrases_are_mapped_to_the_sentence_files_convention(tmp_path):
    path = write(tmp_path, "p.tsv", "cold (and dull) a/b *sigh* \t0\nfun \t1\n".encode())
    records = list(read_sst2_phrases(path))
    assert records[0].text == "cold -lrb-and dull-rrb- a\\/b \\*sigh\\*" and records[0].label == "NEGATIVE"
    assert records[1].text == "fun" and records[1].label == "POSITIVE"
    with pytest.raises(CorpusFormatError, match=r"q\.tsv:1"):
        list(read_sst2_phrases(write(tmp_path, "q.tsv", b"no tab here 1\n")))


def test_split_dev_is_stratified_seeded_and_keeps_repeats_together():
    # 60 distinct A texts, 30 distinct B texts, and 10 repeats of A texts
    records = [LabelledText("f", i, f"a {i}", "A") for i in range(60)]
    records += [LabelledText("f", 60 + i, f"b {i}", "B") for i in range(30)]
    records += [LabelledText("f", 90 + i, f"a {i}", "A") for i in range(10)]
    train, dev = split_dev(records, 0.1, seed=0)
    assert (train, dev) == split_dev(records, 0.1, seed=0)
    assert split_dev(records, 0.1, seed=1)[1] != dev
    assert len(train) + len(dev) == len(records)
    assert not {r.text for r in train} & {r.text for r in dev}  # repeated texts stay on one side
    assert len({r.text for r in dev if r.label == "A"}) == 6 and len({r.text for r in dev if r.label == "B"}) == 3
    assert [r.line_no for r in dev] == sorted(r.line_no for r in dev)


def test_records_to_docs_one_hot_cats_and_source():
    nlp = spacy.blank("en")
    docs = list(records_to_docs(nlp.vocab, [LabelledText("f.txt", 7, "who is it ?", "HUM")], ["HUM", "LOC"]))
    assert [t.text for t in docs[0]] == ["who", "is", "it", "?"]
    assert docs[0].cats == {"HUM": 1.0, "LOC": 0.0}
    assert docs[0].user_data["spacy_rnn.source"] == "f.txt:7"


def run(*args):
    """The converter in a new process, as a user runs it."""
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_convert_trec_writes_train_and_dev(tmp_path):
    lines = b"".join(f"{'HUM:ind' if i % 2 else 'LOC:city'} question {i} ?\n".encode() for i in range(40))
    result = run("trec", write(tmp_path, "t.label", lines), tmp_path / "out")
    assert result.returncode == 0, result.stderr
    nlp = spacy.blank("en")
    train = list(DocBin().from_disk(tmp_path / "out" / "train.spacy").get_docs(nlp.vocab))
    dev = list(DocBin().from_disk(tmp_path / "out" / "dev.spacy").get_docs(nlp.vocab))
    assert (len(train), len(dev)) == (36, 4)
    assert all(set(doc.cats) == {"HUM", "LOC"} and sum(doc.cats.values()) == 1.0 for doc in train + dev)


def test_convert_malformed_line_fails_with_location_and_writes_nothing(tmp_path):
    path = write(tmp_path, "s.dev", b"1 fine\n1 also fine\nx broken\n")
    result = run_script_in_process(SCRIPT, "sst2", path, path, tmp_path / "out")
    assert result.returncode == 1
    assert f"error: {path}:3: expected '0 sentence' or '1 sentence'" in result.stderr
    assert not (tmp_path / "out").exists()
