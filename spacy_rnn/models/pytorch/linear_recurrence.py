"""Linear-recurrence cells: minGRU and minLSTM (Feng et al. 2024, "Were RNNs
All We Needed?").

The gates depend on x_t only, so one matrix product over the whole sequence
gives, per step, a decay a_t in (0, 1) and an input b_t; what is left is the
linear scan h_t = a_t * h_{t-1} + b_t.

- minGRU: z_t = sigmoid(W_z x_t), h~_t = W_h x_t;
  a_t = 1 - z_t, b_t = z_t * h~_t.
- minLSTM: f_t = sigmoid(W_f x_t), i_t = sigmoid(W_i x_t), h~_t = W_h x_t;
  normalized f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t);
  a_t = f'_t, b_t = i'_t * h~_t.

The chunked scan reads the decays as log a_t (log-sigmoids); the loop reads
a_t itself (for minGRU one sigmoid: a_t = 1 - z_t).

Scans (all exact, the same numbers up to rounding):
- "loop": step by step, with the gradient written out as the reverse scan
  (one autograd node per scan, not a few per step). Over padded sequences
  (`scan_loop`, `linear_scan`) or, as the stacks run it on the CPU, over
  packed tokens (`scan_packed`): step t updates only the sequences still
  running, so no padding is computed, and a backward direction steps from
  each sequence's own end, so nothing is reversed. Fast on the CPU once the
  matrix products are out of the loop.
- "chunked": closed form inside chunks of `chunk_size` steps,
  h_t = sum_{s<=t} exp(c_t - c_s) b_s + exp(c_t) h_0 with c the cumulative
  sum of log a inside the chunk (every exponent <= 0, so nothing overflows),
  the state carried between chunks: chunk_size times fewer steps, each a
  kernel launch on a GPU.

Stacks follow the reference implementations: pre-norm residual blocks,
x = x + cell(LayerNorm(x)) then, with `feed_forward`, x = x + FF(LayerNorm(x))
(a GELU feed-forward of twice the width), a residual only where the widths
match (not into the first layer), and a final LayerNorm. Without the
feed-forward blocks the stack does about a third of the matrix work
(scripts/benchmark_scans.py measures both). With `short_conv`, each layer's
normed input is first mixed with its neighbours', x_t + u * x_{t-1} + v *
x_{t+1} per channel (v only bidirectional), a depthwise convolution of width 3
within each sequence as Mamba and H3 put before their recurrences, so that the
gates, which otherwise see x_t alone, see the tokens beside it. A state passed
in does not carry the previous chunk's last input, so a stack whose state
carries over between chunks (the language model) does without it. Bidirectional: a second cell
reads each sequence right to left; both directions' projections run as one
matrix product per part (gate, candidate, output gate: their weights side by
side, each part's output contiguous) and their coefficients go
through one scan of twice the width, the backward half stepping from each
sequence's end (packed) or over each sequence reversed (chunked).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import Dropout
from .packing import packing_order, padding_index
from .precision import native_bf16_products

LINEAR_CELLS = ("mingru", "minlstm")
SCANS = ("loop", "chunked")


class _LoopScan(torch.autograd.Function):
    """The scan step by step, time-major, with its gradient written out as the
    reverse scan g_t = dL/dh_t + a_{t+1} g_{t+1}, so that autograd records
    one node for the whole sequence rather than a few per step."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        # a, b: (T, batch, width) contiguous; h0: (batch, width)
        out = torch.empty_like(b)
        h = h0
        for t in range(b.shape[0]):
            h = torch.addcmul(b[t], a[t], h)
            out[t] = h
        ctx.save_for_backward(a, out, h0)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        a, out, h0 = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_b = torch.empty_like(grad_out)
        g = torch.zeros_like(h0)
        for t in range(grad_out.shape[0] - 1, -1, -1):
            g = grad_out[t] + g
            grad_b[t] = g
            g = g * a[t]
        previous = torch.cat([h0[None], out[:-1]], dim=0)
        return grad_b * previous, grad_b, g


def scan_loop(log_a: torch.Tensor, b: torch.Tensor, h0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """h_t = exp(log_a_t) * h_{t-1} + b_t over dim 1; log_a, b: (batch, T, width); h0: (batch, width)."""
    if b.shape[1] == 0:
        return b.new_zeros(b.shape)
    h0 = h0 if h0 is not None else b.new_zeros((b.shape[0], b.shape[2]))
    a = log_a.exp().transpose(0, 1).contiguous()
    return _LoopScan.apply(a, b.transpose(0, 1).contiguous(), h0).transpose(0, 1)


def _earlier_rows(sizes: torch.Tensor) -> torch.Tensor:
    """For packed rows (blocks of `sizes` rows, one per step), the row of the
    same sequence one step earlier of each row after the first block."""
    return torch.arange(int(sizes[0]), int(sizes.sum())) - torch.repeat_interleave(sizes[:-1], sizes[1:])


# Rows of a (n_tokens, width) tensor: a slice where they are consecutive (in
# packed order, every row after the first step's block), else their indices.
Rows = Union[slice, torch.Tensor]


def _take_rows(x: torch.Tensor, rows: Rows) -> torch.Tensor:
    """x's rows (a view for a slice)."""
    return x[rows] if isinstance(rows, slice) else x.index_select(0, rows)


def _add_to_rows(x: torch.Tensor, rows: Rows, values: torch.Tensor, inplace: bool) -> torch.Tensor:
    """x with values added to its rows; in place if asked. A slice of rows is
    added to as one block, without the index_add a gather of indices needs."""
    if not isinstance(rows, slice):
        return x.index_add_(0, rows, values) if inplace else x.index_add(0, rows, values)
    if not inplace:
        x = x.clone()
    x[rows] += values
    return x


def _previous_rows(sizes: List[int], device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For packed rows (blocks of `sizes` rows, one per step): each row's
    position in its block (= its sequence in longest-first order), the row of
    the same sequence one step earlier (forward: for the rows after the first
    block) and one step later (backward), and whether that later row exists.
    Returns (position, earlier, later, continues), row indices into the packed rows."""
    sizes_t = torch.tensor(sizes)
    n_tokens = int(sizes_t.sum())
    starts = torch.cumsum(sizes_t, 0) - sizes_t
    rows = torch.arange(n_tokens)
    position = rows - torch.repeat_interleave(starts, sizes_t)
    earlier = _earlier_rows(sizes_t)
    later_sizes = torch.repeat_interleave(torch.cat([sizes_t[1:], sizes_t.new_zeros(1)]), sizes_t)
    continues = position < later_sizes
    later = torch.where(continues, rows + torch.repeat_interleave(sizes_t, sizes_t), 0)
    return position.to(device), earlier.to(device), later.to(device), continues.to(device)


class _PackedScan(torch.autograd.Function):
    """The loop over packed rows (time-major, longest sequence first; step t
    holds the sizes[t] sequences still running, as in torch's PackedSequence),
    so no padding is ever scanned. Columns [:split] run forward in time,
    h_t = a_t h_{t-1} + b_t; columns [split:] backward in time, h_t = a_t
    h_{t+1} + b_t, each sequence starting from h0 at its own last step: the
    backward direction needs no reversed copy of its input or output. Each
    step writes its rows in place (no allocation per step) through views made
    once per scan (Tensor.split into the steps' blocks), so a step costs one
    kernel and at most a slice or two of Python. The gradient is the same pair
    of scans run the other way in time, written out; the states it multiplies
    with (each row's previous state) are gathered in one indexing op.

    With interpolate=True the inputs are minGRU's gate z_t and candidate
    h~_t, and each step is h_t = lerp(h_prev, h~_t, z_t) = (1 - z_t) h_prev +
    z_t h~_t: the same recurrence, without computing a_t and b_t first.

    With overwrite=True (prediction: no gradient) the states are written over
    b, each step over its own inputs, and b is returned: no (n_tokens, width)
    output to allocate and one tensor fewer to stream through per step
    (README: "int8 prediction since commit 9549075")."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, batch_sizes: List[int], split: int,
                interpolate: bool = False, overwrite: bool = False) -> torch.Tensor:
        # a, b: (n_tokens, width) packed; h0: (batch, width) in the packed (longest first) order
        if overwrite and (a.requires_grad or b.requires_grad or h0.requires_grad):
            raise ValueError("_PackedScan: overwrite=True is for prediction; the gradient would need the inputs it overwrites")
        out = b if overwrite else torch.empty_like(b)
        steps = len(batch_sizes)

        def step(decay: torch.Tensor, inputs: torch.Tensor, previous: torch.Tensor, target: torch.Tensor) -> None:
            if interpolate:
                torch.lerp(previous, inputs, decay, out=target)
            else:
                torch.addcmul(inputs, decay, previous, out=target)

        for columns, forward_in_time in ((slice(0, split), True), (slice(split, b.shape[1]), False)):
            if columns.start == columns.stop:
                continue
            # each step's rows of this direction's columns, as views
            A, B, O = (tensor[:, columns].split(batch_sizes) for tensor in (a, b, out))
            start = h0[:, columns]
            if forward_in_time:
                for t in range(steps):
                    n = batch_sizes[t]
                    step(A[t], B[t], start[:n] if t == 0 else O[t - 1][:n], O[t])
            else:
                for t in range(steps - 1, -1, -1):
                    n = batch_sizes[t]
                    m = batch_sizes[t + 1] if t + 1 < steps else 0  # the sequences that go on to step t + 1
                    if m == n:
                        step(A[t], B[t], O[t + 1], O[t])
                        continue
                    if m:
                        step(A[t][:m], B[t][:m], O[t + 1], O[t][:m])
                    step(A[t][m:], B[t][m:], start[m:n], O[t][m:])  # sequences whose last step is t start from h0
        ctx.save_for_backward(a, b, out, h0)
        ctx.batch_sizes, ctx.split, ctx.interpolate = batch_sizes, split, interpolate
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        a, b, out, h0 = ctx.saved_tensors
        sizes, split = ctx.batch_sizes, ctx.split
        if ctx.interpolate:  # as h_t = a_t h_prev + b_t with a = 1 - z, b = z h~
            z, candidate = a, b
            a = 1 - z
        steps, width = len(sizes), out.shape[1]
        fwd, bwd = slice(0, split), slice(split, width)
        grad_b = grad_out.contiguous().clone()  # becomes dL/dh_t including what flows back through the recurrence
        previous = torch.empty_like(out)  # h_{t-1} (forward columns) or h_{t+1} (backward columns) of each row
        grad_h0 = torch.zeros_like(h0)
        position, earlier, later, continues = _previous_rows(sizes, out.device)
        if split > 0:
            G, A = grad_b[:, fwd].split(sizes), a[:, fwd].split(sizes)
            for t in range(steps - 2, -1, -1):  # g_t += a_{t+1} g_{t+1}
                G[t][: sizes[t + 1]].addcmul_(A[t + 1], G[t + 1])
            previous[: sizes[0], fwd] = h0[: sizes[0], fwd]
            previous[sizes[0]:, fwd] = out[earlier, fwd]
            grad_h0[: sizes[0], fwd] = A[0] * G[0]
        if split < width:
            G, A = grad_b[:, bwd].split(sizes), a[:, bwd].split(sizes)
            for t in range(1, steps):  # g_t += a_{t-1} g_{t-1}
                n = sizes[t]
                G[t].addcmul_(A[t - 1][:n], G[t - 1][:n])
            previous[:, bwd] = torch.where(continues[:, None], out[later, bwd], h0[position, bwd])
            ends = ~continues  # each sequence's last step, where the backward direction starts from h0
            grad_h0[position[ends], bwd] = a[ends, bwd] * grad_b[ends, bwd]
        grad_a = grad_b * previous
        if ctx.interpolate:  # d/dz of (1 - z) h_prev + z h~ is h~ - h_prev; d/dh~ is z
            return grad_b * candidate - grad_a, grad_b * z, grad_h0, None, None, None, None
        return grad_a, grad_b, grad_h0, None, None, None, None


def scan_packed(log_a: torch.Tensor, b: torch.Tensor, lengths: torch.Tensor,
                h0: Optional[torch.Tensor] = None, split: Optional[int] = None) -> torch.Tensor:
    """The scan over the tokens of sequences given one after another: log_a,
    b: (n_tokens, width), lengths: (batch,) int64 on the CPU summing to
    n_tokens, h0: (batch, width) or None. Columns [:split] (all by default)
    run forward in time, columns [split:] backward, each sequence from its own
    last token. Returns h, (n_tokens, width), in the same order. On the CPU
    the fastest form: no step touches padding."""
    lengths = lengths.cpu()
    if b.shape[0] == 0:
        return b.new_zeros(b.shape)
    packed_index, batch_sizes = packing_order(lengths)
    packed_index = packed_index.to(b.device)
    order = torch.argsort(lengths, descending=True, stable=True).to(b.device)
    h0 = h0[order] if h0 is not None else b.new_zeros((len(lengths), b.shape[1]))
    split = b.shape[1] if split is None else split
    packed = _PackedScan.apply(log_a[packed_index].exp(), b[packed_index], h0, batch_sizes.tolist(), split)
    out = torch.empty_like(packed)
    out[packed_index] = packed
    return out


def scan_chunked(log_a: torch.Tensor, b: torch.Tensor, h0: Optional[torch.Tensor] = None, chunk_size: int = 16) -> torch.Tensor:
    """The same scan in closed form inside chunks of chunk_size steps."""
    batch, length, width = b.shape
    h = h0 if h0 is not None else b.new_zeros((batch, width))
    outputs = []
    for start in range(0, length, chunk_size):
        la = log_a[:, start : start + chunk_size]  # (batch, c, width)
        bc = b[:, start : start + chunk_size]
        c = la.shape[1]
        cum = la.cumsum(dim=1)
        # weight of b_s in h_t: exp(cum_t - cum_s) for s <= t, 0 for s > t
        diff = cum[:, :, None, :] - cum[:, None, :, :]  # (batch, t, s, width)
        causal = torch.ones(c, c, dtype=torch.bool, device=b.device).tril()
        weights = diff.masked_fill(~causal[None, :, :, None], float("-inf")).exp()
        hc = torch.einsum("btsw,bsw->btw", weights, bc) + cum.exp() * h[:, None, :]
        outputs.append(hc)
        h = hc[:, -1]
    return torch.cat(outputs, dim=1) if outputs else b.new_zeros(b.shape)


def linear_scan(log_a: torch.Tensor, b: torch.Tensor, h0: Optional[torch.Tensor] = None, method: str = "auto",
                chunk_size: int = 16) -> torch.Tensor:
    """The scan in the form meant for the case: the loop on the CPU, the
    chunked closed form on other devices (chunk_size times fewer steps, each
    a kernel launch there). scripts/benchmark_scans.py
    (metrics/benchmark_scans.json) measures both on the CPU."""
    if method == "auto":
        method = "loop" if b.device.type == "cpu" else "chunked"
    if method == "loop":
        return scan_loop(log_a, b, h0)
    if method == "chunked":
        return scan_chunked(log_a, b, h0, chunk_size)
    raise ValueError(f"unknown scan {method!r}; choose from {SCANS} or 'auto'")


def coefficients_from(cell: str, parts: Sequence[torch.Tensor], log_decay: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """A cell's decays and inputs from the parts of its projected input,
    [gate(s)..., candidate] (2 for minGRU, 3 for minLSTM), (..., width) each,
    each possibly several directions side by side: log a_t (a_t itself with
    log_decay=False) and b_t, (..., width) each."""
    if cell == "mingru":
        k, candidate = parts
        if not log_decay:  # one sigmoid instead of a log-sigmoid and, in the scan, an exp
            z = torch.sigmoid(k)
            return 1 - z, z * candidate
        return F.logsigmoid(-k), torch.sigmoid(k) * candidate
    k_f, k_i, candidate = parts
    log_f, log_i = F.logsigmoid(k_f), F.logsigmoid(k_i)
    log_norm = torch.logaddexp(log_f, log_i)  # normalized in log space: f + i may underflow
    log_a = log_f - log_norm
    return (log_a if log_decay else log_a.exp()), (log_i - log_norm).exp() * candidate


def cell_parts(cell: str) -> int:
    """How many hidden_width-wide parts a cell projects its input to: minGRU a
    gate and a candidate, minLSTM two gates and a candidate."""
    return 2 if cell == "mingru" else 3


class MinRecurrentCell(nn.Module):
    """One direction of a minGRU or minLSTM layer: all gates from one matrix
    product, then the scan; with `output_gate`, the states are read through
    an output gate of the input, y_t = h_t * silu(W_o x_t) (as in HGRN, GLA
    and Mamba), one more part of the same product."""

    def __init__(self, cell: str, input_width: int, hidden_width: int, output_gate: bool = False) -> None:
        super().__init__()
        if cell not in LINEAR_CELLS:
            raise ValueError(f"unknown linear-recurrence cell {cell!r}; choose from {LINEAR_CELLS}")
        self.cell = cell
        self.hidden_width = hidden_width
        self.output_gate = output_gate
        self.proj = nn.Linear(input_width, (cell_parts(cell) + output_gate) * hidden_width)

    def forward(self, x: torch.Tensor, h0: Optional[torch.Tensor] = None, scan: str = "auto") -> torch.Tensor:
        parts = self.proj(x).chunk(cell_parts(self.cell) + self.output_gate, dim=-1)
        log_a, b = coefficients_from(self.cell, parts[: cell_parts(self.cell)])
        h = linear_scan(log_a, b, h0, method=scan)
        return h * F.silu(parts[-1]) if self.output_gate else h


@dataclass(frozen=True)
class LinearCellOptions:
    """The options of a linear-recurrence stack beyond its sizes, passed as one
    value from the encoder architecture to LinearRecurrence (torch's cells ignore it).

    feed_forward: a GELU feed-forward block (pre-norm, residual) after each layer.
    output_gate: each layer's states read through an output gate of its input.
    short_conv: each layer's normed input mixed with its neighbours' first.
    bf16_training: in training, the layers' projections in bfloat16 where the
        device multiplies bfloat16 natively (precision.py).
    """

    feed_forward: bool = False
    output_gate: bool = False
    short_conv: bool = False
    bf16_training: bool = False


class LinearRecurrence(nn.Module):
    """A stack of minGRU / minLSTM layers with the interface of a batch-first
    torch RNN: forward(x, state) -> (outputs, state), state (n_layers *
    directions, batch, hidden_width). `lengths` (batch,) makes a
    bidirectional stack read each sequence right to left from its own end."""

    def __init__(self, cell: str, input_width: int, hidden_width: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, scan: str = "auto",
                 feed_forward: bool = False, output_gate: bool = False, short_conv: bool = False,
                 bf16_training: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if scan not in SCANS + ("auto",):
            raise ValueError(f"unknown scan {scan!r}; choose from {SCANS} or 'auto'")
        self.cell, self.hidden_width, self.num_layers = cell, hidden_width, num_layers
        self.bidirectional, self.scan, self.feed_forward = bidirectional, scan, feed_forward
        self.output_gate, self.short_conv = output_gate, short_conv
        # In training, the layers' projections in bfloat16 where the device multiplies bfloat16
        # natively (see _projection, precision.py); prediction is float32.
        self.bf16_training = bf16_training
        self.directions = 2 if bidirectional else 1
        width = hidden_width * self.directions
        self.cell_norms = nn.ModuleList()
        self.forward_cells = nn.ModuleList()
        self.backward_cells = nn.ModuleList()
        self.ff_norms = nn.ModuleList()
        self.feed_forwards = nn.ModuleList()
        # short_conv: per layer, the weights of the previous token (row 0) and, bidirectional, of
        # the next one (row 1) in a depthwise convolution over the normed input; zeros, so that
        # each layer starts as without it.
        self.conv_weights = nn.ParameterList()
        for layer in range(num_layers):
            layer_input = input_width if layer == 0 else width
            self.cell_norms.append(nn.LayerNorm(layer_input))
            if short_conv:
                self.conv_weights.append(nn.Parameter(torch.zeros(self.directions, layer_input)))
            self.forward_cells.append(MinRecurrentCell(cell, layer_input, hidden_width, output_gate))
            if bidirectional:
                self.backward_cells.append(MinRecurrentCell(cell, layer_input, hidden_width, output_gate))
            if feed_forward:
                self.ff_norms.append(nn.LayerNorm(width))
                self.feed_forwards.append(nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)))
        self.final_norm = nn.LayerNorm(width)
        self.dropout = Dropout(dropout)
        self.part_projections: Optional[nn.ModuleList] = None  # see split_projections

    def forward(self, x: torch.Tensor, state: Optional[torch.Tensor] = None,
                lengths: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, T, input_width); state: (num_layers * directions, batch,
        hidden_width) or None (zeros). Returns the outputs (batch, T,
        directions * hidden_width), zeros past each length, and each
        sequence's state after its last step (for a language model's
        equal-length chunks, the state after the chunk). With `lengths`, each
        sequence is read within its own length, the backward direction from
        its own last position."""
        batch, length = x.shape[:2]
        if lengths is None:
            flat, outputs_state = self.forward_tokens(x.reshape(batch * length, -1), torch.full((batch,), length), state)
            return flat.reshape(batch, length, -1), outputs_state
        batch_index, step_index = padding_index(lengths)
        flat, outputs_state = self.forward_tokens(x[batch_index, step_index], lengths, state)
        padded = flat.new_zeros((batch, length, flat.shape[-1]))
        padded[batch_index, step_index] = flat
        return padded, outputs_state

    def forward_tokens(self, x: torch.Tensor, lengths: torch.Tensor,
                       state: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """The stack over the tokens of several sequences one after another,
        x: (n_tokens, input_width), lengths: (batch,) int64 on the CPU summing
        to n_tokens. Everything but the scan runs on the tokens alone. On the
        CPU the whole stack works in packed order (time-major, longest first):
        the scan steps through the running sequences only, the backward
        direction stepping from each sequence's end, so nothing is reversed or
        padded; elsewhere each layer pads for the chunked form. Returns
        (n_tokens, directions * hidden_width) and each sequence's state after
        its last token (h0, or zeros, for an empty one)."""
        lengths = lengths.cpu()
        batch = len(lengths)
        if x.shape[0] == 0:  # nothing to read: no outputs, the states as given
            empty_state = x.new_zeros((self.num_layers * self.directions, batch, self.hidden_width))
            return x.new_zeros((0, self.directions * self.hidden_width)), state if state is not None else empty_state
        method = self.scan if self.scan != "auto" else ("loop" if x.device.type == "cpu" else "chunked")
        if method == "loop":
            return self._forward_packed(x, lengths, state)
        return self._forward_padded(x, lengths, state, method)

    def _projection(self, layer: int, normed: torch.Tensor) -> List[torch.Tensor]:
        """A layer's projection of its normed input, part by part (gate(s),
        candidate, then the output gate's part if any), each (n_tokens,
        directions * hidden_width) with both directions side by side. One
        matrix product per part, so that each part is a contiguous tensor: on
        the CPU the gates' sigmoid and silu ran about three times faster over
        contiguous memory than over column slices of one wide product (torch
        2.13, one thread, 5000 x 256), and the products together cost about
        what the one wide product did."""
        if self.part_projections is not None:
            return [linear(normed) for linear in self.part_projections[layer]]
        if self.bf16_training and self.training and torch.is_grad_enabled() and native_bf16_products(normed.device):
            return self._bf16_projection(layer, normed)
        return [F.linear(normed, weight, bias) for weight, bias in self._part_weights(layer)]

    # bf16_training pads the rows of a projection's input to a multiple of this.
    BF16_ROWS = 64

    def _bf16_projection(self, layer: int, normed: torch.Tensor) -> List[torch.Tensor]:
        """_projection with the products in bfloat16 (the weights float32, cast on each call by
        torch.autocast, their gradients float32), each part's output back in float32 before the
        gates and the scan: on a CPU with AVX512-BF16, a 550 x 304 by 304 x 768 product took 1.3
        ms against 2.8 in float32 (torch 2.13, one thread). The rows are padded with zeros to a
        multiple of BF16_ROWS: torch's CPU bfloat16 products (oneDNN) keep a kernel for each shape
        they meet, and with a new number of tokens in every batch a training process grew by
        about 4 MB a step here (1 GB in 200 steps) and slowed down; in steps of 64 rows a few
        dozen shapes cover every batch."""
        n_rows = normed.shape[0]
        padding = -n_rows % self.BF16_ROWS
        padded = F.pad(normed, (0, 0, 0, padding)) if padding else normed
        with torch.autocast(normed.device.type, dtype=torch.bfloat16):
            parts = [F.linear(padded, weight, bias) for weight, bias in self._part_weights(layer)]
        return [part[:n_rows].float() for part in parts]

    def _split_gate(self, parts: List[torch.Tensor]) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """The cells' parts of a layer's projection and its output gate's part (None without one)."""
        n_cell = cell_parts(self.cell)
        return parts[:n_cell], (parts[n_cell] if self.output_gate else None)

    def _part_weights(self, layer: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Each part's weight and bias for both directions at once: the
        forward cell's rows of that part, then the backward cell's."""
        parts = cell_parts(self.cell) + self.output_gate
        projections = [self.forward_cells[layer].proj] + ([self.backward_cells[layer].proj] if self.bidirectional else [])
        weights = [p.weight.chunk(parts) for p in projections]
        biases = [p.bias.chunk(parts) for p in projections]
        if not self.bidirectional:
            return list(zip(weights[0], biases[0]))
        return [(torch.cat([w[i] for w in weights]), torch.cat([b[i] for b in biases])) for i in range(parts)]

    def split_projections(self) -> None:
        """For prediction with int8 weights: give each layer one nn.Linear
        per part of its projection, holding both directions' weights of that
        part (as they are now), so that dynamic quantization runs one int8
        product per part, each output contiguous. The new layers are saved
        with the module; training goes on to update the cells' own weights,
        so call this only on a model that is done training."""
        if self.part_projections is not None:
            return
        layers = nn.ModuleList()
        for layer in range(self.num_layers):
            linears = nn.ModuleList()
            for weight, bias in self._part_weights(layer):
                linear = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
                with torch.no_grad():
                    linear.weight.copy_(weight)
                    linear.bias.copy_(bias)
                linears.append(linear)
            layers.append(linears)
        self.part_projections = layers

    def _layer_start(self, layer: int, x: torch.Tensor, state: Optional[torch.Tensor],
                     successors: Optional[Tuple[Rows, torch.Tensor]]):
        """What both forms of forward_tokens do before a layer's scan: dropout
        (after the first layer), the parts of the layer's projection of its
        normed input (with short_conv, mixed with its neighbours: `successors`
        are the rows (later, earlier) of each pair of consecutive tokens of a
        sequence), the cells' parts split from the output gate's part, and its
        start state h0 (both directions side by side) or None. Returns (x,
        cell parts, gate, h0)."""
        if layer > 0:
            x = self.dropout(x)
        first = layer * self.directions
        h0 = state[first : first + self.directions].transpose(0, 1).flatten(1) if state is not None else None
        normed = self.cell_norms[layer](x)
        if self.short_conv:
            normed = self._convolve(layer, normed, successors)
        parts, gate = self._split_gate(self._projection(layer, normed))
        return x, parts, gate, h0

    def _convolve(self, layer: int, normed: torch.Tensor, successors: Tuple[Rows, torch.Tensor]) -> torch.Tensor:
        """The short convolution: x_t + u * x_{t-1} (+ v * x_{t+1}, bidirectional) per
        channel, within each sequence (a first token has no x_{t-1}, a last no x_{t+1})."""
        later, earlier = successors
        weights = self.conv_weights[layer]
        previous = normed.index_select(0, earlier).mul_(weights[0])
        following = _take_rows(normed, later) * weights[1] if self.bidirectional else None
        predicting = not torch.is_grad_enabled()  # then into the norm's fresh output
        mixed = _add_to_rows(normed, later, previous, inplace=predicting)
        return _add_to_rows(mixed, earlier, following, inplace=predicting) if following is not None else mixed

    def _after_layer(self, layer: int, x: torch.Tensor, y: torch.Tensor, gate: Optional[torch.Tensor]) -> torch.Tensor:
        """The layer's output (through its output gate, if any), the residual and the feed-forward block."""
        predicting = not torch.is_grad_enabled()  # then y (the scan's fresh output) and the gate are overwritten
        if gate is not None:
            y = y.mul_(F.silu(gate, inplace=True)) if predicting else y * F.silu(gate)
        if x.shape[-1] == y.shape[-1]:
            x = y.add_(x) if predicting else x + y
        else:
            x = y
        if self.feed_forward:
            x = x + self.feed_forwards[layer](self.ff_norms[layer](x))
        return x

    def _forward_packed(self, x: torch.Tensor, lengths: torch.Tensor,
                        state: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """forward_tokens on the CPU: one permutation into packed order and one
        back; the forward direction scans step 0 up, the backward one from
        each sequence's last step down (_PackedScan), so neither the inputs
        nor the outputs of the backward cell are ever reversed."""
        batch, device = len(lengths), x.device
        packed_index, batch_sizes = packing_order(lengths)
        position = torch.empty_like(packed_index)
        position[packed_index] = torch.arange(len(packed_index))
        starts = torch.cumsum(lengths, 0) - lengths
        # each sequence's last and first token in packed order (a placeholder for empty sequences)
        last_token = position[(starts + lengths - 1).clamp(min=0)].to(device)
        first_token = position[starts.clamp(max=len(position) - 1)].to(device)
        nonempty = (lengths > 0).to(device)[:, None]
        order = torch.argsort(lengths, descending=True, stable=True).to(device)
        sizes = batch_sizes.tolist()
        x = x.index_select(0, packed_index.to(device))  # index_select: several times faster than x[index] here
        successors = None
        if self.short_conv:  # each packed row after the first step, and its sequence's row one step earlier
            successors = (slice(sizes[0], None), _earlier_rows(batch_sizes).to(device))
        hidden = self.hidden_width
        states: List[torch.Tensor] = []
        for layer in range(self.num_layers):
            x, parts, gate, h0 = self._layer_start(layer, x, state, successors)
            if self.cell == "mingru":  # the scan interpolates: h_t = lerp(h_prev, h~_t, z_t)
                k, candidate = parts
                # predicting, the gate overwrites its own pre-activation (no new tensor to allocate)
                decay = torch.sigmoid(k) if torch.is_grad_enabled() else k.sigmoid_()
                inputs, interpolate = candidate, True
            else:
                (decay, inputs), interpolate = coefficients_from(self.cell, parts, log_decay=False), False
            start = h0[order] if h0 is not None else inputs.new_zeros((batch, inputs.shape[1]))
            # (n_tokens, directions * hidden_width)
            # predicting, the states overwrite the scan's inputs (fresh tensors of this layer)
            y = _PackedScan.apply(decay, inputs, start, sizes, hidden, interpolate, not torch.is_grad_enabled())
            finals = [y[last_token, :hidden]]  # the forward state after each sequence's last token
            if self.bidirectional:
                finals.append(y[first_token, hidden:])  # the backward state after its first token
            for direction, final in enumerate(finals):
                given = h0[:, direction * hidden : (direction + 1) * hidden] if h0 is not None else final.new_zeros(())
                states.append(torch.where(nonempty, final, given))
            x = self._after_layer(layer, x, y, gate)
        x = self.final_norm(x)
        return x.index_select(0, position.to(device)), torch.stack(states, dim=0)

    def _forward_padded(self, x: torch.Tensor, lengths: torch.Tensor, state: Optional[torch.Tensor],
                        method: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """forward_tokens for the chunked form: each layer's coefficients are
        padded (log a = 0, b = 0 past a length leave the state unchanged), the
        backward cell reads each sequence reversed within its own length."""
        batch, device = len(lengths), x.device
        batch_index, step_index = padding_index(lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        reverse = (starts[batch_index] + lengths[batch_index] - 1 - step_index).to(device)  # each token's mirror
        ends = (starts + lengths - 1).clamp(min=0).to(device)  # each sequence's last token
        batch_index, step_index = batch_index.to(device), step_index.to(device)
        nonempty = (lengths > 0).to(device)[:, None]
        successors = None
        if self.short_conv:  # each token but a sequence's first, and the token before it
            first = torch.zeros(len(batch_index), dtype=torch.bool)
            first[starts[lengths > 0]] = True
            later = torch.nonzero(~first).flatten()
            successors = (later.to(device), (later - 1).to(device))
        states: List[torch.Tensor] = []
        for layer in range(self.num_layers):
            x, parts, gate, h0 = self._layer_start(layer, x, state, successors)
            log_decay, b = coefficients_from(self.cell, parts, log_decay=True)
            if self.bidirectional:  # the backward cell reads each sequence reversed
                hidden = self.hidden_width
                log_decay = torch.cat([log_decay[:, :hidden], log_decay[reverse, hidden:]], dim=-1)
                b = torch.cat([b[:, :hidden], b[reverse, hidden:]], dim=-1)
            padded = [t.new_zeros((batch, int(lengths.max()), t.shape[-1])) for t in (log_decay, b)]
            for target, flat in zip(padded, (log_decay, b)):
                target[batch_index, step_index] = flat
            y = linear_scan(padded[0], padded[1], h0, method=method)[batch_index, step_index]  # backward half reversed
            last = torch.where(nonempty, y[ends], h0 if h0 is not None else y.new_zeros(()))
            states += list(last.chunk(self.directions, dim=-1))
            if self.bidirectional:
                forward_y, backward_y = y.chunk(2, dim=-1)
                y = torch.cat([forward_y, backward_y[reverse]], dim=-1)
            x = self._after_layer(layer, x, y, gate)
        return self.final_norm(x), torch.stack(states, dim=0)
