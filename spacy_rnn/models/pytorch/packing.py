"""Where the tokens of variable-length sequences, given one after another,
go when packed (time-major, longest first, as torch's PackedSequence) or padded."""
from typing import Tuple

import torch


def packing_order(lengths: torch.Tensor):
    """Where each packed (time-major, longest sequence first) row comes from.

    lengths: (batch_size,) int64 on the CPU; zero lengths are allowed.
    returns: packed_index, (n_tokens,) int64: the position in the flat input of
        each row of PackedSequence.data; batch_sizes, (max_len,) int64 on the CPU.
    """
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order]
    starts = torch.cumsum(lengths, 0) - lengths
    steps = torch.arange(int(sorted_lengths[0]))
    index = starts[order][None, :] + steps[:, None]  # (max_len, batch_size)
    mask = steps[:, None] < sorted_lengths[None, :]
    return index[mask], mask.sum(dim=1)


def padding_index(lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """For the flat tokens of sequences of these lengths: each token's sequence and step."""
    batch_index = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    step_index = torch.arange(int(lengths.sum())) - starts[batch_index]
    return batch_index, step_index
