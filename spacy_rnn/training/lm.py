"""Word-level language modelling on the torch side (no spaCy here): the
vocabulary, the corpus as one stream of ids in `batch_size` columns,
training with truncated backpropagation through time (TBPTT), perplexity,
checkpoints that a run resumes from.

The recipe follows pytorch/examples `word_language_model` and Zaremba et al.
(2014): the training text is one stream, cut into `batch_size` equal columns
that are read side by side in chunks of `bptt` steps; the recurrent state is
carried from chunk to chunk and detached between them, so gradients flow back
at most `bptt` steps. The loss is the mean per-token cross-entropy, so SGD
with lr 20 and global-norm clipping at 0.25 equals Zaremba's lr 1 and clip 5
on a loss summed over 20 steps.
"""
import math
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from tqdm import tqdm

from ..files import atomic_output, read_text_lines
from ..models.lm_vocab import EOS, UNK, UNK_ID, Vocabulary
from ..models.pytorch import LMState, RNNLanguageModel, detach_state

_WORD_SEPARATORS = re.compile(r"[ \t]+")
_NUL = "\x00"
# The largest x with math.exp(x) finite: above it, the perplexity is inf.
_MAX_LOG = math.log(sys.float_info.max)


def split_words(line: str) -> List[str]:
    """The words of a line: split on ASCII spaces and tabs only, so that
    U+0085, U+2028, U+00A0 and other Unicode spaces stay inside a word."""
    return [word for word in _WORD_SEPARATORS.split(line) if word]


def read_lines(path: Union[str, Path]) -> List[List[str]]:
    """The words of each non-blank line of a tokenized text file (PTB and
    WikiText: space-separated tokens, one sentence or paragraph per line).

    Read with spacy_rnn.files.read_text_lines: UTF-8, a leading byte-order
    mark removed, lines split on "\\n" only. Words are split on spaces and
    tabs only (split_words); a line that is empty or only spaces and tabs is
    blank and skipped (WikiText's would add easy `<eos>` predictions). Raises
    a ValueError naming the file and the line for bytes that are not UTF-8
    and for a NUL character (a binary file is not tokenized text)."""
    lines = []
    for line_no, line in read_text_lines(path):
        if _NUL in line:
            raise ValueError(
                f"{path}:{line_no}: a NUL character at column {line.index(_NUL) + 1}: this looks like a "
                f"binary file, not tokenized text"
            )
        words = split_words(line)
        if words:
            lines.append(words)
    return lines


def stream_words(lines: Iterable[List[str]]) -> List[str]:
    """One stream: each line's words followed by `<eos>`."""
    return [word for line in lines for word in line + [EOS]]


def perplexity(loss: float) -> float:
    """exp(loss), inf when that overflows (nan stays nan)."""
    return math.exp(loss) if loss <= _MAX_LOG else (float("nan") if math.isnan(loss) else float("inf"))


def check_train_words(words: Sequence[str], batch_size: int, name: str = "the training text") -> None:
    """Raise a ValueError naming `name` if words are too few to train on:
    batch_size columns of at least 2 tokens each (one step to predict)."""
    if not words:
        raise ValueError(f"{name} has no words (it is empty or has only blank lines)")
    if len(words) < 2 * batch_size:
        raise ValueError(
            f"{name} has {len(words)} tokens (words plus one <eos> per line); training with batch size "
            f"{batch_size} needs at least {2 * batch_size}"
        )


def check_valid_words(words: Sequence[str], name: str = "the validation text") -> None:
    """Raise a ValueError naming `name` if there is nothing to validate on."""
    if not words:
        raise ValueError(f"{name} has no words (it is empty or has only blank lines); validation needs at least one")


def batchify(ids: Sequence[int], batch_size: int) -> torch.Tensor:
    """Cut the stream into batch_size equal columns (dropping the remainder):
    returns (batch_size, n_steps), row b being the b-th slice of the stream."""
    data = torch.as_tensor(ids, dtype=torch.int64)
    n_steps = len(data) // batch_size
    if n_steps < 2:
        raise ValueError(f"{len(data)} tokens are too few for {batch_size} columns")
    return data[: n_steps * batch_size].view(batch_size, n_steps)


def chunk_starts(n_steps: int, bptt: int) -> List[int]:
    """Where each TBPTT chunk of a (batch_size, n_steps) stream starts; a
    chunk reads positions [start, start + bptt) and predicts one step ahead."""
    return list(range(0, n_steps - 1, bptt))


def get_chunk(data: torch.Tensor, start: int, bptt: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """inputs, targets: (batch_size, seq_len), the targets one step ahead."""
    seq_len = min(bptt, data.shape[1] - 1 - start)
    return data[:, start : start + seq_len], data[:, start + 1 : start + 1 + seq_len]


@dataclass
class LMConfig:
    """Model and training settings. The defaults are the 2-layer, 200-unit
    LSTM of Zaremba et al. (2014, "small"; 114.5 test perplexity on PTB in 13
    epochs): batch 20, 20-step BPTT, lr 20 on the mean loss (their lr 1 on
    the loss summed over 20 steps), clipping at 0.25, lr halved each epoch
    from epoch 5, and divided by 4 when validation does not improve."""

    cell: str = "lstm"
    depth: int = 2
    embed_width: int = 200
    width: int = 200
    embed_dropout: float = 0.0
    dropout: float = 0.0
    output_dropout: float = 0.0
    tie_weights: bool = False
    max_vocab: int = 10_000
    min_freq: int = 1
    lowercase: bool = True
    number_token: Optional[str] = "N"
    optimizer: str = "sgd"  # or "adam"
    lr: float = 20.0
    clip: float = 0.25
    decay_start: int = 5  # from this epoch on, multiply lr by decay_factor every epoch
    decay_factor: float = 0.5
    plateau_factor: float = 4.0  # divide lr by this when validation did not improve; 1 disables
    epochs: int = 13
    batch_size: int = 20
    bptt: int = 20
    eval_batch_size: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= 4:
            raise ValueError(f"depth must be 1-4, got {self.depth}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.tie_weights and self.embed_width != self.width:
            raise ValueError(
                f"tie_weights needs embed_width == width, got {self.embed_width} and {self.width}"
            )

    @classmethod
    def from_dict(cls, data: Dict) -> "LMConfig":
        """The config from asdict() output; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def build_model(config: LMConfig, vocab_size: int) -> RNNLanguageModel:
    """The torch language model the config describes, for vocab_size words."""
    return RNNLanguageModel(
        vocab_size=vocab_size,
        embed_width=config.embed_width,
        hidden_width=config.width,
        n_layers=config.depth,
        cell=config.cell,
        embed_dropout_prob=config.embed_dropout,
        dropout_prob=config.dropout,
        output_dropout_prob=config.output_dropout,
        tie_weights=config.tie_weights,
    )


@dataclass
class EvalResult:
    """Cross-entropy of a text and how many of its words were unknown."""

    loss: float  # mean natural-log cross-entropy per token
    n_tokens: int
    n_unk: int  # tokens that are <unk> after the lookup (targets only)
    n_oov: int  # of those, tokens that were not <unk> in the text: out of vocabulary

    @property
    def perplexity(self) -> float:
        """exp(loss); inf when it overflows (the model has diverged)."""
        return perplexity(self.loss) if self.n_tokens else float("nan")

    @property
    def oov_rate(self) -> float:
        return self.n_oov / self.n_tokens if self.n_tokens else 0.0

    @property
    def unk_rate(self) -> float:
        return self.n_unk / self.n_tokens if self.n_tokens else 0.0


@torch.no_grad()
def evaluate_ids(model: RNNLanguageModel, ids: Sequence[int], *, batch_size: int = 10, bptt: int = 35) -> float:
    """Mean cross-entropy (nats per token) of the stream, read in batch_size
    columns (each starting from the zero state) with the state carried over.
    batch_size 1 is exact; 10 (pytorch/examples) is faster and differs a
    little: each column starts without context."""
    was_training = model.training
    model.eval()
    try:
        batch_size = max(1, min(batch_size, len(ids) // 2))
        data = batchify(ids, batch_size).to(model.embed.weight.device)
        state = model.init_state(batch_size)
        total, count = 0.0, 0
        for start in chunk_starts(data.shape[1], bptt):
            inputs, targets = get_chunk(data, start, bptt)
            logits, state = model(inputs, state)
            total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))
            count += targets.numel()
        return total / max(count, 1)
    finally:
        model.train(was_training)


def evaluate_file(
    model: RNNLanguageModel, vocab: Vocabulary, path: Union[str, Path], *, batch_size: int = 10, bptt: int = 35
) -> EvalResult:
    """Perplexity of a tokenized text file (one sentence or paragraph per
    line, `<eos>` after each), and how many words are out of vocabulary.
    Raises a ValueError naming the file if it cannot be read as UTF-8 text
    (see read_lines) or has no words."""
    words = stream_words(read_lines(path))
    if not words:
        raise ValueError(f"{path}: no words to evaluate (the file is empty or has only blank lines)")
    return evaluate_words(model, vocab, words, batch_size=batch_size, bptt=bptt)


def evaluate_words(model: RNNLanguageModel, vocab: Vocabulary, words: Sequence[str], *, batch_size: int = 10, bptt: int = 35) -> EvalResult:
    """Perplexity of a word stream, with the <unk> and out-of-vocabulary
    counts over the tokens that are predicted."""
    ids = vocab.encode(words)
    batch_size = max(1, min(batch_size, len(ids) // 2))
    scored = (len(ids) // batch_size) * batch_size  # the tokens batchify keeps
    # Every column's first token is only read, not predicted.
    n_steps = scored // batch_size
    targets = [i for b in range(batch_size) for i in range(b * n_steps + 1, (b + 1) * n_steps)]
    n_unk = sum(1 for i in targets if ids[i] == UNK_ID)
    n_oov = sum(1 for i in targets if ids[i] == UNK_ID and words[i] != UNK)
    loss = evaluate_ids(model, ids, batch_size=batch_size, bptt=bptt)
    return EvalResult(loss=loss, n_tokens=len(targets), n_unk=n_unk, n_oov=n_oov)


@dataclass
class TrainResult:
    """What train_lm reports: the best validation loss, how far the run got
    (epochs, TBPTT steps, tokens, training seconds) and the per-epoch log."""

    best_val_loss: float
    epochs_done: int
    steps: int
    train_tokens: int
    train_seconds: float
    stopped_early: bool
    history: List[Dict] = field(default_factory=list)
    diverged: Optional[str] = None  # why training stopped on a diverged model, if it did

    @property
    def best_val_perplexity(self) -> float:
        return perplexity(self.best_val_loss) if math.isfinite(self.best_val_loss) else float("inf")

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else 0.0


@dataclass
class TrainState:
    """Everything a run carries from step to step: the model and optimizer,
    where it is (epoch, TBPTT step within it), the recurrent state, lr,
    validation losses, counters and the per-epoch log, what the run was
    started with (`inputs`, for resume to compare) and, once the loss has
    blown up, why (`diverged`). A checkpoint is this plus torch's (global)
    RNG state; see save_checkpoint."""

    config: LMConfig
    vocab: Vocabulary
    model: RNNLanguageModel
    optimizer: torch.optim.Optimizer
    hidden: LMState
    lr: float
    epoch: int = 1
    position: int = 0  # TBPTT steps of the current epoch done
    best_val: float = float("inf")
    last_val: float = float("inf")  # the previous epoch's validation loss
    steps: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    history: List[Dict] = field(default_factory=list)
    inputs: Optional[Dict] = None
    diverged: Optional[str] = None

    def result(self, stopped: bool) -> TrainResult:
        """The summary train_lm returns."""
        return TrainResult(
            best_val_loss=self.best_val,
            epochs_done=sum(1 for entry in self.history if entry["complete"]),
            steps=self.steps,
            train_tokens=self.train_tokens,
            train_seconds=self.train_seconds,
            stopped_early=stopped,
            history=self.history,
            diverged=self.diverged,
        )


def _make_optimizer(config: LMConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD or Adam at config.lr."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def build_vocab(train_words: Sequence[str], config: LMConfig) -> Vocabulary:
    """The config.max_vocab most frequent normalized training words."""
    probe = Vocabulary([UNK, EOS], lowercase=config.lowercase, number_token=config.number_token)
    counts = Counter(probe.normalize(w) for w in train_words)
    return Vocabulary.from_counts(
        counts, max_size=config.max_vocab, min_freq=config.min_freq,
        lowercase=config.lowercase, number_token=config.number_token,
    )


def new_train_state(config: LMConfig, vocab: Vocabulary) -> TrainState:
    """A fresh run: seed torch, build the model and its optimizer, start at
    epoch 1 from the zero state."""
    torch.manual_seed(config.seed)
    model = build_model(config, len(vocab))
    optimizer = _make_optimizer(config, model)
    return TrainState(config, vocab, model, optimizer, model.init_state(config.batch_size), lr=config.lr)


def load_checkpoint(path: Union[str, Path]) -> Dict:
    """A checkpoint file's contents, as save_checkpoint wrote them."""
    # Only tensors, numbers, strings, lists and dicts: no pickled objects.
    return torch.load(path, map_location="cpu", weights_only=True)


def checkpoint_payload(state: TrainState) -> Dict:
    """A checkpoint's contents: the state, with the vocabulary and config as
    plain data, the recurrent state as a list and torch's RNG state."""
    hidden = state.hidden
    return {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "epoch": state.epoch,
        "position": state.position,
        "lr": state.lr,
        "best_val": state.best_val,
        "last_val": state.last_val,
        "steps": state.steps,
        "train_tokens": state.train_tokens,
        "train_seconds": state.train_seconds,
        "history": state.history,
        "hidden": list(hidden) if isinstance(hidden, tuple) else [hidden],
        "rng": torch.get_rng_state(),
        "vocab": state.vocab.to_dict(),
        "config": asdict(state.config),
        "inputs": state.inputs,
    }


def save_checkpoint(state: TrainState, path: Path) -> None:
    """Write the checkpoint beside path, then move it over path (a crash
    while writing keeps the previous checkpoint)."""
    with atomic_output(path) as tmp:
        torch.save(checkpoint_payload(state), tmp)


def restore_train_state(saved: Dict) -> TrainState:
    """The run a checkpoint was written by, at the point it was written,
    with torch's RNG state set back to what it was then."""
    config = LMConfig.from_dict(saved["config"])
    state = new_train_state(config, Vocabulary.from_dict(saved["vocab"]))
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.hidden = tuple(saved["hidden"]) if config.cell == "lstm" else saved["hidden"][0]
    for name in ("epoch", "position", "lr", "best_val", "last_val", "steps", "train_tokens", "train_seconds"):
        setattr(state, name, saved[name])
    state.history = list(saved["history"])
    state.inputs = saved.get("inputs")
    torch.set_rng_state(saved["rng"])
    return state


class Checkpointer:
    """Saves the state to a checkpoint file (nothing without one): on request,
    and every `minutes` within an epoch (never with minutes < 0)."""

    def __init__(self, path: Optional[Path], minutes: float) -> None:
        self.path, self.minutes = path, minutes
        self.last = time.perf_counter()

    def save(self, state: TrainState) -> None:
        """Write the checkpoint now."""
        if self.path is not None:
            save_checkpoint(state, self.path)
        self.last = time.perf_counter()

    def due(self) -> bool:
        """Whether `minutes` have passed since the last checkpoint."""
        return self.minutes >= 0 and time.perf_counter() - self.last >= self.minutes * 60

    def save_if_due(self, state: TrainState) -> None:
        """Write the checkpoint if `minutes` have passed since the last one."""
        if self.due():
            self.save(state)


@dataclass
class Budget:
    """When a run has to stop: after max_steps TBPTT steps or max_minutes of
    wall time since `start` (None: no limit)."""

    start: float
    max_steps: Optional[int] = None
    max_minutes: Optional[float] = None

    def exhausted(self, steps: int) -> bool:
        """Whether either limit is reached."""
        if self.max_steps is not None and steps >= self.max_steps:
            return True
        return self.max_minutes is not None and time.perf_counter() - self.start >= self.max_minutes * 60


class EpochProgress:
    """A tqdm bar over the TBPTT steps of an epoch with tokens/s, the running
    loss and lr; disabled when not wanted or stdout is not a terminal."""

    def __init__(self, state: TrainState, n_steps: int, enabled: bool) -> None:
        self.bar = tqdm(
            total=n_steps, initial=state.position, desc=f"epoch {state.epoch}/{state.config.epochs}",
            unit="step", file=sys.stdout, mininterval=1.0, dynamic_ncols=True,
            disable=not (enabled and sys.stdout.isatty()),
        )
        self.start, self.tokens = time.perf_counter(), 0
        self.loss, self.loss_tokens = 0.0, 0.0

    def update(self, loss: torch.Tensor, n_tokens: int, lr: float) -> None:
        """Count one step of n_tokens with its mean loss."""
        if self.bar.disable:
            return
        self.tokens += n_tokens
        # Running loss over about the last 200 steps.
        self.loss = self.loss * 0.995 + loss.item() * n_tokens
        self.loss_tokens = self.loss_tokens * 0.995 + n_tokens
        mean = self.loss / self.loss_tokens
        tokens_per_s = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(1)
        self.bar.set_postfix_str(
            f"{tokens_per_s:,.0f} tok/s, loss {mean:.3f} (ppl {math.exp(min(mean, 50)):.1f}), lr {lr:.3g}", refresh=False
        )

    def close(self) -> None:
        """Leave the finished bar on the terminal."""
        self.bar.close()


def train_step(state: TrainState, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """One TBPTT step: carry the state over (detached), backpropagate the
    mean cross-entropy, clip, update. Returns the loss (detached)."""
    model, optimizer = state.model, state.optimizer
    state.hidden = detach_state(state.hidden)
    optimizer.zero_grad()
    logits, state.hidden = model(inputs, state.hidden)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    if state.config.clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), state.config.clip)
    optimizer.step()
    return loss.detach()


def train_epoch(
    state: TrainState, train_data: torch.Tensor, starts: List[int], budget: Budget, checkpointer: Checkpointer, progress: bool
) -> bool:
    """Train from state.position to the end of the epoch, checkpointing when
    due; returns True if the budget stopped it first. A training loss that is
    not finite, or weights that are not when a checkpoint is due, set
    state.diverged and end the epoch at once, without checkpointing."""
    state.model.train()
    bar = EpochProgress(state, len(starts), progress)
    try:
        while state.position < len(starts):
            if budget.exhausted(state.steps):
                return True
            tic = time.perf_counter()
            inputs, targets = get_chunk(train_data, starts[state.position], state.config.bptt)
            loss = train_step(state, inputs, targets)
            if not math.isfinite(loss.item()):
                state.diverged = (
                    f"the training loss is {loss.item()} at step {state.position + 1} of epoch {state.epoch}"
                )
                return False
            state.position += 1
            state.steps += 1
            state.train_tokens += targets.numel()
            state.train_seconds += time.perf_counter() - tic
            bar.update(loss, targets.numel(), state.lr)
            if checkpointer.due():
                if not all(bool(torch.isfinite(p).all()) for p in state.model.parameters()):
                    state.diverged = f"the weights are not finite after step {state.position} of epoch {state.epoch}"
                    return False
                checkpointer.save(state)
        return False
    finally:
        bar.close()


def validate_epoch(
    state: TrainState, valid_ids: Sequence[int], stopped: bool, start_time: float,
    on_best: Optional[Callable[[RNNLanguageModel, Vocabulary, Dict], None]], log: Callable[[str], None],
) -> Dict:
    """Validate after an epoch (or the part of one a budget allowed), log the
    summary line, record the best loss and call on_best when it improved.
    A perplexity that is not finite (inf when exp(loss) overflows) sets
    state.diverged. Returns the epoch's history entry."""
    val = evaluate_ids(state.model, valid_ids, batch_size=state.config.eval_batch_size, bptt=state.config.bptt)
    entry = {
        "epoch": state.epoch,
        "complete": not stopped,
        "lr": state.lr,
        "valid_loss": val,
        "valid_perplexity": perplexity(val),
        "seconds": round(time.perf_counter() - start_time, 1),
        "tokens_per_second": round(state.train_tokens / state.train_seconds, 1) if state.train_seconds else 0.0,
    }
    log(
        f"epoch {state.epoch}{' (stopped by the budget)' if stopped else ''} | lr {state.lr:.4g} | "
        f"valid ppl {entry['valid_perplexity']:.2f} | {entry['tokens_per_second']:,.0f} tok/s | {entry['seconds']:.0f} s"
    )
    if not math.isfinite(entry["valid_perplexity"]):
        entry["diverged"] = True
        state.diverged = f"the validation perplexity is {entry['valid_perplexity']} after epoch {state.epoch}"
    elif val < state.best_val:
        state.best_val = val
        if on_best is not None:
            # Whatever on_best does with torch's RNG (e.g. build a
            # pipeline), training goes on as if it had not run.
            with torch.random.fork_rng(devices=[]):
                on_best(state.model, state.vocab, entry)
    return entry


def next_epoch(state: TrainState, val: float) -> None:
    """Apply the lr schedule after a complete epoch with validation loss val
    and move to the start of the next epoch, from the zero state. The lr is
    divided on a plateau (validation no better than the previous epoch's)
    and decayed every epoch from decay_start on."""
    config = state.config
    if math.isfinite(state.last_val) and val >= state.last_val and config.plateau_factor > 1:
        state.lr /= config.plateau_factor
    if state.epoch + 1 >= config.decay_start:
        state.lr *= config.decay_factor
    state.last_val = val
    _set_lr(state.optimizer, state.lr)
    state.epoch += 1
    state.position = 0
    state.hidden = state.model.init_state(config.batch_size)


def train_lm(
    train_words: Sequence[str],
    valid_words: Sequence[str],
    config: LMConfig,
    *,
    checkpoint: Optional[Union[str, Path]] = None,
    resume: bool = False,
    on_best: Optional[Callable[[RNNLanguageModel, Vocabulary, Dict], None]] = None,
    max_minutes: Optional[float] = None,
    max_steps: Optional[int] = None,
    checkpoint_minutes: float = 5.0,
    progress: bool = True,
    log: Callable[[str], None] = print,
    inputs: Optional[Dict] = None,
) -> Tuple[RNNLanguageModel, Vocabulary, TrainResult]:
    """Train a language model with TBPTT on the stream of train_words,
    validating on valid_words after every epoch.

    checkpoint: file with everything needed to continue: weights, optimizer,
        epoch and position in it, the recurrent state, lr, best validation
        loss, vocabulary, config and RNG state. Written after every epoch,
        every checkpoint_minutes within an epoch, and when a budget stops the
        run. With resume=True and the file present, training continues from
        it and ends with the same weights as an uninterrupted run; the config
        is then the checkpoint's. With resume=True and no file, a fresh run
        starts (and says so).
    on_best: called with (model, vocab, info) whenever validation improves.
    max_minutes, max_steps: budgets (training wall time, TBPTT steps); when
        one runs out the run stops mid-epoch, checkpoints, validates, and
        calls on_best if the partial epoch improved validation.
    progress: a progress bar per epoch (only when stdout is a terminal).
    inputs: what the run is started with (plain data: corpus fingerprints,
        options), stored in the checkpoint for a resume to compare with.
    Divergence: when a training loss is not finite, the weights are not when
    a checkpoint is due, or the validation perplexity is not (inf: exp(loss)
    overflows), the run stops at once without checkpointing or calling
    on_best, so the checkpoint and the best model stay those saved before;
    the summary's `diverged` says why.
    Too few training words or no validation words raise a ValueError before
    any training.
    Returns the model as it is at the end (not necessarily the best), the
    vocabulary and a summary.
    """
    start_time = time.perf_counter()
    budget = Budget(start_time, max_steps, max_minutes)
    state_file = Path(checkpoint) if checkpoint else None
    resuming = bool(resume and state_file and state_file.exists())
    if resume and not resuming:
        log(f"--resume: no checkpoint at {state_file}; starting a fresh run" if state_file
            else "--resume without a checkpoint file: starting a fresh run")
    saved = load_checkpoint(state_file) if resuming else None
    check_train_words(train_words, saved["config"]["batch_size"] if saved else config.batch_size)
    if not valid_words:
        raise ValueError("there are no validation words (the validation text is empty or has only blank lines)")
    if saved is not None:
        state = restore_train_state(saved)
    else:
        state = new_train_state(config, build_vocab(train_words, config))
        state.inputs = inputs
    train_data = batchify(state.vocab.encode(train_words), state.config.batch_size)
    valid_ids = state.vocab.encode(valid_words)
    starts = chunk_starts(train_data.shape[1], state.config.bptt)
    if resuming:
        log(f"Resuming from {state_file}: epoch {state.epoch}, step {state.position} of {len(starts)}, lr {state.lr:.4g}")
    _set_lr(state.optimizer, state.lr)
    checkpointer = Checkpointer(state_file, checkpoint_minutes)
    stopped = False
    while state.epoch <= state.config.epochs and not stopped:
        stopped = train_epoch(state, train_data, starts, budget, checkpointer, progress)
        if state.diverged is None:
            # Validated before the checkpoint is written (also when a budget
            # stopped the epoch), so that a diverged state is never saved.
            entry = validate_epoch(state, valid_ids, stopped, start_time, on_best, log)
            state.history.append(entry)
        if state.diverged is not None:
            log(f"training diverged: {state.diverged}; stopped without saving this state "
                f"(the checkpoint and the best model are from before it)")
            break
        if not stopped:
            next_epoch(state, entry["valid_loss"])
        checkpointer.save(state)
    return state.model, state.vocab, state.result(stopped)
