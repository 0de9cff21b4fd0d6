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
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..models.pytorch import RNNLanguageModel, detach_state
from ..models.lm_vocab import EOS, EOS_ID, UNK, UNK_ID, Vocabulary

def read_lines(path: Union[str, Path]) -> List[List[str]]:
    """The words of each non-blank line of a tokenized text file (PTB and
    WikiText: space-separated tokens, one sentence or paragraph per line).
    Blank lines are skipped: WikiText's would add easy `<eos>` predictions."""
    with open(path, encoding="utf8") as file:
        return [line.split() for line in file if line.strip()]


def stream_words(lines: Iterable[List[str]]) -> List[str]:
    """One stream: each line's words followed by `<eos>`."""
    return [word for line in lines for word in line + [EOS]]


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
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def build_model(config: LMConfig, vocab_size: int) -> RNNLanguageModel:
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
    loss: float  # mean natural-log cross-entropy per token
    n_tokens: int
    n_unk: int  # tokens that are <unk> after the lookup (targets only)
    n_oov: int  # of those, tokens that were not <unk> in the text: out of vocabulary

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if self.n_tokens else float("nan")

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
        data = batchify(ids, batch_size)
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
    line, `<eos>` after each), and how many words are out of vocabulary."""
    words = stream_words(read_lines(path))
    return evaluate_words(model, vocab, words, batch_size=batch_size, bptt=bptt)


def evaluate_words(model: RNNLanguageModel, vocab: Vocabulary, words: Sequence[str], *, batch_size: int = 10, bptt: int = 35) -> EvalResult:
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


class Progress:
    """A progress bar (tqdm) with tokens/s and the running loss, or nothing."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="batch", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)

    def update(self, tokens_per_s: float, loss: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{tokens_per_s:,.0f} tok/s, loss {loss:.3f} (ppl {math.exp(min(loss, 50)):.1f}), lr {lr:.3g}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class TrainResult:
    best_val_loss: float
    epochs_done: int
    steps: int
    train_tokens: int
    train_seconds: float
    stopped_early: bool
    history: List[Dict] = field(default_factory=list)

    @property
    def best_val_perplexity(self) -> float:
        return math.exp(self.best_val_loss) if math.isfinite(self.best_val_loss) else float("inf")

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else 0.0


def _make_optimizer(config: LMConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr)
    return torch.optim.SGD(model.parameters(), lr=config.lr)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def load_checkpoint(path: Union[str, Path]) -> Dict:
    # Only tensors, numbers, strings, lists and dicts: no pickled objects.
    return torch.load(path, map_location="cpu", weights_only=True)


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
) -> Tuple[RNNLanguageModel, Vocabulary, TrainResult]:
    """Train a language model with TBPTT on the stream of train_words,
    validating on valid_words after every epoch.

    checkpoint: file with everything needed to continue: weights, optimizer,
        epoch and position in it, the recurrent state, lr, best validation
        loss, vocabulary, config and RNG state. Written after every epoch,
        every checkpoint_minutes within an epoch, and when a budget stops the
        run. With resume=True and the file present, training continues from
        it and ends with the same weights as an uninterrupted run; the config
        is then the checkpoint's.
    on_best: called with (model, vocab, info) whenever validation improves.
    max_minutes, max_steps: budgets (training wall time, TBPTT steps); when
        one runs out the run stops mid-epoch, checkpoints, validates, and
        calls on_best if the partial epoch improved validation.
    Returns the model as it is at the end (not necessarily the best), the
    vocabulary and a summary.
    """
    start_time = time.perf_counter()
    state_file = Path(checkpoint) if checkpoint else None
    saved = load_checkpoint(state_file) if resume and state_file and state_file.exists() else None
    if saved is not None:
        config = LMConfig.from_dict(saved["config"])
        vocab = Vocabulary.from_dict(saved["vocab"])
    else:
        probe = Vocabulary([UNK, EOS], lowercase=config.lowercase, number_token=config.number_token)
        counts = Counter(probe.normalize(w) for w in train_words)
        vocab = Vocabulary.from_counts(
            counts, max_size=config.max_vocab, min_freq=config.min_freq,
            lowercase=config.lowercase, number_token=config.number_token,
        )
    torch.manual_seed(config.seed)
    model = build_model(config, len(vocab))
    optimizer = _make_optimizer(config, model)
    train_data = batchify(vocab.encode(train_words), config.batch_size)
    valid_ids = vocab.encode(valid_words)
    starts = chunk_starts(train_data.shape[1], config.bptt)
    epoch, position, lr = 1, 0, config.lr
    best_val, last_val = float("inf"), float("inf")
    steps, train_tokens, train_seconds = 0, 0, 0.0
    history: List[Dict] = []
    hidden = model.init_state(config.batch_size)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        epoch, position, lr = saved["epoch"], saved["position"], saved["lr"]
        best_val, last_val = saved["best_val"], saved["last_val"]
        steps, train_tokens, train_seconds = saved["steps"], saved["train_tokens"], saved["train_seconds"]
        history = list(saved["history"])
        hidden = tuple(saved["hidden"]) if config.cell == "lstm" else saved["hidden"][0]
        torch.set_rng_state(saved["rng"])
        log(f"Resuming from {state_file}: epoch {epoch}, step {position} of {len(starts)}, lr {lr:.4g}")
    _set_lr(optimizer, lr)

    def write_checkpoint() -> None:
        if state_file is None:
            return
        state_file.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "position": position,
            "lr": lr,
            "best_val": best_val,
            "last_val": last_val,
            "steps": steps,
            "train_tokens": train_tokens,
            "train_seconds": train_seconds,
            "history": history,
            "hidden": list(hidden) if isinstance(hidden, tuple) else [hidden],
            "rng": torch.get_rng_state(),
            "vocab": vocab.to_dict(),
            "config": asdict(config),
        }
        tmp = state_file.with_name(state_file.name + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(state_file)  # a crash while writing keeps the previous checkpoint

    def validate() -> float:
        return evaluate_ids(model, valid_ids, batch_size=config.eval_batch_size, bptt=config.bptt)

    def budget_left() -> bool:
        if max_steps is not None and steps >= max_steps:
            return False
        if max_minutes is not None and time.perf_counter() - start_time >= max_minutes * 60:
            return False
        return True

    stopped = False
    last_checkpoint = time.perf_counter()
    while epoch <= config.epochs and not stopped:
        model.train()
        bar = Progress(len(starts), position, f"epoch {epoch}/{config.epochs}", progress)
        window_loss, window_tokens = 0.0, 0
        epoch_tic = time.perf_counter()
        epoch_tokens = 0
        while position < len(starts):
            if not budget_left():
                stopped = True
                break
            tic = time.perf_counter()
            inputs, targets = get_chunk(train_data, starts[position], config.bptt)
            hidden = detach_state(hidden)
            optimizer.zero_grad()
            logits, hidden = model(inputs, hidden)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            loss.backward()
            if config.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            position += 1
            steps += 1
            n = targets.numel()
            train_tokens += n
            epoch_tokens += n
            train_seconds += time.perf_counter() - tic
            # Running loss over about the last 200 steps.
            window_loss = window_loss * 0.995 + loss.detach().item() * n
            window_tokens = window_tokens * 0.995 + n
            bar.update(epoch_tokens / max(time.perf_counter() - epoch_tic, 1e-9), window_loss / window_tokens, lr)
            if checkpoint_minutes >= 0 and time.perf_counter() - last_checkpoint >= checkpoint_minutes * 60:
                write_checkpoint()
                last_checkpoint = time.perf_counter()
        bar.close()
        if stopped:
            write_checkpoint()
        val = validate()
        val_ppl = math.exp(val)
        entry = {
            "epoch": epoch,
            "complete": not stopped,
            "lr": lr,
            "valid_loss": val,
            "valid_perplexity": val_ppl,
            "seconds": round(time.perf_counter() - start_time, 1),
            "tokens_per_second": round(train_tokens / train_seconds, 1) if train_seconds else 0.0,
        }
        log(
            f"epoch {epoch}{' (stopped by the budget)' if stopped else ''} | lr {lr:.4g} | "
            f"valid ppl {val_ppl:.2f} | {entry['tokens_per_second']:,.0f} tok/s | {entry['seconds']:.0f} s"
        )
        if val < best_val:
            best_val = val
            if on_best is not None:
                # Whatever on_best does with torch's RNG (e.g. build a
                # pipeline), training goes on as if it had not run.
                with torch.random.fork_rng(devices=[]):
                    on_best(model, vocab, entry)
        if stopped:
            history.append(entry)
            write_checkpoint()
            break
        # Schedule: divide on a plateau (validation no better than the
        # previous epoch's), and decay every epoch from decay_start on.
        if math.isfinite(last_val) and val >= last_val and config.plateau_factor > 1:
            lr /= config.plateau_factor
        if epoch + 1 >= config.decay_start:
            lr *= config.decay_factor
        last_val = val
        history.append(entry)
        _set_lr(optimizer, lr)
        epoch += 1
        position = 0
        hidden = model.init_state(config.batch_size)
        write_checkpoint()
        last_checkpoint = time.perf_counter()
    result = TrainResult(
        best_val_loss=best_val,
        epochs_done=sum(1 for entry in history if entry["complete"]),
        steps=steps,
        train_tokens=train_tokens,
        train_seconds=train_seconds,
        stopped_early=stopped,
        history=history,
    )
    return model, vocab, result
