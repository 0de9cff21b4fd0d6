"""Stacked recurrent layers over variable-length sequences: torch's RNN, LSTM
and GRU over packed sequences, or the linear-recurrence cells (minGRU,
minLSTM) over padded ones that they read within each sequence's length."""
from dataclasses import asdict
from typing import Dict, Union

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .dropout import Dropout
from .linear_recurrence import LINEAR_CELLS, LinearCellOptions, LinearRecurrence
from .packing import packing_order

CELL_CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELL_TYPES = tuple(CELL_CLASSES) + LINEAR_CELLS


def stacked_rnn(
    cell: str, input_width: int, hidden_width: int, n_layers: int, dropout_prob: float, bidirectional: bool = False,
    linear: LinearCellOptions = LinearCellOptions(),
) -> Union[nn.RNNBase, LinearRecurrence]:
    """A batch-first torch RNN/LSTM/GRU, or a minGRU/minLSTM stack with the
    same call interface, of n_layers, dropout_prob between layers; linear:
    the options of a linear-recurrence stack (torch's cells have none)."""
    if cell not in CELL_TYPES:
        raise ValueError(f"Unknown recurrent cell {cell!r}; choose one of {CELL_TYPES}")
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    if cell in LINEAR_CELLS:
        return LinearRecurrence(cell, input_width, hidden_width, n_layers, bidirectional, dropout_prob, **asdict(linear))
    return CELL_CLASSES[cell](
        input_width,
        hidden_width,
        num_layers=n_layers,
        batch_first=True,
        bidirectional=bidirectional,
        dropout=dropout_prob if n_layers > 1 else 0.0,
    )



def stack_structure(rnn: Union[nn.RNNBase, LinearRecurrence]) -> Dict[str, object]:
    """The cell of a stacked_rnn and, for the linear cells, their options (see RecurrentEncoder.structure)."""
    if isinstance(rnn, LinearRecurrence):
        return {"cell": rnn.cell, "output_gate": rnn.output_gate, "short_conv": rnn.short_conv,
                "feed_forward": rnn.feed_forward}
    return {"cell": next(name for name, cls in CELL_CLASSES.items() if type(rnn) is cls)}


class RecurrentEncoder(nn.Module):
    """A stack of recurrent layers over a batch of variable-length sequences.
    The sequences are packed by length, so padding never enters the
    computation: a sequence gets the same output alone and inside any batch."""

    def __init__(
        self,
        *,
        cell: str,
        input_width: int,
        hidden_width: int,
        n_layers: int,
        bidirectional: bool,
        dropout_prob: float,
        linear: LinearCellOptions = LinearCellOptions(),
    ) -> None:
        """
        cell: "rnn" (tanh), "lstm", "gru", "mingru" or "minlstm".
        input_width: width of each input vector.
        hidden_width: width of the hidden state of each direction.
        n_layers: number of stacked recurrent layers.
        bidirectional: also run a right-to-left pass and concatenate.
        dropout_prob: dropout between layers and on the output.
        linear: linear-recurrence cells only, the stack's options (LinearCellOptions).
        """
        super().__init__()
        self.rnn = stacked_rnn(cell, input_width, hidden_width, n_layers, dropout_prob, bidirectional, linear)
        self.dropout = Dropout(dropout_prob)
        self.output_width = hidden_width * (2 if bidirectional else 1)

    def structure(self) -> Dict[str, object]:
        """The stack's choices that its weights were trained for but whose
        shapes need not show them (a minGRU with an output gate has the
        shapes of a minLSTM without one): the cell and, for the linear cells,
        their options."""
        return stack_structure(self.rnn)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """
        inputs: (n_tokens, input_width), the tokens of all sequences one after
            another, n_tokens = lengths.sum().
        lengths: (batch_size,) int64 on the CPU; zero lengths are allowed.
        returns: (n_tokens, output_width), in the order of the inputs.
        """
        if inputs.shape[0] == 0:
            return inputs.new_zeros((0, self.output_width))
        if isinstance(self.rnn, LinearRecurrence):
            outputs, _ = self.rnn.forward_tokens(inputs, lengths)  # it packs the tokens itself
            return self.dropout(outputs)
        packed_index, batch_sizes = packing_order(lengths.cpu())  # PackedSequence wants them on the CPU
        packed = PackedSequence(inputs[packed_index.to(inputs.device)], batch_sizes)
        outputs, _ = self.rnn(packed)
        flat = torch.empty_like(outputs.data)  # (n_tokens, output_width)
        flat[packed_index.to(flat.device)] = outputs.data
        return self.dropout(flat)
