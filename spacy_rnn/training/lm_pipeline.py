"""The language model's training loop around spaCy pipelines: train on
tokenized text files with train_lm, keep the best and the last model as
pipelines with an rnn_lm component (model-best/, model-last/), and evaluate
a saved pipeline on text files. The command line (spacy_rnn.cli.lm) calls
these."""
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import spacy
import srsly
from spacy.language import Language

from ..models.lm_vocab import Vocabulary
from ..models.pytorch import RNNLanguageModel
from ..models.wrappers import load_language_model_state, torch_language_model
from ..pipeline.lm import RNNLM
from .lm import LMConfig, TrainResult, evaluate_file, load_checkpoint, read_lines, stream_words, train_lm

COMPONENT = "rnn_lm"
CHECKPOINT = "checkpoint.pt"


def build_pipeline(model: RNNLanguageModel, vocab: Vocabulary, config: LMConfig, lang: str = "en") -> Language:
    """A blank pipeline with an rnn_lm that holds the trained model's weights."""
    nlp = spacy.blank(lang)
    pipe = nlp.add_pipe(
        COMPONENT,
        config={
            "model": {
                "@architectures": "spacy_rnn.RNNLanguageModel.v1",
                "cell": config.cell,
                "width": config.width,
                "depth": config.depth,
                "word_width": config.embed_width,
                "vocab_size": len(vocab),
                "embed_dropout": config.embed_dropout,
                "dropout": config.dropout,
                "output_dropout": config.output_dropout,
                "tie_weights": config.tie_weights,
            },
            "lowercase": vocab.lowercase,
            "number_token": vocab.number_token,
        },
    )
    pipe.set_vocabulary(vocab.words)
    load_language_model_state(pipe.model, model.state_dict())
    return nlp


def language_model_from_pipeline(nlp: Language, component: Optional[str] = None) -> Tuple[RNNLanguageModel, Vocabulary]:
    """The torch model and vocabulary of a pipeline's rnn_lm."""
    names = [component] if component else [name for name, pipe in nlp.pipeline if isinstance(pipe, RNNLM)]
    if not names:
        raise ValueError(f"the pipeline has no rnn_lm component: {nlp.pipe_names}")
    pipe = nlp.get_pipe(names[0])
    return torch_language_model(pipe.model), pipe.word_vocab


def read_corpus(train_path: Path, valid_path: Path, limit_tokens: Optional[int] = None) -> Tuple[List[str], List[str]]:
    """The training and validation word streams; limit_tokens (a smoke test)
    keeps that many training words and a tenth as many (at least 2000)
    validation words."""
    train_words = stream_words(read_lines(train_path))
    valid_words = stream_words(read_lines(valid_path))
    if limit_tokens:
        train_words = train_words[:limit_tokens]
        valid_words = valid_words[: max(limit_tokens // 10, 2000)]
    return train_words, valid_words


def config_in_use(config: LMConfig, output_dir: Path, resume: bool) -> LMConfig:
    """The config a run trains with: on resume, the checkpoint's."""
    checkpoint = output_dir / CHECKPOINT
    if resume and checkpoint.exists():
        return LMConfig.from_dict(load_checkpoint(checkpoint)["config"])
    return config


def run_training(
    train_path: Path,
    valid_path: Path,
    output_dir: Path,
    config: LMConfig,
    *,
    resume: bool = False,
    max_minutes: Optional[float] = None,
    max_steps: Optional[int] = None,
    limit_tokens: Optional[int] = None,
    checkpoint_minutes: float = 5.0,
    progress: bool = True,
) -> Dict:
    """Train, saving output_dir/model-best (the best validation perplexity so
    far, as a spaCy pipeline), output_dir/model-last, output_dir/checkpoint.pt
    (for resume) and output_dir/training.json (per-epoch log). Returns the
    summary written to training.json."""
    output_dir.mkdir(parents=True, exist_ok=True)
    train_words, valid_words = read_corpus(train_path, valid_path, limit_tokens)
    used = config_in_use(config, output_dir, resume)

    def save_best(model: RNNLanguageModel, vocab: Vocabulary, info: Dict) -> None:
        """Save the model that just improved validation as model-best/."""
        build_pipeline(model, vocab, used).to_disk(output_dir / "model-best")
        srsly.write_json(output_dir / "model-best" / "lm_training.json", info)

    started = time.perf_counter()
    model, vocab, result = train_lm(
        train_words, valid_words, config, checkpoint=output_dir / CHECKPOINT, resume=resume, on_best=save_best,
        max_minutes=max_minutes, max_steps=max_steps, checkpoint_minutes=checkpoint_minutes, progress=progress,
    )
    build_pipeline(model, vocab, used).to_disk(output_dir / "model-last")
    summary = training_summary(result, used, len(vocab), time.perf_counter() - started)
    srsly.write_json(output_dir / "training.json", summary)
    return summary


def training_summary(result: TrainResult, config: LMConfig, vocab_size: int, wall_seconds: float) -> Dict:
    """The contents of training.json: the config, the outcome and the per-epoch log."""
    return {
        "config": asdict(config),
        "vocab_size": vocab_size,
        "best_valid_perplexity": result.best_val_perplexity,
        "epochs_done": result.epochs_done,
        "steps": result.steps,
        "train_tokens": result.train_tokens,
        "train_seconds": round(result.train_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "stopped_by_budget": result.stopped_early,
        "history": result.history,
    }


def evaluate_pipeline(model_path: Path, text_paths: List[Path], *, batch_size: int = 10, bptt: int = 35) -> Dict[str, Dict]:
    """Perplexity and out-of-vocabulary rate of a saved pipeline's rnn_lm on
    tokenized text files, by file."""
    model, vocab = language_model_from_pipeline(spacy.load(model_path))
    results = {}
    for path in text_paths:
        tic = time.perf_counter()
        result = evaluate_file(model, vocab, path, batch_size=batch_size, bptt=bptt)
        results[str(path)] = {
            "perplexity": result.perplexity,
            "tokens": result.n_tokens,
            "oov_rate": result.oov_rate,
            "unk_rate": result.unk_rate,
            "seconds": round(time.perf_counter() - tic, 1),
        }
    return results
