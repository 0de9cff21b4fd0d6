"""The inputs of `spacy_rnn annotate` (spacy_rnn.batch.inputs): .spacy files
read shard by shard without starting over, and blank JSON lines."""
import json

import pytest
import spacy
from spacy.tokens import Doc, DocBin

from spacy_rnn.batch import annotate
from spacy_rnn.batch.inputs import Record, Reject, plan_shards, read_shard

N_DOCS = 120
MAX_LENGTH = 50


def write_docbin(path, n_docs=N_DOCS, word="w"):
    """n_docs docs of 0 to 9 words, each with user data; doc 8 (1-based) is over MAX_LENGTH."""
    vocab = spacy.blank("en").vocab
    db = DocBin(store_user_data=True)
    for i in range(n_docs):
        words = [f"{word}{i}"] * (i % 10) if i != 7 else ["long"] * 20
        doc = Doc(vocab, words=words)
        doc.user_data["n"] = i
        doc.cats = {"EVEN": float(i % 2 == 0)}
        db.add(doc)
    db.to_disk(path)
    return path


def as_values(items):
    """Records and rejects as plain values, to compare reads."""
    values = []
    for item in items:
        if isinstance(item, Reject):
            values.append(("reject", item.file, item.line, item.reason))
        else:
            values.append(("record", item.source, item.doc.text, dict(item.doc.user_data), item.doc.cats))
    return values


def expected_values(path, vocab):
    """The file's records read as the docstring of inputs.py says, in one get_docs pass."""
    values = []
    for i, doc in enumerate(DocBin().from_disk(path).get_docs(vocab)):
        if len(doc.text) > MAX_LENGTH:
            reason = f"text of {len(doc.text):,} characters is over max_length {MAX_LENGTH:,}"
            values.append(("reject", str(path), i + 1, reason))
        else:
            values.append(("record", f"{path}:{i + 1}", doc.text, dict(doc.user_data), doc.cats))
    return values


@pytest.fixture
def count_built_docs(monkeypatch):
    """A list that gets one item for every Doc that DocBin.get_docs builds."""
    built = []
    get_docs = DocBin.get_docs

    def counting_get_docs(self, vocab):
        for doc in get_docs(self, vocab):
            built.append(doc)
            yield doc

    monkeypatch.setattr(DocBin, "get_docs", counting_get_docs)
    return built


def test_reading_the_shards_of_a_docbin_in_order_builds_each_doc_once(tmp_path, count_built_docs):
    path = write_docbin(tmp_path / "docs.spacy")
    vocab = spacy.blank("en").vocab
    expected = expected_values(path, vocab)
    count_built_docs.clear()
    plan = plan_shards([path], 10)
    assert len(plan) == 12
    read = []
    for shard in plan:
        items = list(read_shard(shard, vocab, MAX_LENGTH))
        assert len(items) == shard.end - shard.start
        read += items
    # Loading the file and building every doc before each shard's start built 791 here
    # (N_DOCS**2 / (2 * shard_size) in general).
    assert len(count_built_docs) == N_DOCS
    assert as_values(read) == expected  # same docs, user data, cats, order and reject numbers
    assert sum(isinstance(item, Record) for item in read) == N_DOCS - 1
    # One of two workers that take the shards in turn: at most one pass over the file.
    count_built_docs.clear()
    for shard in plan[::2]:
        list(read_shard(shard, vocab, MAX_LENGTH))
    assert len(count_built_docs) <= N_DOCS


def test_docbin_shards_read_in_any_order_give_the_same_records(tmp_path):
    path = write_docbin(tmp_path / "docs.spacy")
    vocab = spacy.blank("en").vocab
    expected = expected_values(path, vocab)
    plan = plan_shards([path], 7)
    by_shard = [expected[shard.start:shard.end] for shard in plan]
    # Backwards: every shard is before the last one read.
    for shard in reversed(plan):
        assert as_values(read_shard(shard, vocab, MAX_LENGTH)) == by_shard[shard.index]
    # Two shards' reads interleaved in one process, and one of them in another vocab.
    other_vocab = spacy.blank("en").vocab
    first, second = read_shard(plan[3], vocab, MAX_LENGTH), read_shard(plan[1], other_vocab, MAX_LENGTH)
    items = {3: [], 1: []}
    for a, b in zip(first, second):
        items[3].append(a)
        items[1].append(b)
    assert as_values(items[3]) == by_shard[3] and as_values(items[1]) == by_shard[1]
    assert all(item.doc.vocab is other_vocab for item in items[1] if isinstance(item, Record))
    # A shard abandoned part way, then the next one.
    partial = read_shard(plan[5], vocab, MAX_LENGTH)
    next(partial)
    assert as_values(read_shard(plan[6], vocab, MAX_LENGTH)) == by_shard[6]


def test_a_docbin_written_again_between_shards_is_read_again(tmp_path):
    path = write_docbin(tmp_path / "docs.spacy")
    vocab = spacy.blank("en").vocab
    plan = plan_shards([path], 10)
    list(read_shard(plan[0], vocab, MAX_LENGTH))
    write_docbin(path, word="other")  # same path and doc count, other words (and size)
    assert as_values(read_shard(plan[1], vocab, MAX_LENGTH)) == expected_values(path, vocab)[10:20]


JSONL_LINES = [
    b"\xef\xbb\xbf  \n",  # 1: a byte-order mark, then blank
    json.dumps({"text": "one", "id": 1}).encode() + b"\n",  # 2
    b"\n",  # 3
    b" \t \r\n",  # 4
    json.dumps({"text": "two"}).encode() + b"\r\n",  # 5
    b"{not json\n",  # 6
    b"\r\n",  # 7
    b"\n",  # 8
    json.dumps({"text": "three"}).encode() + b"\n",  # 9
    b"\n",  # 10
    b"   ",  # 11, without a line end
]


@pytest.mark.parametrize("shard_size", [1, 2, 3, 100])
def test_a_blank_jsonl_line_is_no_record_and_no_reject(tmp_path, shard_size):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(JSONL_LINES))
    vocab = spacy.blank("en").vocab
    plan = plan_shards([path], shard_size)
    items = []
    for shard in plan:
        shard_items = list(read_shard(shard, vocab, 100))
        assert len(shard_items) == shard.end - shard.start  # what the shard's manifest is checked against
        items += shard_items
    assert len(plan) == -(-4 // shard_size)
    records = [item for item in items if isinstance(item, Record)]
    assert [(r.source, r.text, r.meta) for r in records] == [
        (f"{path}:2", "one", {"id": 1}), (f"{path}:5", "two", {}), (f"{path}:9", "three", {})
    ]
    assert [(r.line, r.reason.split(":")[0]) for r in items if isinstance(r, Reject)] == [(6, "invalid JSON")]
    # The same lines as .txt: every line is a text, a blank one too.
    txt = tmp_path / "in.txt"
    txt.write_bytes(b"".join(JSONL_LINES))
    texts = [item.text for shard in plan_shards([txt], shard_size) for item in read_shard(shard, vocab, 100)]
    assert len(texts) == len(JSONL_LINES) and texts[0] == "  " and texts[3] == " \t " and texts[6] == ""


def test_annotate_counts_no_input_for_a_blank_jsonl_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(JSONL_LINES))
    summary = annotate("blank:en", path, tmp_path / "out", fmt="jsonl", shard_size=2, progress=False)
    assert (summary["inputs"], summary["outputs"], summary["rejects"], summary["shards"]) == (4, 3, 1, 2)
    rows = [json.loads(line) for shard in sorted((tmp_path / "out" / "shards").glob("shard-*.jsonl"))
            for line in shard.read_text(encoding="utf8").splitlines()]
    assert [row["source"] for row in rows] == [f"{path}:{i}" for i in (2, 5, 9)]
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text(encoding="utf8").splitlines()
    assert [json.loads(line)["line"] for line in rejects] == [6]
