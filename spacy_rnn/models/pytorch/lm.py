"""A word-level recurrent language model, whole-sequence scoring and sampling."""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .dropout import Dropout
from .recurrent import stack_structure, stacked_rnn

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
        cell: "rnn" (tanh), "lstm", "gru", "mingru" or "minlstm".
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
        self.tie_weights = tie_weights
        self.embed = nn.Embedding(vocab_size, embed_width)
        self.rnn = stacked_rnn(cell, embed_width, hidden_width, n_layers, dropout_prob)
        self.embed_dropout = Dropout(embed_dropout_prob)
        self.output_dropout = Dropout(output_dropout_prob)
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

    def structure(self) -> Dict[str, object]:
        """The choices its weights were trained for that their shapes need not
        show: the cell (see stack_structure) and whether the decoder shares the
        embedding matrix (untied weights of equal widths load either way)."""
        return {**stack_structure(self.rnn), "tie_weights": self.tie_weights}

    def init_state(self, batch_size: int) -> LMState:
        """The zero state: (n_layers, batch_size, hidden_width), a pair for an LSTM."""
        # the embedding's weight for the device and dtype: the decoder may be an int8 layer (no weight tensor)
        zeros = self.embed.weight.new_zeros((self.n_layers, batch_size, self.hidden_width))
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
            unused = torch.arange(self.vocab_size, device=logits.device) >= n_words
            # without a gradient, in place: no second (batch_size, seq_len, vocab_size) tensor
            logits = logits.masked_fill(unused, float("-inf")) if torch.is_grad_enabled() else logits.masked_fill_(unused, float("-inf"))
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

    def structure(self) -> Dict[str, object]:
        """The language model's (RNNLanguageModel.structure)."""
        return self.lm.structure()

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
            return self.lm.embed.weight.new_zeros((0,))
        sequences = torch.split(ids, lengths.tolist())
        if self.training:
            return self._score_batch([s for s in sequences if len(s)])
        return torch.cat([self._score_batch([s]) for s in sequences if len(s)])

    def _score_batch(self, sequences: Sequence[torch.Tensor]) -> torch.Tensor:
        lengths = [len(s) for s in sequences]
        targets = nn.utils.rnn.pad_sequence(list(sequences), batch_first=True)  # (batch_size, max_len)
        inputs = torch.cat([torch.full_like(targets[:, :1], self.start_id), targets[:, :-1]], dim=1)
        if torch.is_grad_enabled():
            state = None
            chunks = []
            for start in range(0, inputs.shape[1], self.chunk_len):
                logits, state = self.lm(inputs[:, start : start + self.chunk_len], state)
                log_probs = torch.log_softmax(logits, dim=-1)  # (batch_size, chunk_len, vocab_size)
                chunk_targets = targets[:, start : start + self.chunk_len, None]
                chunks.append(log_probs.gather(2, chunk_targets).squeeze(2))  # (batch_size, chunk_len)
            scores = torch.cat(chunks, dim=1)  # (batch_size, max_len)
        else:
            scores = self._predict_scores(inputs, targets)
        mask = torch.arange(scores.shape[1])[None, :] < torch.tensor(lengths)[:, None]
        return scores[mask.to(scores.device)]

    def _predict_scores(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """_score_batch's scores without a gradient: each chunk's one (batch_size, chunk_len,
        vocab_size) tensor, the logits, is the only one of that size (log p = logit - logsumexp,
        the sum of exponentials taken in place) and the scores are written into one tensor. A
        200,000-token doc grew the process by about one such tensor per chunk (7.5 GB with a
        10,000-word vocabulary): log_softmax's output and the masked logits were two more each,
        and glibc's malloc did not reuse their blocks between the small tensors kept per chunk."""
        state = None
        scores = torch.empty(targets.shape, dtype=self.lm.embed.weight.dtype, device=targets.device)
        for start in range(0, inputs.shape[1], self.chunk_len):
            logits, state = self.lm(inputs[:, start : start + self.chunk_len], state)
            target_logits = logits.gather(2, targets[:, start : start + self.chunk_len, None]).squeeze(2)
            top = logits.amax(dim=2, keepdim=True)
            total = logits.sub_(top).exp_().sum(dim=2)  # in place: the logits are not read again
            scores[:, start : start + self.chunk_len] = target_logits - top.squeeze(2) - total.log()
            del logits  # not alive while the next chunk's are made
        return scores


@torch.no_grad()
def sample_words(
    model: RNNLanguageModel,
    prompt_ids: Sequence[int],
    n_words: int,
    *,
    start_id: int,
    temperature: float = 1.0,
    seed: int = 0,
    banned_ids: Sequence[int] = (),
) -> List[int]:
    """Sample n_words ids after the prompt, starting from the zero state
    after `start_id` (the end-of-sentence id). temperature 0 takes the most likely word; a private
    torch.Generator seeded with seed makes the same seed give the same words."""
    if not 0 <= temperature < math.inf:  # also NaN, for which temperature < 0 is false
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    was_training = model.training
    model.eval()
    try:
        # drawn on the CPU, whatever the model's device: the same seed gives the same words anywhere
        generator = torch.Generator().manual_seed(seed)
        device = model.embed.weight.device
        inputs = torch.tensor([[start_id] + list(prompt_ids)], dtype=torch.int64, device=device)
        logits, state = model(inputs, None)
        last = logits[0, -1]
        out: List[int] = []
        for _ in range(n_words):
            if banned_ids:
                last = last.clone()
                last[list(banned_ids)] = float("-inf")
            if temperature == 0:
                word = int(torch.argmax(last))
            else:
                probs = torch.softmax(last.double().cpu() / temperature, dim=-1)
                word = int(torch.multinomial(probs, 1, generator=generator))
            out.append(word)
            logits, state = model(torch.tensor([[word]], dtype=torch.int64, device=device), state)
            last = logits[0, -1]
        return out
    finally:
        model.train(was_training)

