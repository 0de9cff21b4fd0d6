"""Values through the Thinc glue (spacy_rnn.models.wrappers), with fixed weights.

Each wrapper is compared with its torch module called directly on the same
inputs: the forward output must come back as one array per doc, in order, and
the d_outputs handed to backprop must reach the torch parameters exactly as
torch autograd puts them there for the same output gradient.
"""
import copy

import numpy
import pytest
import torch
from numpy.testing import assert_allclose

from spacy_rnn.models.featurize import TokenBatch
from spacy_rnn.models.pytorch import RNNLanguageModel, SequenceLogProbs, TokenEncoder
from spacy_rnn.models.wrappers import _convert_lm_outputs, wrap_sequence_log_probs, wrap_token_encoder

LENGTHS = [2, 0, 3]  # an empty doc between two others


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest


def fill_parameters(module: torch.nn.Module, seed: int) -> None:
    """Known, distinct values in every parameter."""
    rng = numpy.random.RandomState(seed)
    with torch.no_grad():
        for _, param in module.named_parameters():
            param.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, tuple(param.shape)).astype("float32")))


def tiny_encoder(cell="lstm", bidirectional=True, char_filters=2) -> TokenEncoder:
    encoder = TokenEncoder(
        n_words=6,
        word_width=2,
        feature_rows=[7, 5],
        feature_widths=[2, 1],
        n_chars=11,
        char_width=2,
        char_filters=char_filters,
        cell=cell,
        hidden_width=3,
        n_layers=1,
        bidirectional=bidirectional,
        dropout_prob=0.0,
        word_dropout_prob=0.0,
    )
    fill_parameters(encoder, seed=0)
    return encoder


def token_batch() -> TokenBatch:
    """Five tokens in docs of LENGTHS: words "ab", "c" | (empty) | "dog", "c", "xy"."""
    words = ["ab", "c", "dog", "xy"]
    code_points = numpy.zeros((len(words), 3), dtype="int64")
    for row, word in enumerate(words):
        code_points[row, : len(word)] = [ord(c) + 1 for c in word]
    return TokenBatch(
        word_ids=numpy.array([1, 2, 0, 2, 5], dtype="int64"),  # the third token is an unknown word
        hashes=(numpy.arange(5 * 2 * 4, dtype="uint64").reshape(5, 2, 4) * 2654435761 % 2**32).astype("uint32"),
        word_index=numpy.array([0, 1, 2, 1, 3], dtype="int64"),
        code_points=code_points,
        lengths=numpy.array(LENGTHS, dtype="int64"),
    )


def torch_inputs(batch: TokenBatch):
    return (
        torch.from_numpy(batch.word_ids),
        torch.from_numpy(batch.hashes.astype("int64")),
        torch.from_numpy(batch.word_index),
        torch.from_numpy(batch.code_points),
        torch.from_numpy(batch.lengths),
    )


def per_doc(flat: numpy.ndarray, lengths) -> list:
    ends = numpy.cumsum(lengths)
    return [flat[end - n : end] for n, end in zip(lengths, ends)]


def known_d_outputs(lengths, width=None, seed=1) -> list:
    """A distinct output gradient for every token (a different one per doc)."""
    rng = numpy.random.RandomState(seed)
    shape = (lambda n: (n, width)) if width else (lambda n: (n,))
    return [rng.uniform(-1, 1, shape(n)).astype("float32") for n in lengths]


def param_grads(module: torch.nn.Module) -> dict:
    return {name: p.grad.detach().clone() if p.grad is not None else None for name, p in module.named_parameters()}


def assert_same_grads(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        assert got[name] is not None, f"no gradient reached {name}"
        assert_allclose(got[name].numpy(), grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    assert any(float(g.abs().sum()) > 0 for g in expected.values())


# The token encoder


@pytest.mark.parametrize("cell,bidirectional", [("lstm", True), ("gru", False)])
def test_token_encoder_outputs_one_array_per_doc_equal_to_the_module(cell, bidirectional):
    encoder = tiny_encoder(cell, bidirectional)
    batch = token_batch()
    with torch.no_grad():
        expected = encoder.eval()(*torch_inputs(batch)).numpy()  # (5, width)
    width = 6 if bidirectional else 3
    assert expected.shape == (5, width)
    model = wrap_token_encoder(encoder)
    assert model.get_dim("nO") == width
    for Y in (model.predict(batch), model.begin_update(batch)[0]):
        assert isinstance(Y, list) and len(Y) == len(LENGTHS)
        assert [y.shape for y in Y] == [(n, width) for n in LENGTHS]
        assert all(isinstance(y, numpy.ndarray) and y.dtype == numpy.float32 for y in Y)
        for y, rows in zip(Y, per_doc(expected, LENGTHS)):
            assert_allclose(y, rows, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cell,bidirectional", [("lstm", True), ("rnn", False)])
def test_token_encoder_backprop_puts_the_autograd_gradients_on_the_parameters(cell, bidirectional):
    encoder = tiny_encoder(cell, bidirectional)
    reference = copy.deepcopy(encoder)
    batch = token_batch()
    width = encoder.output_width
    d_outputs = known_d_outputs(LENGTHS, width)
    # torch alone: the gradient of sum(Y * dY) is what backprop of dY must give.
    Y_ref = reference.train()(*torch_inputs(batch))
    (Y_ref * torch.from_numpy(numpy.concatenate(d_outputs))).sum().backward()
    expected = param_grads(reference)

    model = wrap_token_encoder(encoder)
    Y, backprop = model.begin_update(batch)
    assert all(g is None for g in param_grads(encoder).values())
    backprop(d_outputs)
    assert_same_grads(param_grads(encoder), expected)


def test_token_encoder_word_gradient_by_hand():
    """One tanh RNN layer, left to right, no character CNN: a doc's last token
    feeds no later step, so its word row gets exactly
    W_ih[:, :word_width].T @ ((1 - y**2) * dy) from its own output y, dy."""
    encoder = tiny_encoder("rnn", bidirectional=False, char_filters=0)
    batch = token_batch()
    d_outputs = known_d_outputs(LENGTHS, 3)
    model = wrap_token_encoder(encoder)
    Y, backprop = model.begin_update(batch)
    backprop(d_outputs)
    W_ih = encoder.encoder.rnn.weight_ih_l0.detach().numpy()  # (hidden, input)
    grad = encoder.words.weight.grad.numpy()
    # Word 5 is only the last token of the third doc; word 1 only the first
    # token of the first doc, whose gradient also comes through the second token.
    y, dy = Y[2][-1], d_outputs[2][-1]
    assert_allclose(grad[5], W_ih[:, :2].T @ ((1 - y**2) * dy), rtol=1e-5, atol=1e-7)
    assert not numpy.allclose(grad[1], W_ih[:, :2].T @ ((1 - Y[0][0] ** 2) * d_outputs[0][0]), atol=1e-7)
    assert_allclose(grad[3], 0.0)  # word 3 is not in the batch
    assert_allclose(grad[4], 0.0)


# The language model


def tiny_lm_module() -> SequenceLogProbs:
    lm = RNNLanguageModel(vocab_size=7, embed_width=3, hidden_width=4, n_layers=1, cell="gru")
    fill_parameters(lm, seed=2)
    # chunk_len 2: the longest doc is read in two chunks, the state carried over.
    return SequenceLogProbs(lm, start_id=1, chunk_len=2)


LM_IDS = [numpy.array([2, 3, 4, 5], dtype="int32"), numpy.array([], dtype="int32"), numpy.array([6, 2], dtype="int32")]


def lm_log_probs_by_hand(lm: RNNLanguageModel, ids, start_id: int) -> numpy.ndarray:
    """log p(ids[i] | start_id, ids[:i]) from the language model's logits."""
    if len(ids) == 0:
        return numpy.zeros((0,), dtype="float32")
    inputs = torch.tensor([[start_id] + list(ids[:-1])], dtype=torch.int64)
    with torch.no_grad():
        logits, _ = lm.eval()(inputs)
    log_probs = torch.log_softmax(logits[0], dim=-1)
    return log_probs[torch.arange(len(ids)), torch.tensor(ids, dtype=torch.int64)].numpy()


def test_lm_outputs_are_the_module_log_probs_per_doc():
    module = tiny_lm_module()
    flat = torch.from_numpy(numpy.concatenate(LM_IDS).astype("int64"))
    lengths = torch.tensor([len(x) for x in LM_IDS])
    with torch.no_grad():
        expected = module.eval()(flat, lengths).numpy()
    by_hand = [lm_log_probs_by_hand(module.lm, ids, start_id=1) for ids in LM_IDS]
    assert_allclose(expected, numpy.concatenate(by_hand), rtol=1e-5, atol=1e-6)
    model = wrap_sequence_log_probs(module)
    for Y in (model.predict(LM_IDS), model.begin_update(LM_IDS)[0]):
        assert [y.shape for y in Y] == [(len(x),) for x in LM_IDS]
        for y, rows, hand in zip(Y, per_doc(expected, [len(x) for x in LM_IDS]), by_hand):
            assert_allclose(y, rows, rtol=1e-5, atol=1e-6)
            assert_allclose(y, hand, rtol=1e-5, atol=1e-6)
            assert numpy.all(y < 0)


def test_lm_backprop_passes_the_d_outputs_as_grad_tensors():
    module = tiny_lm_module()
    model = wrap_sequence_log_probs(module)
    d_outputs = known_d_outputs([len(x) for x in LM_IDS])
    Y_torch = torch.arange(6, dtype=torch.float32, requires_grad=True) * 1.0
    outputs, backprop = _convert_lm_outputs(model, (LM_IDS, Y_torch), True)
    assert [o.tolist() for o in outputs] == [[0, 1, 2, 3], [], [4, 5]]
    grads = backprop(d_outputs)
    assert grads.args[0] is Y_torch
    assert_allclose(grads.kwargs["grad_tensors"].numpy(), numpy.concatenate(d_outputs))


def test_lm_backprop_puts_the_autograd_gradients_on_the_parameters():
    module = tiny_lm_module()
    reference = copy.deepcopy(module)
    d_outputs = known_d_outputs([len(x) for x in LM_IDS])
    flat = torch.from_numpy(numpy.concatenate(LM_IDS).astype("int64"))
    lengths = torch.tensor([len(x) for x in LM_IDS])
    Y_ref = reference.train()(flat, lengths)
    (Y_ref * torch.from_numpy(numpy.concatenate(d_outputs))).sum().backward()
    expected = param_grads(reference)

    model = wrap_sequence_log_probs(module)
    Y, backprop = model.begin_update(LM_IDS)
    backprop(d_outputs)
    assert_same_grads(param_grads(module), expected)


@pytest.mark.parametrize("int8", [False, True])
def test_shim_goes_through_the_multiprocessing_pickler(int8):
    """nlp.pipe's spawned workers receive the pipeline through multiprocessing's
    pickler, with torch's reducers that share tensor storage between processes;
    an int8 module (torch's dynamically quantized Linear) cannot be shared so."""
    import pickle
    import warnings
    from multiprocessing.reduction import ForkingPickler

    from spacy_rnn.pipeline.quantize import quantize_modules

    encoder = tiny_encoder(cell="mingru").eval()
    if int8:
        assert quantize_modules([encoder]) > 0
    model = wrap_token_encoder(encoder)
    expected = model.predict(token_batch())
    data = ForkingPickler.dumps(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor torch's deprecation warnings for each int8 tensor read
        restored = pickle.loads(data)
    for got, want in zip(restored.predict(token_batch()), expected):
        assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_lengths_stay_on_the_cpu_whatever_thincs_default_device(monkeypatch):
    """After spacy.require_gpu(), xp2torch without a device puts a tensor on the GPU: the sequence
    lengths went there, and packing them (a CPU arange added to them; PackedSequence's batch
    sizes) fails on a GPU. Thinc's default device is made "meta" here to show where they go."""
    import thinc.util

    from spacy_rnn.models.wrappers import _convert_inputs, _convert_lm_inputs

    encoder = wrap_token_encoder(tiny_encoder())
    lm = wrap_sequence_log_probs(tiny_lm_module())
    monkeypatch.setattr(thinc.util, "get_torch_default_device", lambda: torch.device("meta"))
    args, _ = _convert_inputs(encoder, token_batch(), False)
    assert args.args[-1].device.type == "cpu"
    lm_args, _ = _convert_lm_inputs(lm, [numpy.array([2, 3]), numpy.array([4])], False)
    assert lm_args.args[-1].device.type == "cpu"
