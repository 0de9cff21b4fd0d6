"""Plain PyTorch modules. Nothing here knows about spaCy or Thinc.

Token ids arrive as raw 32-bit hash values and raw Unicode code points; the
modules reduce them modulo their own table sizes, so every tensor shape follows
from the constructor arguments and a ``state_dict`` round-trips unaided.
"""
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

CELL_TYPES = ("rnn", "lstm", "gru")


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
            embedded.append(table(rows).sum(dim=1))
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
        self.n_chars = n_chars
        self.embed = nn.Embedding(n_chars, char_width, padding_idx=0)
        self.conv = nn.Conv1d(char_width, n_filters, kernel_size, padding=kernel_size // 2)
        self.output_width = n_filters

    def forward(self, code_points: torch.Tensor) -> torch.Tensor:
        """
        code_points: (n_words, max_chars) int64, code point + 1, 0 for padding.
        returns: (n_words, n_filters)
        """
        rows = torch.where(
            code_points > 0, 1 + (code_points - 1) % (self.n_chars - 1), 0
        )
        chars = self.embed(rows).transpose(1, 2)  # (n_words, char_width, max_chars)
        features = self.conv(chars)  # (n_words, n_filters, max_chars)
        padding = (rows == 0).unsqueeze(1)
        features = features.masked_fill(padding, float("-inf"))
        pooled = features.max(dim=2).values
        # A word with no characters (only possible for padding) pools to -inf.
        return torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))


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
    ) -> None:
        """
        cell: "rnn" (tanh), "lstm" or "gru".
        input_width: width of each input vector.
        hidden_width: width of the hidden state of each direction.
        n_layers: number of stacked recurrent layers.
        bidirectional: also run a right-to-left pass and concatenate.
        dropout_prob: dropout between layers and on the output.
        """
        super().__init__()
        if cell not in CELL_TYPES:
            raise ValueError(f"Unknown recurrent cell {cell!r}; choose one of {CELL_TYPES}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        rnn_class = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_class(
            input_width,
            hidden_width,
            num_layers=n_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout_prob if n_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout_prob)
        self.output_width = hidden_width * (2 if bidirectional else 1)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """
        inputs: (n_tokens, input_width), the tokens of all sequences one after
            another, n_tokens = lengths.sum().
        lengths: (batch_size,) int64 on the CPU; zero lengths are allowed.
        returns: (n_tokens, output_width), in the order of the inputs.
        """
        if inputs.shape[0] == 0:
            return inputs.new_zeros((0, self.output_width))
        packed_index, batch_sizes = packing_order(lengths)
        packed = PackedSequence(inputs[packed_index.to(inputs.device)], batch_sizes)
        outputs, _ = self.rnn(packed)
        flat = torch.empty_like(outputs.data)  # (n_tokens, output_width)
        flat[packed_index.to(flat.device)] = outputs.data
        return self.dropout(flat)


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


class TokenEncoder(nn.Module):
    """Word embeddings from a closed vocabulary (row 0 = unknown word), hashed
    token features and a character CNN, then a recurrent encoder."""

    def __init__(
        self,
        *,
        n_words: int,
        word_width: int,
        feature_rows: Sequence[int],
        feature_widths: Sequence[int],
        n_chars: int,
        char_width: int,
        char_filters: int,
        cell: str,
        hidden_width: int,
        n_layers: int,
        bidirectional: bool,
        dropout_prob: float,
        word_dropout_prob: float,
    ) -> None:
        """
        n_words, word_width: the word table; row 0 is the unknown word.
        feature_rows, feature_widths: table sizes of the hashed token features.
        n_chars, char_width, char_filters: the character CNN (char_filters=0
            disables it).
        cell, hidden_width, n_layers, bidirectional: the recurrent encoder.
        dropout_prob: dropout on the embeddings, between layers and on the output.
        word_dropout_prob: in training, the probability of replacing a word by
            the unknown word, so that the model learns to tag from spelling,
            as it must for words unseen in training.
        """
        super().__init__()
        self.words = nn.Embedding(n_words, word_width)
        nn.init.uniform_(self.words.weight, -0.1, 0.1)
        self.features = HashEmbedding(n_rows=feature_rows, widths=feature_widths)
        self.chars = (
            CharCNN(n_chars=n_chars, char_width=char_width, n_filters=char_filters)
            if char_filters > 0
            else None
        )
        input_width = word_width + self.features.output_width + (char_filters if self.chars else 0)
        self.embed_dropout = nn.Dropout(dropout_prob)
        self.word_dropout_prob = word_dropout_prob
        self.encoder = RecurrentEncoder(
            cell=cell,
            input_width=input_width,
            hidden_width=hidden_width,
            n_layers=n_layers,
            bidirectional=bidirectional,
            dropout_prob=dropout_prob,
        )
        self.output_width = self.encoder.output_width

    def forward(
        self,
        word_ids: torch.Tensor,
        hashes: torch.Tensor,
        word_index: torch.Tensor,
        code_points: torch.Tensor,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        """
        word_ids: (n_tokens,) int64 rows of the word table (0 = unknown), all
            sequences' tokens one after another.
        hashes: (n_tokens, n_features, n_hashes) int64.
        word_index: (n_tokens,) int64, the row of code_points of each token.
        code_points: (n_unique_words, max_chars) int64.
        lengths: (batch_size,) int64 on the CPU, summing to n_tokens.
        returns: (n_tokens, output_width)
        """
        if self.training and self.word_dropout_prob > 0:
            dropped = torch.rand(word_ids.shape, device=word_ids.device) < self.word_dropout_prob
            word_ids = word_ids.masked_fill(dropped, 0)
        parts = [self.words(word_ids % self.words.num_embeddings), self.features(hashes)]
        if self.chars is not None:
            char_vectors = self.chars(code_points)  # (n_unique_words, char_filters)
            parts.append(char_vectors[word_index])
        embedded = torch.cat(parts, dim=-1)  # (n_tokens, input_width)
        return self.encoder(self.embed_dropout(embedded), lengths)
