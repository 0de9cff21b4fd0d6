"""minGRU / minLSTM: every scan form against the plain sequential recurrence,
gradients by gradcheck, variable lengths without padding effects, state
carried across chunks, and the cells inside the encoder and the LM."""
from typing import List

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spacy_rnn.models.pytorch import cpu, linear_recurrence, precision
from spacy_rnn.models.pytorch.linear_recurrence import (
    LinearRecurrence,
    MinRecurrentCell,
    linear_scan,
    scan_chunked,
    scan_loop,
)
from spacy_rnn.models.pytorch.recurrent import RecurrentEncoder


def sequential(a, b, h0):
    """The recurrence as written: h_t = a_t h_{t-1} + b_t, one step at a time, in plain Python."""
    h = h0.clone()
    out = []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1) if out else b.clone()


def random_coefficients(batch, length, width, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_a = torch.nn.functional.logsigmoid(3 * torch.randn(batch, length, width, generator=g, dtype=dtype))
    b = torch.randn(batch, length, width, generator=g, dtype=dtype)
    h0 = torch.randn(batch, width, generator=g, dtype=dtype)
    return log_a, b, h0


@pytest.mark.parametrize("length", [0, 1, 2, 7, 16, 17, 50])
@pytest.mark.parametrize("reverse", [False, True])
def test_every_scan_equals_the_sequential_recurrence(length, reverse):
    log_a, b, h0 = random_coefficients(3, length, 5)
    if reverse:
        log_a, b = log_a.flip(1), b.flip(1)
    expected = sequential(log_a.exp(), b, h0)
    for result in (scan_loop(log_a, b, h0), scan_chunked(log_a, b, h0, chunk_size=4), scan_chunked(log_a, b, h0, chunk_size=16),
                   linear_scan(log_a, b, h0, method="auto")):
        assert result.shape == expected.shape
        assert (result - expected).abs().max().item() <= 1e-5 if length else result.numel() == 0


def test_chunked_scan_is_stable_with_tiny_decays():
    """Products of many small a_t underflow in float32; the chunked form never divides by them."""
    log_a = torch.full((1, 40, 2), -30.0)
    b = torch.ones(1, 40, 2)
    result = scan_chunked(log_a, b, None, chunk_size=16)
    assert torch.isfinite(result).all()
    assert torch.allclose(result, sequential(log_a.exp(), b, torch.zeros(1, 2)), atol=1e-6)


@pytest.mark.parametrize("method", ["loop", "chunked"])
def test_scan_gradients_gradcheck(method):
    log_a, b, h0 = random_coefficients(2, 9, 3, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (log_a, b, h0))
    assert torch.autograd.gradcheck(lambda la, bb, h: linear_scan(la, bb, h, method=method, chunk_size=4), inputs)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_cell_gradients_gradcheck(cell):
    torch.manual_seed(0)
    module = MinRecurrentCell(cell, 4, 3).double()
    x = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: module(inp, scan="chunked"), (x,))


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_cell_is_the_recurrence_of_the_paper(cell):
    torch.manual_seed(0)
    module = MinRecurrentCell(cell, 4, 3)
    x = torch.randn(1, 5, 4)
    projected = module.proj(x)
    if cell == "mingru":
        k, candidate = projected.chunk(2, -1)
        z = torch.sigmoid(k)
        a, b = 1 - z, z * candidate
    else:
        k_f, k_i, candidate = projected.chunk(3, -1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        a, b = f / (f + i), i / (f + i) * candidate
    expected = sequential(a, b, torch.zeros(1, 3))
    assert torch.allclose(module(x, scan="loop"), expected, atol=1e-6)
    assert torch.allclose(module(x, scan="chunked"), expected, atol=1e-6)


def reference_stack(stack, x):
    """One sequence x (T, input_width) through the stack written out layer by
    layer: the backward cell reads the sequence flipped, its output flipped back;
    with short_conv, each layer's normed input mixed with the previous (and, bidirectional, the
    next) token's, zeros beyond the sequence."""
    x = x[None]
    for layer in range(stack.num_layers):
        normed = stack.cell_norms[layer](x)
        if stack.short_conv:
            weights = stack.conv_weights[layer]
            padded = F.pad(normed, (0, 0, 1, 1))  # a zero vector before and after the sequence
            normed = normed + weights[0] * padded[:, :-2]
            if stack.bidirectional:
                normed = normed + weights[1] * padded[:, 2:]
        parts = [stack.forward_cells[layer](normed, scan="loop")]
        if stack.bidirectional:
            parts.append(stack.backward_cells[layer](normed.flip(1), scan="loop").flip(1))
        y = torch.cat(parts, -1)
        x = x + y if x.shape[-1] == y.shape[-1] else y
        if stack.feed_forward:
            x = x + stack.feed_forwards[layer](stack.ff_norms[layer](x))
    return stack.final_norm(x)[0]


@pytest.mark.parametrize("scan", ["loop", "chunked"])
@pytest.mark.parametrize("feed_forward,output_gate,short_conv", [(False, False, False), (True, False, False),
                                                                  (False, True, False), (False, True, True)])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_stack_over_flat_tokens_is_the_layer_by_layer_recurrence(scan, feed_forward, output_gate, short_conv,
                                                                 bidirectional, cell):
    """forward_tokens (position-wise work on the tokens, both directions in one
    scan, packed or padded) equals each sequence run alone through the
    written-out stack, outputs and final states."""
    torch.manual_seed(0)
    stack = LinearRecurrence(cell, 4, 3, num_layers=3, bidirectional=bidirectional, feed_forward=feed_forward,
                             scan=scan, output_gate=output_gate, short_conv=short_conv).eval()
    for weights in stack.conv_weights:  # they start at zero, which would hide a wrong neighbour
        nn.init.normal_(weights)
    lengths = torch.tensor([5, 0, 1, 8, 5])
    x = torch.randn(int(lengths.sum()), 4)
    out, states = stack.forward_tokens(x, lengths)
    assert out.shape == (19, 6 if bidirectional else 3)
    assert states.shape == (3 * (2 if bidirectional else 1), 5, 3)
    start = 0
    for i, length in enumerate(lengths.tolist()):
        if length:
            expected = reference_stack(stack, x[start : start + length])
            assert (out[start : start + length] - expected).abs().max().item() <= 1e-5
            _, alone = stack.forward_tokens(x[start : start + length], torch.tensor([length]))
            assert (states[:, i] - alone[:, 0]).abs().max().item() <= 1e-5
        else:
            assert states[:, i].abs().max().item() == 0.0
        start += length


@pytest.mark.parametrize("scan", ["loop", "chunked"])
@pytest.mark.parametrize("output_gate,short_conv", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_prediction_without_gradients_computes_the_same(scan, output_gate, short_conv, cell):
    """Without gradients the stack works in place (gates over their pre-activations, the output
    gate and residual into the scan's output, the short convolution into the norm's output): the
    same outputs and states, and the input and the weights untouched."""
    torch.manual_seed(0)
    stack = LinearRecurrence(cell, 6, 3, num_layers=2, bidirectional=True, scan=scan, output_gate=output_gate,
                             short_conv=short_conv).eval()
    for weights in stack.conv_weights:
        nn.init.normal_(weights)
    lengths = torch.tensor([5, 0, 1, 8])
    x = torch.randn(int(lengths.sum()), 6)
    kept, weights = x.clone(), [p.detach().clone() for p in stack.parameters()]
    with torch.no_grad():
        predicted, predicted_states = stack.forward_tokens(x, lengths)
    assert torch.equal(x, kept)
    assert all(torch.equal(p, w) for p, w in zip(stack.parameters(), weights))
    out, states = stack.forward_tokens(x, lengths)
    assert (predicted - out).abs().max().item() <= 1e-6
    assert (predicted_states - states).abs().max().item() <= 1e-6


@pytest.mark.parametrize("scan", ["loop", "chunked"])
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_stack_gradients_gradcheck(scan, cell):
    """Gradients through the stack, packed scan included (minGRU's interpolating
    form too), with unequal and empty sequences, a start state, output gates and the short
    convolution."""
    torch.manual_seed(0)
    stack = LinearRecurrence(cell, 3, 2, num_layers=2, bidirectional=True, feed_forward=True, scan=scan,
                             output_gate=True, short_conv=True).double()
    for weights in stack.conv_weights:
        nn.init.normal_(weights)
    lengths = torch.tensor([3, 1, 0, 4])
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp, h: stack.forward_tokens(inp, lengths, h)[0], (x, h0))
    assert torch.autograd.gradcheck(lambda inp, h: stack.forward_tokens(inp, lengths, h)[1], (x, h0))


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_encoder_outputs_do_not_depend_on_the_batch(cell):
    """A sequence's outputs alone and padded inside a batch with longer and empty ones agree, both directions."""
    torch.manual_seed(0)
    encoder = RecurrentEncoder(cell=cell, input_width=6, hidden_width=5, n_layers=2, bidirectional=True, dropout_prob=0.0).eval()
    lengths = torch.tensor([4, 0, 9, 1])
    inputs = torch.randn(int(lengths.sum()), 6)
    together = encoder(inputs, lengths)
    start = 0
    for length in lengths.tolist():
        alone = encoder(inputs[start : start + length], torch.tensor([length]))
        assert (alone - together[start : start + length]).abs().max().item() <= 1e-5 if length else alone.shape[0] == 0
        start += length
    assert together.shape == (int(lengths.sum()), 10)


def test_state_carries_over_between_chunks_exactly():
    """Reading a stream in chunks with the state carried over equals reading it whole (the LM's TBPTT)."""
    torch.manual_seed(0)
    stack = LinearRecurrence("mingru", 4, 6, num_layers=2).eval()
    x = torch.randn(3, 23, 4)
    whole, _ = stack(x)
    state, parts = None, []
    for start in range(0, 23, 5):
        out, state = stack(x[:, start : start + 5], state)
        parts.append(out)
    assert (torch.cat(parts, 1) - whole).abs().max().item() <= 1e-5


def test_language_model_with_a_linear_cell_trains():
    from spacy_rnn.models.pytorch import RNNLanguageModel

    torch.manual_seed(0)
    lm = RNNLanguageModel(vocab_size=12, embed_width=8, hidden_width=8, n_layers=2, cell="mingru")
    ids = torch.randint(0, 12, (4, 10))
    optimizer = torch.optim.Adam(lm.parameters(), lr=0.02)
    for _ in range(60):
        logits, state = lm(ids[:, :-1], lm.init_state(4))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 12), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5
    assert state.shape == (2, 4, 8)


@pytest.mark.parametrize("feed_forward", [False, True])
@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("short_conv", [False, True])
def test_encoder_architecture_passes_its_stack_options_to_the_stack(feed_forward, output_gate, short_conv):
    from spacy_rnn.models.architectures import build_rnn_encoder_v2
    from spacy_rnn.models.wrappers import torch_modules

    model = build_rnn_encoder_v2(cell="mingru", width=8, depth=2, feed_forward=feed_forward, output_gate=output_gate,
                                 short_conv=short_conv, bf16_training=short_conv)  # both values, no fourth axis
    stacks = [m for module in torch_modules(model) for m in module.modules() if isinstance(m, LinearRecurrence)]
    assert len(stacks) == 1
    assert stacks[0].feed_forward is feed_forward
    assert stacks[0].bf16_training is short_conv
    assert len(stacks[0].feed_forwards) == (2 if feed_forward else 0)
    # a gate, a candidate and, with the output gate, its part, for each of 8 hidden units
    assert stacks[0].forward_cells[0].proj.out_features == (3 if output_gate else 2) * 8
    # the previous and the next token's weights, for each layer's input
    assert [tuple(w.shape) for w in stacks[0].conv_weights] == ([(2, 240), (2, 16)] if short_conv else [])  # 96 + 16 + 48 + 16 + 64 wide, then 2 x 8


@pytest.mark.parametrize("scan", ["loop", "chunked"])
def test_stack_over_no_tokens_keeps_the_state(scan):
    stack = LinearRecurrence("mingru", 4, 3, num_layers=2, bidirectional=True, scan=scan)
    state = torch.randn(4, 2, 3)
    out, new_state = stack.forward_tokens(torch.zeros(0, 4), torch.tensor([0, 0]), state)
    assert out.shape == (0, 6)
    assert torch.equal(new_state, state)
    _, zero_state = stack.forward_tokens(torch.zeros(0, 4), torch.tensor([0, 0]))
    assert zero_state.shape == (4, 2, 3) and zero_state.abs().max().item() == 0.0


def test_packed_scan_equals_the_sequential_recurrence_per_sequence():
    from spacy_rnn.models.pytorch.linear_recurrence import scan_packed

    lengths = torch.tensor([3, 0, 7, 1, 7])
    log_a, b, h0 = random_coefficients(1, int(lengths.sum()), 4)
    h0 = torch.randn(5, 4)
    out = scan_packed(log_a[0], b[0], lengths, h0)
    start = 0
    for i, length in enumerate(lengths.tolist()):
        expected = sequential(log_a[:, start : start + length].exp(), b[:, start : start + length], h0[i : i + 1])[0]
        assert (out[start : start + length] - expected).abs().max().item() <= 1e-5 if length else True
        start += length


@pytest.mark.parametrize("split", [0, 2, 4])
def test_packed_scan_runs_the_columns_after_split_backward_in_time(split):
    """Columns [split:] scan each sequence from its own last token to its first, from h0."""
    from spacy_rnn.models.pytorch.linear_recurrence import scan_packed

    lengths = torch.tensor([3, 0, 7, 1, 7, 2])
    log_a, b, _ = random_coefficients(1, int(lengths.sum()), 4)
    h0 = torch.randn(6, 4)
    out = scan_packed(log_a[0], b[0], lengths, h0, split=split)
    start = 0
    for i, length in enumerate(lengths.tolist()):
        la, bb = log_a[:, start : start + length], b[:, start : start + length]
        forward = sequential(la.exp(), bb, h0[i : i + 1])[0]
        backward = sequential(la.flip(1).exp(), bb.flip(1), h0[i : i + 1])[0].flip(0)
        expected = torch.cat([forward[:, :split], backward[:, split:]], dim=-1)
        assert (out[start : start + length] - expected).abs().max().item() <= 1e-5 if length else True
        start += length


@pytest.mark.parametrize("interpolate", [False, True])
def test_packed_scan_overwrites_its_inputs_only_when_asked(interpolate):
    """overwrite=True (prediction) writes the states over b and returns b, the same states as a
    scan into a new tensor, both directions; with inputs that need a gradient it refuses."""
    from spacy_rnn.models.pytorch.linear_recurrence import _PackedScan
    from spacy_rnn.models.pytorch.packing import packing_order

    lengths = torch.tensor([3, 0, 7, 1, 7, 2])
    _, sizes = packing_order(lengths)
    a, b = torch.rand(int(lengths.sum()), 4), torch.randn(int(lengths.sum()), 4)
    h0 = torch.randn(6, 4)
    expected = _PackedScan.apply(a, b, h0, sizes.tolist(), 2, interpolate)
    overwritten = b.clone()
    out = _PackedScan.apply(a, overwritten, h0, sizes.tolist(), 2, interpolate, True)
    assert out.data_ptr() == overwritten.data_ptr() and torch.equal(overwritten, expected)
    with pytest.raises(ValueError, match="overwrite=True is for prediction"):
        _PackedScan.apply(a, b.clone().requires_grad_(), h0, sizes.tolist(), 2, interpolate, True)


@pytest.mark.parametrize("split", [0, 1, 3])
def test_packed_scan_gradients_gradcheck_both_directions(split):
    from spacy_rnn.models.pytorch.linear_recurrence import scan_packed

    lengths = torch.tensor([4, 1, 0, 3])
    log_a, b, _ = random_coefficients(1, int(lengths.sum()), 3, dtype=torch.float64)
    h0 = torch.randn(4, 3, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (log_a[0], b[0], h0))
    assert torch.autograd.gradcheck(lambda la, bb, h: scan_packed(la, bb, lengths, h, split=split), inputs)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("cell,output_gate", [("mingru", False), ("minlstm", False), ("mingru", True)])
def test_split_projections_give_the_same_outputs(cell, output_gate, bidirectional):
    """split_projections (done before int8 quantization) changes how the stack multiplies, not what it computes."""
    torch.manual_seed(0)
    stack = LinearRecurrence(cell, 5, 4, num_layers=2, bidirectional=bidirectional, output_gate=output_gate).eval()
    lengths = torch.tensor([6, 0, 1, 3])
    x = torch.randn(10, 5)
    with torch.no_grad():
        before, before_state = stack.forward_tokens(x, lengths)
        stack.split_projections()
        after, after_state = stack.forward_tokens(x, lengths)
    parts = (2 if cell == "mingru" else 3) + output_gate
    directions = 2 if bidirectional else 1
    assert [[linear.out_features for linear in layer] for layer in stack.part_projections] == [[4 * directions] * parts] * 2
    assert (before - after).abs().max().item() <= 1e-5
    assert (before_state - after_state).abs().max().item() <= 1e-5


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("cell,output_gate", [("mingru", True), ("minlstm", False)])
def test_each_part_of_a_projection_is_contiguous(cell, output_gate, split):
    """The gates' elementwise ops run on whole tensors, not on column slices of one wide product
    (several times slower on the CPU), with and without int8-ready split projections."""
    stack = LinearRecurrence(cell, 5, 4, num_layers=2, bidirectional=True, output_gate=output_gate).eval()
    if split:
        stack.split_projections()
    parts = stack._projection(1, torch.randn(7, 8))
    assert len(parts) == (2 if cell == "mingru" else 3) + output_gate
    assert all(part.shape == (7, 8) and part.is_contiguous() for part in parts)


def bf16_pair(scan: str) -> List[LinearRecurrence]:
    """Two stacks with the same weights, in train mode, without and with bf16_training."""
    stacks = []
    for bf16 in (False, True):
        torch.manual_seed(1)
        stacks.append(LinearRecurrence("mingru", 6, 4, num_layers=2, bidirectional=True, scan=scan, output_gate=True,
                                       short_conv=True, bf16_training=bf16).train())
    return stacks


@pytest.mark.parametrize("scan", ["loop", "chunked"])
def test_bf16_training_runs_the_projections_in_bfloat16_in_training_only(scan, monkeypatch):
    """bf16_training, on a device with native bfloat16 products: in training (train mode, with
    gradients) the layers' products run in bfloat16, so the outputs move by bfloat16 rounding but
    stay float32, and every weight gets a float32 gradient close to the float32 stack's; in eval
    mode and without gradients the stack computes exactly what the float32 stack does with the
    same weights."""
    monkeypatch.setattr(linear_recurrence, "native_bf16_products", lambda device: True)
    torch.manual_seed(0)
    lengths = torch.tensor([5, 0, 1, 8])
    x = torch.randn(int(lengths.sum()), 6)
    stacks = bf16_pair(scan)
    outputs = []
    for stack in stacks:
        out, _ = stack.forward_tokens(x, lengths)
        out.pow(2).sum().backward()
        outputs.append(out)
    assert outputs[1].dtype == torch.float32
    difference = (outputs[0] - outputs[1]).abs().max().item()
    assert 0 < difference < 0.05  # bfloat16 keeps 8 bits of mantissa
    for full, half in zip(stacks[0].parameters(), stacks[1].parameters()):
        assert half.grad is not None and half.grad.dtype == torch.float32
        assert (full.grad - half.grad).abs().max().item() <= 0.05 * max(full.grad.abs().max().item(), 1.0)
    for stack in stacks:
        stack.eval()
    with torch.no_grad():
        predicted = [stack.forward_tokens(x, lengths)[0] for stack in stacks]
    assert torch.equal(predicted[0], predicted[1])
    evaluated = [stack.forward_tokens(x, lengths)[0] for stack in stacks]  # eval mode, with gradients
    assert torch.equal(evaluated[0], evaluated[1])


def test_bf16_training_is_float32_training_without_native_bfloat16(monkeypatch):
    """Where the device would only emulate bfloat16 products, bf16_training trains in float32:
    the same outputs as without it."""
    monkeypatch.setattr(linear_recurrence, "native_bf16_products", lambda device: False)
    lengths = torch.tensor([5, 0, 1, 8])
    x = torch.randn(int(lengths.sum()), 6)
    outputs = [stack.forward_tokens(x, lengths)[0] for stack in bf16_pair("loop")]
    assert torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize("flags, native", [("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
                                           ("fpu avx2 amx_bf16 amx_tile", True), ("fpu avx2 avx512f", False)])
def test_native_bf16_products_reads_the_cpu_flags(flags, native, tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    monkeypatch.setattr(cpu, "CPUINFO", cpuinfo)
    cpu.cpu_flags.cache_clear()
    try:
        assert precision.native_bf16_products(torch.device("cpu")) is native
        assert precision.native_bf16_products(torch.device("meta")) is False
        monkeypatch.setattr(cpu, "CPUINFO", tmp_path / "missing")
        cpu.cpu_flags.cache_clear()
        assert precision.native_bf16_products(torch.device("cpu")) is False
    finally:
        cpu.cpu_flags.cache_clear()
