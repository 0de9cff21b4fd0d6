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

The decays are computed as log a_t (log-sigmoids), which the scans use.

Scans (all exact, the same numbers up to rounding), behind `linear_scan`:
- "loop": step by step. The reference, and fast on CPU for short sequences
  once the matrix products are out of the loop.
- "chunked": closed form inside chunks of `chunk_size` steps,
  h_t = sum_{s<=t} exp(c_t - c_s) b_s + exp(c_t) h_0 with c the cumulative
  sum of log a inside the chunk (every exponent <= 0, so nothing overflows),
  the state carried between chunks: chunk_size times fewer Python steps, for
  long sequences (the language model) and GPUs.

Stacks follow the reference implementations: pre-norm residual blocks,
x = x + cell(LayerNorm(x)) then, with `feed_forward`, x = x + FF(LayerNorm(x))
(a GELU feed-forward of twice the width), a residual only where the widths
match (not into the first layer), and a final LayerNorm. Without the
feed-forward blocks the stack does about a third of the matrix work
(scripts/benchmark_scans.py measures both). Bidirectional: a second cell
reads each sequence reversed within its own length, so padding never reaches
a real position in either direction; both directions' coefficients go
through one scan of twice the width.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

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

    def coefficients(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """log a_t and b_t for x: (..., input_width) -> two (..., hidden_width)."""
        if self.cell == "mingru":
            k, candidate = self.proj(x).chunk(2, dim=-1)
            return F.logsigmoid(-k), torch.sigmoid(k) * candidate
        k_f, k_i, candidate = self.proj(x).chunk(3, dim=-1)
        log_f, log_i = F.logsigmoid(k_f), F.logsigmoid(k_i)
        log_norm = torch.logaddexp(log_f, log_i)
        return log_f - log_norm, (log_i - log_norm).exp() * candidate

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
        directions * hidden_width), zeros past each length, and the state after
        the last step. With `lengths`, the backward direction starts at each
        sequence's own last position; the state returned is that at step T
        (for a language model's equal-length chunks, the state after the chunk)."""
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
        the scan's coefficients are padded (log a = 0, b = 0 past a length,
        which leaves the state unchanged). Returns (n_tokens, directions *
        hidden_width) and the state at the longest sequence's last step."""
        lengths = lengths.cpu()
        batch, longest = len(lengths), int(lengths.max()) if len(lengths) else 0
        batch_index, step_index = padding_index(lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        reverse = (starts[batch_index] + lengths[batch_index] - 1 - step_index).to(x.device)
        batch_index, step_index = batch_index.to(x.device), step_index.to(x.device)

        def pad(flat: torch.Tensor) -> torch.Tensor:
            padded = flat.new_zeros((batch, longest, flat.shape[-1]))
            padded[batch_index, step_index] = flat
            return padded

        states: List[torch.Tensor] = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = self.dropout(x)
            normed = self.cell_norms[layer](x)
            first = layer * self.directions
            h0 = state[first : first + self.directions].transpose(0, 1).flatten(1) if state is not None else None
            log_a, b = self.forward_cells[layer].coefficients(normed)
            if self.bidirectional:
                # the backward cell reads each sequence reversed: its coefficients in reversed order, beside the forward ones
                back_log_a, back_b = self.backward_cells[layer].coefficients(normed)
                log_a, b = torch.cat([log_a, back_log_a[reverse]], dim=-1), torch.cat([b, back_b[reverse]], dim=-1)
            y_padded = linear_scan(pad(log_a), pad(b), h0, method=self.scan)  # (batch, longest, directions * hidden)
            last = y_padded[:, -1] if longest else y_padded.new_zeros((batch, y_padded.shape[-1]))
            states += list(last.chunk(self.directions, dim=-1))
            y = y_padded[batch_index, step_index]
            if self.bidirectional:
                forward_y, backward_y = y.chunk(2, dim=-1)
                y = torch.cat([forward_y, backward_y[reverse]], dim=-1)
            x = x + y if x.shape[-1] == y.shape[-1] else y
            if self.feed_forward:
                x = x + self.feed_forwards[layer](self.ff_norms[layer](x))
        return self.final_norm(x), torch.stack(states, dim=0)


def padding_index(lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """For the flat tokens of sequences of these lengths: each token's sequence and step."""
    batch_index = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    step_index = torch.arange(int(lengths.sum())) - starts[batch_index]
    return batch_index, step_index
