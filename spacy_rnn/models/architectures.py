"""Registered model architectures referenced from ``spacy train`` configs.

Never change a released ``.vN``: add ``.vN+1`` beside it. What a setting may
be is declared in the signature (see types.py), so spaCy's config validation
reports a bad value with its section and name; the torch modules check their
own arguments once more for code that builds them directly.
"""
from functools import partial
from typing import Callable, List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Linear, Logistic, Model, Softmax_v2, chain, list2ragged, with_array
from thinc.layers.resizable import resize_linear_weighted
from thinc.types import Floats1d, Floats2d, Ints1d

from .crf import crf_transitions, resize_crf_transitions
from .featurize import doc_features
from .lm_vocab import EOS_ID
from .ops import with_cpu_gemm
from .pytorch import LinearCellOptions, RNNLanguageModel, SequenceLogProbs, TokenEncoder
from .pooling import build_pooling
from .types import Cell, Depth, DocEncoder, IntRange, NonNegative, Pooling, Positive, Probability
from .wrappers import (TOKEN_ENCODER_ATTR, fit_word_tables, record_settings, refuse_int8, wrap_sequence_log_probs,
                       wrap_token_encoder)


BIDIRECTIONAL_ATTR = "spacy_rnn_bidirectional"


@registry.architectures("spacy_rnn.RNNEncoder.v1")
def build_rnn_encoder_v1(
    cell: Cell = "lstm",
    width: Positive = 128,
    depth: Depth = 2,
    bidirectional: bool = True,
    dropout: Probability = 0.25,
    word_attr: str = "NORM",
    word_width: Positive = 96,
    vocab_size: NonNegative = 30000,
    min_word_freq: Positive = 2,
    word_dropout: Probability = 0.1,
    attrs: List[str] = ["PREFIX", "SUFFIX", "SHAPE"],
    rows: List[Positive] = [2000, 10000, 1000],
    embed_widths: List[Positive] = [16, 48, 16],
    char_width: Positive = 32,
    char_filters: NonNegative = 64,
    max_word_chars: Positive = 20,
    n_chars: IntRange(2) = 1024,
) -> DocEncoder:
    """Token vectors from a recurrent network over word embeddings, hashed
    token features and a character CNN. Superseded by v2, kept so that saved
    pipelines load and predict as before.

    cell (str): The recurrent cell: "rnn" (tanh), "lstm", "gru", or a linear-recurrence cell, "mingru" or "minlstm".
    width (int): Hidden width of each direction.
    depth (int): Number of stacked recurrent layers (1-4).
    bidirectional (bool): Also read each sequence right to left.
    dropout (float): Dropout on embeddings, between layers and on the output.
        The torch modules apply it themselves; [training] dropout does not reach them.
    word_attr (str): The token attribute that identifies a word (e.g. NORM, LOWER, ORTH).
    word_width (int): Width of the word embedding.
    vocab_size (int): At most this many training words get their own embedding
        (chosen by rnn_tagger's and rnn_ner's initialize; as the model of
        another component, e.g. spaCy's tok2vec, the table stays empty: use v2).
        All others share the unknown-word row.
    min_word_freq (int): Words seen fewer times in training are unknown words.
    word_dropout (float): Probability of replacing a word by the unknown word in
        training, so that unseen words are tagged from their spelling.
    attrs (List[str]): Token attributes to embed with hashed (Bloom) embeddings.
    rows (List[int]): Rows of each attribute's table.
    embed_widths (List[int]): Width of each attribute's embedding.
    char_width (int): Width of a character embedding.
    char_filters (int): Filters of the character CNN; 0 disables it.
    max_word_chars (int): Characters read per word (start and end of long words).
    n_chars (int): Rows of the character table (code points are hashed into it).
    """
    return _build_rnn_encoder(**locals(), vocab_from_sample=False, feed_forward=True, output_gate=False,
                              short_conv=False)


@registry.architectures("spacy_rnn.RNNEncoder.v2")
def build_rnn_encoder_v2(
    cell: Cell = "lstm",
    width: Positive = 128,
    depth: Depth = 2,
    bidirectional: bool = True,
    dropout: Probability = 0.33,
    word_attr: str = "NORM",
    word_width: Positive = 96,
    vocab_size: NonNegative = 30000,
    min_word_freq: Positive = 2,
    word_dropout: Probability = 0.1,
    attrs: List[str] = ["PREFIX", "SUFFIX", "SHAPE"],
    rows: List[Positive] = [2000, 10000, 1000],
    embed_widths: List[Positive] = [16, 48, 16],
    char_width: Positive = 32,
    char_filters: NonNegative = 64,
    max_word_chars: Positive = 20,
    n_chars: IntRange(2) = 1024,
    feed_forward: bool = False,
    output_gate: bool = False,
    short_conv: bool = False,
    bf16_training: bool = False,
) -> DocEncoder:
    """Token vectors from a recurrent network over word embeddings, hashed
    token features and a character CNN: the model of rnn_tagger and rnn_ner,
    or of spaCy's `tok2vec` component that other components listen to.

    Its word vocabulary (which words get their own embedding row) is chosen
    from the whole training corpus at initialize, whichever component owns
    it: rnn_tagger and rnn_ner count the examples spaCy gives their
    initialize; for any other owner (spaCy's tok2vec passes its model only a
    10-doc sample) add the callback spacy_rnn.init_word_vocabularies.v1 to
    [initialize.before_init]. Without it the vocabulary comes from that
    sample, with a warning. Initialization prints one line per encoder, e.g.
    "[tok2vec] word vocabulary: 19,874 words covering 97.1% of training tokens".

    cell (str): The recurrent cell: "rnn" (tanh), "lstm", "gru", or a linear-recurrence cell, "mingru" or "minlstm".
    width (int): Hidden width of each direction.
    depth (int): Number of stacked recurrent layers (1-4).
    bidirectional (bool): Also read each sequence right to left; the output
        width (dim nO) is then 2 * width.
    dropout (float): Dropout on embeddings, between layers and on the output.
        The torch modules apply it themselves; [training] dropout does not reach them.
    word_attr (str): The token attribute that identifies a word (e.g. NORM, LOWER, ORTH).
    word_width (int): Width of the word embedding.
    vocab_size (int): At most this many training words get their own
        embedding; all others share the unknown-word row. The table has a
        row for each word chosen (and the unknown word), vocab_size + 1 at most.
    min_word_freq (int): Words seen fewer times in training are unknown words.
    word_dropout (float): Probability of replacing a word by the unknown word in
        training, so that unseen words are tagged from their spelling.
    attrs (List[str]): Token attributes to embed with hashed (Bloom) embeddings.
    rows (List[int]): Rows of each attribute's table.
    embed_widths (List[int]): Width of each attribute's embedding.
    char_width (int): Width of a character embedding.
    char_filters (int): Filters of the character CNN; 0 disables it.
    max_word_chars (int): Characters read per word (start and end of long words).
    n_chars (int): Rows of the character table (code points are hashed into it).
    feed_forward (bool): Linear-recurrence cells only: a GELU feed-forward
        block (pre-norm, residual) after each layer, as in the reference
        implementations; about three times the matrix work of the bare stack
        (scripts/benchmark_scans.py, scripts/benchmark_tagger.py measure both).
    output_gate (bool): Linear-recurrence cells only: read each layer's states
        through an output gate of its input, y_t = h_t * silu(W_o x_t) (as in
        HGRN, GLA and Mamba), one more part of the layer's one matrix product.
    short_conv (bool): Linear-recurrence cells only: mix each layer's normed
        input with its neighbours' before the projection, x_t + u * x_{t-1} +
        v * x_{t+1} (a depthwise convolution of width 3, learned u and v per
        channel, starting at zero; x_{t-1} only for a one-directional
        stack), as Mamba and H3 put a short convolution before their
        recurrences: the gates then see the neighbouring tokens.
    bf16_training (bool): Linear-recurrence cells only: in training, each
        layer's projection (the stack's matrix products) runs in bfloat16
        under torch.autocast, its outputs cast back to float32 before the
        gates and the scan; weights, gradients and the optimizer stay float32,
        and prediction runs in float32. Only where the device multiplies
        bfloat16 natively (a CPU with AVX512-BF16 or AMX-BF16, read from
        /proc/cpuinfo on Linux; a GPU for which torch.cuda.is_bf16_supported());
        elsewhere, where bfloat16 would be emulated and slower, training runs in
        float32 as with False.
    """
    return _build_rnn_encoder(**locals(), vocab_from_sample=True)


def _build_rnn_encoder(
    *, cell, width, depth, bidirectional, dropout, word_attr, word_width, vocab_size, min_word_freq,
    word_dropout, attrs, rows, embed_widths, char_width, char_filters, max_word_chars, n_chars, vocab_from_sample,
    feed_forward, output_gate, short_conv, bf16_training=False,
) -> DocEncoder:
    if not len(attrs) == len(rows) == len(embed_widths):
        raise ValueError(
            f"spacy_rnn.RNNEncoder: attrs, rows and embed_widths need the same length, "
            f"got {len(attrs)}, {len(rows)} and {len(embed_widths)}"
        )
    encoder = TokenEncoder(
        n_words=vocab_size + 1,
        word_width=word_width,
        feature_rows=rows,
        feature_widths=embed_widths,
        n_chars=n_chars,
        char_width=char_width,
        char_filters=char_filters,
        cell=cell,
        hidden_width=width,
        n_layers=depth,
        bidirectional=bidirectional,
        dropout_prob=dropout,
        word_dropout_prob=word_dropout,
        linear=LinearCellOptions(feed_forward=feed_forward, output_gate=output_gate, short_conv=short_conv,
                                 bf16_training=bf16_training),
    )
    features = doc_features(
        word_attr, attrs, max_word_chars, vocab_size, min_word_freq, vocab_from_sample=vocab_from_sample
    )
    model = chain(features, wrap_token_encoder(encoder))
    model.attrs[TOKEN_ENCODER_ATTR] = True
    model.init = partial(_init_token_encoder, model.init)
    model.set_dim("nO", encoder.output_width)
    # Read by RNNTextClassifier's "last" pooling: the vectors are [forward; backward].
    model.attrs[BIDIRECTIONAL_ATTR] = bidirectional
    record_settings(
        model, cell=cell, width=width, depth=depth, bidirectional=bidirectional, word_width=word_width,
        attrs=list(attrs), rows=list(rows), embed_widths=list(embed_widths), char_width=char_width,
        char_filters=char_filters, n_chars=n_chars, feed_forward=feed_forward, output_gate=output_gate,
        short_conv=short_conv,
    )
    return model


def _init_token_encoder(chain_init: Callable, model: Model, X=None, Y=None) -> None:
    """chain's init (the features first: they choose the vocabulary if no one has), then the
    word table sized to the vocabulary. Refused for int8 weights (refuse_int8): it would choose
    another vocabulary for them, whoever holds the encoder (spaCy's tok2vec)."""
    refuse_int8(model)
    chain_init(model, X=X, Y=Y)
    fit_word_tables(model)


@registry.architectures("spacy_rnn.Tok2VecListener.v1")
def build_tok2vec_listener_v1(width: Optional[Positive] = None, upstream: str = "*") -> Model[List[Doc], List[Floats2d]]:
    """spaCy's Tok2VecListener (the same class: spaCy's tok2vec finds it and
    feeds it), whose width may be left out: the callback
    spacy_rnn.init_word_vocabularies.v1 in [initialize.before_init] then sets
    it to the output width of the spacy_rnn encoder it listens to (2 x width
    when bidirectional), so that the config never repeats it. A saved
    pipeline keeps the width with its weights.

    width (Optional[int]): The encoder's output width, or null to take it from the encoder.
    upstream (str): The name of the tok2vec component, or "*" for any.
    """
    from spacy.pipeline.tok2vec import Tok2VecListener

    listener = Tok2VecListener(upstream_name=upstream, width=width)
    listener.init = _require_listener_width
    return listener


def _require_listener_width(model: Model, X=None, Y=None) -> None:
    """The listener's init: a width left out must have been set by then (by the
    callback, which runs before the components are initialized); otherwise the
    first prediction fails with Thinc's "Cannot get dimension 'nO'", naming neither."""
    if model.has_dim("nO") is not True:
        raise ValueError(
            f"{model.name} (spacy_rnn.Tok2VecListener.v1, upstream {model.upstream_name!r}) has no width: "
            'add [initialize.before_init] @callbacks = "spacy_rnn.init_word_vocabularies.v1", which sets it '
            "to the encoder's output width (from Python: call spacy_rnn.choose_word_vocabularies(nlp, docs) "
            "before nlp.initialize), or give the listener a width"
        )


@registry.architectures("spacy_rnn.RNNTagger.v1")
def build_rnn_tagger_v1(
    encoder: Model[List[Doc], List[Floats2d]], nO: Optional[Positive] = None
) -> Model[List[Doc], List[Floats2d]]:
    """A tagger: the encoder's token vectors, then a softmax over the tag set.

    encoder (Model[List[Doc], List[Floats2d]]): The token encoder, e.g. spacy_rnn.RNNEncoder.v2,
        or a spacy.Tok2VecListener.v1 of a shared encoder.
    nO (Optional[int]): Number of tags; inferred from the data at initialize when null.
    """
    t2v_width = encoder.get_dim("nO") if encoder.has_dim("nO") else None
    output_layer = with_cpu_gemm(Softmax_v2(nO, t2v_width))
    model = chain(encoder, with_array(output_layer))
    model.set_ref("tok2vec", encoder)
    model.set_ref("output_layer", output_layer)
    return model


@registry.architectures("spacy_rnn.RNNEntityRecognizer.v1")
def build_rnn_entity_recognizer_v1(
    encoder: Model[List[Doc], List[Floats2d]], nO: Optional[Positive] = None
) -> Model[List[Doc], List[Floats2d]]:
    """Per-token tag scores (emissions) for a sequence labeller, plus the
    transition scores of a linear-chain CRF over them.

    encoder (Model[List[Doc], List[Floats2d]]): The token encoder, e.g. spacy_rnn.RNNEncoder.v2,
        or a spacy.Tok2VecListener.v1 of a shared encoder.
    nO (Optional[int]): Number of tags; inferred from the data at initialize when null.
    """
    t2v_width = encoder.get_dim("nO") if encoder.has_dim("nO") else None
    output_layer = with_cpu_gemm(Linear(nO, t2v_width))
    crf = crf_transitions(nO)
    model = chain(encoder, with_array(output_layer), crf)
    model.set_ref("tok2vec", encoder)
    model.set_ref("output_layer", output_layer)
    model.set_ref("crf", crf)
    model.attrs["resize_output"] = resize_entity_recognizer  # as spaCy's resizable models name it
    return model


def resize_entity_recognizer(model: Model, new_nO: int) -> Model:
    """Grow an initialized RNNEntityRecognizer.v1 model to new_nO tags (rnn_ner.add_label after
    initialize): the output layer and the CRF scores replaced by copies with rows of zeros for the
    tags added last (Thinc's resize_linear_weighted, crf.resize_crf_transitions), the encoder kept."""
    for ref, resize in (("output_layer", resize_linear_weighted), ("crf", resize_crf_transitions)):
        old = model.get_ref(ref)
        new = resize(old, new_nO)
        for node in model.walk():
            for i, layer in enumerate(node.layers):
                if layer is old:
                    node.layers[i] = new
                    if node is not model and node.has_dim("nO") is not False:  # with_array around the output layer
                        node.set_dim("nO", new_nO, force=True)
        model.set_ref(ref, new)
    model.set_dim("nO", new_nO, force=True)
    return model


@registry.architectures("spacy_rnn.RNNTextClassifier.v1")
def build_rnn_text_classifier_v1(
    encoder: Model[List[Doc], List[Floats2d]],
    exclusive_classes: bool,
    pooling: List[Pooling] = ["mean", "max"],
    bidirectional: Optional[bool] = None,
    nO: Optional[Positive] = None,
) -> Model[List[Doc], Floats2d]:
    """A text classifier: the encoder's token vectors pooled into one vector
    per doc, then a softmax over the labels (exclusive classes) or one
    sigmoid per label.

    encoder (Model[List[Doc], List[Floats2d]]): The token encoder, e.g. spacy_rnn.RNNEncoder.v2,
        or a spacy.Tok2VecListener.v1 of a shared encoder.
    exclusive_classes (bool): One label per text (softmax) or independent labels (sigmoids).
    pooling (List[str]): "mean", "max", "last", "attention" and/or "conv", concatenated in this
        order (see spacy_rnn.models.pooling). An empty doc pools to zeros.
    bidirectional (Optional[bool]): Whether the encoder's vectors are [forward; backward],
        which "last" needs to know; null reads it from a spacy_rnn encoder. Set it when
        "last" pools the vectors of a listener.
    nO (Optional[int]): Number of labels; inferred from the data at initialize when null.
    """
    # None: a listener whose width spacy_rnn.init_word_vocabularies.v1 sets at initialize (only
    # the poolings without weights can be built without it; build_pooling says so)
    width = encoder.get_dim("nO") if encoder.has_dim("nO") is True else None
    known = encoder.attrs.get(BIDIRECTIONAL_ATTR)  # a spacy_rnn encoder's own
    if bidirectional is not None and known is not None and bidirectional != known:
        raise ValueError(f"spacy_rnn.RNNTextClassifier: bidirectional = {str(bidirectional).lower()}, but the encoder "
                         f"is {'' if known else 'not '}bidirectional; leave it null to read it from the encoder")
    if bidirectional is None:
        bidirectional = known
        if bidirectional is None and "last" in pooling:
            raise ValueError('spacy_rnn.RNNTextClassifier: pooling "last" needs to know whether the '
                             "encoder is bidirectional; set bidirectional = true or false in the model's config")
    try:
        pooled = build_pooling(pooling, width, bool(bidirectional))
    except ValueError as err:
        raise ValueError(f"spacy_rnn.RNNTextClassifier: {err}") from None
    n_pooled = pooled.get_dim("nO") if pooled.has_dim("nO") is True else None  # else inferred at initialize
    if exclusive_classes:
        output_layer = with_cpu_gemm(Softmax_v2(nO, n_pooled))
        head = output_layer
    else:
        output_layer = with_cpu_gemm(Linear(nO, n_pooled))
        head = chain(output_layer, Logistic())
    model = chain(encoder, list2ragged(), pooled, head)
    model.set_ref("tok2vec", encoder)
    model.set_ref("output_layer", output_layer)
    model.attrs["multi_label"] = not exclusive_classes
    record_settings(model, exclusive_classes=exclusive_classes, pooling=list(pooling))
    return model


@registry.architectures("spacy_rnn.RNNLanguageModel.v1")
def build_rnn_language_model_v1(
    cell: Cell = "lstm",
    width: Positive = 200,
    depth: Depth = 2,
    word_width: Positive = 200,
    vocab_size: IntRange(2) = 10000,
    embed_dropout: Probability = 0.0,
    dropout: Probability = 0.0,
    output_dropout: Probability = 0.0,
    tie_weights: bool = False,
    chunk_len: Positive = 256,
) -> Model[List[Ints1d], List[Floats1d]]:
    """A left-to-right word-level language model: for each doc's word ids
    (0 = <unk>, 1 = <eos>, as the rnn_lm component numbers them), the natural
    log-probability of every word given the words before it, starting after
    an <eos>.

    cell (str): The recurrent cell: "rnn" (tanh), "lstm", "gru", or a linear-recurrence cell, "mingru" or "minlstm".
    width (int): Width of the recurrent state.
    depth (int): Number of stacked recurrent layers (1-4).
    word_width (int): Width of the word embedding.
    vocab_size (int): Room for this many words, <unk> and <eos> included; the
        component's initialize chooses the words (a smaller vocabulary leaves rows unused).
    embed_dropout (float): Dropout on the word embeddings.
    dropout (float): Dropout between recurrent layers.
    output_dropout (float): Dropout on the last layer's output.
    tie_weights (bool): Share the embedding matrix with the output layer; needs word_width == width.
    chunk_len (int): Long docs are read in chunks of this many words, the state carried over.
    """
    lm = RNNLanguageModel(
        vocab_size=vocab_size,
        embed_width=word_width,
        hidden_width=width,
        n_layers=depth,
        cell=cell,
        embed_dropout_prob=embed_dropout,
        dropout_prob=dropout,
        output_dropout_prob=output_dropout,
        tie_weights=tie_weights,
    )
    model = wrap_sequence_log_probs(SequenceLogProbs(lm, start_id=EOS_ID, chunk_len=chunk_len))
    record_settings(model, cell=cell, width=width, depth=depth, word_width=word_width, vocab_size=vocab_size,
                    tie_weights=tie_weights)
    return model
