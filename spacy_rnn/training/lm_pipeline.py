"""The language model's training loop around spaCy pipelines: train on
tokenized text files with train_lm, keep the best and the last model as
pipelines with an rnn_lm component (model-best/, model-last/), and evaluate
a saved pipeline on text files. The command line (spacy_rnn.cli.lm) calls
these.

Every end product (model-best/, model-last/, training.json, evaluation
JSON) is written beside its destination and renamed into place
(spacy_rnn.files.atomic_output), so a crash while saving leaves the previous
version."""
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import spacy
from spacy.attrs import ORTH
from spacy.language import Language

from ..files import atomic_output, recover
from ..models.lm_vocab import EOS, UNK, Vocabulary
from ..models.pytorch import RNNLanguageModel
from ..models.wrappers import load_language_model_state, torch_language_model
from ..pipeline.lm import RNNLM
from .lm import (
    LMConfig,
    TrainResult,
    check_train_words,
    check_valid_words,
    evaluate_file,
    load_checkpoint,
    read_lines,
    stream_words,
    train_lm,
)

COMPONENT = "rnn_lm"
CHECKPOINT = "checkpoint.pt"
END_PRODUCTS = ("model-best", "model-last", "training.json", CHECKPOINT)


def write_json(path: Path, data: Any) -> None:
    """Write data as indented JSON, atomically. An infinite perplexity is
    written as Infinity (and NaN as NaN), which Python's json reads back as
    float("inf") (float("nan")); srsly's JSON cannot write either."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf8")


def save_pipeline(nlp: Language, path: Path, info: Optional[Dict] = None) -> None:
    """nlp.to_disk(path), atomically, with info as lm_training.json inside."""
    with atomic_output(path) as tmp:
        nlp.to_disk(tmp)
        if info is not None:
            (tmp / "lm_training.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf8")


def build_pipeline(model: RNNLanguageModel, vocab: Vocabulary, config: LMConfig, lang: str = "en") -> Language:
    """A blank pipeline with an rnn_lm that holds the trained model's weights. Its tokenizer keeps
    the vocabulary's special words whole (PTB's text writes `<unk>` for the words it dropped, which
    spaCy's tokenizer would split into '<', 'unk', '>': three words the model never read)."""
    nlp = spacy.blank(lang)
    for special in (UNK, EOS):
        nlp.tokenizer.add_special_case(special, [{ORTH: special}])
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
    validation words. Raises a ValueError naming the file and line for text
    that is not UTF-8 or has a NUL character (see read_lines)."""
    train_words = stream_words(read_lines(train_path))
    valid_words = stream_words(read_lines(valid_path))
    if limit_tokens:
        train_words = train_words[:limit_tokens]
        valid_words = valid_words[: max(limit_tokens // 10, 2000)]
    return train_words, valid_words


def file_fingerprint(path: Path) -> Dict:
    """The path, size and SHA-256 of a file: what resume compares."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(Path(path).resolve()), "bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def run_inputs(train_path: Path, valid_path: Path, config: LMConfig, limit_tokens: Optional[int]) -> Dict:
    """What a run is started with: the corpus files and the options that
    change its result. Stored in the checkpoint; resume must match it."""
    return {
        "train": file_fingerprint(train_path),
        "valid": file_fingerprint(valid_path),
        "limit_tokens": limit_tokens,
        "config": asdict(config),
    }


def input_differences(started: Dict, now: Dict) -> List[str]:
    """How the inputs now differ from those a run was started with: a file
    with other contents (size or SHA-256; the path may change), and each
    option with its value then and now."""
    differences = []
    for key, role in (("train", "training"), ("valid", "validation")):
        old, new = started[key], now[key]
        if (old["bytes"], old["sha256"]) != (new["bytes"], new["sha256"]):
            differences.append(
                f"the {role} file {new['path']} ({new['bytes']:,} bytes, sha256 {new['sha256'][:12]}) is not the one "
                f"the run started with: {old['path']} ({old['bytes']:,} bytes, sha256 {old['sha256'][:12]})"
            )
    options = [("limit_tokens", started.get("limit_tokens"), now["limit_tokens"])]
    options += [(name, started["config"].get(name), value) for name, value in now["config"].items()]
    differences += [f"{name}: {old!r} when the run started, now {new!r}" for name, old, new in options if old != new]
    return differences


def config_in_use(config: LMConfig, output_dir: Path, resume: bool, inputs: Optional[Dict] = None) -> LMConfig:
    """The config a run trains with: on resume, the checkpoint's. With
    inputs (run_inputs), a resume whose corpus or options differ from those
    the checkpoint's run started with raises a ValueError saying what
    differs. A checkpoint from before inputs were recorded is resumed with a
    warning that they cannot be compared."""
    checkpoint = output_dir / CHECKPOINT
    if not (resume and checkpoint.exists()):
        return config
    saved = load_checkpoint(checkpoint)
    if inputs is not None:
        if saved.get("inputs") is None:
            print(f"--resume: {checkpoint} does not record the corpus and options its run started with "
                  f"(an older version wrote it); they are not compared, and the checkpoint's options are used")
        else:
            differences = input_differences(saved["inputs"], inputs)
            if differences:
                raise ValueError(
                    f"--resume: the run of {checkpoint} started with other inputs: " + "; ".join(differences)
                    + ". Resume with the corpus and options the run started with, or train into another output directory."
                )
    return LMConfig.from_dict(saved["config"])


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
    summary written to training.json.

    Before training: a model-best/model-last that a crash left aside is put
    back; the corpus is read and checked (ValueErrors name the file: not
    UTF-8, a NUL character, no words, too few training tokens for the batch
    size); on resume, the corpus and options must be those the run started
    with (see config_in_use); without a checkpoint, resume starts afresh.
    Every save is atomic. If training diverges, model-best and the checkpoint
    stay those of the last good epoch, model-last is not written, and the
    summary's "diverged" says why."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in END_PRODUCTS:
        recover(output_dir / name)
    train_words, valid_words = read_corpus(train_path, valid_path, limit_tokens)
    inputs = run_inputs(train_path, valid_path, config, limit_tokens)
    used = config_in_use(config, output_dir, resume, inputs)
    limited = f" (its first {limit_tokens} tokens: --limit-tokens)" if limit_tokens else ""
    check_train_words(train_words, used.batch_size, f"{train_path}: the training file{limited}")
    check_valid_words(valid_words, f"{valid_path}: the validation file")

    def save_best(model: RNNLanguageModel, vocab: Vocabulary, info: Dict) -> None:
        """Save the model that just improved validation as model-best/."""
        save_pipeline(build_pipeline(model, vocab, used), output_dir / "model-best", info)

    started = time.perf_counter()
    model, vocab, result = train_lm(
        train_words, valid_words, config, checkpoint=output_dir / CHECKPOINT, resume=resume, on_best=save_best,
        max_minutes=max_minutes, max_steps=max_steps, checkpoint_minutes=checkpoint_minutes, progress=progress,
        inputs=inputs,
    )
    if result.diverged is None:
        save_pipeline(build_pipeline(model, vocab, used), output_dir / "model-last")
    summary = training_summary(result, used, len(vocab), time.perf_counter() - started)
    write_json(output_dir / "training.json", summary)
    return summary


def training_summary(result: TrainResult, config: LMConfig, vocab_size: int, wall_seconds: float) -> Dict:
    """The contents of training.json: the config, the outcome and the
    per-epoch log. best_epoch is the epoch model-best is from (None if no
    epoch had a finite validation loss); diverged is None or why training
    stopped on a diverged model."""
    best_epoch = next(
        (entry["epoch"] for entry in result.history if entry["valid_loss"] == result.best_val_loss), None
    )
    return {
        "config": asdict(config),
        "vocab_size": vocab_size,
        "best_valid_perplexity": result.best_val_perplexity,
        "best_epoch": best_epoch,
        "diverged": result.diverged,
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
    tokenized text files, by file. A file that cannot be read or has no
    words gets {"error": message naming the file} and the others are still
    evaluated. An infinite perplexity (exp of the loss overflows) is inf."""
    model, vocab = language_model_from_pipeline(spacy.load(model_path))
    results: Dict[str, Dict] = {}
    for path in text_paths:
        tic = time.perf_counter()
        try:
            result = evaluate_file(model, vocab, path, batch_size=batch_size, bptt=bptt)
        except (ValueError, OSError) as err:
            results[str(path)] = {"error": str(err)}
            continue
        results[str(path)] = {
            "perplexity": result.perplexity,
            "tokens": result.n_tokens,
            "oov_rate": result.oov_rate,
            "unk_rate": result.unk_rate,
            "seconds": round(time.perf_counter() - tic, 1),
        }
    return results
