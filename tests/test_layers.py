import pytest
import numpy
from spacy.tokens import Doc
from thinc.api import fix_random_seed

from spacy_rnn.models.architectures import build_rnn_encoder_v1
from spacy_rnn.models.featurize import doc_features, init_word_vocab


def small_encoder(**kwargs):
    settings = dict(
        width=6, depth=1, vocab_size=10, word_width=4, rows=[20, 20, 20], embed_widths=[2, 2, 2],
        char_width=3, char_filters=4,
    )
    settings.update(kwargs)
    return build_rnn_encoder_v1(**settings)


def test_doc_features(docs):
    layer = doc_features("NORM", ["PREFIX", "SHAPE"], max_word_chars=4, vocab_size=3, min_word_freq=1)
    (stats,) = init_word_vocab(layer, docs)
    # "the" and "." twice each, then one word seen once: 5 of the 18 tokens
    assert (stats.n_words, stats.n_tokens) == (3, 18)
    assert stats.coverage == pytest.approx(5 / 18)
    batch, _ = layer(docs, is_train=False)
    n_tokens = sum(len(doc) for doc in docs)
    assert batch.lengths.tolist() == [len(doc) for doc in docs]
    assert batch.hashes.shape == (n_tokens, 2, 4)
    assert batch.word_index.shape == (n_tokens,)
    # the three most frequent norms ("the" twice, then the first-seen ties) have rows 1-3
    norms = [t.norm_ for doc in docs for t in doc]
    assert batch.word_ids[norms.index("the")] > 0
    assert sorted(set(batch.word_ids.tolist()) - {0}) == [1, 2, 3]
    assert (batch.word_ids == 0).sum() == n_tokens - sum(norms.count(n) for n in set(norms) if batch.word_ids[norms.index(n)] > 0)
    # "eggs" and "green" are clipped to 4 chars, keeping start and end: "gren"
    words = ["".join(chr(c - 1) for c in row if c) for row in batch.code_points]
    assert "gren" in words and "eggs" in words
    # the same word gets the same row
    tokens = [t.text for doc in docs for t in doc]
    assert batch.word_index[tokens.index("the")] != batch.word_index[tokens.index("The")]
    assert batch.word_index[tokens.index("the")] == batch.word_index[len(tokens) - 1 - tokens[::-1].index("the")]


def test_forward_backprop_shapes(docs):
    fix_random_seed(0)
    model = small_encoder()
    model.initialize(X=docs)
    Y, backprop = model.begin_update(docs)
    assert [y.shape for y in Y] == [(len(doc), 12) for doc in docs]
    backprop([numpy.ones_like(y) for y in Y])
    grads = [p.grad for p in model.layers[1].shims[0]._model.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_no_hashed_features_words_and_characters_only(docs):
    """attrs = [] (with rows = embed_widths = []) is an encoder of word and character
    embeddings; it trains and predicts like any other."""
    fix_random_seed(0)
    model = small_encoder(attrs=[], rows=[], embed_widths=[])
    model.initialize(X=docs)
    Y, backprop = model.begin_update(docs)
    assert [y.shape for y in Y] == [(len(doc), 12) for doc in docs]
    backprop([numpy.ones_like(y) for y in Y])
    torch_model = model.layers[1].shims[0]._model
    assert torch_model.features.output_width == 0
    assert all(p.grad is not None for p in torch_model.parameters())
    empty = Doc(docs[0].vocab, words=[])
    assert [y.shape for y in model.predict([docs[0], empty])] == [(len(docs[0]), 12), (0, 12)]


def test_bytes_round_trip(docs):
    fix_random_seed(0)
    model = small_encoder()
    model.initialize(X=docs)
    expected = model.predict(docs)
    fix_random_seed(1)
    other = small_encoder()
    other.initialize(X=docs)
    assert not numpy.allclose(other.predict(docs)[0], expected[0])
    other.from_bytes(model.to_bytes())
    for a, b in zip(other.predict(docs), expected):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("word_attr, attrs, setting, bad", [("NROM", ["PREFIX"], "word_attr", "NROM"),
                                                             ("NORM", ["PREFIX", "SUFIX"], "attrs", "SUFIX")])
def test_unknown_token_attribute_is_named_with_its_setting(word_attr, attrs, setting, bad):
    with pytest.raises(ValueError, match=rf"{setting}: unknown token attribute '{bad}'"):
        doc_features(word_attr, attrs, max_word_chars=4, vocab_size=3, min_word_freq=1)
