import importlib.util
import itertools
import math
import subprocess
import sys

import numpy
import pytest
import spacy
import srsly
from spacy.cli.train import train as spacy_train
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import load_model_from_path

from spacy_rnn.data import CorpusFormatError
from spacy_rnn.classic.hmm import HMM, MostFrequentTagModel, SuffixModel, deleted_interpolation

from .conftest import TRAIN_DATA, make_examples

# "bark" is a noun once and a verb once, so Viterbi has a choice to make.
# Tags sort as D=0, N=1, V=2; id 3 is the sentence boundary B.
TOY = [
    (["the", "dog", "barks"], ["D", "N", "V"]),
    (["the", "bark"], ["D", "N"]),
    (["dogs", "bark"], ["N", "V"]),
]
# Tag outcomes after the start padding (tags and the end B): D 2, N 3, V 2, B 3, total 10.
# Bigrams: BD 2, DN 2, NV 2, VB 2, NB 1, BN 1; context totals B 3, D 2, N 3, V 2.
# Emissions: the|D 2/2, dog|N 1/3, bark|N 1/3, dogs|N 1/3, bark|V 1/2, barks|V 1/2.


def test_deleted_interpolation_bigram_by_hand():
    # (f(u,t)-1)/(f(u)-1) against (f(t)-1)/(N-1) for each bigram:
    # BD 1/2 > 1/9, DN 1 > 2/9, NV 1/2 > 1/9, VB 1 > 2/9: lambda2 += 2 each (8);
    # NB 0 < 2/9 and BN 0 < 2/9: lambda1 += 1 each (2).
    model = HMM.fit(TOY, order=1)
    assert model.lambdas == pytest.approx([0.2, 0.8])


def test_deleted_interpolation_trigram_by_hand():
    # Trigrams BBD 2, BDN 2, DNV 1, NVB 2, DNB 1, BBN 1, BNV 1.
    # BBD: c3 = 1/2 = c2 = 1/2 -> ties share 2: l2 += 1, l3 += 1. BDN: c3 = 1 = c2 -> l2 += 1, l3 += 1.
    # DNV: c3 = 0, c2 = 1/2 -> l2 += 1. NVB: c3 = 1 = c2 -> l2 += 1, l3 += 1.
    # DNB: c3 = 0, c2 = 0, c1 = 2/9 -> l1 += 1. BBN: same -> l1 += 1. BNV: c3 = 0 (0/0), c2 = 1/2 -> l2 += 1.
    model = HMM.fit(TOY, order=2)
    assert model.lambdas == pytest.approx([0.2, 0.5, 0.3])


def test_deleted_interpolation_ties_share():
    # One trigram seen once: every estimate is 0, so the three orders share it.
    counts = [numpy.array([0, 1]), numpy.array([[0, 0], [0, 1]]), numpy.zeros((2, 2, 2), dtype=int)]
    counts[2][1, 1, 1] = 1
    assert deleted_interpolation(counts) == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_bigram_transition_and_emission_probabilities():
    model = HMM.fit(TOY, order=1)
    D, N, V, B = range(4)
    probs = numpy.exp(model.log_trans)
    assert probs[B, D] == pytest.approx(0.2 * 2 / 10 + 0.8 * 2 / 3)
    assert probs[D, N] == pytest.approx(0.2 * 3 / 10 + 0.8 * 2 / 2)
    assert probs[D, V] == pytest.approx(0.2 * 2 / 10)
    assert probs[N, V] == pytest.approx(0.2 * 2 / 10 + 0.8 * 2 / 3)
    assert probs[N, B] == pytest.approx(0.2 * 3 / 10 + 0.8 * 1 / 3)
    # Every context is a distribution over the tags and the end.
    assert probs.sum(axis=1) == pytest.approx(numpy.ones(4))
    (ids, scores), = model.emissions(["bark"])
    assert dict(zip(ids.tolist(), numpy.exp(scores))) == pytest.approx({N: 1 / 3, V: 1 / 2})


def test_bigram_viterbi_by_hand():
    model = HMM.fit(TOY, order=1)
    p_bd, p_dn, p_dv, p_nb, p_vb = 0.57333333, 0.86, 0.04, 0.32666667, 0.86
    # "the bark": D N = p_bd * 1 * p_dn * 1/3 * p_nb beats D V = p_bd * 1 * p_dv * 1/2 * p_vb.
    tags, score = model.viterbi(["the", "bark"])
    assert [model.tags[i] for i in tags] == ["D", "N"]
    assert score == pytest.approx(math.log(p_bd * p_dn / 3 * p_nb))
    assert model.log_score(["the", "bark"], ["D", "V"]) == pytest.approx(math.log(p_bd * p_dv / 2 * p_vb))
    # "dogs bark": N V = p_bn/3 * p_nv/2 * p_vb beats N N = p_bn/3 * p_nn/3 * p_nb.
    p_bn, p_nv, p_nn = 0.2 * 3 / 10 + 0.8 / 3, 0.2 * 2 / 10 + 0.8 * 2 / 3, 0.2 * 3 / 10
    tags, score = model.viterbi(["dogs", "bark"])
    assert [model.tags[i] for i in tags] == ["N", "V"]
    assert score == pytest.approx(math.log(p_bn / 3 * p_nv / 2 * p_vb))
    assert model.log_score(["dogs", "bark"], ["N", "N"]) == pytest.approx(math.log(p_bn / 3 * p_nn / 3 * p_nb))


def test_trigram_viterbi_by_hand():
    model = HMM.fit(TOY, order=2)
    D, N, V, B = range(4)
    probs = numpy.exp(model.log_trans)
    p_bbd = 0.2 * 2 / 10 + 0.5 * 2 / 3 + 0.3 * 2 / 3
    p_bdn = 0.2 * 3 / 10 + 0.5 * 2 / 2 + 0.3 * 2 / 2
    p_dnb = 0.2 * 3 / 10 + 0.5 * 1 / 3 + 0.3 * 1 / 2
    assert probs[B, B, D] == pytest.approx(p_bbd)
    assert probs[B, D, N] == pytest.approx(p_bdn)
    assert probs[D, N, B] == pytest.approx(p_dnb)
    # Context (V, V) was never seen: its trigram term is left out and l1, l2 renormalised.
    assert probs[V, V, B] == pytest.approx((0.2 * 3 / 10 + 0.5 * 2 / 2) / 0.7)
    assert probs.sum(axis=-1)[B, B] == pytest.approx(1.0)
    tags, score = model.viterbi(["the", "bark"])
    assert [model.tags[i] for i in tags] == ["D", "N"]
    assert score == pytest.approx(math.log(p_bbd * 1 * p_bdn / 3 * p_dnb))


@pytest.mark.parametrize("order", [1, 2])
def test_viterbi_matches_brute_force(order):
    model = HMM.fit(TOY, order=order)
    # Includes unseen words ("cats", "The") and a repeated word.
    for words in (["the", "bark", "barks"], ["dogs", "bark", "the", "cats"], ["The", "dog"], ["bark"]):
        tags, score = model.viterbi(words)
        best = max(
            (model.log_score(words, path), path) for path in itertools.product(model.tags, repeat=len(words))
        )
        assert score == pytest.approx(best[0])
        assert [model.tags[i] for i in tags] == list(best[1])


def test_empty_and_one_word():
    for order in (1, 2):
        model = HMM.fit(TOY, order=order)
        assert model.viterbi([]) == ([], 0.0)
        assert model.predict(["dogs"]) == ["N"]


def test_suffix_model_by_hand():
    # Rare words: "ab" tag 0, "cb" and "cd" tag 1. Empty suffix: P = (1/3, 2/3).
    words = {"ab": {0: 1}, "cb": {1: 1}, "cd": {1: 1}}
    model = SuffixModel.fit(words, 2, max_suffix=10)
    theta = math.sqrt((1 / 3 - 1 / 2) ** 2 + (2 / 3 - 1 / 2) ** 2)
    assert model.theta == pytest.approx(theta)
    # "xb": suffix "b" seen (1/2, 1/2), "xb" not, so the recursion stops after "b".
    expected = (numpy.array([0.5, 0.5]) + theta * numpy.array([1 / 3, 2 / 3])) / (1 + theta)
    assert model.probs("xb") == pytest.approx(expected)
    assert model.probs("zz") == pytest.approx([1 / 3, 2 / 3])


def test_unseen_words_use_the_suffix_model():
    sentences = [(["the", w], ["D", "V"]) for w in ("walked", "jumped", "talked")] + [
        (["the", w], ["D", "N"]) for w in ("cat", "hat", "mat")
    ]
    model = HMM.fit(sentences, order=2)
    assert model.predict(["the", "hopped"]) == ["D", "V"]
    assert model.predict(["the", "rat"]) == ["D", "N"]
    # Sentence-initial unseen word known in lower case.
    assert model.predict(["The", "cat"]) == ["D", "N"]


def test_most_frequent_tag_model():
    sentences = [
        (["the", "can", "can", "walked"], ["DT", "MD", "NN", "VBD"]),
        (["a", "can", "jumped", "in", "Paris", "1987"], ["DT", "MD", "VBD", "IN", "NNP", "CD"]),
        (["the", "the"], ["DT", "DT"]),
    ]
    model = MostFrequentTagModel.fit(sentences, max_suffix=2, rare_max=1)
    # "can": MD twice, NN once. Unseen: "talked" -> class x|ed (VBD), "London" -> X| (NNP),
    # "2001" -> num (CD), "??" -> no class seen -> the overall most frequent tag (DT).
    assert model.predict(["can", "talked", "London", "2001", "??"]) == ["MD", "VBD", "NNP", "CD", "DT"]
    assert model.predict([]) == []
    restored = MostFrequentTagModel.from_dict(model.to_dict())
    assert restored.predict(["can", "talked", "London"]) == ["MD", "VBD", "NNP"]


def toy_examples(nlp, data=TOY):
    return [Example.from_dict(Doc(nlp.vocab, words=w), {"words": w, "tags": t}) for w, t in data]


def check_update_learns_nothing(nlp, name, examples) -> None:
    """The counts are taken in initialize: update, even on examples whose tags
    are all different, changes neither the counts nor the predictions. It adds
    a zero loss under the component's name (spacy train's logger reads
    losses[name] for every trainable pipe) and leaves the other entries alone."""
    pipe = nlp.get_pipe(name)
    before = pipe.to_bytes()
    texts = [eg.reference.text for eg in examples]
    predicted = [[t.tag_ for t in doc] for doc in nlp.pipe(texts)]
    relabelled = [
        Example.from_dict(Doc(nlp.vocab, words=[t.text for t in eg.reference]), {"tags": ["XX"] * len(eg.reference)})
        for eg in examples
    ]
    losses = {name: 2.5, "other": 1.0}
    assert pipe.update(relabelled, losses=losses) is losses
    assert losses == {name: 2.5, "other": 1.0}
    assert nlp.update(relabelled) == {name: 0.0}
    assert pipe.to_bytes() == before
    assert [[t.tag_ for t in doc] for doc in nlp.pipe(texts)] == predicted
    assert "XX" not in pipe.labels


@pytest.mark.parametrize(
    "factory,config", [("hmm_tagger", {"order": 1}), ("hmm_tagger", {"order": 2}), ("most_frequent_tagger", {})]
)
def test_component_round_trip(factory, config, tmp_path, docs):
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, name="tagger", config=config)
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    assert set(nlp.get_pipe("tagger").labels) == {tag for _, tags, _ in TRAIN_DATA for tag in tags}
    # Training data is tagged right.
    scores = nlp.evaluate(examples)
    assert scores["tag_acc"] == 1.0
    check_update_learns_nothing(nlp, "tagger", examples)
    # Empty docs, one-token docs and unseen words.
    predicted = [[t.tag_ for t in doc] for doc in nlp.pipe(docs)]
    assert [len(tags) for tags in predicted] == [len(doc) for doc in docs]
    assert predicted[1] == []
    assert all(predicted[3])
    assert [t.tag_ for t in nlp(Doc(nlp.vocab, words=["eggs"]))] == ["NNS"]
    assert [t.tag_ for t in nlp(Doc(nlp.vocab, words=[]))] == []
    nlp.to_disk(tmp_path)
    loaded = spacy.load(tmp_path)
    assert [[t.tag_ for t in doc] for doc in loaded.pipe(docs)] == predicted
    assert [[t.tag_ for t in loaded(doc.text)] for doc in docs] == [[t.tag_ for t in nlp(doc.text)] for doc in docs]
    from_bytes = spacy.blank("en")
    from_bytes.add_pipe(factory, name="tagger", config=config)
    from_bytes.from_bytes(nlp.to_bytes())
    assert [[t.tag_ for t in doc] for doc in from_bytes.pipe(docs)] == predicted


def test_component_pos_and_sentences():
    nlp = spacy.blank("en")
    nlp.add_pipe("hmm_tagger", config={"token_attr": "pos"})
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    assert nlp.evaluate(examples)["pos_acc"] == 1.0
    # A doc with sentence boundaries is decoded sentence by sentence.
    words = ["I", "like", "green", "eggs", ".", "The", "dog", "runs", "fast"]
    doc = Doc(nlp.vocab, words=words, sent_starts=[i in (0, 5) for i in range(len(words))])
    doc = nlp(doc)
    assert [t.pos_ for t in doc] == ["PRON", "VERB", "ADJ", "NOUN", "PUNCT", "DET", "NOUN", "VERB", "ADV"]
    assert all(not t.tag_ for t in doc)


@pytest.mark.parametrize("factory", ["hmm_tagger", "most_frequent_tagger"])
def test_settings_given_at_load_are_refused_or_kept_like_rnn_taggers(factory, tmp_path):
    """spaCy's load reads the saved cfg over the config's. A count tagger trained for POS and
    loaded with token_attr = "tag" wrote POS while its scorer, built from the config, scored tags
    (tag_acc 0.0): refused, as rnn_tagger does, leaving the component as it was. overwrite keeps
    its saved value, with a warning."""
    import warnings

    nlp = spacy.blank("en")
    nlp.add_pipe(factory, name="tagger", config={"token_attr": "pos"})
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    nlp.to_disk(tmp_path)
    with pytest.raises(ValueError, match=r"\[tagger\] token_attr is 'tag' in the config, but the weights in .* were "
                                         r"trained with 'pos'"):
        spacy.load(tmp_path, config={"components": {"tagger": {"token_attr": "tag"}}})
    with pytest.raises(ValueError, match=r"max_suffix is 1 in the config"):
        spacy.load(tmp_path, config={"components": {"tagger": {"max_suffix": 1}}})
    fresh = spacy.blank("en").add_pipe(factory, name="tagger")
    with pytest.raises(ValueError, match="token_attr is 'tag' in the config"):
        fresh.from_bytes(nlp.get_pipe("tagger").to_bytes())
    assert fresh.token_attr == "tag" and fresh.labels == ()
    with pytest.warns(UserWarning, match=r"keeps its own settings, not the config's \(overwrite is True in the config, False saved\)"):
        kept = spacy.load(tmp_path, config={"components": {"tagger": {"overwrite": True}}})
    assert kept.get_pipe("tagger").cfg["overwrite"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spacy.load(tmp_path).evaluate(examples)["pos_acc"] == 1.0


def test_component_errors():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError):
        nlp.add_pipe("hmm_tagger", config={"order": 3})
    with pytest.raises(ValueError):
        nlp.add_pipe("most_frequent_tagger", config={"token_attr": "lemma"})
    tagger = nlp.add_pipe("hmm_tagger")
    with pytest.raises(ValueError, match="not initialized"):
        nlp("a dog")
    untagged = [Example(Doc(nlp.vocab, words=["a"]), Doc(nlp.vocab, words=["a"]))]
    with pytest.raises(ValueError, match="nothing to count"):
        tagger.initialize(lambda: untagged)


@pytest.mark.parametrize("config", ["hmm_tagger.cfg", "most_frequent_tagger.cfg"])
def test_spacy_train(config, tiny_corpus, tmp_path):
    train, dev = tiny_corpus
    path = spacy.util.ensure_path(__file__).parent.parent / "configs" / config
    spacy_train(path, tmp_path / "out", overrides={"paths.train": str(train), "paths.dev": str(dev)})
    nlp = load_model_from_path(tmp_path / "out" / "model-best")
    assert nlp.meta["performance"]["tag_acc"] == 1.0
    assert [t.tag_ for t in nlp("I like green eggs .")] == ["PRP", "VBP", "JJ", "NNS", "."]


def test_spacy_init_labels_feeds_initialize(tiny_corpus, tmp_path):
    """The spaCy workflow of `spacy init labels`, then [initialize.components.NAME.labels] read
    from its output, trains a count tagger (initialize took no labels: a config validation error)."""
    train, dev = tiny_corpus
    config = spacy.util.load_config(spacy.util.ensure_path(__file__).parent.parent / "configs" / "hmm_tagger.cfg")
    config_path = tmp_path / "config.cfg"
    config.to_disk(config_path)
    subprocess.run([sys.executable, "-m", "spacy", "init", "labels", str(config_path), str(tmp_path / "labels"),
                    "--paths.train", str(train), "--paths.dev", str(dev)], check=True, capture_output=True)
    labels_file = tmp_path / "labels" / "tagger.json"
    assert set(srsly.read_json(labels_file)) == {tag for _, tags, _ in TRAIN_DATA for tag in tags}
    config["initialize"]["components"]["tagger"] = {"labels": {"@readers": "spacy.read_labels.v1", "path": str(labels_file)}}
    config.to_disk(config_path)
    spacy_train(config_path, tmp_path / "out", overrides={"paths.train": str(train), "paths.dev": str(dev)})
    nlp = load_model_from_path(tmp_path / "out" / "model-best")
    assert nlp.get_pipe("tagger").labels == tuple(srsly.read_json(labels_file))


@pytest.mark.parametrize("factory", ["hmm_tagger", "most_frequent_tagger"])
def test_labels_given_to_initialize_must_cover_the_training_tags(factory):
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe(factory, name="tagger")
    examples = make_examples(nlp)
    tags = sorted({tag for _, sent_tags, _ in TRAIN_DATA for tag in sent_tags})
    with pytest.raises(ValueError, match=f"not among the labels given to initialize: '{tags[0]}'"):
        tagger.initialize(lambda: examples, labels=tags[1:])
    with pytest.warns(UserWarning, match="never occur in the training data are left out.*'ZZ'"):
        tagger.initialize(lambda: examples, labels=tags + ["ZZ"])
    assert tagger.labels == tuple(tags)
    assert nlp.evaluate(examples)["tag_acc"] == 1.0
    with pytest.raises(ValueError, match="labels must be a list of tags, got the string 'NN'"):
        tagger.initialize(lambda: examples, labels="NN")  # not the characters "N", "N"


def load_convert_script():
    path = spacy.util.ensure_path(__file__).parent.parent / "scripts" / "convert_wsj_sample.py"
    spec = importlib.util.spec_from_file_location("convert_wsj_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convert_wsj_sample(tmp_path):
    convert = load_convert_script()
    (tmp_path / "wsj_sample.tsv").write_text("A\tDT\ncat\tNN\n\nIt\tPRP\n\nGo\tVB\n\n")
    (tmp_path / "wsj_sample.docs.tsv").write_text(
        "doc_id\tfirst_sentence\tn_sentences\nwsj_0001\t0\t2\nwsj_0170\t2\t1\n"
    )
    convert.main(tmp_path, tmp_path / "out")
    nlp = spacy.blank("en")
    train = list(DocBin().from_disk(tmp_path / "out" / "wsj_sample-train.spacy").get_docs(nlp.vocab))
    assert [[t.tag_ for t in sent] for sent in train[0].sents] == [["DT", "NN"], ["PRP"]]
    dev = list(DocBin().from_disk(tmp_path / "out" / "wsj_sample-dev.spacy").get_docs(nlp.vocab))
    assert [t.text for t in dev[0]] == ["Go"]
    (tmp_path / "wsj_sample.tsv").write_text("A\tDT\ncat NN\n")
    with pytest.raises(CorpusFormatError, match=r"wsj_sample.tsv:2:"):
        convert.read_sentences(tmp_path / "wsj_sample.tsv")


def test_benchmark_baselines_script_runs_end_to_end(tiny_corpus, tmp_path):
    """scripts/benchmark_baselines.py (the baselines workflow's last step) on a tiny corpus: every
    system measured and its table rendered (the script once called a benchmark_tagger helper whose
    signature had changed, and the workflow crashed)."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    train, dev = tiny_corpus
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split, source in (("train", train), ("dev", dev), ("test", dev)):
        shutil.copy(source, corpus / f"en_ewt-ud-{split}.spacy")
    script = Path(__file__).parent.parent / "scripts" / "benchmark_baselines.py"
    output = tmp_path / "baselines.json"
    result = subprocess.run([sys.executable, str(script), str(corpus), str(output), "--datasets", "ewt_xpos"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    systems = json.loads(output.read_text())["systems"]
    assert len(systems) == 4 and all(row["words_per_second"] > 0 for row in systems.values())
