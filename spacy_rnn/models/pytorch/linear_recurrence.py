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
  running, so no padding is computed. Fast on the CPU once the matrix
  products are out of the loop.
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
(scripts/benchmark_scans.py measures both). Bidirectional: a second cell
reads each sequence reversed within its own length; both directions'
coefficients go through one scan of twice the width.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .packing import packing_order, padding_index

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


class _PackedScan(torch.autograd.Function):
    """The loop over packed rows (time-major, longest sequence first): step t
    updates only the batch_sizes[t] sequences still running, so no padding is
    ever scanned. Its gradient is the reverse scan, as for _LoopScan."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, batch_sizes: List[int]) -> torch.Tensor:
        # a, b: (n_tokens, width) packed; h0: (batch, width) in the packed (longest first) order
        out = torch.empty_like(b)
        h, start = h0, 0
        for size in batch_sizes:
            h = torch.addcmul(b[start : start + size], a[start : start + size], h[:size])
            out[start : start + size] = h
            start += size
        ctx.save_for_backward(a, out, h0)
        ctx.batch_sizes = batch_sizes
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        a, out, h0 = ctx.saved_tensors
        sizes = ctx.batch_sizes
        starts = [0]
        for size in sizes[:-1]:
            starts.append(starts[-1] + size)
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(grad_out)
        grad_h0 = torch.zeros_like(h0)
        carry = None  # a_{t+1} * g_{t+1} for the sequences running at step t + 1
        for t in range(len(sizes) - 1, -1, -1):
            start, size = starts[t], sizes[t]
            g = grad_out[start : start + size]
            if carry is not None:
                g = torch.cat([g[: carry.shape[0]] + carry, g[carry.shape[0] :]]) if carry.shape[0] < size else g + carry
            grad_b[start : start + size] = g
            previous = out[starts[t - 1] : starts[t - 1] + size] if t > 0 else h0[:size]
            grad_a[start : start + size] = g * previous
            carry = g * a[start : start + size]
        if carry is not None:
            grad_h0[: carry.shape[0]] = carry
        return grad_a, grad_b, grad_h0, None


def scan_packed(log_a: torch.Tensor, b: torch.Tensor, lengths: torch.Tensor,
                h0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The scan over the tokens of sequences given one after another: log_a,
    b: (n_tokens, width), lengths: (batch,) int64 on the CPU summing to
    n_tokens, h0: (batch, width) or None. Returns h, (n_tokens, width), in the
    same order. On the CPU the fastest form: no step touches padding."""
    lengths = lengths.cpu()
    if b.shape[0] == 0:
        return b.new_zeros(b.shape)
    packed_index, batch_sizes = packing_order(lengths)
    packed_index = packed_index.to(b.device)
    order = torch.argsort(lengths, descending=True, stable=True).to(b.device)
    h0 = h0[order] if h0 is not None else b.new_zeros((len(lengths), b.shape[1]))
    packed = _PackedScan.apply(log_a[packed_index].exp(), b[packed_index], h0, batch_sizes.tolist())
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


class MinRecurrentCell(nn.Module):
    """One direction of a minGRU or minLSTM layer: all gates from one matrix product, then the scan."""

    def __init__(self, cell: str, input_width: int, hidden_width: int) -> None:
        super().__init__()
        if cell not in LINEAR_CELLS:
            raise ValueError(f"unknown linear-recurrence cell {cell!r}; choose from {LINEAR_CELLS}")
        self.cell = cell
        self.hidden_width = hidden_width
        self.proj = nn.Linear(input_width, (2 if cell == "mingru" else 3) * hidden_width)

    def coefficients(self, x: torch.Tensor, log_decay: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """log a_t (a_t itself with log_decay=False, as the loop scan reads it)
        and b_t for x: (..., input_width) -> two (..., hidden_width)."""
        if self.cell == "mingru":
            k, candidate = self.proj(x).chunk(2, dim=-1)
            if not log_decay:  # one sigmoid instead of a log-sigmoid and, in the scan, an exp
                z = torch.sigmoid(k)
                return 1 - z, z * candidate
            return F.logsigmoid(-k), torch.sigmoid(k) * candidate
        k_f, k_i, candidate = self.proj(x).chunk(3, dim=-1)
        log_f, log_i = F.logsigmoid(k_f), F.logsigmoid(k_i)
        log_norm = torch.logaddexp(log_f, log_i)  # normalized in log space: f + i may underflow
        log_a = log_f - log_norm
        return (log_a if log_decay else log_a.exp()), (log_i - log_norm).exp() * candidate

    def forward(self, x: torch.Tensor, h0: Optional[torch.Tensor] = None, scan: str = "auto") -> torch.Tensor:
        log_a, b = self.coefficients(x)
        return linear_scan(log_a, b, h0, method=scan)


class LinearRecurrence(nn.Module):
    """A stack of minGRU / minLSTM layers with the interface of a batch-first
    torch RNN: forward(x, state) -> (outputs, state), state (n_layers *
    directions, batch, hidden_width). `lengths` (batch,) makes a
    bidirectional stack read each sequence right to left from its own end."""

    def __init__(self, cell: str, input_width: int, hidden_width: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, scan: str = "auto",
                 feed_forward: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if scan not in SCANS + ("auto",):
            raise ValueError(f"unknown scan {scan!r}; choose from {SCANS} or 'auto'")
        self.cell, self.hidden_width, self.num_layers = cell, hidden_width, num_layers
        self.bidirectional, self.scan, self.feed_forward = bidirectional, scan, feed_forward
        self.directions = 2 if bidirectional else 1
        width = hidden_width * self.directions
        self.cell_norms = nn.ModuleList()
        self.forward_cells = nn.ModuleList()
        self.backward_cells = nn.ModuleList()
        self.ff_norms = nn.ModuleList()
        self.feed_forwards = nn.ModuleList()
        for layer in range(num_layers):
            layer_input = input_width if layer == 0 else width
            self.cell_norms.append(nn.LayerNorm(layer_input))
            self.forward_cells.append(MinRecurrentCell(cell, layer_input, hidden_width))
            if bidirectional:
                self.backward_cells.append(MinRecurrentCell(cell, layer_input, hidden_width))
            if feed_forward:
                self.ff_norms.append(nn.LayerNorm(width))
                self.feed_forwards.append(nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)))
        self.final_norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

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
        to n_tokens. Everything but the scan runs on the tokens alone; only
        the scan, which on the CPU steps through the packed tokens (at step t
        only the sequences still running) and elsewhere pads for the chunked
        form. Returns (n_tokens, directions * hidden_width) and each
        sequence's state after its last token (h0, or zeros, for an empty one)."""
        lengths = lengths.cpu()
        batch = len(lengths)
        if x.shape[0] == 0:  # nothing to read: no outputs, the states as given
            empty_state = x.new_zeros((self.num_layers * self.directions, batch, self.hidden_width))
            return x.new_zeros((0, self.directions * self.hidden_width)), state if state is not None else empty_state
        method = self.scan if self.scan != "auto" else ("loop" if x.device.type == "cpu" else "chunked")
        batch_index, step_index = padding_index(lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        reverse = starts[batch_index] + lengths[batch_index] - 1 - step_index  # each token's mirror in its sequence
        ends = (starts + lengths - 1).clamp(min=0)  # each sequence's last token
        if method == "loop":
            # The whole stack works in packed order (time-major, longest first): one
            # permutation in, one out; the scan steps through the running sequences only.
            packed_index, batch_sizes = packing_order(lengths)
            position = torch.empty_like(packed_index)
            position[packed_index] = torch.arange(len(packed_index))
            reverse, ends = position[reverse[packed_index]], position[ends]
            order = torch.argsort(lengths, descending=True, stable=True).to(x.device)
            sizes = batch_sizes.tolist()
            x = x[packed_index.to(x.device)]
        reverse, ends = reverse.to(x.device), ends.to(x.device)
        batch_index, step_index = batch_index.to(x.device), step_index.to(x.device)

        def scan(decay: torch.Tensor, b: torch.Tensor, h0: Optional[torch.Tensor]) -> torch.Tensor:
            # decay: a_t for the loop, log a_t for the chunked form
            if method == "loop":
                h0 = h0[order] if h0 is not None else b.new_zeros((batch, b.shape[1]))
                return _PackedScan.apply(decay, b, h0, sizes)
            # padded for the chunked form: log a = 0, b = 0 past a length leave the state unchanged
            padded = [t.new_zeros((batch, int(lengths.max()), t.shape[-1])) for t in (decay, b)]
            for target, flat in zip(padded, (decay, b)):
                target[batch_index, step_index] = flat
            return linear_scan(padded[0], padded[1], h0, method=method)[batch_index, step_index]

        log_decay = method != "loop"  # the loop scan reads a_t, the chunked form log a_t
        states: List[torch.Tensor] = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = self.dropout(x)
            normed = self.cell_norms[layer](x)
            first = layer * self.directions
            h0 = state[first : first + self.directions].transpose(0, 1).flatten(1) if state is not None else None
            decay, b = self.forward_cells[layer].coefficients(normed, log_decay)
            if self.bidirectional:
                # the backward cell reads each sequence reversed; its coefficients go beside the forward ones
                back_decay, back_b = self.backward_cells[layer].coefficients(normed[reverse], log_decay)
                decay, b = torch.cat([decay, back_decay], dim=-1), torch.cat([b, back_b], dim=-1)
            y = scan(decay, b, h0)  # (n_tokens, directions * hidden_width), the backward half reversed
            last = torch.where((lengths > 0).to(x.device)[:, None], y[ends], h0 if h0 is not None else y.new_zeros(()))
            states += list(last.chunk(self.directions, dim=-1))
            if self.bidirectional:
                forward_y, backward_y = y.chunk(2, dim=-1)
                y = torch.cat([forward_y, backward_y[reverse]], dim=-1)
            x = x + y if x.shape[-1] == y.shape[-1] else y
            if self.feed_forward:
                x = x + self.feed_forwards[layer](self.ff_norms[layer](x))
        x = self.final_norm(x)
        if method == "loop":
            x = x[position.to(x.device)]
        return x, torch.stack(states, dim=0)
