"""The robustness contract (issue 4), run over every component spacy_rnn registers.

The factories are found from the installed ``spacy_factories`` entry points, so
a new component is covered as soon as it is registered. A module-scoped
fixture trains one tiny pipeline per factory on the inline data below (tags,
UPOS, entities and a text category, so any of the components can learn from
it); tests that change a pipeline work on a copy loaded from disk. A text
classifier's annotation is its doc.cats (probabilities rounded to 4 places
where runs are compared).
"""
import gc
import json
import math
import pickle
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Dict, List

import numpy
import pytest
import spacy
from confection import ConfigValidationError
import srsly
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import load_model_from_config
from thinc.api import Config, PyTorchShim, fix_random_seed

FACTORIES = sorted(
    ep.name for ep in entry_points(group="spacy_factories") if ep.value.startswith("spacy_rnn")
)

# (words, PTB tags, UPOS, BIO entities)
DATA = [
    (
        ["Peter", "Blackburn", "visited", "New", "York", "today", "."],
        ["NNP", "NNP", "VBD", "NNP", "NNP", "NN", "."],
        ["PROPN", "PROPN", "VERB", "PROPN", "PROPN", "NOUN", "PUNCT"],
        ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O"],
    ),
    (
        ["The", "EU", "rejects", "German", "calls", "."],
        ["DT", "NNP", "VBZ", "JJ", "NNS", "."],
        ["DET", "PROPN", "VERB", "ADJ", "NOUN", "PUNCT"],
        ["O", "B-ORG", "O", "B-MISC", "O", "O"],
    ),
    (
        ["I", "like", "green", "eggs", "and", "ham", "!"],
        ["PRP", "VBP", "JJ", "NNS", "CC", "NN", "."],
        ["PRON", "VERB", "ADJ", "NOUN", "CCONJ", "NOUN", "PUNCT"],
        ["O", "O", "O", "O", "O", "O", "O"],
    ),
    (
        ["Mary", "lives", "in", "Paris", "."],
        ["NNP", "VBZ", "IN", "NNP", "."],
        ["PROPN", "VERB", "ADP", "PROPN", "PUNCT"],
        ["B-PER", "O", "O", "B-LOC", "O"],
    ),
]
SEED = 0
N_ITER = 20
# Shrinks whichever of these settings a component's default encoder has.
TINY_ENCODER = {
    "width": 16,
    "depth": 1,
    "dropout": 0.1,  # > 0, so that a train/eval mode race between threads would show
    "word_dropout": 0.0,
    "word_width": 16,
    "vocab_size": 500,
    "min_word_freq": 1,
    "char_width": 8,
    "char_filters": 8,
}

LONG_TEXT = " ".join(["Peter visited New York ."] * 4000)  # 20,000 tokens
EDGE_TEXTS = [
    "",
    " ",
    "   \n\n\t  ",
    "a  \n\n  b \t c",
    "Peter",
    "!",
    "東京は日本の首都です。",
    "Москва — столица России.",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "שלום עולם",
    "I ❤️ 🍕 and 👨‍👩‍👧‍👦 !! 🇩🇪🇫🇷",
    "a\x00b \x01\x02 c\x1b[31m red\x7f \u200b\u200d\ufeff end\r\n\x0b\x0c",
    "x" * 100_000,
    "Peter " + "ab" * 5000 + " visited http://example.com/" + "q" * 3000,
    "Peter Blackburn visited New York today .",
]


@dataclass
class Trained:
    factory: str
    name: str
    nlp: Language
    path: Path  # the pipeline saved right after training
    component_bytes: bytes


def tiny_config(factory: str, **overrides) -> Dict:
    """The factory's default config with a tiny encoder, if it has one (or
    tiny settings of a model without an encoder, like the language model's)."""
    meta = Language.get_factory_meta(factory)
    model = meta.default_config.get("model")
    if not model:
        return {}
    if "encoder" not in model:
        settings = dict(TINY_ENCODER, **overrides)
        shrunk = {key: value for key, value in settings.items() if key in model}
        return {"model": dict(model, **shrunk)} if shrunk else {}
    encoder = dict(model["encoder"])
    settings = dict(TINY_ENCODER, **overrides)
    encoder.update({key: value for key, value in settings.items() if key in encoder})
    if "rows" in encoder:
        encoder["rows"] = [min(rows, 200) for rows in encoder["rows"]]
    if "embed_widths" in encoder:
        encoder["embed_widths"] = [4 for _ in encoder["embed_widths"]]
    return {"model": dict(model, encoder=encoder)}


def make_examples(nlp: Language, data=DATA) -> List[Example]:
    examples = []
    for words, tags, pos, ents in data:
        reference = Doc(nlp.vocab, words=words, tags=tags, pos=pos, ents=ents)
        # The text category: does the sentence name a person?
        person = float(any(ent.endswith("-PER") for ent in ents))
        reference.cats = {"PERSON": person, "OTHER": 1.0 - person}
        examples.append(Example(Doc(nlp.vocab, words=words), reference))
    return examples


def missing_examples(nlp: Language) -> List[Example]:
    """The training sentences with no annotation at all: None tags, None pos, no entities."""
    return [Example(Doc(nlp.vocab, words=w), Doc(nlp.vocab, words=w)) for w, *_ in DATA]


def unseen_label_examples(nlp: Language) -> List[Example]:
    """Every token carries a label never seen in training."""
    words = ["Olympics", "Olympics"]
    ref = Doc(nlp.vocab, words=words, tags=["XX", "XX"], pos=["SYM", "SYM"], ents=["B-EVENT", "I-EVENT"])
    ref.cats = {"SPORTS": 1.0}
    return [Example(Doc(nlp.vocab, words=words), ref)]


def train_pipeline(factory: str, seed: int = SEED, n_iter: int = N_ITER, extra=None, **overrides) -> Language:
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config=tiny_config(factory, **overrides))
    examples = make_examples(nlp) + (extra(nlp) if extra else [])
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.02
    for _ in range(n_iter):
        nlp.update(examples, sgd=optimizer)
    return nlp


def torch_shims(pipe) -> List[PyTorchShim]:
    model = getattr(pipe, "model", None)
    if model is None or model in (True, False):
        return []
    return [shim for node in model.walk() for shim in node.shims if isinstance(shim, PyTorchShim)]


def is_doc_level(nlp: Language, name: str) -> bool:
    """A text classifier: it annotates doc.cats, no token."""
    return nlp.get_pipe_meta(name).assigns == ["doc.cats"]


def rounded_cats(doc: Doc) -> tuple:
    return tuple((label, round(p, 4)) for label, p in sorted(doc.cats.items()))


def annotations(nlp: Language, name: str, doc: Doc) -> List[tuple]:
    """The attributes the component assigns, for every token (a text classifier: its doc.cats)."""
    if is_doc_level(nlp, name):
        return [rounded_cats(doc)]
    attrs = token_attrs(nlp, name)
    return [tuple(token_value(token, attr) for attr in attrs) for token in doc]


def token_attrs(nlp: Language, name: str) -> List[str]:
    """e.g. "tag_", or "_.surprisal" for an extension attribute."""
    assigns = nlp.get_pipe_meta(name).assigns
    attrs = [a.split(".", 1)[1] for a in assigns if a.startswith("token.")]
    attrs = [a if a.startswith("_.") else a + "_" for a in attrs]
    assert attrs, f"{name} assigns no token attribute: {assigns}"
    return attrs


def token_value(token, attr: str):
    return getattr(token._, attr[2:]) if attr.startswith("_.") else getattr(token, attr)


def is_set(value) -> bool:
    """An empty string is an unset string attribute, None an unset extension (a surprisal of 0.0 is set)."""
    return value is not None and value != ""


def learns_from_text(nlp: Language, name: str) -> bool:
    """A component that assigns only extension attributes and learns from the
    text alone (the language model): it has no gold annotation to miss."""
    return all(a.startswith(("token._.", "doc._.")) for a in nlp.get_pipe_meta(name).assigns)


def check_docs(nlp: Language, name: str, texts: List[str], docs: List[Doc]) -> None:
    """Every doc comes back, in order, tokenized as the tokenizer does, with
    annotations on every token (see assert_annotated)."""
    assert len(docs) == len(texts)
    for text, doc in zip(texts, docs):
        assert doc.text == text
        expected = nlp.make_doc(text)
        assert [(t.text, t.whitespace_) for t in doc] == [(t.text, t.whitespace_) for t in expected]
        assert_annotated(nlp, name, doc)


def assert_annotated(nlp: Language, name: str, doc: Doc) -> None:
    """Every token carries the annotation the component writes, with a value
    it can write: a tagger's attribute (its token_attr) holds one of its
    labels; an entity recognizer sets the IOB code of every token and, inside
    an entity, one of its labels as the type; a surprisal is a finite number
    of bits >= 0 (None for whitespace, which is not a word). A text classifier gives every label a probability (summing
    to 1 for exclusive classes), also to an empty doc."""
    pipe = nlp.get_pipe(name)
    if is_doc_level(nlp, name):
        assert set(doc.cats) == set(pipe.labels), (name, doc.cats)
        assert all(0.0 <= p <= 1.0 and math.isfinite(p) for p in doc.cats.values()), (name, doc.cats)
        if not pipe.model.attrs.get("multi_label"):
            assert abs(sum(doc.cats.values()) - 1.0) < 1e-4, (name, doc.cats)
        return
    attrs = token_attrs(nlp, name)
    labels = set(pipe.labels)
    # A tagger assigns tag or pos, whichever its token_attr is; an entity type
    # is empty outside entities. Every other assigned attribute is required.
    required = [f"{pipe.token_attr}_"] if hasattr(pipe, "token_attr") else [a for a in attrs if a != "ent_type_"]
    assert required and set(required) <= set(attrs), (name, required, attrs)
    for token in doc:
        where = (name, token.i, repr(token.text))
        for attr in required:
            if attr == "_.surprisal" and token.is_space:  # whitespace is not a word: not scored
                assert token_value(token, attr) is None, (*where, attr, "scored")
                continue
            assert is_set(token_value(token, attr)), (*where, attr, "not set")
        for attr in attrs:
            value = token_value(token, attr)
            if attr in ("tag_", "pos_") and attr in required:
                assert value in labels, (*where, attr, value)
            elif attr == "ent_iob_":
                assert value in ("B", "I", "O"), (*where, value)
            elif attr == "ent_type_":
                assert (value in labels) if token.ent_iob_ in ("B", "I") else value == "", (*where, token.ent_iob_, value)
            elif attr == "_.surprisal":
                assert (value is None) if token.is_space else (isinstance(value, float) and math.isfinite(value) and value >= 0), (*where, value)
            elif attr not in ("tag_", "pos_"):
                raise AssertionError(f"{name} assigns {attr}: add a check of its values here")


def sample_annotations(nlp: Language, name: str, texts=None):
    texts = texts or [" ".join(d[0]) for d in DATA] + ["Mary visited the EU in Berlin .", "Eat"]
    return [annotations(nlp, name, doc) for doc in nlp.pipe(texts)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest


@pytest.fixture(scope="module", params=FACTORIES)
def trained(request, tmp_path_factory, one_torch_thread) -> Trained:
    factory = request.param
    nlp = train_pipeline(factory)
    path = tmp_path_factory.mktemp(factory) / "pipeline"
    nlp.to_disk(path)
    name = nlp.pipe_names[0]
    return Trained(factory, name, nlp, path, nlp.get_pipe(name).to_bytes())


def copy_of(trained: Trained) -> Language:
    return spacy.load(trained.path)


def test_the_package_components_are_covered():
    assert {"rnn_tagger", "rnn_ner", "rnn_lm", "most_frequent_tagger", "hmm_tagger"} <= set(FACTORIES)


def test_the_tiny_pipeline_learned(trained):
    """A sanity check of the fixture: the training data comes back right."""
    nlp, name = trained.nlp, trained.name
    if is_doc_level(nlp, name):
        threshold = nlp.get_pipe(name).cfg["threshold"]
        for example in make_examples(nlp):
            cats = nlp(example.reference.text).cats
            if nlp.get_pipe(name).model.attrs.get("multi_label"):
                assert {k for k, p in cats.items() if p >= threshold} == {k for k, v in example.reference.cats.items() if v}
            else:
                assert max(cats, key=cats.get) == max(example.reference.cats, key=example.reference.cats.get), cats
        return
    attrs = token_attrs(nlp, name)
    if learns_from_text(nlp, name):
        # A language model: after the few fixture updates the training
        # sentences are more than twice as likely as under a uniform guess.
        n_words = len(nlp.get_pipe(name).labels)
        for example in make_examples(nlp):
            predicted = nlp(example.reference.text)
            assert all(is_set(token_value(t, a)) for t in predicted for a in attrs)
            assert predicted._.perplexity < n_words / 2, (predicted._.perplexity, n_words)
        return
    for example in make_examples(nlp):
        predicted = nlp(example.reference.text)
        # A tagger assigns tag or pos (its token_attr): compare what it set.
        written = [a for a in attrs if any(getattr(t, a) for t in predicted)]
        assert written
        for attr in written:
            assert [getattr(t, attr) for t in predicted] == [getattr(t, attr) for t in example.reference]


# Input edge cases


def test_edge_case_inputs(trained):
    nlp, name = trained.nlp, trained.name
    for batch_size in (1, 4):
        check_docs(nlp, name, EDGE_TEXTS, list(nlp.pipe(EDGE_TEXTS, batch_size=batch_size)))
    for text in EDGE_TEXTS[:6]:
        check_docs(nlp, name, [text], [nlp(text)])
    # Docs already split into odd tokens, including whitespace-only tokens.
    words = ["\n", " ", "Peter", "\t\t", "🍕", "\x00", ""]
    doc = nlp(Doc(nlp.vocab, words=words[:-1], spaces=[False] * 6))
    assert [t.text for t in doc] == words[:-1]
    assert_annotated(nlp, name, doc)


def test_long_doc_independent_of_batching(trained):
    nlp, name = trained.nlp, trained.name
    shorts = [" ".join(d[0]) for d in DATA] * 50
    alone = annotations(nlp, name, nlp(LONG_TEXT))
    assert len(nlp.make_doc(LONG_TEXT)) == 20_000
    assert len(alone) == (1 if is_doc_level(nlp, name) else 20_000)
    docs = list(nlp.pipe([LONG_TEXT] + shorts, batch_size=1000))
    check_docs(nlp, name, [LONG_TEXT] + shorts, docs)
    assert annotations(nlp, name, docs[0]) == alone
    short_alone = [annotations(nlp, name, nlp(text)) for text in shorts[: len(DATA)]]
    assert [annotations(nlp, name, doc) for doc in docs[1 : 1 + len(DATA)]] == short_alone
    # A smaller work budget per model call changes nothing.
    pipe = nlp.get_pipe(name)
    if hasattr(pipe, "max_batch_tokens"):
        saved = pipe.max_batch_tokens
        pipe.max_batch_tokens = 7
        try:
            small = [annotations(nlp, name, doc) for doc in nlp.pipe([LONG_TEXT] + shorts[:8], batch_size=1000)]
        finally:
            pipe.max_batch_tokens = saved
        assert small[0] == alone
        assert small[1:] == [annotations(nlp, name, doc) for doc in docs[1:9]]


def proc_status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status, e.g. VmRSS, VmHWM (its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Set the peak resident set size (VmHWM) to the current one (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def release_free_heap() -> None:
    """Give memory that malloc keeps after free() back to the system (glibc),
    so that reusing it does not hide new allocations."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# Peak growth of the process's resident memory allowed for a 20,000-token doc
# predicted in one batch with 200 short docs, the docs included. Anything
# quadratic in the doc's length needs at least 20,000**2 bytes = 381 MiB, and a
# padded float32 (n_docs, longest doc, n_tags) array 201 * 20,000 * n_tags * 4
# bytes = 15 MiB per tag.
PEAK_RSS_GROWTH_LIMIT = 128 * 2**20


def test_long_doc_memory_is_linear(trained):
    """Measured as the resident set size of the process, which, unlike
    tracemalloc, counts torch's memory as well as numpy's and Python's."""
    if not sys.platform.startswith("linux") or not reset_peak_rss():
        pytest.skip("resetting the peak RSS needs Linux's /proc/self/clear_refs")
    nlp, name = trained.nlp, trained.name
    texts = [LONG_TEXT] + [" ".join(d[0]) for d in DATA] * 50
    nlp(texts[1])  # anything set up lazily on the first call
    gc.collect()
    release_free_heap()
    reset_peak_rss()
    start = proc_status_kib("VmRSS")
    docs = list(nlp.pipe(texts, batch_size=1000))
    growth = (proc_status_kib("VmHWM") - start) * 1024
    assert len(docs) == len(texts) and len(docs[0]) == 20_000
    assert_annotated(nlp, name, docs[0])
    assert growth < PEAK_RSS_GROWTH_LIMIT, (
        f"{name}: the process's peak memory grew by {growth / 2**20:.0f} MiB for a 20,000-token doc in a batch"
    )


text_lists = st.lists(st.text(max_size=40), max_size=5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=text_lists, batch_size=st.integers(1, 3))
def test_fuzzed_texts_through_pipe(trained, texts, batch_size):
    nlp, name = trained.nlp, trained.name
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    check_docs(nlp, name, texts, docs)


# Multiprocessing and threads

WORKER_SCRIPT = """
import json, sys
import spacy, torch
from spacy.language import Language

@Language.component("torch_thread_probe")
def torch_thread_probe(doc):
    doc.user_data["torch_threads"] = torch.get_num_threads()
    return doc

if __name__ == "__main__":
    import multiprocessing
    multiprocessing.set_start_method(sys.argv[2])
    nlp = spacy.load(sys.argv[1])
    nlp.add_pipe("torch_thread_probe")
    texts = json.load(sys.stdin)
    out = {}
    for n_process in (1, 2):
        docs = list(nlp.pipe(texts, n_process=n_process, batch_size=2))
        out[n_process] = {
            "docs": [[(t.text, t.tag_, t.pos_, t.ent_iob_, t.ent_type_) for t in doc] for doc in docs],
            "cats": [sorted((k, round(v, 4)) for k, v in doc.cats.items()) for doc in docs],
            "threads": sorted({doc.user_data["torch_threads"] for doc in docs}),
        }
    print(json.dumps(out))
"""


# The factories whose n_process=2 run (about 5 s each) is in the default run: a token-level and a
# doc-level torch pipe; the others run with --slow.
FORKED_BY_DEFAULT = ("rnn_tagger", "rnn_textcat")


@pytest.mark.parametrize("start_method", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])  # spawn: fresh interpreters, slow
def test_n_process_2_matches_n_process_1(trained, tmp_path, start_method, request):
    if trained.factory not in FORKED_BY_DEFAULT and not request.config.getoption("--slow"):
        pytest.skip("needs --slow: each start costs a new interpreter; the default run forks a tagger and a classifier")
    if start_method == "spawn" and not torch_shims(trained.nlp.get_pipe(trained.name)):
        pytest.skip("spawn pickles the pipes; checked for the torch components, whose models need it")
    if start_method == "spawn" and trained.factory == "rnn_textcat_multilabel":
        pytest.skip("the same model and pickling as rnn_textcat's, checked there (keeps the default run short)")
    script = tmp_path / "worker_script.py"
    script.write_text(WORKER_SCRIPT)
    texts = EDGE_TEXTS[:13] + [" ".join(d[0]) for d in DATA]
    result = subprocess.run(
        [sys.executable, str(script), str(trained.path), start_method],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["2"]["docs"] == out["1"]["docs"]
    assert out["2"]["cats"] == out["1"]["cats"]
    assert [[t[0] for t in doc] for doc in out["1"]["docs"]] == [
        [t.text for t in trained.nlp.make_doc(text)] for text in texts
    ]
    if torch_shims(trained.nlp.get_pipe(trained.name)):
        assert out["2"]["threads"] == [1]


def test_pickle_round_trip(trained):
    """What spawn-started nlp.pipe workers need."""
    restored = pickle.loads(pickle.dumps(trained.nlp))
    assert sample_annotations(restored, trained.name) == sample_annotations(trained.nlp, trained.name)


def test_concurrent_prediction_from_threads(trained):
    nlp, name = trained.nlp, trained.name
    texts = [" ".join(d[0]) for d in DATA] * 6 + [LONG_TEXT[:20_000]]
    expected = [annotations(nlp, name, nlp(text)) for text in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda text: annotations(nlp, name, nlp(text)), texts))
    assert got == expected


# Loading


def broken_copy(trained: Trained, tmp_path: Path) -> Path:
    path = tmp_path / "broken"
    shutil.copytree(trained.path, path)
    return path


def assert_load_error(path: Path, trained: Trained, file: Path) -> None:
    with pytest.raises(ValueError) as info:
        spacy.load(path)
    message = str(info.value)
    assert trained.name in message, message
    assert str(file) in message, message
    assert "torch" not in type(info.value).__module__


def test_missing_weights_file(trained, tmp_path):
    path = broken_copy(trained, tmp_path)
    weights = path / trained.name / "model"
    assert weights.exists()
    weights.unlink()
    assert_load_error(path, trained, weights)


def test_truncated_weights_file(trained, tmp_path):
    path = broken_copy(trained, tmp_path)
    weights = path / trained.name / "model"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert_load_error(path, trained, weights)


def _set_key(section, key: str, value) -> int:
    found = 0
    for k, v in section.items():
        if k == key:
            section[k] = value
            found += 1
        elif isinstance(v, dict):
            found += _set_key(v, key, value)
    return found


def test_config_with_unknown_cell(trained, tmp_path):
    path = broken_copy(trained, tmp_path)
    config = Config().from_disk(path / "config.cfg", interpolate=False)
    if not _set_key(config["components"][trained.name], "cell", "transformer"):
        pytest.skip(f"{trained.factory} has no recurrent cell setting")
    config.to_disk(path / "config.cfg")
    with pytest.raises(ConfigValidationError) as info:
        spacy.load(path)
    # spaCy's config validation names the section and the setting, the value and the choices.
    message = str(info.value)
    assert "-> cell\tat root: 'transformer'" in message, message
    assert "'lstm'" in message, message


def test_labels_that_do_not_match_the_weights(trained, tmp_path):
    path = broken_copy(trained, tmp_path)
    cfg_file, model_file = path / trained.name / "cfg", path / trained.name / "model"
    cfg = srsly.read_json(cfg_file)
    if cfg.get("labels"):
        cfg["labels"] = cfg["labels"][:-1]
        srsly.write_json(cfg_file, cfg)
        bad = cfg_file
    else:
        model = srsly.read_msgpack(model_file)
        assert model.get("tags"), f"don't know where {trained.factory} keeps its labels"
        model["tags"] = model["tags"][:-1]
        srsly.write_msgpack(model_file, model)
        bad = model_file
    with pytest.raises(ValueError) as info:
        spacy.load(path)
    message = str(info.value)
    assert trained.name in message and "label" in message, message
    assert str(bad.parent) in message, message


# Training


def test_corpus_with_no_examples(trained):
    nlp = spacy.blank("en")
    nlp.add_pipe(trained.factory, config=tiny_config(trained.factory))
    with pytest.raises(ValueError, match=rf"\[{trained.name}\].*no (training )?examples"):
        nlp.initialize(lambda: [])
    loaded = copy_of(trained)
    before = loaded.get_pipe(trained.name).to_bytes()
    losses = loaded.update([], sgd=loaded.resume_training())
    assert losses.get(trained.name, 0.0) == 0.0
    assert loaded.get_pipe(trained.name).to_bytes() == before


def test_missing_annotation_is_missing_not_outside(trained):
    if learns_from_text(trained.nlp, trained.name):
        pytest.skip(f"{trained.factory} learns from the text itself: no annotation can be missing")
    nlp = copy_of(trained)
    pipe = nlp.get_pipe(trained.name)
    examples = missing_examples(nlp)
    if torch_shims(pipe):
        scores = pipe.model.predict([eg.predicted for eg in examples])
        loss, d_scores = pipe.get_loss(examples, scores)
        assert loss == pytest.approx(0.0, abs=1e-6)
        assert all(numpy.abs(d).max() < 1e-6 for d in d_scores)
    # Training with unannotated copies of the sentences added learns the same
    # (without dropout, whose random masks depend on the batch).
    without = train_pipeline(trained.factory, dropout=0.0)
    with_missing = train_pipeline(trained.factory, extra=missing_examples, dropout=0.0)
    texts = [" ".join(d[0]) for d in DATA] + EDGE_TEXTS[4:12]
    assert sample_annotations(with_missing, trained.name, texts) == sample_annotations(without, trained.name, texts)


def test_partly_missing_annotation_trains(trained):
    nlp = copy_of(trained)
    examples = []
    for words, tags, _, ents in DATA:
        keep = [i % 2 == 0 for i in range(len(words))]
        ref = Doc(
            nlp.vocab,
            words=words,
            tags=[t if k else "" for t, k in zip(tags, keep)],  # "": missing
            ents=[e if k else None for e, k in zip(ents, keep)],
        )
        examples.append(Example(Doc(nlp.vocab, words=words), ref))
    losses = nlp.update(examples, sgd=nlp.resume_training())
    assert numpy.isfinite(losses.get(trained.name, 0.0))


def test_label_never_seen_in_training(trained):
    nlp = copy_of(trained)
    pipe = nlp.get_pipe(trained.name)
    examples = unseen_label_examples(nlp) + make_examples(nlp)
    scores = nlp.evaluate(examples)
    # The component's own scores (those its factory weighs) are reported, as numbers in [0, 1].
    weights = nlp.get_pipe_meta(trained.name).default_score_weights
    own = [key for key, weight in weights.items() if weight is not None]
    assert own, weights
    for key in own:
        value = scores.get(key)
        assert isinstance(value, float) and 0.0 <= value <= 1.0, (key, value, scores)
    if not learns_from_text(nlp, trained.name):
        # The training data alone is predicted right; a label never seen can
        # never be predicted, so with those tokens the main score drops.
        main = max(own, key=lambda key: weights[key])
        assert nlp.evaluate(make_examples(nlp))[main] == 1.0
        if pipe.model.attrs.get("multi_label"):
            # Independent labels: the known ones are missing (not 0) in that text, so nothing changes.
            assert scores[main] == 1.0, (main, scores[main])
        else:
            assert scores[main] < 1.0, (main, scores[main])
    if torch_shims(pipe) and not learns_from_text(nlp, trained.name):
        unseen = unseen_label_examples(nlp)
        loss, d_scores = pipe.get_loss(unseen, pipe.model.predict([eg.predicted for eg in unseen]))
        assert loss == pytest.approx(0.0, abs=1e-6)  # unknown labels count as missing
        assert all(numpy.abs(d).max() < 1e-6 for d in d_scores)
    losses = nlp.update(examples, sgd=nlp.resume_training())
    assert numpy.isfinite(losses.get(trained.name, 0.0))


def test_nan_loss_stops_and_keeps_the_last_good_model(trained):
    nlp = copy_of(trained)
    pipe = nlp.get_pipe(trained.name)
    shims = torch_shims(pipe)
    if not shims:
        pytest.skip(f"{trained.factory} learns by counting: its loss cannot be NaN")
    optimizer = nlp.resume_training()
    examples = make_examples(nlp)
    expected = sample_annotations(nlp, trained.name)
    before = pipe.to_bytes()

    def nan_outputs(module, inputs, output):
        return output * float("nan") if module.training else output

    handle = shims[0]._model.register_forward_hook(nan_outputs)
    try:
        with pytest.raises(ValueError, match=rf"(?i)\[{trained.name}\].*nan"):
            nlp.update(examples, sgd=optimizer)
    finally:
        handle.remove()
    assert pipe.to_bytes() == before
    # A finite loss with a NaN gradient is refused before the optimizer step.
    param = next(shims[0]._model.parameters())
    handle = param.register_hook(lambda grad: grad * float("nan"))
    try:
        with pytest.raises(ValueError, match=rf"(?i)\[{trained.name}\].*nan"):
            nlp.update(examples, sgd=optimizer)
    finally:
        handle.remove()
    assert pipe.to_bytes() == before
    assert sample_annotations(nlp, trained.name) == expected
    # Training goes on from the last good weights.
    losses = nlp.update(examples, sgd=optimizer)
    assert numpy.isfinite(losses[trained.name])
    assert pipe.to_bytes() != before


# Serialization round trips


def test_bytes_and_disk_round_trips(trained, tmp_path):
    nlp, name = trained.nlp, trained.name
    expected = sample_annotations(nlp, name, EDGE_TEXTS[4:])
    from_bytes = load_model_from_config(nlp.config, auto_fill=True).from_bytes(nlp.to_bytes())
    assert sample_annotations(from_bytes, name, EDGE_TEXTS[4:]) == expected
    from_bytes.to_disk(tmp_path / "again")
    assert sample_annotations(spacy.load(tmp_path / "again"), name, EDGE_TEXTS[4:]) == expected
    assert sample_annotations(spacy.load(trained.path), name, EDGE_TEXTS[4:]) == expected


def test_round_trip_after_select_pipes(trained, tmp_path):
    name = trained.name
    expected = sample_annotations(trained.nlp, name)
    nlp = copy_of(trained)
    nlp.add_pipe("sentencizer", last=True)
    nlp.select_pipes(disable=[name])
    nlp.to_disk(tmp_path / "disabled")
    loaded = spacy.load(tmp_path / "disabled")
    assert loaded.disabled == [name]
    loaded.enable_pipe(name)
    assert sample_annotations(loaded, name) == expected
    with loaded.select_pipes(enable=[name]):
        restored = load_model_from_config(loaded.config, auto_fill=True).from_bytes(loaded.to_bytes())
        assert sample_annotations(restored, name) == expected


def test_round_trip_after_replace_pipe(trained, tmp_path):
    name = trained.name
    nlp = copy_of(trained)
    fix_random_seed(SEED)
    nlp.replace_pipe(name, trained.factory, config=tiny_config(trained.factory))
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.02
    for _ in range(N_ITER):
        nlp.update(examples, sgd=optimizer)
    expected = sample_annotations(trained.nlp, name)
    assert sample_annotations(nlp, name) == expected
    nlp.to_disk(tmp_path / "replaced")
    assert sample_annotations(spacy.load(tmp_path / "replaced"), name) == expected
    restored = load_model_from_config(nlp.config, auto_fill=True).from_bytes(nlp.to_bytes())
    assert sample_annotations(restored, name) == expected


def test_round_trip_of_a_sourced_component(trained, tmp_path):
    config = Config().from_str(
        f"""
        [nlp]
        lang = "en"
        pipeline = ["sourced"]

        [components]

        [components.sourced]
        source = "{trained.path}"
        component = "{trained.name}"
        """
    )
    nlp = load_model_from_config(config, auto_fill=True)
    expected = [ann for ann in sample_annotations(trained.nlp, trained.name)]
    assert sample_annotations(nlp, "sourced") == expected
    nlp.to_disk(tmp_path / "sourced")
    assert sample_annotations(spacy.load(tmp_path / "sourced"), "sourced") == expected
    restored = load_model_from_config(nlp.config, auto_fill=True).from_bytes(nlp.to_bytes())
    assert sample_annotations(restored, "sourced") == expected


# Determinism


def test_same_seed_same_weights(trained):
    again = train_pipeline(trained.factory)
    assert again.get_pipe(trained.name).to_bytes() == trained.component_bytes
    if torch_shims(trained.nlp.get_pipe(trained.name)):
        other = train_pipeline(trained.factory, seed=SEED + 1, n_iter=2)
        assert other.get_pipe(trained.name).to_bytes() != trained.component_bytes
