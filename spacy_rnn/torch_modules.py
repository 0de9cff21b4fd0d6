"""Plain PyTorch modules. Nothing here knows about spaCy or Thinc.

Token ids arrive as raw 32-bit hash values and raw Unicode code points; the
modules reduce them modulo their own table sizes, so every tensor shape follows
from the constructor arguments and a ``state_dict`` round-trips unaided.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

CELL_CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
CELL_TYPES = tuple(CELL_CLASSES)


def stacked_rnn(
    cell: str, input_width: int, hidden_width: int, n_layers: int, dropout_prob: float, bidirectional: bool = False
) -> nn.RNNBase:
    """A batch-first torch RNN/LSTM/GRU of n_layers, dropout_prob between layers."""
    if cell not in CELL_CLASSES:
        raise ValueError(f"Unknown recurrent cell {cell!r}; choose one of {CELL_TYPES}")
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    return CELL_CLASSES[cell](
        input_width,
        hidden_width,
        num_layers=n_layers,
        batch_first=True,
        bidirectional=bidirectional,
        dropout=dropout_prob if n_layers > 1 else 0.0,
    )


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
        self.rnn = stacked_rnn(cell, input_width, hidden_width, n_layers, dropout_prob, bidirectional)
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


LMState = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


class RNNLanguageModel(nn.Module):
    """A word-level recurrent language model (the word_language_model of
    pytorch/examples): embedding, a stack of recurrent layers, and a linear
    decoder to next-word logits, optionally sharing the embedding matrix."""

    def __init__(
        self,
        *,
        vocab_size: int,
        embed_width: int,
        hidden_width: int,
        n_layers: int,
        cell: str,
        embed_dropout_prob: float = 0.0,
        dropout_prob: float = 0.0,
        output_dropout_prob: float = 0.0,
        tie_weights: bool = False,
    ) -> None:
        """
        vocab_size: rows of the embedding and outputs of the decoder (a cap:
            a smaller vocabulary leaves rows unused, see `n_words`).
        embed_width: width of a word embedding.
        hidden_width: width of the recurrent state.
        n_layers: number of stacked recurrent layers.
        cell: "rnn" (tanh), "lstm" or "gru".
        embed_dropout_prob: dropout on the embeddings.
        dropout_prob: dropout between recurrent layers.
        output_dropout_prob: dropout on the last layer's output, before the decoder.
        tie_weights: the decoder uses the embedding matrix (Press & Wolf 2017,
            Inan et al. 2017); needs embed_width == hidden_width.
        """
        super().__init__()
        if tie_weights and embed_width != hidden_width:
            raise ValueError(
                f"tie_weights needs embed_width == hidden_width, got {embed_width} and {hidden_width}"
            )
        self.cell = cell
        self.n_layers = n_layers
        self.hidden_width = hidden_width
        self.embed = nn.Embedding(vocab_size, embed_width)
        self.rnn = stacked_rnn(cell, embed_width, hidden_width, n_layers, dropout_prob)
        self.embed_dropout = nn.Dropout(embed_dropout_prob)
        self.output_dropout = nn.Dropout(output_dropout_prob)
        self.decoder = nn.Linear(hidden_width, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embed.weight
        # The number of rows in use, set when the vocabulary is known; logits
        # of the unused rows are -inf, so probabilities sum to one over the
        # real vocabulary. A buffer, so it is saved with the weights.
        self.register_buffer("n_words", torch.tensor(vocab_size, dtype=torch.int64))
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        if not tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    @property
    def vocab_size(self) -> int:
        return self.decoder.out_features

    def init_state(self, batch_size: int) -> LMState:
        """The zero state: (n_layers, batch_size, hidden_width), a pair for an LSTM."""
        weight = self.decoder.weight
        zeros = weight.new_zeros((self.n_layers, batch_size, self.hidden_width))
        return (zeros, zeros.clone()) if self.cell == "lstm" else zeros

    def forward(self, ids: torch.Tensor, state: Optional[LMState] = None) -> Tuple[torch.Tensor, LMState]:
        """
        ids: (batch_size, seq_len) int64 word ids.
        state: the state after the previous chunk, or None for the zero state.
        returns: logits (batch_size, seq_len, vocab_size) of the next word at
            every position, and the state after the last position.
        """
        embedded = self.embed_dropout(self.embed(ids))  # (batch_size, seq_len, embed_width)
        outputs, state = self.rnn(embedded, state)  # (batch_size, seq_len, hidden_width)
        logits = self.decoder(self.output_dropout(outputs))  # (batch_size, seq_len, vocab_size)
        n_words = int(self.n_words)
        if n_words < self.vocab_size:
            logits = logits.masked_fill(
                torch.arange(self.vocab_size, device=logits.device) >= n_words, float("-inf")
            )
        return logits, state


def detach_state(state: LMState) -> LMState:
    """Cut the graph between chunks of truncated backpropagation through time."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


class SequenceLogProbs(nn.Module):
    """Wraps an RNNLanguageModel to score whole sequences: the natural-log
    probability of every token given the tokens before it, each sequence
    starting from the zero state after a `start_id` token (the `<eos>` that
    ends the previous sentence). Long sequences are read in chunks of
    `chunk_len` steps with the state carried over, so no (seq_len,
    vocab_size) array larger than a chunk is made."""

    def __init__(self, lm: RNNLanguageModel, *, start_id: int, chunk_len: int = 256) -> None:
        """
        lm: the language model.
        start_id: the id read before a sequence's first token.
        chunk_len: steps per chunk.
        """
        super().__init__()
        self.lm = lm
        self.start_id = start_id
        self.chunk_len = chunk_len

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """
        ids: (n_tokens,) int64, the tokens of all sequences one after another.
        lengths: (batch_size,) int64 on the CPU, summing to n_tokens; zero is allowed.
        returns: (n_tokens,) log p(token | tokens before it), in the order of ids.

        In eval mode every sequence is read alone, so its scores do not depend
        on the batch; in training the sequences are padded into one batch (the
        padding comes after each sequence, so a left-to-right model never reads it).
        """
        if ids.shape[0] == 0:
            return self.lm.decoder.weight.new_zeros((0,))
        sequences = torch.split(ids, lengths.tolist())
        if self.training:
            return self._score_batch([s for s in sequences if len(s)])
        return torch.cat([self._score_batch([s]) for s in sequences if len(s)])

    def _score_batch(self, sequences: Sequence[torch.Tensor]) -> torch.Tensor:
        lengths = [len(s) for s in sequences]
        targets = nn.utils.rnn.pad_sequence(list(sequences), batch_first=True)  # (batch_size, max_len)
        inputs = torch.cat([torch.full_like(targets[:, :1], self.start_id), targets[:, :-1]], dim=1)
        state = None
        chunks = []
        for start in range(0, inputs.shape[1], self.chunk_len):
            logits, state = self.lm(inputs[:, start : start + self.chunk_len], state)
            log_probs = torch.log_softmax(logits, dim=-1)  # (batch_size, chunk_len, vocab_size)
            chunk_targets = targets[:, start : start + self.chunk_len, None]
            chunks.append(log_probs.gather(2, chunk_targets).squeeze(2))  # (batch_size, chunk_len)
        scores = torch.cat(chunks, dim=1)  # (batch_size, max_len)
        mask = torch.arange(scores.shape[1])[None, :] < torch.tensor(lengths)[:, None]
        return scores[mask.to(scores.device)]
