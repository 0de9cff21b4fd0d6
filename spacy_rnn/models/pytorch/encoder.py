"""The token encoder: word, hashed-feature and character embeddings, then a recurrent stack."""
from typing import Dict, Sequence

import torch
from torch import nn

from .dropout import Dropout
from .embeddings import CharCNN, HashEmbedding
from .linear_recurrence import LinearCellOptions
from .recurrent import RecurrentEncoder


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
        linear: LinearCellOptions = LinearCellOptions(),
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
        linear: linear-recurrence cells only, the stack's options (LinearCellOptions).
        """
        super().__init__()
        self.words = nn.Embedding(n_words, word_width)
        nn.init.uniform_(self.words.weight, -0.1, 0.1)
        # A saved word table may be smaller than n_words (see fit_word_rows): take its size when loading it.
        self.register_load_state_dict_pre_hook(TokenEncoder._fit_words_to_state)
        self.features = HashEmbedding(n_rows=feature_rows, widths=feature_widths)
        self.chars = (
            CharCNN(n_chars=n_chars, char_width=char_width, n_filters=char_filters)
            if char_filters > 0
            else None
        )
        input_width = word_width + self.features.output_width + (char_filters if self.chars else 0)
        self.embed_dropout = Dropout(dropout_prob)
        self.word_dropout_prob = word_dropout_prob
        self.encoder = RecurrentEncoder(
            cell=cell,
            input_width=input_width,
            hidden_width=hidden_width,
            n_layers=n_layers,
            bidirectional=bidirectional,
            dropout_prob=dropout_prob,
            linear=linear,
        )
        self.output_width = self.encoder.output_width

    def structure(self) -> Dict[str, object]:
        """The recurrent stack's choices its weights need but whose shapes need not show (RecurrentEncoder.structure)."""
        return self.encoder.structure()

    def fit_word_rows(self, n_rows: int) -> None:
        """Give the word table n_rows rows, keeping the values of the rows
        it keeps: the table is made with room for the largest vocabulary
        allowed, and sized to the one chosen (rows past it are never read,
        yet their zero gradients cost every update). New rows, if it grows,
        are drawn as at construction. Draws no random numbers when shrinking,
        so a training with a fitted table follows the unfitted one."""
        old = self.words.weight
        if n_rows < 1:
            raise ValueError(f"the word table needs at least the unknown word's row, got {n_rows} rows")
        if n_rows == old.shape[0]:
            return
        weight = old.detach()[:n_rows].clone()
        if n_rows > old.shape[0]:
            extra = weight.new_empty((n_rows - old.shape[0], old.shape[1])).uniform_(-0.1, 0.1)
            weight = torch.cat([weight, extra])
        self.words = nn.Embedding.from_pretrained(weight, freeze=not old.requires_grad)

    @staticmethod
    def _fit_words_to_state(module: "TokenEncoder", state_dict, prefix: str, *args) -> None:
        saved = state_dict.get(prefix + "words.weight")
        if saved is not None:
            module.fit_word_rows(saved.shape[0])

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
        parts = [self.words(word_ids)]
        if self.features.output_width:  # attrs may be empty: words and characters only
            parts.append(self.features(hashes))
        if self.chars is not None:
            # each unique word's (char_filters,) vector to its tokens (index_select: faster than indexing)
            parts.append(self.chars(code_points).index_select(0, word_index))
        embedded = torch.cat(parts, dim=-1)  # (n_tokens, input_width)
        del parts  # freed before the stack runs: a tenth less peak memory (minGRU tagger, 14k-token groups)
        return self.encoder(self.embed_dropout(embedded), lengths)


